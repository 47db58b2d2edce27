/**
 * PolicyEngine against modules compiled by the real opa: load/evaluate, the builtins() check at
 * load, error wrapping, frozen time, data replacement, memory limits.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { PolicyEvalError, PolicyLoadError } from "../../../src/errors.js";
import { readBundle } from "../../../src/policy/bundle.js";
import { PolicyEngine, SUPPORTED_HOST_BUILTINS } from "../../../src/policy/engine.js";
import { SMOKE_INPUT, buildInput, SMOKE_REQUEST } from "../../../src/policy/input.js";
import { FIXTURES, buildWasmFixture, skipWithoutOpa } from "../../support/index.js";

const EP = "nats/authz/decision";
const basicFiles = (): Record<string, string> => ({
  "authz.rego": readFileSync(path.join(FIXTURES, "basic", "authz.rego"), "utf8"),
});
const basicData = (): unknown => JSON.parse(readFileSync(path.join(FIXTURES, "basic", "data.json"), "utf8"));

async function engineFor(files: Record<string, string>, data: unknown = {}, eps = [EP], opts = {}) {
  const { bytes } = buildWasmFixture(files, eps);
  const b = readBundle(bytes, eps);
  return PolicyEngine.load(b.wasm, data, opts);
}

function inputFor(user: string, pass: string): unknown {
  return buildInput({ ...SMOKE_REQUEST, connect_opts: { user, pass } });
}

describe("PolicyEngine", { skip: skipWithoutOpa }, () => {
  test("evaluates a decision with data and host builtins", async () => {
    const engine = await engineFor(basicFiles(), basicData());
    assert.deepEqual(engine.entrypoints, [EP]);
    assert.deepEqual([...engine.requiredBuiltins].sort(), ["crypto.sha256", "time.now_ns"]);
    const allow = engine.evaluate(inputFor("alice", "alice-pw"), EP).result as Record<string, unknown>;
    assert.equal(allow.allow, true);
    assert.equal(allow.account, "APP");
    assert.deepEqual(allow.pub, { allow: ["app.alice.>"] });
    const wrong = engine.evaluate(inputFor("alice", "bob-pw"), EP).result;
    assert.deepEqual(wrong, { allow: false, reason: "not_authorized" });
    const blocked = engine.evaluate(inputFor("mallory", "x"), EP).result;
    assert.deepEqual(blocked, { allow: false, abort: true, reason: "blocked" });
    assert.deepEqual(engine.evaluate(SMOKE_INPUT, EP).builtinErrors, []);
  });

  test("time.now_ns is the frozen evaluation time", async () => {
    const engine = await engineFor(basicFiles(), basicData());
    const input = inputFor("alice", "alice-pw");
    const before = engine.evaluate(input, EP, { nowNs: 4_102_444_799_000_000_000n }).result as {
      allow: boolean;
    };
    const after = engine.evaluate(input, EP, { nowNs: 4_102_444_800_000_000_000n }).result as {
      allow: boolean;
    };
    assert.equal(before.allow, true);
    assert.equal(after.allow, false);
  });

  test("setData replaces the whole data document", async () => {
    const engine = await engineFor(basicFiles(), basicData());
    const input = inputFor("alice", "alice-pw");
    assert.equal((engine.evaluate(input, EP).result as { allow: boolean }).allow, true);
    engine.setData({ users: {} });
    assert.equal((engine.evaluate(input, EP).result as { allow: boolean }).allow, false);
    // raw JSON bytes are accepted too
    engine.setData(new TextEncoder().encode(JSON.stringify(basicData())).buffer);
    assert.equal((engine.evaluate(input, EP).result as { allow: boolean }).allow, true);
  });

  test("a new instance from the compiled module has its own data", async () => {
    const a = await engineFor(basicFiles(), basicData());
    const b = await PolicyEngine.load(a.module, { users: {} });
    const input = inputFor("alice", "alice-pw");
    assert.equal((a.evaluate(input, EP).result as { allow: boolean }).allow, true);
    assert.equal((b.evaluate(input, EP).result as { allow: boolean }).allow, false);
  });

  test("refuses a module that needs a builtin the host lacks, naming it", async () => {
    const files = {
      "p.rego": [
        "package nats.authz",
        "",
        'decision := {"allow": false, "reason": x} if {',
        '\tresp := http.send({"method": "GET", "url": "http://127.0.0.1:1"})',
        '\tx := sprintf("%v %v", [resp.status_code, opa.runtime()])',
        "}",
        "",
      ].join("\n"),
    };
    // compiled without our capabilities: opa accepts http.send, the engine must not
    const { bytes } = buildWasmFixture(files, [EP], { capabilities: null });
    const b = readBundle(bytes, [EP]);
    await assert.rejects(PolicyEngine.load(b.wasm, {}), (err: unknown) => {
      assert.ok(err instanceof PolicyLoadError);
      assert.equal(err.code, "policy_load_error");
      assert.match(err.message, /http\.send/);
      assert.match(err.message, /opa\.runtime/);
      assert.doesNotMatch(err.message, /sprintf/);
      return true;
    });
  });

  test("every builtin it can supply is one the engine implements or opa-wasm provides", () => {
    for (const name of [
      "time.now_ns",
      "io.jwt.decode_verify",
      "sprintf",
      "regex.split",
      "units.parse_bytes",
    ]) {
      assert.ok(SUPPORTED_HOST_BUILTINS.has(name), name);
    }
    assert.equal(SUPPORTED_HOST_BUILTINS.has("http.send"), false);
  });

  test("an empty result set is an undefined result", async () => {
    const engine = await engineFor({ "p.rego": "package nats.authz\n\ndecision := 1 if input.never\n" });
    assert.deepEqual(engine.evaluate({}, EP), { result: undefined, builtinErrors: [] });
  });

  test("conflicting outputs at runtime become PolicyEvalError", async () => {
    const engine = await engineFor({
      "p.rego":
        'package nats.authz\n\ndecision := {"allow": true} if input.a\n\ndecision := {"allow": false} if input.b\n',
    });
    assert.deepEqual(engine.evaluate({ a: true }, EP).result, { allow: true });
    assert.throws(
      () => engine.evaluate({ a: true, b: true }, EP),
      (err: unknown) => err instanceof PolicyEvalError && /conflict/i.test(err.message),
    );
    // the instance stays usable after an abort
    assert.deepEqual(engine.evaluate({ b: true }, EP).result, { allow: false });
  });

  test("an unknown entrypoint is a PolicyEvalError", async () => {
    const engine = await engineFor(basicFiles(), basicData());
    assert.throws(() => engine.evaluate({}, "nats/authz/other"), PolicyEvalError);
  });

  test("builtin errors fail the evaluation by default (strict, naming the builtin); lax mode records them", async () => {
    const files = {
      "p.rego": 'package nats.authz\n\ndefault decision := "none"\n\ndecision := hex.decode(input.h)\n',
    };
    const lax = await engineFor(files, {}, [EP], { strictBuiltinErrors: false });
    assert.deepEqual(lax.evaluate({ h: "6869" }, EP), { result: "hi", builtinErrors: [] });
    const bad = lax.evaluate({ h: "zz" }, EP);
    assert.equal(bad.result, "none");
    assert.deepEqual(bad.builtinErrors, [{ builtin: "hex.decode", message: "invalid byte in hex string" }]);
    const strict = await engineFor(files);
    assert.throws(
      () => strict.evaluate({ h: "zz" }, EP),
      (e: unknown) =>
        e instanceof PolicyEvalError && /builtin hex\.decode: invalid byte in hex string/.test(e.message),
    );
  });

  test("memory is bounded by the configured maximum", async () => {
    const engine = await engineFor(basicFiles(), basicData(), [EP], { memory: { initial: 4, maximum: 40 } });
    const huge = { ...(SMOKE_INPUT as object), padding: "x".repeat(4 * 1024 * 1024) };
    assert.throws(
      () => engine.evaluate(huge, EP),
      (e: unknown) =>
        e instanceof PolicyEvalError &&
        /out of wasm memory: the limit is 2\.5 MiB \(40 pages/.test(e.message),
    );
    assert.ok(engine.memoryBytes() <= 40 * 65536);
    // still answers normal requests
    assert.equal(
      (engine.evaluate(inputFor("alice", "alice-pw"), EP).result as { allow: boolean }).allow,
      true,
    );
  });

  test("input as a value, as JSON bytes (ArrayBuffer or Uint8Array view) or absent gives the same answers", async () => {
    const files = { "p.rego": 'package nats.authz\n\ndefault decision := "no v"\n\ndecision := input.v\n' };
    const engine = await engineFor(files);
    const bytes = new TextEncoder().encode('  {"v": "é ✓ 𝄞"}');
    const padded = new Uint8Array(bytes.length + 7);
    padded.set(bytes, 3);
    assert.equal(engine.evaluate({ v: "é ✓ 𝄞" }, EP).result, "é ✓ 𝄞");
    assert.equal(engine.evaluate(bytes.buffer, EP).result, "é ✓ 𝄞");
    assert.equal(engine.evaluate(padded.subarray(3, 3 + bytes.length), EP).result, "é ✓ 𝄞");
    assert.equal(engine.evaluate(undefined, EP).result, "no v");
    assert.equal(engine.evaluate({}, EP).result, "no v");
    assert.equal(engine.evaluate({ v: false }, EP).result, false);
  });

  test("the heap restarts above the data for every evaluation: memory does not grow with the number of calls", async () => {
    const engine = await engineFor(basicFiles(), basicData());
    const input = inputFor("alice", "alice-pw");
    for (let i = 0; i < 200; i++) engine.evaluate(input, EP);
    const settled = engine.memoryBytes();
    for (let i = 0; i < 2000; i++) engine.evaluate(input, EP);
    assert.equal(engine.memoryBytes(), settled);
  });

  test("an input larger than the free memory grows it, within the limit", async () => {
    const engine = await engineFor(basicFiles(), basicData(), [EP], { memory: { initial: 2, maximum: 400 } });
    const before = engine.memoryBytes();
    const big = { ...(SMOKE_INPUT as object), padding: "é".repeat(512 * 1024) };
    assert.equal(typeof (engine.evaluate(big, EP).result as { allow: boolean }).allow, "boolean");
    assert.ok(engine.memoryBytes() > before + 1024 * 1024);
  });

  test("refuses bytes that are not a wasm module", async () => {
    await assert.rejects(PolicyEngine.load(new Uint8Array([1, 2, 3]), {}), PolicyLoadError);
  });

  test("refuses data it cannot load", async () => {
    const { bytes } = buildWasmFixture(basicFiles(), [EP]);
    const b = readBundle(bytes, [EP]);
    await assert.rejects(
      PolicyEngine.load(b.wasm, new TextEncoder().encode("{nope").buffer),
      PolicyLoadError,
    );
  });

  test("the fixture's password hashes are what the policy compares", () => {
    const d = basicData() as { users: { alice: { pass_sha256: string } } };
    assert.equal(d.users.alice.pass_sha256, createHash("sha256").update("alice-pw").digest("hex"));
  });
});
