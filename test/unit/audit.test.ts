import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MASK,
  applyMaskOps,
  buildDecisionEvent,
  createDecisionLog,
  isDecisionEvent,
  maskInput,
  type DecisionRecord,
  type MaskOp,
} from "../../src/audit.js";

const TOKEN = "s3cr3t-token-value-42";
const PASS = "hunter2-password!";
const JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQUJDIn0.c2lnbmF0dXJl";
const SEED = "SUAM6HCXXB2Y7W2PLB5IGNVA7BNS2W7OF2JQ2YZDGRW3HH7V5PWNJBHTGE";

function input(extra: Record<string, unknown> = {}) {
  return {
    version: 1,
    server_id: { name: "n1", host: "127.0.0.1", id: "NSERVER", version: "2.11.0" },
    user_nkey: "UUSERKEY",
    client_info: {
      host: "127.0.0.1",
      id: 7,
      user: TOKEN,
      name: "app",
      kind: "Client",
      type: "nats",
      nonce: "abc",
    },
    connect_opts: { user: "alice", pass: PASS, auth_token: TOKEN, jwt: JWT, sig: "sigvalue", lang: "node" },
    request_issuer: "AISSUER",
    derived: { connection_type: "STANDARD", tls: false },
    ...extra,
  };
}

function rec(over: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    decisionId: "d-1",
    receivedAt: new Date("2025-01-02T03:04:05.678Z"),
    outcome: "allow",
    code: "ok",
    revision: "rev1",
    entrypoint: "nats/authz/decision",
    input: input(),
    timings: { decode_us: 10, eval_us: 20, sign_us: 30, total_us: 70 },
    issued: {
      account: "APP",
      user: "UUSERKEY",
      pub: { allow: ["app.>"] },
      sub: { allow: ["_INBOX.>"] },
      exp: 1,
    },
    ...over,
  };
}

test("maskInput masks every secret field and copies of secrets, records pointers, leaves the original intact", () => {
  const orig = input({
    extra: { nested: { note: `prefix ${TOKEN} suffix`, seed_like: SEED, jwt_like: JWT } },
  });
  const before = JSON.stringify(orig);
  const { input: m, masked } = maskInput(orig);
  assert.equal(JSON.stringify(orig), before, "original must not be mutated");
  const doc = m as ReturnType<typeof input> & { extra: { nested: Record<string, string> } };
  assert.equal(doc.connect_opts.pass, MASK);
  assert.equal(doc.connect_opts.auth_token, MASK);
  assert.equal(doc.connect_opts.jwt, MASK);
  assert.equal(doc.connect_opts.sig, MASK);
  assert.equal(doc.client_info.user, MASK, "2.10 copies the token into client_info.user");
  assert.equal(doc.client_info.nonce, MASK);
  assert.equal(doc.extra.nested.note, MASK, "a string embedding a secret is masked");
  assert.equal(doc.extra.nested.seed_like, MASK);
  assert.equal(doc.extra.nested.jwt_like, MASK);
  // Non-secrets survive.
  assert.equal(doc.connect_opts.user, "alice");
  assert.equal(doc.client_info.name, "app");
  assert.equal(doc.user_nkey, "UUSERKEY");
  assert.deepEqual(
    [...masked].sort(),
    [
      "/client_info/nonce",
      "/client_info/user",
      "/connect_opts/auth_token",
      "/connect_opts/jwt",
      "/connect_opts/pass",
      "/connect_opts/sig",
      "/extra/nested/jwt_like",
      "/extra/nested/note",
      "/extra/nested/seed_like",
    ].sort(),
  );
  const s = JSON.stringify(m);
  for (const secret of [TOKEN, PASS, JWT, SEED, "sigvalue"]) assert.ok(!s.includes(secret), secret);
});

test("client_info.user is kept when it is a plain user name", () => {
  const i = input();
  i.client_info.user = "alice";
  const { input: m } = maskInput(i);
  assert.equal((m as typeof i).client_info.user, "alice");
});

test("buildDecisionEvent carries id, time, revision, outcome, timings, issued and a masked input", () => {
  const ev = buildDecisionEvent(rec());
  assert.equal(ev.type, "nats_opa_callout.decision");
  assert.equal(ev.decision_id, "d-1");
  assert.equal(ev.time, "2025-01-02T03:04:05.678Z");
  assert.equal(ev.revision, "rev1");
  assert.equal(ev.outcome, "allow");
  assert.deepEqual(ev.timings, { decode_us: 10, eval_us: 20, sign_us: 30, total_us: 70 });
  assert.equal(ev.issued?.account, "APP");
  assert.equal(ev.user_nkey, undefined, "user_nkey comes from the record or request only");
  assert.deepEqual(ev.client, { host: "127.0.0.1", id: 7, name: "app", type: "nats", kind: "Client" });
  assert.ok(isDecisionEvent(JSON.parse(JSON.stringify(ev))));
  assert.ok(!JSON.stringify(ev).includes(TOKEN));
});

