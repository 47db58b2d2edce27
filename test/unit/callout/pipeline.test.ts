import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { decode as natsDecode } from "@nats-io/jwt";
import { AbortAuth, AuthError, ConfigError, PolicyEvalError } from "../../../src/errors.js";
import {
  createAuthorizer,
  replyBytesLowerBound,
  type AuthResult,
  type CoreOptions,
  type Handler,
} from "../../../src/callout/pipeline.js";
import type { Signer } from "../../../src/callout/keys.js";
import type { Grant } from "../../../src/types.js";
import {
  buildRequest,
  makeKeys,
  newAccountKey,
  newServerKey,
  openResponse,
  type RequestOptions,
} from "../../support/index.js";

const keys = makeKeys();
const PASSWORD = "s3cret-pass";
const config = (o: Partial<CoreOptions> = {}): CoreOptions =>
  ({ mode: "config", issuer: keys.issuer.signer, accounts: ["APP"], ...o }) as CoreOptions;
const grantAlice: Grant = { account: "APP", pub: { allow: ["app.alice.>"] }, sub: { allow: ["_INBOX.>"] } };

type N = Record<string, unknown>;
/** Response claims and (on allow) user claims, both signature-verified by @nats-io/jwt. */
function openReply(r: AuthResult, sealed = false): { resp: N & { nats: N }; user?: N & { nats: N } } {
  assert.ok(r.reply, "expected a reply");
  const resp = natsDecode<N>(openResponse(keys, r.reply, sealed)) as unknown as N & { nats: N };
  const jwt = resp.nats.jwt;
  return typeof jwt === "string"
    ? { resp, user: natsDecode<N>(jwt) as unknown as N & { nats: N } }
    : { resp };
}

function noSecrets(r: AuthResult) {
  const text = JSON.stringify({ outcome: r.outcome, error: r.error?.message, issued: r.issued });
  assert.ok(!text.includes(PASSWORD), "a secret leaked into the result");
  if (r.reply && r.outcome.kind !== "allow") assert.ok(!openResponseText(r).includes(PASSWORD));
}
const openResponseText = (r: AuthResult) => openResponse(keys, r.reply!, r.request?.encrypted ?? false);

async function run(handler: Handler, ro: RequestOptions = {}, o: Partial<CoreOptions> = {}) {
  const auth = createAuthorizer(ro.sealed ? config({ xkey: keys.xkey.xkey, ...o }) : config(o), handler);
  const req = buildRequest(keys, ro);
  const r = await auth(req.data, req.header, "dec-1");
  noSecrets(r);
  return { r, req };
}

