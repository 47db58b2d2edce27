/**
 * The policy handler end to end in-process: store snapshot → input → wasm evaluation (real opa
 * build) → Grant / AuthError / AbortAuth, with the decision-log facts in ctx.facts.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { HandlerContext } from "../../../src/callout/pipeline.js";
import { AbortAuth, AuthError, PolicyEvalError, PolicyLoadError } from "../../../src/errors.js";
import { createPolicyEngine, type PolicyEngineHandle } from "../../../src/policy/handler.js";
import { SMOKE_REQUEST } from "../../../src/policy/input.js";
import { PolicyStore } from "../../../src/policy/store.js";
import type { AuthorizationRequest } from "../../../src/types.js";
import { CAPABILITIES, FIXTURES, OPA_BIN, skipWithoutOpa } from "../../support/index.js";

const tmpRoots: string[] = [];
function tmpCopy(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "policy-handler-"));
  tmpRoots.push(dir);
  cpSync(path.join(FIXTURES, "basic"), dir, { recursive: true });
  return dir;
}
after(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});

function req(user: string, pass: string): AuthorizationRequest {
  return {
    ...SMOKE_REQUEST,
    connect_opts: { user, pass },
    client_info: { ...SMOKE_REQUEST.client_info, user },
  };
}
function ctx(now = new Date("2030-01-01T00:00:00Z")): HandlerContext {
  return { decisionId: "d-1", now, facts: {} };
}
const common = { capabilities: CAPABILITIES, opaBin: OPA_BIN ?? "opa", watch: false } as const;

describe("policyHandler", { skip: skipWithoutOpa }, () => {
  let h: PolicyEngineHandle;
  before(async () => {
    h = await createPolicyEngine({ dir: tmpCopy(), ...common });
  });
  after(async () => {
    await h?.close();
  });

  test("allow → the Grant; meta carries revision, timing, input and decision", async () => {
    const c = ctx();
    const grant = await h.handler(req("alice", "alice-pw"), c);
    assert.deepEqual(grant, {
      account: "APP",
      name: "alice",
      pub: { allow: ["app.alice.>"] },
      sub: { allow: ["app.>", "_INBOX.>"] },
      expires_in: 3600,
    });
    assert.equal(c.facts.revision, h.store.current().revision);
    assert.match(String(c.facts.revision), /^[0-9a-f]{16}$/);
    assert.equal(c.facts.entrypoint, "nats/authz/decision");
    assert.equal(typeof c.facts.eval_us, "number");
    assert.ok((c.facts.eval_us as number) >= 0);
    assert.equal((c.facts.input as { version: number }).version, 1);
    assert.equal((c.facts.decision as { kind: string }).kind, "allow");
    assert.equal(c.facts.reason, "password_ok");
  });

  test("deny → AuthError with the policy's reason", async () => {
    const c = ctx();
    await assert.rejects(
      async () => h.handler(req("alice", "wrong"), c),
      (err: unknown) => err instanceof AuthError && err.message === "not_authorized",
    );
    assert.equal((c.facts.decision as { kind: string }).kind, "deny");
  });

  test("abort → AbortAuth", async () => {
    await assert.rejects(
      async () => h.handler(req("mallory", "x"), ctx()),
      (err: unknown) => err instanceof AbortAuth && err.message === "blocked",
    );
  });

  test("time.now_ns() is ctx.now", async () => {
    // the fixture allows only while now < 2100-01-01
    await h.handler(req("alice", "alice-pw"), ctx(new Date("2099-12-31T23:59:59Z")));
    await assert.rejects(
      async () => h.handler(req("alice", "alice-pw"), ctx(new Date("2100-01-01T00:00:00Z"))),
      AuthError,
    );
  });

  test("no policy loaded → PolicyEvalError", async () => {
    const { policyHandler } = await import("../../../src/policy/handler.js");
    const handler = policyHandler(new PolicyStore());
    await assert.rejects(async () => handler(req("alice", "alice-pw"), ctx()), PolicyEvalError);
  });
});

describe("createPolicyEngine", { skip: skipWithoutOpa }, () => {
  test("start-up with a broken policy throws PolicyLoadError with file and line", async () => {
    const dir = tmpCopy();
    writeFileSync(path.join(dir, "authz.rego"), "package nats.authz\n\ndecision := {\n");
    await assert.rejects(createPolicyEngine({ dir, ...common }), (err: unknown) => {
      assert.ok(err instanceof PolicyLoadError);
      assert.equal(err.file, "authz.rego");
      assert.equal(typeof err.line, "number");
      return true;
    });
  });

  test("start-up with an undefined decision for the smoke input is refused", async () => {
    const dir = tmpCopy();
    writeFileSync(
      path.join(dir, "authz.rego"),
      'package nats.authz\n\ndecision := {"allow": false} if input.never\n',
    );
    await assert.rejects(
      createPolicyEngine({ dir, ...common }),
      /smoke evaluation 1 failed: policy decision is undefined/,
    );
  });

  test("a wrong entrypoint is refused at start-up", async () => {
    await assert.rejects(
      createPolicyEngine({ dir: tmpCopy(), ...common, entrypoint: "nats/authz/nope" }),
      PolicyLoadError,
    );
  });

  test("exactly one of dir and bundle", async () => {
    await assert.rejects(createPolicyEngine({ ...common }), TypeError);
    await assert.rejects(createPolicyEngine({ dir: "a", bundle: "b", ...common }), TypeError);
  });

  test("reload events reach the logger, without secrets", async () => {
    const lines: { level: string; obj: Record<string, unknown> }[] = [];
    const logger = {
      trace() {},
      debug() {},
      info: (obj: object) => lines.push({ level: "info", obj: obj as Record<string, unknown> }),
      warn() {},
      error: (obj: object) => lines.push({ level: "error", obj: obj as Record<string, unknown> }),
      fatal() {},
      child() {
        return logger;
      },
    };
    const dir = tmpCopy();
    const h = await createPolicyEngine({ dir, ...common, logger });
    try {
      assert.equal(lines[0]?.level, "info");
      assert.equal(lines[0]?.obj.revision, h.store.current().revision);
      writeFileSync(path.join(dir, "authz.rego"), "package nats.authz\n\ndecision := \n");
      await h.watcher.reload();
      assert.equal(lines[1]?.level, "error");
      assert.equal(lines[1]?.obj.file, "authz.rego");
      assert.equal(lines[1]?.obj.revision, h.store.current().revision);
      assert.doesNotMatch(JSON.stringify(lines), /alice-pw|pass_sha256|smoke-test-password/);
    } finally {
      await h.close();
    }
  });
});