test("deny, abort and error outcomes are logged alike, with reason and code", () => {
  for (const [outcome, code, error] of [
    ["deny", "bad_credentials", false],
    ["abort", "auth_aborted", false],
    ["deny", "policy_eval_error", true],
  ] as const) {
    const ev = buildDecisionEvent(rec({ outcome, code, reason: code, error, issued: undefined }));
    assert.equal(ev.outcome, outcome);
    assert.equal(ev.code, code);
    assert.equal(ev.reason, code);
    assert.equal(ev.error, error ? true : undefined);
    assert.equal(ev.issued, undefined);
    assert.ok(ev.input, "input present");
  }
});

test("a request without a policy input is logged from the request, masked", () => {
  const i = input();
  const ev = buildDecisionEvent(
    rec({
      input: undefined,
      request: {
        server_id: i.server_id,
        user_nkey: i.user_nkey,
        client_info: i.client_info,
        connect_opts: i.connect_opts,
        request_issuer: i.request_issuer,
        issued_at: 1,
        expires_at: 2,
        encrypted: false,
      },
    }),
  );
  assert.equal(ev.user_nkey, "UUSERKEY");
  assert.deepEqual(ev.server, { id: "NSERVER", name: "n1" });
  assert.equal((ev.input as { connect_opts: { pass: string } }).connect_opts.pass, MASK);
  assert.ok(!JSON.stringify(ev).includes(PASS));
});

test("no input at all → input_dropped=unavailable", () => {
  const ev = buildDecisionEvent(rec({ input: undefined, outcome: "deny", code: "request_decode_error" }));
  assert.equal(ev.input, undefined);
  assert.equal(ev.input_dropped, "unavailable");
});

test("a policy mask erases or upserts paths (with or without /input prefix)", () => {
  const ev = buildDecisionEvent(rec(), {
    mask: () => ["/input/client_info/name", { op: "upsert", path: "/connect_opts/user", value: "u***" }],
  });
  const doc = ev.input as ReturnType<typeof input>;
  assert.equal(doc.client_info.name, MASK);
  assert.equal(doc.connect_opts.user, "u***");
  assert.ok(ev.masked?.includes("/client_info/name"));
  assert.ok(ev.masked?.includes("/connect_opts/user"));
  assert.equal(ev.client?.name, MASK);
});

test("the policy mask sees the already-masked input", () => {
  let seen = "";
  buildDecisionEvent(rec(), {
    mask: (m) => {
      seen = JSON.stringify(m);
      return [];
    },
  });
  assert.ok(seen.includes(MASK));
  assert.ok(!seen.includes(PASS) && !seen.includes(TOKEN));
});

test("the mask context carries the unmasked input and the record; upserts are re-masked; paths listed once", () => {
  const r = rec();
  let ctxInput: unknown;
  let ctxRecord: unknown;
  const ev = buildDecisionEvent(r, {
    mask: (_m, ctx) => {
      ctxInput = ctx.input;
      ctxRecord = ctx.record;
      const pass = (ctx.input as ReturnType<typeof input>).connect_opts.pass;
      return ["/connect_opts/pass", "/client_info/name", { op: "upsert", path: "/extra/copy", value: pass }];
    },
  });
  assert.equal(ctxInput, r.input, "the raw input itself, not a copy");
  assert.equal(ctxRecord, r);
  const doc = ev.input as { extra: { copy: string }; client_info: { name: string } };
  assert.equal(doc.extra.copy, MASK, "an upserted secret is masked again");
  assert.equal(doc.client_info.name, MASK);
  assert.ok(!JSON.stringify(ev).includes(PASS));
  assert.equal(ev.masked?.filter((p) => p === "/connect_opts/pass").length, 1);
  assert.ok(ev.masked?.includes("/extra/copy"));
  assert.equal(new Set(ev.masked).size, ev.masked?.length);
});

test("if the policy mask fails, the event is written WITHOUT input (never unmasked)", () => {
  const drops: string[] = [];
  const lines: string[] = [];
  const log = createDecisionLog({
    sink: (l) => lines.push(l),
    onDrop: (r) => drops.push(r),
    mask: () => {
      throw new Error("mask exploded");
    },
  });
  log.record(rec());
  assert.equal(lines.length, 1);
  const ev = JSON.parse(lines[0] as string) as Record<string, unknown>;
  assert.equal(ev.input, undefined);
  assert.equal(ev.input_dropped, "mask_error");
  assert.deepEqual(drops, ["mask_error"]);
  // A malformed op is a failure too.
  const log2 = createDecisionLog({
    sink: (l) => lines.push(l),
    mask: () => [{ op: "bogus", path: "/x" }] as never,
  });
  log2.record(rec());
  assert.equal((JSON.parse(lines[1] as string) as Record<string, unknown>).input_dropped, "mask_error");
});