describe("allow", () => {
  for (const sealed of [false, true]) {
    test(`config mode${sealed ? " + xkey" : ""}: signed response carrying a deny-by-default user JWT`, async () => {
      let seen: { decisionId: string; now: Date } | undefined;
      const { r, req } = await run(
        (rq, ctx) => {
          seen = ctx;
          assert.equal(rq.connect_opts.pass, PASSWORD);
          ctx.facts.revision = "rev-1";
          return { account: "APP", pub: { allow: ["app.alice.>"] } };
        },
        { sealed },
      );
      assert.equal(r.outcome.kind, "allow");
      assert.equal(r.decisionId, "dec-1");
      assert.equal(seen?.decisionId, "dec-1");
      assert.ok(seen?.now instanceof Date);
      assert.equal(r.facts.revision, "rev-1");
      assert.equal(r.request?.encrypted, sealed);
      if (sealed) assert.equal(new TextDecoder().decode(r.reply!.subarray(0, 4)), "xkv1");
      const { resp, user } = openReply(r, sealed);
      assert.equal(resp.iss, keys.issuer.publicKey);
      assert.equal(resp.sub, req.userNkey);
      assert.equal(resp.aud, keys.server.publicKey);
      assert.equal(resp.nats.error, undefined);
      assert.ok(user);
      assert.equal(user.iss, keys.issuer.publicKey);
      assert.equal(user.sub, req.userNkey);
      assert.equal(user.aud, "APP");
      assert.equal(user.name, "alice");
      assert.deepEqual(user.nats.pub, { allow: ["app.alice.>"] });
      assert.deepEqual(user.nats.sub, { deny: [">"] });
      assert.equal(user.nats.issuer_account, undefined);
      const nowS = Math.floor(Date.now() / 1000);
      assert.ok((user.exp as number) > nowS && (user.exp as number) <= nowS + 3600 + 1);
      assert.equal(r.issued?.account, "APP");
      assert.equal(r.issued?.exp, user.exp);
      assert.deepEqual(r.issued?.sub, { deny: [">"] });
      for (const k of ["decode_us", "handler_us", "sign_us", "total_us"] as const)
        assert.ok(r.timings[k] >= 0);
      assert.ok(r.timings.total_us >= r.timings.decode_us);
    });
  }

  test("expiry is capped by maxExpirySeconds; allow reason comes from meta.reason", async () => {
    const { r } = await run(
      (_q, ctx) => {
        ctx.facts.reason = "employee";
        return { ...grantAlice, expires_in: 999_999 };
      },
      {},
      { maxExpirySeconds: 120 },
    );
    assert.equal(r.outcome.kind === "allow" && r.outcome.reason, "employee");
    const { user } = openReply(r);
    assert.ok((user!.exp as number) <= Math.floor(Date.now() / 1000) + 120);
  });

  test("async handlers work", async () => {
    const { r } = await run(async () => {
      await new Promise((res) => setImmediate(res));
      return grantAlice;
    });
    assert.equal(r.outcome.kind, "allow");
  });
});

