/**
 * decision.ts: result → allow / deny / abort, and every shape rejection (in-process), plus
 * input.ts's document.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DecisionShapeError, PolicyEvalError } from "../../../src/errors.js";
import { DEFAULT_ABORT_REASON, DEFAULT_DENY_REASON, toDecision } from "../../../src/policy/decision.js";
import { SMOKE_INPUT, SMOKE_REQUEST, buildInput } from "../../../src/policy/input.js";
import type { AuthorizationRequest } from "../../../src/types.js";

function shapeError(field: string, pattern?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof DecisionShapeError, `expected DecisionShapeError, got ${String(err)}`);
    assert.equal(err.code, "decision_shape_error");
    assert.equal(err.field, field);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

describe("toDecision", () => {
  test("allow carries the grant fields (and only them)", () => {
    const d = toDecision({
      allow: true,
      account: "APP",
      pub: { allow: ["a.>"] },
      expires_in: 60,
      reason: "ok",
    });
    assert.deepEqual(d, {
      kind: "allow",
      grant: { account: "APP", pub: { allow: ["a.>"] }, expires_in: 60 },
      reason: "ok",
    });
    assert.deepEqual(toDecision({ allow: true, account: "APP", abort: false }), {
      kind: "allow",
      grant: { account: "APP" },
    });
  });

  test("deny and abort, with default reasons", () => {
    assert.deepEqual(toDecision({ allow: false, reason: "bad_credentials" }), {
      kind: "deny",
      reason: "bad_credentials",
    });
    assert.deepEqual(toDecision({ allow: false }), { kind: "deny", reason: DEFAULT_DENY_REASON });
    assert.deepEqual(toDecision({ allow: false, reason: "" }), { kind: "deny", reason: DEFAULT_DENY_REASON });
    assert.deepEqual(toDecision({ allow: false, abort: true, reason: "slow_down" }), {
      kind: "abort",
      reason: "slow_down",
    });
    assert.deepEqual(toDecision({ allow: false, abort: true }), {
      kind: "abort",
      reason: DEFAULT_ABORT_REASON,
    });
    // grant fields on a deny are tolerated and dropped
    assert.deepEqual(toDecision({ allow: false, account: "APP" }), {
      kind: "deny",
      reason: DEFAULT_DENY_REASON,
    });
  });

  test("undefined result is a policy_eval_error", () => {
    assert.throws(
      () => toDecision(undefined),
      (err: unknown) => err instanceof PolicyEvalError && err.code === "policy_eval_error",
    );
  });

  test("a non-object decision is rejected with its type", () => {
    assert.throws(() => toDecision(true), shapeError("decision", /boolean/));
    assert.throws(() => toDecision(null), shapeError("decision", /null/));
    assert.throws(() => toDecision([{ allow: true }]), shapeError("decision", /array/));
    assert.throws(() => toDecision("allow"), shapeError("decision", /string/));
  });

  test("allow must be present and boolean", () => {
    assert.throws(() => toDecision({ account: "APP" }), shapeError("allow", /missing/));
    assert.throws(() => toDecision({ allow: "true", account: "APP" }), shapeError("allow", /string/));
    assert.throws(() => toDecision({ allow: 1 }), shapeError("allow", /number/));
  });

  test("abort must be boolean and only with allow false", () => {
    assert.throws(() => toDecision({ allow: false, abort: "yes" }), shapeError("abort", /string/));
    assert.throws(
      () => toDecision({ allow: true, abort: true, account: "APP" }),
      shapeError("abort", /allow false/),
    );
  });

  test("reason must be a string", () => {
    assert.throws(() => toDecision({ allow: false, reason: 42 }), shapeError("reason", /number/));
    assert.throws(
      () => toDecision({ allow: true, account: "A", reason: { x: 1 } }),
      shapeError("reason", /object/),
    );
  });

  test("unknown top-level keys are rejected, naming the field", () => {
    assert.throws(
      () => toDecision({ allow: true, account: "APP", permissions: {} }),
      shapeError("permissions"),
    );
    assert.throws(() => toDecision({ allow: false, reasons: "x" }), shapeError("reasons"));
    assert.throws(() => toDecision({ allow: true, account: "APP", Account: "SYS" }), shapeError("Account"));
  });

  test("messages never echo values", () => {
    try {
      toDecision({ allow: "super-secret-value" });
      assert.fail("no error");
    } catch (err) {
      assert.doesNotMatch((err as Error).message, /super-secret-value/);
    }
  });

  test("a reason that contains a client secret is redacted", () => {
    const opts = {
      user: "alice",
      pass: "hunter2-pass",
      auth_token: "tok-123456",
      jwt: "eyJhbGciOi.x.y",
      sig: "c2lnbmF0dXJl",
    };
    for (const secret of [opts.pass, opts.auth_token, opts.jwt, opts.sig]) {
      assert.deepEqual(toDecision({ allow: false, reason: `bad password ${secret}!` }, opts), {
        kind: "deny",
        reason: "redacted",
      });
    }
    assert.deepEqual(toDecision({ allow: false, abort: true, reason: `x${opts.pass}` }, opts), {
      kind: "abort",
      reason: "redacted",
    });
    assert.deepEqual(toDecision({ allow: true, account: "A", reason: `hello ${opts.pass}` }, opts), {
      kind: "allow",
      grant: { account: "A" },
      reason: "redacted",
    });
    // the user name is not a secret
    assert.deepEqual(toDecision({ allow: false, reason: "unknown user alice" }, opts), {
      kind: "deny",
      reason: "unknown user alice",
    });
  });

  test("overlong reasons are truncated", () => {
    const d = toDecision({ allow: false, reason: "x".repeat(1000) });
    assert.equal(d.kind, "deny");
    assert.equal(d.reason.length, 256);
  });
});

describe("buildInput", () => {
  const req: AuthorizationRequest = {
    server_id: { name: "s1", host: "0.0.0.0", id: "NABC", version: "2.11.3", cluster: "c1", tags: ["t"] },
    user_nkey: "UABC",
    client_info: { host: "127.0.0.1", id: 7, user: "alice", kind: "Client", type: "websocket" },
    connect_opts: { user: "alice", pass: "pw", lang: "nats.js", version: "3.0.0", protocol: 1 },
    request_issuer: "AISSUER",
    issued_at: 100,
    expires_at: 102,
    encrypted: true,
  };

  test("v1 document: request fields as sent, derived facts, no invented fields", () => {
    const input = buildInput(req);
    assert.deepEqual(input, {
      version: 1,
      server_id: req.server_id,
      user_nkey: "UABC",
      client_info: req.client_info,
      connect_opts: req.connect_opts,
      request_issuer: "AISSUER",
      derived: { connection_type: "WEBSOCKET", tls: false },
    });
    assert.equal("client_tls" in input, false);
    assert.equal("issued_at" in input, false);
    assert.equal("encrypted" in input, false);
  });

  test("client_tls only for TLS clients", () => {
    const tls = { version: "1.3", cipher: "TLS_AES_128_GCM_SHA256", verified_chains: [["MII..."]] };
    const input = buildInput({ ...req, client_tls: tls });
    assert.deepEqual(input.client_tls, tls);
    assert.equal(input.derived.tls, true);
  });

  test("connection type for leafnodes and plain clients", () => {
    assert.equal(
      buildInput({ ...req, client_info: { kind: "Leafnode", type: "nats" } }).derived.connection_type,
      "LEAFNODE",
    );
    assert.equal(
      buildInput({ ...req, client_info: { kind: "Leafnode", type: "websocket" } }).derived.connection_type,
      "LEAFNODE_WS",
    );
    assert.equal(SMOKE_INPUT.derived.connection_type, "STANDARD");
  });

  test("the smoke input is built from the smoke request", () => {
    assert.deepEqual(SMOKE_INPUT, buildInput(SMOKE_REQUEST));
    assert.equal(SMOKE_INPUT.connect_opts.user, "smoke-test");
  });
});