test("oversized input is dropped, not truncated", () => {
  const ev = buildDecisionEvent(rec({ input: input({ big: "x".repeat(2000) }) }), { maxInputBytes: 1000 });
  assert.equal(ev.input, undefined);
  assert.equal(ev.input_dropped, "too_large");
});

test("the input limit is exact in bytes: an input of exactly maxInputBytes is kept, one byte more is dropped", () => {
  // Multi-byte text, so characters and bytes differ (é is 2 bytes, 😀 is 4 bytes in 2 UTF-16 units).
  const r = rec({ input: input({ note: "é😀".repeat(300) }) });
  const bytes = Buffer.byteLength(JSON.stringify(maskInput(r.input).input));
  const kept = buildDecisionEvent(r, { maxInputBytes: bytes });
  assert.ok(kept.input !== undefined && kept.input_dropped === undefined);
  assert.ok(kept.masked?.includes("/connect_opts/pass"));
  const lines: string[] = [];
  const drops: string[] = [];
  const log = createDecisionLog({
    sink: (l) => lines.push(l),
    onDrop: (d) => drops.push(d),
    maxInputBytes: bytes - 1,
  });
  const dropped = log.record(r);
  assert.equal(dropped?.input_dropped, "too_large");
  assert.deepEqual(drops, ["too_large"]);
  const line = JSON.parse(lines[0] as string) as Record<string, unknown>;
  for (const ev of [dropped as unknown as Record<string, unknown>, line]) {
    assert.equal(ev.input, undefined);
    assert.equal(ev.masked, undefined, "no pointers into an input that is not there");
    assert.equal(ev.client, undefined);
    assert.equal(ev.input_dropped, "too_large");
    assert.equal(ev.decision_id, "d-1");
    assert.deepEqual(ev.issued, r.issued);
  }
});

test("the line is the event, with the masked input as its last field", () => {
  const lines: string[] = [];
  const log = createDecisionLog({ sink: (l) => lines.push(l), mask: () => ["/client_info/name"] });
  const ev = log.record(rec());
  const line = lines[0] as string;
  assert.deepEqual(JSON.parse(line), JSON.parse(JSON.stringify(ev)));
  assert.ok(line.endsWith(`,"input":${JSON.stringify(ev?.input)}}\n`));
  assert.equal((ev?.input as { client_info: { name: string } }).client_info.name, MASK);
  for (const secret of [TOKEN, PASS, JWT, "sigvalue"]) assert.ok(!line.includes(secret), secret);
});

test("a mask path is applied the same way every time; an invalid one fails every time", () => {
  const lines: string[] = [];
  const drops: string[] = [];
  const ops: MaskOp[] = ["/input/client_info/name", { op: "upsert", path: "/derived/note~1x", value: "n" }];
  const log = createDecisionLog({
    sink: (l) => lines.push(l),
    onDrop: (d) => drops.push(d),
    mask: () => ops,
  });
  for (let i = 0; i < 3; i++) {
    const ev = log.record(rec({ decisionId: `d-${i}` })) as {
      input: Record<string, Record<string, unknown>>;
    };
    assert.equal(ev.input.client_info?.name, MASK);
    assert.equal(ev.input.derived?.["note/x"], "n");
  }
  const bad = createDecisionLog({
    sink: (l) => lines.push(l),
    onDrop: (d) => drops.push(d),
    mask: () => ["/__proto__/x"],
  });
  bad.record(rec());
  bad.record(rec());
  assert.deepEqual(drops, ["mask_error", "mask_error"]);
});

test("createDecisionLog writes one JSON line per record; off writes nothing; a throwing sink is counted", () => {
  const lines: string[] = [];
  const log = createDecisionLog({ sink: (l) => lines.push(l) });
  assert.ok(log.enabled);
  log.record(rec());
  log.record(rec({ decisionId: "d-2", outcome: "deny", code: "bad_credentials" }));
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => l.endsWith("\n") && l.indexOf("\n") === l.length - 1));
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { decision_id: string }).decision_id),
    ["d-1", "d-2"],
  );
  const off = createDecisionLog({ sink: undefined });
  assert.equal(off.enabled, false);
  assert.equal(off.record(rec()), undefined);
  const drops: string[] = [];
  const bad = createDecisionLog({
    sink: () => {
      throw new Error("disk full");
    },
    onDrop: (r) => drops.push(r),
  });
  assert.doesNotThrow(() => bad.record(rec()));
  assert.deepEqual(drops, ["write_error"]);
});

test("applyMaskOps rejects pointers outside the input", () => {
  assert.throws(() => applyMaskOps({}, ["relative/path"], []), /JSON pointer/);
  assert.throws(() => applyMaskOps({}, ["/"], []), /JSON pointer/);
});

test("cyclic input does not hang or throw", () => {
  const a: Record<string, unknown> = { connect_opts: { pass: PASS } };
  a.self = a;
  const { input: m } = maskInput(a);
  assert.equal((m as { self: unknown }).self, null);
});