describe("deny and abort", () => {
  test("AuthError → deny with its reason in a signed error envelope", async () => {
    const { r, req } = await run(() => {
      throw new AuthError("bad_credentials");
    });
    assert.deepEqual(r.outcome, { kind: "deny", code: "auth_denied", reason: "bad_credentials" });
    const { resp, user } = openReply(r);
    assert.equal(user, undefined);
    assert.equal(resp.sub, req.userNkey);
    assert.equal(resp.nats.error, "bad_credentials");
    assert.equal(resp.nats.jwt, undefined);
  });

  test("AbortAuth → abort, no reply", async () => {
    const { r } = await run(() => {
      throw new AbortAuth("slow down");
    });
    assert.deepEqual(r.outcome, { kind: "abort", code: "auth_aborted", reason: "slow down" });
    assert.equal(r.reply, undefined);
    assert.ok(r.request);
  });

  test("any other throw → deny handler_error, without the thrown message", async () => {
    const { r } = await run(() => {
      throw new Error(`db said: password=${PASSWORD}`);
    });
    assert.deepEqual(r.outcome, { kind: "deny", code: "handler_error", reason: "handler_error" });
    assert.equal(openReply(r).resp.nats.error, "handler_error");
    assert.equal(r.error?.code, "handler_error");
  });

  test("a thrown non-Error and a rejected promise are handler errors too", async () => {
    for (const h of [
      () => {
        throw "a string";
      },
      () => Promise.reject(new Error("x")),
    ] as Handler[]) {
      const { r } = await run(h);
      assert.equal(r.outcome.kind === "deny" && r.outcome.code, "handler_error");
    }
  });

  test("a CalloutError from the handler keeps its code", async () => {
    const { r } = await run(() => {
      throw new PolicyEvalError("wasm trap");
    });
    assert.deepEqual(r.outcome, { kind: "deny", code: "policy_eval_error", reason: "policy_eval_error" });
  });

  test("invalid grants are denied with the validator's code and field", async () => {
    const cases: [unknown, string, string][] = [
      [{ account: "APP", permission: {} }, "decision_shape_error", "decision_shape_error: permission"],
      [{ account: "SYS" }, "account_not_allowed", "account_not_allowed: account"],
      [
        { account: "APP", pub: { allow: ["ok", "a..b"] } },
        "decision_shape_error",
        "decision_shape_error: pub.allow[1]",
      ],
      [undefined, "decision_shape_error", "decision_shape_error: grant"],
      [{ account: "APP", src: ["192.168.0.0/16"] }, "source_not_allowed", "source_not_allowed: src"],
      [
        { account: "APP", allowed_connection_types: ["MQTT"] },
        "connection_type_not_allowed",
        "connection_type_not_allowed: allowed_connection_types",
      ],
    ];
    for (const [grant, code, reason] of cases) {
      const { r } = await run(() => grant as Grant);
      assert.deepEqual(r.outcome, { kind: "deny", code, reason }, JSON.stringify(grant));
      assert.equal(openReply(r).resp.nats.error, reason);
    }
  });

  test("subject injection through the user name is denied", async () => {
    const h: Handler = (q) => ({ account: "APP", pub: { allow: [`app.${q.connect_opts.user}.>`] } });
    const { r } = await run(h, { connect_opts: { user: "*" } });
    assert.equal(r.outcome.kind === "deny" && r.outcome.code, "subject_injection");
    const ok = await run(h, { connect_opts: { user: "alice" } });
    assert.equal(ok.r.outcome.kind, "allow");
  });

  test("undecodable requests abort without calling the handler", async () => {
    let calls = 0;
    const h: Handler = () => {
      calls++;
      return grantAlice;
    };
    const cases: [RequestOptions, Partial<CoreOptions>, string][] = [
      [{ signer: newServerKey().signer }, {}, "request_decode_error"],
      [{ now: Date.now() - 60_000 }, {}, "request_expired"],
      [{ claims: { aud: "x" } }, {}, "request_decode_error"],
      [{ sealed: true }, { xkey: undefined }, "encryption_mismatch"],
      [{ claims: { sub: newAccountKey().publicKey } }, {}, "request_decode_error"],
    ];
    for (const [ro, o, code] of cases) {
      const auth = createAuthorizer(config(o), h);
      const req = buildRequest(keys, ro);
      const r = await auth(req.data, req.header);
      assert.equal(r.outcome.kind, "abort", JSON.stringify(ro));
      assert.equal(r.outcome.kind === "abort" && r.outcome.code, code);
      assert.equal(r.reply, undefined);
      assert.equal(r.request, undefined);
    }
    // plaintext request to an xkey-configured service
    const r = await createAuthorizer(config({ xkey: keys.xkey.xkey }), h)(buildRequest(keys).data);
    assert.equal(r.outcome.kind === "abort" && r.outcome.code, "encryption_mismatch");
    assert.equal(calls, 0);
  });

  test("an authentic request with a malformed optional field is denied, not left hanging", async () => {
    let calls = 0;
    const { r, req } = await run(
      () => {
        calls++;
        return grantAlice;
      },
      { client_info: { host: 42 } },
    );
    assert.equal(calls, 0);
    assert.equal(r.outcome.kind === "deny" && r.outcome.code, "request_decode_error");
    assert.equal(openReply(r).resp.sub, req.userNkey);
  });

  test("a request that expires while the handler runs is dropped", async () => {
    let now = Date.now();
    const auth = createAuthorizer(config({ now: () => now }), () => {
      now += 60_000;
      return grantAlice;
    });
    const req = buildRequest(keys, { now });
    const r = await auth(req.data, req.header);
    assert.equal(r.outcome.kind === "abort" && r.outcome.code, "request_expired");
    assert.equal(r.reply, undefined);
  });

  test("a signing fault never allows: deny if the deny can be signed, else abort", async () => {
    let calls = 0;
    const flaky: Signer = {
      publicKey: keys.issuer.publicKey,
      sign: (d) => {
        if (calls++ === 0) throw new Error("hsm hiccup");
        return keys.issuer.signer.sign(d);
      },
    };
    const a = await run(() => grantAlice, {}, { issuer: flaky } as Partial<CoreOptions>);
    assert.equal(a.r.outcome.kind === "deny" && a.r.outcome.code, "response_encode_error");
    assert.equal(openReply(a.r).resp.nats.error, "response_encode_error");
    const dead: Signer = {
      publicKey: keys.issuer.publicKey,
      sign: () => {
        throw new Error("hsm down");
      },
    };
    const b = await run(() => grantAlice, {}, { issuer: dead } as Partial<CoreOptions>);
    assert.equal(b.r.outcome.kind, "abort");
    assert.equal(b.r.reply, undefined);
  });
});

