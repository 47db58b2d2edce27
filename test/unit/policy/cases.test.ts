/**
 * The golden decision cases (policies/cases/*.json) through the service's own path, one node:test
 * test per case: the real policies/ directory loaded by createPolicyEngine (real `opa build -t wasm`,
 * the packaged capabilities, watch off), the request rebuilt from the case input, then
 *
 *   buildInput(req) === case input        (the service would send the policy exactly this input)
 *   wasm decision document === expect     (deep equality, time frozen at `now` or the real clock)
 *   policyHandler → Grant / AuthError / AbortAuth matching expect
 *   allow → validateGrant with the service's allow-list [APP, OPS] accepts it, unchanged
 *
 * `opa test policies/` runs the same files with the Go evaluator (policies/cases_test.rego); this file
 * is the wasm + host-builtin side, so a Go-vs-wasm difference, or an allow the service would refuse,
 * fails here by name. Cases without `now` must not depend on time: like cases_test.rego they are also
 * decided at three fixed instants. A few cases feed inputs the service never builds (input version ≠ 1,
 * no `derived`): those are evaluated directly and must not allow.
 *
 * Also: every host builtin (HOST_BUILTINS) is documented in docs/policy-contract.md §6.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { isDeepStrictEqual } from "node:util";
import type { HandlerContext } from "../../../src/callout/pipeline.js";
import { requestFromInput } from "../../../src/cli/request.js";
import { AbortAuth, AuthError } from "../../../src/errors.js";
import { validateGrant } from "../../../src/grant.js";
import { HOST_BUILTINS } from "../../../src/policy/builtins.js";
import { toDecision } from "../../../src/policy/decision.js";
import { createPolicyEngine, type PolicyEngineHandle } from "../../../src/policy/handler.js";
import { buildInput } from "../../../src/policy/input.js";
import type { AuthorizationRequest } from "../../../src/types.js";
import { OPA_BIN, REPO, skipWithoutOpa } from "../../support/index.js";

const POLICIES = path.join(REPO, "policies");
const CASES_DIR = path.join(POLICIES, "cases");
const CONTRACT = path.join(REPO, "docs", "policy-contract.md");

/** The service's account allow-list for the example policy (docs/policy-contract.md, "Accounts to configure"). */
const SERVICE_ACCOUNTS = ["APP", "OPS"] as const;

/** The fixed instants cases_test.rego also decides time-independent cases at. */
const TIME_INDEPENDENT_CLOCKS = ["2025-06-08T03:00:00Z", "2025-06-04T10:00:00Z", "2024-12-31T23:59:59Z"];

interface GoldenCase {
  key: string;
  file: string;
  name: unknown;
  description: unknown;
  now?: unknown;
  input: unknown;
  expect: Record<string, unknown>;
}

