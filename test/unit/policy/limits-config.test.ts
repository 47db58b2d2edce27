/**
 * The evaluation limits as config fields (policy.eval_workers, policy.eval_timeout_ms, policy.max_data_bytes,
 * policy.max_memory_mb): resolved with the defaults of src/policy/limits.ts, bounds checked with the field
 * named, and refused without a policy source — and carried by the CLI into the engine (openPolicy).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createAccount } from "@nats-io/nkeys";
import { CONFIG_FIELDS, resolveConfig, type ServiceConfig } from "../../../src/config.js";
import { ConfigError } from "../../../src/errors.js";
import { openPolicy } from "../../../src/policy/open.js";
import { POOL_DEFAULTS } from "../../../src/policy/limits.js";
import { FIXTURES, OPA_BIN, skipWithoutOpa } from "../../support/index.js";

const dir = mkdtempSync(join(tmpdir(), "limits-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const minimal: ServiceConfig = {
  issuer: { seed: new TextDecoder().decode(createAccount().getSeed()) },
  accounts: ["APP"],
};

function problemFields(input: ServiceConfig): string[] {
  try {
    resolveConfig(input);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems.map((p) => p.field);
  }
  return [];
}

describe("evaluation limits in the config", () => {
  it("are documented fields with the engine's defaults", () => {
    const byPath = new Map(CONFIG_FIELDS.map((f) => [f.path, f]));
    assert.equal(byPath.get("policy.eval_workers")?.default, POOL_DEFAULTS.workers);
    assert.equal(byPath.get("policy.eval_timeout_ms")?.default, POOL_DEFAULTS.timeoutMs);
    assert.equal(byPath.get("policy.max_data_bytes")?.default, POOL_DEFAULTS.maxDataBytes);
    assert.equal(byPath.get("policy.max_memory_mb")?.default, POOL_DEFAULTS.maxMemoryMb);
  });

  it("resolve into policy.evaluation", () => {
    const c = resolveConfig({
      ...minimal,
      policy: { dir, eval_workers: 3, eval_timeout_ms: 250, max_data_bytes: 65536, max_memory_mb: 64 },
    });
    assert.deepEqual(c.policy?.evaluation, {
      workers: 3,
      timeoutMs: 250,
      maxDataBytes: 65536,
      maxMemoryMb: 64,
    });
  });

  it("out-of-range values name their field", () => {
    assert.deepEqual(
      problemFields({
        ...minimal,
        policy: { dir, eval_workers: 0, eval_timeout_ms: 5, max_data_bytes: 10, max_memory_mb: 5000 },
      }).sort(),
      ["policy.eval_timeout_ms", "policy.eval_workers", "policy.max_data_bytes", "policy.max_memory_mb"],
    );
  });

  it("need a policy source", () => {
    assert.deepEqual(problemFields({ ...minimal, policy: { eval_timeout_ms: 250 } }), [
      "policy.eval_timeout_ms",
    ]);
  });
});

describe("the CLI carries the limits into the engine", { skip: skipWithoutOpa }, () => {
  it("openPolicy: workers and timeout of the evaluation pool", async () => {
    const h = await openPolicy(
      {
        dir: join(FIXTURES, "basic"),
        entrypoint: "nats/authz/decision",
        watch: false,
        pollSeconds: 0,
        opaBinary: OPA_BIN ?? "opa",
        evaluation: { workers: 1, timeoutMs: 321, maxDataBytes: 1 << 20, maxMemoryMb: 32 },
      },
      { watch: false },
    );
    try {
      const pool = h.engine.store.current().policy;
      assert.equal(pool.stats().workers, 1);
      assert.equal(pool.timeoutMs, 321);
    } finally {
      await h.close();
    }
  });
});