describe("operator mode", () => {
  const callout = keys.issuer; // the callout account: request sub
  const calloutSk = newAccountKey();
  const app = newAccountKey();
  const appSk = newAccountKey();
  const operator = (o: Partial<CoreOptions> = {}): CoreOptions =>
    ({
      mode: "operator",
      callout: { publicKey: callout.publicKey, signer: calloutSk.signer },
      accounts: { APP: { publicKey: app.publicKey, signer: appSk.signer } },
      ...o,
    }) as CoreOptions;

  test("response by the callout signing key + issuer_account; user JWT by the target's signing key", async () => {
    const auth = createAuthorizer(operator(), () => grantAlice);
    const req = buildRequest(keys);
    const r = await auth(req.data, req.header);
    assert.equal(r.outcome.kind, "allow");
    const { resp, user } = openReply(r);
    assert.equal(resp.iss, calloutSk.publicKey);
    assert.equal(resp.nats.issuer_account, callout.publicKey);
    assert.equal(user?.iss, appSk.publicKey);
    assert.equal(user?.nats.issuer_account, app.publicKey);
    assert.equal(user?.aud, undefined);
    assert.equal(r.issued?.account_public_key, app.publicKey);
    assert.equal(r.issued?.issuer, appSk.publicKey);
  });

  test("accounts outside the map are not allowed", async () => {
    const auth = createAuthorizer(operator(), () => ({ account: "SYS" }));
    const req = buildRequest(keys);
    const r = await auth(req.data, req.header);
    assert.equal(r.outcome.kind === "deny" && r.outcome.code, "account_not_allowed");
  });
});

describe("createAuthorizer options", () => {
  test("every problem is reported in one ConfigError", () => {
    const userLike: Signer = { publicKey: newServerKey().publicKey, sign: () => new Uint8Array(64) };
    assert.throws(
      () =>
        createAuthorizer(
          config({ issuer: userLike, accounts: [], maxExpirySeconds: -1 } as Partial<CoreOptions>),
          () => grantAlice,
        ),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        const fields = e.problems.map((p) => p.field).sort();
        assert.deepEqual(fields, ["accounts", "issuer", "maxExpirySeconds"]);
        return true;
      },
    );
    assert.throws(
      () =>
        createAuthorizer(
          { mode: "operator", callout: { publicKey: "x" }, accounts: {} } as unknown as CoreOptions,
          () => grantAlice,
        ),
      ConfigError,
    );
    assert.throws(() => createAuthorizer(config(), undefined as unknown as Handler), ConfigError);
  });

  test("the accounts list is copied: later mutation does not widen it", async () => {
    const accounts = ["APP"];
    const auth = createAuthorizer(config({ accounts }), () => ({ account: "SYS" }));
    accounts.push("SYS");
    const req = buildRequest(keys);
    const r = await auth(req.data, req.header);
    assert.equal(r.outcome.kind === "deny" && r.outcome.code, "account_not_allowed");
  });
});