/** Every case of every policies/cases/*.json file (each file: an object keyed by case name). */
function loadCases(): GoldenCase[] {
  const out: GoldenCase[] = [];
  for (const file of readdirSync(CASES_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()) {
    const doc = JSON.parse(readFileSync(path.join(CASES_DIR, file), "utf8")) as unknown;
    assert.ok(typeof doc === "object" && doc !== null && !Array.isArray(doc), `${file}: not an object`);
    for (const [key, c] of Object.entries(doc as Record<string, unknown>)) {
      assert.ok(typeof c === "object" && c !== null, `${file}: case ${key} is not an object`);
      const cc = c as Omit<GoldenCase, "key" | "file">;
      out.push({ key, file, ...cc });
    }
  }
  return out;
}

const CASES = loadCases();

/** What the handler must do for an expected decision document. */
function expectedOutcome(expect: Record<string, unknown>): "allow" | "deny" | "abort" {
  if (expect.allow === true) return "allow";
  return expect.abort === true ? "abort" : "deny";
}

async function runHandler(
  h: PolicyEngineHandle,
  req: AuthorizationRequest,
  now: Date,
  name: string,
): Promise<
  { kind: "allow"; grant: unknown; ctx: HandlerContext } | { kind: "deny" | "abort"; reason: string }
> {
  const ctx: HandlerContext = { decisionId: name, now, facts: {} };
  try {
    const grant = await h.handler(req, ctx);
    return { kind: "allow", grant, ctx };
  } catch (e) {
    if (e instanceof AbortAuth) return { kind: "abort", reason: e.message };
    if (e instanceof AuthError) return { kind: "deny", reason: e.message };
    throw e; // PolicyEvalError, DecisionShapeError, …: the service would deny with that code
  }
}

describe(
  "golden cases through the service's policy engine (policies/cases)",
  { skip: skipWithoutOpa },
  () => {
    let h: PolicyEngineHandle;
    before(async () => {
      // As the service loads it (serve: createPolicyEngine on the directory, packaged capabilities).
      h = await createPolicyEngine({ dir: POLICIES, opaBin: OPA_BIN ?? "opa", watch: false });
    });
    after(async () => {
      await h?.close();
    });

    test("there are cases, with unique names equal to their keys, each with a description", () => {
      assert.ok(CASES.length >= 50, `only ${CASES.length} cases`);
      const seen = new Set<string>();
      for (const c of CASES) {
        assert.equal(c.name, c.key, `${c.file}: case ${c.key} has name ${JSON.stringify(c.name)}`);
        assert.equal(typeof c.description, "string", `${c.file}: ${c.key} has no description`);
        assert.ok(!seen.has(c.key), `duplicate case name ${c.key}`);
        seen.add(c.key);
        assert.equal(typeof c.expect.allow, "boolean", `${c.key}: expect.allow`);
      }
    });

    for (const c of CASES) {
      test(`${c.key} (${c.file})`, async (t) => {
        assert.ok(c.now === undefined || typeof c.now === "string", "now is an RFC 3339 string");
        const now = c.now === undefined ? new Date() : new Date(c.now as string);
        assert.ok(!Number.isNaN(now.getTime()), `now ${String(c.now)} is not a time`);
        const nowNs = BigInt(now.getTime()) * 1_000_000n;
        const active = h.store.current();

        const req = requestFromInput(c.input, now);
        const input = buildInput(req);
        if (!isDeepStrictEqual(input, c.input)) {
          // An input the service never sends (e.g. version 2, no `derived`): only the policy's own defence
          // can be checked. Evaluate the document as given; it must be exactly `expect`, and not an allow.
          t.diagnostic("input not producible by buildInput: evaluated directly, not through the handler");
          const { result } = await active.policy.evaluate(c.input, active.entrypoint, { nowNs });
          assert.deepEqual(result, c.expect);
          assert.notEqual(
            toDecision(result, req.connect_opts).kind,
            "allow",
            "a hand-made input must not allow",
          );
          return;
        }

        // 1. The decision document, for exactly the input the handler builds.
        const { result } = await active.policy.evaluate(input, active.entrypoint, { nowNs });
        assert.deepEqual(result, c.expect, "wasm decision document differs from expect");

        // 2. The handler path the service runs.
        const want = expectedOutcome(c.expect);
        const got = await runHandler(h, req, now, c.key);
        assert.equal(got.kind, want, "handler outcome");
        if (got.kind === "allow") {
          const { allow: _allow, reason, ...grantFields } = c.expect;
          assert.deepEqual(got.grant, grantFields, "Grant handed to the service");
          assert.equal(got.ctx.facts.reason, reason, "allow reason in meta");
          assert.equal(got.ctx.facts.revision, active.revision);
          // 3. The service's own checks (shape, allow-list, subject injection, src, connection type).
          let validated;
          try {
            validated = validateGrant(got.grant, req, { accounts: SERVICE_ACCOUNTS });
          } catch (e) {
            const code = (e as { code?: string }).code;
            assert.fail(`the policy allows but the service refuses: [${code}] ${(e as Error).message}`);
          }
          assert.deepEqual(validated, grantFields, "validateGrant normalised the grant");
        } else {
          assert.equal(got.reason, c.expect.reason, `${want} reason`);
        }

        // 4. No `now`: the decision must not depend on time (as cases_test.rego checks with Go).
        if (c.now === undefined) {
          for (const clock of TIME_INDEPENDENT_CLOCKS) {
            const at = new Date(clock);
            const r = await active.policy.evaluate(input, active.entrypoint, {
              nowNs: BigInt(at.getTime()) * 1_000_000n,
            });
            assert.deepEqual(r.result, c.expect, `decision differs at ${clock}`);
            const again = await runHandler(h, req, at, c.key);
            assert.equal(again.kind, want, `handler outcome at ${clock}`);
          }
        }
      });
    }
  },
);

describe("docs/policy-contract.md lists the host builtins", () => {
  test("every name in HOST_BUILTINS appears in §6 Builtins", () => {
    const doc = readFileSync(CONTRACT, "utf8");
    const start = doc.indexOf("## 6. Builtins");
    assert.ok(start >= 0, "section '## 6. Builtins' exists");
    const end = doc.indexOf("\n## ", start + 1);
    const section = doc.slice(start, end < 0 ? undefined : end);
    assert.ok(HOST_BUILTINS.length > 0);
    const missing = HOST_BUILTINS.filter((name) => !section.includes(`\`${name}\``));
    assert.deepEqual(missing, [], "host builtins missing from docs/policy-contract.md §6");
  });
});
