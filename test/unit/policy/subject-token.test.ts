/**
 * policies/lib/subject.rego `token()` checks its character allow-list with `trim()` instead of `regex.match` (in
 * wasm a regex is compiled again in every evaluation). `opa test` proves it against the reference pattern in OPA's
 * Go evaluator (policies/lib/subject_test.rego); this proves the same in the compiled module our engine runs, where
 * trim is OPA's C implementation: every code point up to U+02FF alone and inside a name, plus separators, format
 * characters, astral characters and the length limit.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { readBundle } from "../../../src/policy/bundle.js";
import { PolicyEngine } from "../../../src/policy/engine.js";
import { REPO_ROOT, buildWasmFixture, skipWithoutOpa } from "../../helpers/opa.js";

/** The pattern token() stood for when it used regex.match, and its length limit (code points). */
const REFERENCE = /^[!-)+-\-/-=?-~]+$/;
const MAX_TOKEN_LENGTH = 128;
const expected = (s: string): boolean => REFERENCE.test(s) && [...s].length <= MAX_TOKEN_LENGTH;

const PROBE = `package probe

import data.nats.lib.subject

accepted := [i | some i, s in input.probes; subject.token(s) == s]
`;

function probes(): string[] {
  const out: string[] = [];
  for (let cp = 0; cp <= 0x2ff; cp++) {
    const c = String.fromCodePoint(cp);
    out.push(c, `ab${c}9Z`, `${c}${c}`);
  }
  for (const cp of [0x85, 0xa0, 0x200b, 0x200e, 0x2028, 0x2029, 0xfeff, 0xff0e, 0xff41, 0x1f600, 0xe0041]) {
    out.push(`al${String.fromCodePoint(cp)}ice`);
  }
  out.push("", "a".repeat(MAX_TOKEN_LENGTH), "a".repeat(MAX_TOKEN_LENGTH + 1), `${"é".repeat(2)}`);
  out.push("!#$%&'()+,-/:;<=?@[\\]^_`{|}~", "bench-u99999", "idp-frank", "u-1234@example", "$KV");
  return out;
}

describe("subject.token in the compiled module", { skip: skipWithoutOpa }, () => {
  test("accepts exactly the strings the reference pattern accepts", async () => {
    const lib = readFileSync(path.join(REPO_ROOT, "policies", "lib", "subject.rego"), "utf8");
    const { bytes } = buildWasmFixture({ "lib/subject.rego": lib, "probe.rego": PROBE }, ["probe/accepted"]);
    const engine = await PolicyEngine.load(readBundle(bytes, ["probe/accepted"]).wasm, {});
    const list = probes();
    const accepted = new Set(engine.evaluate({ probes: list }, "probe/accepted").result as number[]);
    const wrong = list
      .map((s, i) => ({ s, want: expected(s), got: accepted.has(i) }))
      .filter((r) => r.want !== r.got)
      .map((r) => `${JSON.stringify(r.s)}: want ${r.want}, got ${r.got}`);
    assert.deepEqual(wrong, []);
    assert.ok(accepted.size > 100 && accepted.size < list.length - 100, "both outcomes are exercised");
  });
});
