/**
 * Bad input. In-process: ≥100,000 (reduced 10,000) malformed, forged, expired, oversized, wrongly
 * encrypted and replayed requests through the real decode path (createAuthorizer) with a handler
 * that would allow ANYTHING — so an allow can only come from a request the decode path let through.
 * Over the wire: a few hundred forged credentials against the example policy, and raw garbage
 * published straight onto $SYS.REQ.USER.AUTH. Asserts: 0 allows, 0 crashes (authorize never throws,
 * the service stays up), the handler is never reached, and the RSS delta stays under a stated bound.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createAccount, createCurve } from "@nats-io/nkeys";
import { connect } from "@nats-io/transport-node";
import {
  createAuthorizer,
  encodeJwt,
  signerFromSeed,
  xkeyFromSeed,
  type Handler,
} from "../../src/callout/index.js";
import {
  newKeys,
  secret,
  benchUser,
  examplePolicyDir,
  procRssBytes,
  fakeServer,
  makeRequest,
  specClaims,
  type RequestSpec,
  RELIABILITY_FULL as FULL,
  RELIABILITY_SCALE_NAME as SCALE_NAME,
  fileDir,
  readDecisions,
  registerSecret,
  startStack,
  tryConnect,
  type Stack,
} from "../support/index.js";

const TOTAL = FULL ? 100_000 : 10_000;
const WIRE_CREDS = FULL ? 600 : 200;
const WIRE_RAW = FULL ? 600 : 200;
/** Stated bound on the test process's RSS growth over the in-process run. */
const RSS_BOUND_MIB = FULL ? 192 : 128;
/** Stated bound on the service's RSS growth over the wire part. */
const WIRE_RSS_BOUND_MIB = 64;

const td = new TextDecoder();
const te = new TextEncoder();
const b64 = (s: string) => Buffer.from(s).toString("base64url");
const rnd = (n: number) => Math.floor(Math.random() * n);

interface Case {
  category: string;
  kind: string;
  data: Uint8Array;
  header?: string;
  /** Which authorizer: the plaintext one or the xkey one. */
  sealedService?: boolean;
  /** Clock offset for the service (replays after expiry). */
  clockOffsetMs?: number;
}

let stack: Stack | undefined;
after(async () => {
  await stack?.close();
});