describe("reply size and deadline", () => {
  test("an allow response over maxReplyBytes is denied grant_too_large; the deny itself fits", async () => {
    const subjects = Array.from({ length: 2000 }, (_, i) => `app.tenant.${i}.>`);
    let max: number | undefined = 16 * 1024;
    const { r } = await run(
      () => ({ ...grantAlice, pub: { allow: subjects } }),
      {},
      { maxReplyBytes: () => max },
    );
    assert.equal(r.outcome.kind, "deny");
    assert.equal(r.outcome.kind === "deny" && r.outcome.code, "grant_too_large");
    assert.match(
      r.outcome.kind === "deny" ? r.outcome.reason : "",
      /^grant_too_large: allow response of at least \d+ bytes exceeds the server's max_payload 16384$/,
    );
    assert.equal(r.issued, undefined);
    assert.ok(r.reply!.length <= 16 * 1024);
    assert.match(String(openReply(r).resp.nats.error), /^grant_too_large/);
    // Unknown max_payload (not connected): no check.
    max = undefined;
    const again = await run(
      () => ({ ...grantAlice, pub: { allow: subjects } }),
      {},
      { maxReplyBytes: () => max },
    );
    assert.equal(again.r.outcome.kind, "allow");
  });

  test("a grant under the early estimate but over the limit once signed is denied too (exact size)", async () => {
    const g: Grant = { ...grantAlice, pub: { allow: Array.from({ length: 300 }, (_, i) => `app.t.${i}.>`) } };
    const max = replyBytesLowerBound(g) + 100; // the envelope and other claims add far more than 100 bytes
    const { r } = await run(() => g, {}, { maxReplyBytes: max });
    assert.equal(r.outcome.kind === "deny" && r.outcome.code, "grant_too_large");
    const m = /allow response of (\d+) bytes exceeds/.exec(r.outcome.kind === "deny" ? r.outcome.reason : "");
    assert.ok(m && Number(m[1]) > max, r.outcome.kind === "deny" ? r.outcome.reason : "");
    // And the bound is a bound: the same grant with room to spare is allowed, its reply above the estimate.
    const ok = await run(() => g, {}, { maxReplyBytes: 1024 * 1024 });
    assert.equal(ok.r.outcome.kind, "allow");
    assert.ok(ok.r.reply!.length >= replyBytesLowerBound(g));
  });

  test("a deny that does not fit either is an abort (never a failed publish)", async () => {
    const { r } = await run(
      () => {
        throw new AuthError("bad_credentials");
      },
      {},
      { maxReplyBytes: 64 },
    );
    assert.equal(r.outcome.kind, "abort");
    assert.equal(r.outcome.kind === "abort" && r.outcome.code, "response_encode_error");
    assert.equal(r.reply, undefined);
  });

  test("maxReplyBytes must be positive", () => {
    assert.throws(() => createAuthorizer(config({ maxReplyBytes: 0 }), () => grantAlice), ConfigError);
  });

  test("replyBy: the earlier of arrival + (exp - iat) and one second past exp", async () => {
    const now = Date.now();
    const auth = createAuthorizer(config(), () => grantAlice);
    const req = buildRequest(keys, { now, timeoutSeconds: 2 });
    const receivedAt = performance.now();
    const r = await auth(req.data, req.header, "d", { receivedAt });
    assert.equal(r.outcome.kind, "allow");
    const byExp = receivedAt + ((Math.floor(now / 1000) + 2 + 1) * 1000 - Date.now());
    assert.ok(r.replyBy !== undefined && r.replyBy <= receivedAt + 2000 + 1, String(r.replyBy));
    assert.ok(r.replyBy <= byExp + 50, "never later than one second past exp");
  });

  test("held longer than the server's timeout since arrival: request_expired, whatever the clock says", async () => {
    const auth = createAuthorizer(config(), () => grantAlice);
    const req = buildRequest(keys, { timeoutSeconds: 2 });
    // Arrived 2.5 s ago (queued behind other work): the server has given up although exp is not past.
    const r = await auth(req.data, req.header, "d", { receivedAt: performance.now() - 2500 });
    assert.equal(r.outcome.kind, "abort");
    assert.equal(r.outcome.kind === "abort" && r.outcome.code, "request_expired");
    assert.equal(r.reply, undefined);
  });
});
