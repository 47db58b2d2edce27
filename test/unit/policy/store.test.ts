/**
 * PolicyStore in-process: one immutable snapshot per swap, status bookkeeping, reload events, and
 * listeners that cannot break a reload.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PolicyEvalError, PolicyLoadError } from "../../../src/errors.js";
import type { EvaluatorPool } from "../../../src/policy/pool.js";
import { PolicyStore, type ReloadEvent } from "../../../src/policy/store.js";

// the store only calls memoryBytes() on the policy
const fakePolicy = (bytes: number): EvaluatorPool =>
  ({ memoryBytes: () => bytes }) as unknown as EvaluatorPool;

describe("PolicyStore", () => {
  test("not ready until the first swap", () => {
    const store = new PolicyStore();
    assert.throws(() => store.current(), PolicyEvalError);
    assert.equal(store.peek(), undefined);
    const st = store.status();
    assert.equal(st.ready, false);
    assert.equal(st.revision, undefined);
    assert.deepEqual(st.reloads, { ok: 0, failed: 0 });
  });

  test("swap replaces one frozen snapshot; a held snapshot is unaffected", () => {
    const store = new PolicyStore();
    const a = store.swap(
      { policy: fakePolicy(1), revision: "r1", entrypoint: "e" },
      { duration_ms: 5, compiled: true },
    );
    const held = store.current();
    assert.equal(held, a);
    assert.ok(Object.isFrozen(held));
    store.swap({ policy: fakePolicy(2), revision: "r2", entrypoint: "e" });
    assert.equal(held.revision, "r1");
    assert.equal(store.current().revision, "r2");
    const st = store.status();
    assert.equal(st.ready, true);
    assert.equal(st.revision, "r2");
    assert.equal(st.memoryBytes, 2);
    assert.deepEqual(st.reloads, { ok: 2, failed: 0 });
    assert.ok(st.lastSuccessAt);
  });

  test("failures keep the active snapshot and record the error with file and line", () => {
    const store = new PolicyStore();
    const events: ReloadEvent[] = [];
    store.on("reload", (e) => events.push(e));
    store.swap({ policy: fakePolicy(1), revision: "r1", entrypoint: "e" });
    const info = store.recordFailure(
      new PolicyLoadError("authz.rego:3: rego_parse_error", { file: "authz.rego", line: 3 }),
      {
        duration_ms: 7,
        attempted: "r2",
      },
    );
    assert.deepEqual(info, {
      message: "authz.rego:3: rego_parse_error",
      code: "policy_load_error",
      file: "authz.rego",
      line: 3,
    });
    assert.equal(store.current().revision, "r1");
    const st = store.status();
    assert.deepEqual(st.reloads, { ok: 1, failed: 1 });
    assert.equal(st.lastError?.file, "authz.rego");
    assert.equal(st.lastError?.line, 3);
    assert.ok(st.lastError?.at);
    assert.deepEqual(
      events.map((e) => [e.result, e.revision, e.attempted]),
      [
        ["ok", "r1", undefined],
        ["error", "r1", "r2"],
      ],
    );
    // errors of other kinds keep their code
    assert.equal(store.recordFailure(new PolicyEvalError("boom")).code, "policy_eval_error");
    assert.equal(store.recordFailure(new Error("plain")).code, "policy_load_error");
  });

  test("a later activation clears lastError and its event says what it recovered from", () => {
    const store = new PolicyStore();
    const events: ReloadEvent[] = [];
    store.on("reload", (e) => events.push(e));
    store.swap({ policy: fakePolicy(1), revision: "r1", entrypoint: "e" });
    store.recordFailure(
      new PolicyLoadError("authz.rego:3: rego_parse_error", { file: "authz.rego", line: 3 }),
    );
    const failedAt = store.status().lastError?.at;
    assert.ok(failedAt);
    store.swap({ policy: fakePolicy(1), revision: "r3", entrypoint: "e" });
    const st = store.status();
    assert.equal(st.lastError, undefined, "cleared by the activation");
    assert.deepEqual(st.reloads, { ok: 2, failed: 1 }, "the counters keep the history");
    const ok = events.at(-1);
    assert.equal(ok?.result, "ok");
    assert.equal(ok?.recovered?.code, "policy_load_error");
    assert.equal(ok?.recovered?.file, "authz.rego");
    assert.equal(ok?.recovered?.at, failedAt);
    assert.equal(events[0]?.recovered, undefined, "a first load recovers from nothing");
  });

  test("a throwing listener cannot break a swap; once-listeners fire once", () => {
    const store = new PolicyStore();
    let onceCalls = 0;
    let after = 0;
    store.on("reload", () => {
      throw new Error("listener bug");
    });
    store.once("reload", () => onceCalls++);
    store.on("reload", () => after++);
    store.swap({ policy: fakePolicy(1), revision: "r1", entrypoint: "e" });
    store.swap({ policy: fakePolicy(1), revision: "r2", entrypoint: "e" });
    assert.equal(store.current().revision, "r2");
    assert.equal(onceCalls, 1);
    assert.equal(after, 2);
  });
});