test(`bad input in-process (${SCALE_NAME}: ${TOTAL.toLocaleString("en-US")} requests)`, async (t) => {
  const keys = newKeys();
  const issuer = signerFromSeed(keys.issuerSeed, "account");
  const xkey = xkeyFromSeed(keys.xkeySeed);
  const server = fakeServer();
  const other = fakeServer(); // another server: its key signs forgeries
  const otherAccount = createAccount().getPublicKey();
  const strangerX = xkeyFromSeed(td.decode(createCurve().getSeed()));
  let handlerCalls = 0;
  const allowAll: Handler = () => {
    handlerCalls++;
    return { account: "APP", pub: { allow: [">"] }, sub: { allow: [">"] } };
  };
  let clockOffset = 0;
  const now = () => Date.now() + clockOffset;
  const plain = createAuthorizer({ mode: "config", issuer, accounts: ["APP"], now }, allowAll);
  const sealed = createAuthorizer({ mode: "config", issuer, accounts: ["APP"], xkey, now }, allowAll);

  // Positive controls: the harness can see an allow (a fresh valid request, plain and sealed).
  const base: RequestSpec = { server, issuer: keys.issuerPub, user: "alice", pass: secret("pw") };
  assert.equal((await plain(makeRequest(base).data)).outcome.kind, "allow");
  const s0 = makeRequest({ ...base, sealFor: xkey.publicKey });
  assert.equal((await sealed(s0.data, s0.header)).outcome.kind, "allow");
  handlerCalls = 0;

  const signed = (mutate: (c: Record<string, unknown>) => void, spec: Partial<RequestSpec> = {}) =>
    makeRequest({ ...base, ...spec, mutate }).data;
  const nats = (c: Record<string, unknown>) => c.nats as Record<string, unknown>;
  const tamper = (jwt: string, f: (claims: Record<string, unknown>) => void) => {
    const [h, p, sig] = jwt.split(".");
    const claims = JSON.parse(Buffer.from(p as string, "base64url").toString()) as Record<string, unknown>;
    f(claims);
    return te.encode(`${h}.${b64(JSON.stringify(claims))}.${sig}`);
  };

  const generators: Record<string, (() => Case)[]> = {
    malformed: [
      () => ({ category: "", kind: "random bytes", data: randomBytes(rnd(2000)) }),
      () => ({ category: "", kind: "empty", data: new Uint8Array(0) }),
      () => ({
        category: "",
        kind: "eyJ + garbage",
        data: te.encode("eyJ" + randomBytes(rnd(600)).toString("base64url")),
      }),
      () => {
        const parts = makeRequest(base).jwt.split(".");
        return { category: "", kind: "two parts", data: te.encode(`${parts[0]}.${parts[1]}`) };
      },
      () => ({ category: "", kind: "four parts", data: te.encode(makeRequest(base).jwt + ".AAAA") }),
      () => ({
        category: "",
        kind: "payload not JSON",
        data: te.encode(`${b64('{"typ":"JWT","alg":"ed25519-nkey"}')}.${b64("not json{")}.${b64("sig")}`),
      }),
      () => ({
        category: "",
        kind: "payload array",
        data: te.encode(
          `${b64('{"typ":"JWT","alg":"ed25519-nkey"}')}.${b64("[1,2]")}.${b64("x".repeat(64))}`,
        ),
      }),
      () => {
        const [, p, sig] = makeRequest(base).jwt.split(".");
        return {
          category: "",
          kind: "alg none",
          data: te.encode(`${b64('{"typ":"JWT","alg":"none"}')}.${p}.${sig}`),
        };
      },
      () => {
        const bytes = new Uint8Array([0x65, 0x79, 0x4a, 0xff, 0xfe, 0xc3, 0x28, ...randomBytes(64)]);
        return { category: "", kind: "not UTF-8", data: bytes };
      },
      () => ({ category: "", kind: "nats missing", data: signed((c) => delete c.nats) }),
      () => ({ category: "", kind: "server_id missing", data: signed((c) => delete nats(c).server_id) }),
      () => ({
        category: "",
        kind: "client_info wrong type",
        data: signed((c) => (nats(c).client_info = "x")),
      }),
      () => ({
        category: "",
        kind: "connect_opts wrong type",
        data: signed((c) => (nats(c).connect_opts = [1])),
      }),
      () => ({
        category: "",
        kind: "pass wrong type",
        data: signed((c) => ((nats(c).connect_opts as Record<string, unknown>).pass = { $ne: 1 })),
      }),
      () => ({ category: "", kind: "user_nkey missing", data: signed((c) => delete nats(c).user_nkey) }),
      () => {
        // encodeJwt always writes its own iat: sign this one by hand, with the real server key.
        const claims = specClaims(base);
        claims.iat = "now";
        claims.iss = server.id;
        const input = `${b64('{"typ":"JWT","alg":"ed25519-nkey"}')}.${b64(JSON.stringify(claims))}`;
        const sig = Buffer.from(server.signer.sign(te.encode(input))).toString("base64url");
        return { category: "", kind: "iat string", data: te.encode(`${input}.${sig}`) };
      },
    ],
    forged: [
      () => ({
        category: "",
        kind: "signed by another server key",
        data: makeRequest({ ...base, signWith: other.signer }).data,
      }),
      () => ({
        category: "",
        kind: "iss != server_id.id",
        data: signed((c) => ((nats(c).server_id as Record<string, unknown>).id = other.id)),
      }),
      () => {
        const jwt = makeRequest(base).jwt;
        const i = jwt.length - 1 - rnd(40);
        const flipped = jwt.slice(0, i) + (jwt[i] === "A" ? "B" : "A") + jwt.slice(i + 1);
        return { category: "", kind: "signature bit flip", data: te.encode(flipped) };
      },
      () => ({
        category: "",
        kind: "claims edited after signing",
        data: tamper(
          makeRequest(base).jwt,
          (c) => ((nats(c).connect_opts as Record<string, unknown>).user = "admin"),
        ),
      }),
      () => ({
        category: "",
        kind: "other issuer account (sub)",
        data: makeRequest({ ...base, issuer: otherAccount }).data,
      }),
      () => ({
        category: "",
        kind: "wrong aud",
        data: signed((c) => (c.aud = "nats-authorization-response")),
      }),
      () => ({
        category: "",
        kind: "wrong type",
        data: signed((c) => (nats(c).type = "authorization_response")),
      }),
      () => ({ category: "", kind: "version 1", data: signed((c) => (nats(c).version = 1)) }),
      () => ({
        category: "",
        kind: "user_nkey is an account key",
        data: signed((c) => (nats(c).user_nkey = otherAccount)),
      }),
      () => {
        // A response-shaped token signed by an account key, replayed as a request.
        const acc = signerFromSeed(td.decode(createAccount().getSeed()), "account");
        return {
          category: "",
          kind: "signed by an account key",
          data: te.encode(encodeJwt(specClaims(base), acc)),
        };
      },
    ],
    expired: [
      () => ({
        category: "",
        kind: "exp in the past",
        data: makeRequest({ ...base, nowMs: Date.now() - (10_000 + rnd(3_600_000)) }).data,
      }),
      () => ({
        category: "",
        kind: "nbf in the future",
        data: signed((c) => (c.nbf = Math.floor(Date.now() / 1000) + 60 + rnd(3600))),
      }),
      () => ({ category: "", kind: "exp missing", data: signed((c) => delete c.exp) }),
      () => ({ category: "", kind: "exp string", data: signed((c) => (c.exp = "tomorrow")) }),
      () => ({ category: "", kind: "exp zero", data: signed((c) => (c.exp = 0)) }),
    ],
    oversized: [
      () => {
        const size = 64 * 1024 + 1 + rnd(16 * 1024);
        return {
          category: "",
          kind: "huge pass (signed, > 64 KiB)",
          data: makeRequest({ ...base, pass: "p".repeat(size) }).data,
        };
      },
      () => ({
        category: "",
        kind: "huge random body",
        data: randomBytes(64 * 1024 + 1 + rnd(rnd(10) === 0 ? 1024 * 1024 : 8 * 1024)),
      }),
      () => ({
        category: "",
        kind: "huge eyJ body",
        data: te.encode("eyJ" + "A".repeat(64 * 1024 + rnd(4096))),
      }),
      () => {
        const size = 64 * 1024 + rnd(8 * 1024);
        const s = makeRequest({ ...base, pass: "p".repeat(size), sealFor: xkey.publicKey });
        return {
          category: "",
          kind: "huge sealed",
          data: s.data,
          header: s.header as string,
          sealedService: true,
        };
      },
    ],
    "wrongly encrypted": [
      () => ({
        category: "",
        kind: "plaintext to an xkey service",
        data: makeRequest(base).data,
        sealedService: true,
      }),
      () => {
        const s = makeRequest({ ...base, sealFor: xkey.publicKey });
        return {
          category: "",
          kind: "sealed to a plaintext service",
          data: s.data,
          header: s.header as string,
        };
      },
      () => {
        const s = makeRequest({ ...base, sealFor: strangerX.publicKey });
        return {
          category: "",
          kind: "sealed for another xkey",
          data: s.data,
          header: s.header as string,
          sealedService: true,
        };
      },
      () => {
        const s = makeRequest({ ...base, sealFor: xkey.publicKey });
        return { category: "", kind: "no header", data: s.data, sealedService: true };
      },
      () => {
        const s = makeRequest({ ...base, sealFor: xkey.publicKey });
        return {
          category: "",
          kind: "header names another sender",
          data: s.data,
          header: other.xkey.publicKey,
          sealedService: true,
        };
      },
      () => {
        const s = makeRequest({ ...base, sealFor: xkey.publicKey });
        const d = new Uint8Array(s.data);
        const i = 4 + rnd(d.length - 4);
        d[i] = (d[i] as number) ^ (1 << rnd(8));
        return {
          category: "",
          kind: "box bit flip",
          data: d,
          header: s.header as string,
          sealedService: true,
        };
      },
      () => {
        const s = makeRequest({ ...base, sealFor: xkey.publicKey });
        return {
          category: "",
          kind: "truncated box",
          data: s.data.subarray(0, rnd(s.data.length)),
          header: s.header as string,
          sealedService: true,
        };
      },
      () => {
        const s = makeRequest({ ...base, sealFor: xkey.publicKey });
        const d = new Uint8Array(s.data);
        d.set(te.encode("xkv2"), 0);
        return {
          category: "",
          kind: "wrong version prefix",
          data: d,
          header: s.header as string,
          sealedService: true,
        };
      },
      () => {
        // Sealed correctly, but the signed claims name another server xkey than the header.
        const s = makeRequest({
          ...base,
          sealFor: xkey.publicKey,
          mutate: (c) => ((nats(c).server_id as Record<string, unknown>).xkey = other.xkey.publicKey),
        });
        return {
          category: "",
          kind: "claims xkey != header",
          data: s.data,
          header: s.header as string,
          sealedService: true,
        };
      },
    ],
    replayed: [
      () => ({
        category: "",
        kind: "replayed after expiry",
        data: makeRequest(base).data,
        clockOffsetMs: 8_000 + rnd(600_000),
      }),
      () => {
        const s = makeRequest({ ...base, sealFor: xkey.publicKey });
        return {
          category: "",
          kind: "sealed replayed after expiry",
          data: s.data,
          header: s.header as string,
          sealedService: true,
          clockOffsetMs: 8_000 + rnd(600_000),
        };
      },
      () => ({
        category: "",
        kind: "replayed to another service (other issuer)",
        data: makeRequest({ ...base, issuer: otherAccount }).data,
      }),
    ],
  };
  const categories = Object.keys(generators);
  const perCategory = Math.ceil(TOTAL / categories.length);

  const outcomes: Record<string, Record<string, number>> = {};
  const kinds: Record<string, number> = {};
  let allows = 0;
  let thrown = 0;
  let total = 0;
  const allowedKinds: string[] = [];
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  let rssMax = rss0;
  for (const category of categories) {
    const gens = generators[category] as (() => Case)[];
    outcomes[category] = {};
    for (let i = 0; i < perCategory; i++) {
      const c = (gens[i % gens.length] as () => Case)();
      clockOffset = c.clockOffsetMs ?? 0;
      let kind: string;
      try {
        const r = await (c.sealedService ? sealed : plain)(c.data, c.header);
        kind = r.outcome.kind;
        if (kind === "allow") {
          allows++;
          allowedKinds.push(c.kind);
        }
        if (kind !== "abort" && r.reply === undefined) throw new Error("deny without a reply");
      } catch {
        thrown++;
        kind = "threw";
      }
      const o = outcomes[category] as Record<string, number>;
      o[kind] = (o[kind] ?? 0) + 1;
      kinds[c.kind] = (kinds[c.kind] ?? 0) + 1;
      total++;
      if (total % 1000 === 0) rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }
  }
  clockOffset = 0;
  global.gc?.();
  const rss1 = process.memoryUsage().rss;
  const deltaMiB = (rss1 - rss0) / 2 ** 20;
  t.diagnostic(
    `${total} requests: outcomes ${JSON.stringify(outcomes)}; RSS ${(rss0 / 2 ** 20).toFixed(0)} → ${(rss1 / 2 ** 20).toFixed(0)} MiB ` +
      `(max ${(rssMax / 2 ** 20).toFixed(0)}, delta ${deltaMiB.toFixed(0)} MiB, bound ${RSS_BOUND_MIB} MiB); ${Object.keys(kinds).length} kinds`,
  );
  assert.ok(total >= TOTAL, "ran the full count");
  assert.equal(allows, 0, `bad requests were allowed: ${[...new Set(allowedKinds)].join(", ")}`);
  assert.equal(thrown, 0, "authorize() threw");
  assert.equal(handlerCalls, 0, "no bad request reached the handler");
  assert.ok(deltaMiB < RSS_BOUND_MIB, `RSS grew ${deltaMiB.toFixed(0)} MiB (bound ${RSS_BOUND_MIB})`);
  // After all that, a valid request is still allowed (the authorizers are not wedged).
  assert.equal((await plain(makeRequest(base).data)).outcome.kind, "allow");
});

