/**
 * policies/capabilities.json: regenerating it gives the committed content, it lists every host
 * builtin we implement, and every builtin it allows is supplied at run time (compile a module that
 * calls them all and load it into the engine).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { generate } from "../../../scripts/capabilities.js";
import { HOST_BUILTINS, JS_BUILTINS } from "../../../src/policy/builtins.js";
import { readBundle } from "../../../src/policy/bundle.js";
import { PolicyEngine, SUPPORTED_HOST_BUILTINS } from "../../../src/policy/engine.js";
import { CAPABILITIES, buildWasmFixture, skipWithoutOpa } from "../../support/index.js";

interface Caps {
  builtins: { name: string; decl?: { args?: unknown[]; result?: unknown } }[];
  features?: string[];
}
const committed = (): Caps => JSON.parse(readFileSync(CAPABILITIES, "utf8")) as Caps;

describe("capabilities.json", () => {
  test("lists every host builtin and every opa-wasm JS builtin, each with a decl", () => {
    const byName = new Map(committed().builtins.map((b) => [b.name, b]));
    for (const name of [...HOST_BUILTINS, ...JS_BUILTINS]) {
      assert.ok(byName.get(name)?.decl, `${name} missing from capabilities.json`);
    }
    for (const forbidden of ["http.send", "opa.runtime", "rand.intn", "net.lookup_ip_addr", "trace"]) {
      assert.equal(byName.has(forbidden), false, forbidden);
    }
    assert.ok(committed().features?.includes("rego_v1"));
  });

  test("is what scripts/capabilities.ts generates from the pinned opa", { skip: skipWithoutOpa }, () => {
    const text = `${JSON.stringify(generate(), null, 2)}\n`;
    assert.equal(
      text,
      readFileSync(CAPABILITIES, "utf8"),
      "stale: run node --import tsx scripts/capabilities.ts",
    );
  });

  test("every builtin it allows is available at run time", { skip: skipWithoutOpa }, async () => {
    const skip = new Set(["assign", "eq", "print", "internal.print"]);
    const lines = ["package probe", ""];
    committed().builtins.forEach((b, i) => {
      if (skip.has(b.name) || !b.decl?.result) return;
      const args = (b.decl.args ?? []).map((_, k) => `input.a${k}`).join(", ");
      lines.push(`r${i} := ${b.name}(${args})`);
    });
    // deprecated builtins are refused by Rego v1; they are native anyway (compiled into the module)
    const deprecated = new Set(["all", "any", "re_match", "set_diff", "net.cidr_overlap"]);
    const src = lines.filter((l) => !deprecated.has(l.split(" := ")[1]?.split("(")[0] ?? "")).join("\n");
    const { bytes } = buildWasmFixture({ "probe.rego": `${src}\n` }, ["probe"]);
    const engine = await PolicyEngine.load(readBundle(bytes, ["probe"]).wasm, {});
    for (const name of engine.requiredBuiltins) assert.ok(SUPPORTED_HOST_BUILTINS.has(name), name);
    // and the module needs exactly our host set plus opa-wasm's JS set
    assert.deepEqual(
      [...engine.requiredBuiltins].sort(),
      [...HOST_BUILTINS, ...JS_BUILTINS].filter((n) => n !== "json.is_valid").sort(),
    );
  });
});