test(`bad input over the wire (${SCALE_NAME}: ${WIRE_CREDS} forged credentials, ${WIRE_RAW} raw messages)`, async (t) => {
  const dir = fileDir("bad-input");
  const users = 100;
  const { dir: policyDir } = examplePolicyDir(`${dir}/policy`, users);
  const prober = { user: "prober", pass: registerSecret(dir, secret("prober")) };
  stack = await startStack({ dir, policyDir, prober });
  const s = stack;
  const url = s.server.url;

  const good = benchUser(7);
  assert.equal(await tryConnect(url, good), undefined, "positive control: a valid user connects");
  const svcPid = s.services[0]?.pid as number;
  const svcRss0 = procRssBytes(svcPid);

  const badPass = registerSecret(dir, secret("wrong-pass"));
  const token = registerSecret(dir, secret("forged-token"));
  const fakeJwt = `${b64('{"alg":"ES256","typ":"JWT","kid":"demo-es256-1"}')}.${b64(JSON.stringify({ sub: "mallory", exp: 4_102_444_800, iss: "https://idp.example.test", aud: "nats", groups: ["orders-team"] }))}.${b64("forged-signature")}`;
  registerSecret(dir, fakeJwt);
  const forged: { kind: string; opts: Record<string, unknown> }[] = [
    { kind: "wrong password", opts: { user: good.user, pass: badPass } },
    { kind: "unknown user", opts: { user: "nobody-here", pass: badPass } },
    { kind: "empty password", opts: { user: good.user, pass: "" } },
    { kind: "other user's password", opts: { user: benchUser(8).user, pass: good.pass } },
    { kind: "oversized password", opts: { user: good.user, pass: badPass + "x".repeat(3000) } },
    { kind: "wildcard user", opts: { user: "bench-u7.>", pass: good.pass } },
    { kind: "star user", opts: { user: "*", pass: badPass } },
    { kind: "$SYS user", opts: { user: "$SYS", pass: badPass } },
    { kind: "unicode user", opts: { user: "bénch-u7", pass: good.pass } },
    { kind: "control chars", opts: { user: "bench-u7\u0007", pass: good.pass } },
    { kind: "garbage token", opts: { token } },
    { kind: "forged IdP JWT", opts: { token: fakeJwt } },
    { kind: "user and token", opts: { user: good.user, pass: good.pass, token } },
    { kind: "no credentials", opts: {} },
  ];
  let wireAllows = 0;
  const wireErrors: Record<string, number> = {};
  for (let i = 0; i < WIRE_CREDS; i++) {
    const f = forged[i % forged.length] as { kind: string; opts: Record<string, unknown> };
    try {
      const nc = await connect({
        servers: url,
        maxReconnectAttempts: 0,
        reconnect: false,
        timeout: 10_000,
        ...f.opts,
      });
      wireAllows++;
      await nc.close();
    } catch (err) {
      const m = (err as Error).message.slice(0, 60);
      wireErrors[m] = (wireErrors[m] ?? 0) + 1;
    }
  }

  // Raw garbage straight onto the callout subject, as an auth user whose permissions explicitly allow
  // publishing there: nats-server refuses it (Publish Violation), so no client can reach the service's
  // subscription with raw bytes. Checked here so that a server change that opened it would show.
  const nc = await connect({
    servers: url,
    user: prober.user,
    pass: prober.pass,
    maxReconnectAttempts: 0,
    reconnect: false,
  });
  let violations = 0;
  void (async () => {
    for await (const st of nc.status()) {
      if (
        st.type === "error" &&
        String((st as { error?: { name?: string } }).error?.name).includes("Permission")
      )
        violations++;
    }
  })();
  const server = fakeServer();
  const raws: (() => Uint8Array)[] = [
    () => randomBytes(rnd(4000)),
    () => te.encode("eyJ" + randomBytes(rnd(500)).toString("base64url")),
    () => makeRequest({ server, issuer: s.keys.issuerPub, user: good.user, pass: good.pass }).data, // wrong server: forged
    () =>
      makeRequest({
        server,
        issuer: s.keys.issuerPub,
        user: good.user,
        pass: good.pass,
        nowMs: Date.now() - 60_000,
      }).data,
    () => randomBytes(60 * 1024),
  ];
  for (let i = 0; i < WIRE_RAW; i++) {
    nc.publish("$SYS.REQ.USER.AUTH", (raws[i % raws.length] as () => Uint8Array)(), {
      reply: `_INBOX.probe.${i}`,
    });
  }
  await nc.flush().catch(() => {});
  await sleep(300);
  await nc.close().catch(() => {});
  await sleep(200);
  assert.ok(s.services[0]?.alive(), "the service survived the raw garbage");
  assert.equal(await tryConnect(url, good), undefined, "a valid user still connects afterwards");
  const svcRssDeltaMiB = (procRssBytes(svcPid) - svcRss0) / 2 ** 20;
  await s.close();

  const events = readDecisions(s.decisionLog(0));
  const byOutcome: Record<string, number> = {};
  for (const e of events) byOutcome[String(e.outcome)] = (byOutcome[String(e.outcome)] ?? 0) + 1;
  t.diagnostic(
    `forged credentials: ${WIRE_CREDS} attempts, ${wireAllows} connected, errors ${JSON.stringify(wireErrors)}; ` +
      `raw messages: ${WIRE_RAW} published, ${violations} refused by the server (Publish Violation); ` +
      `decision events by outcome ${JSON.stringify(byOutcome)}; service RSS delta ${svcRssDeltaMiB.toFixed(0)} MiB ` +
      `(bound ${WIRE_RSS_BOUND_MIB})`,
  );
  assert.equal(wireAllows, 0, "no forged credential connected");
  assert.equal(byOutcome.allow, 2, "only the two positive controls were allowed");
  assert.equal(
    events.length,
    WIRE_CREDS + 2,
    "one decision per connection attempt; no raw message reached the service",
  );
  assert.ok(violations > 0, "nats-server refused the raw publishes");
  assert.ok(svcRssDeltaMiB < WIRE_RSS_BOUND_MIB, `service RSS grew ${svcRssDeltaMiB.toFixed(0)} MiB`);
});
