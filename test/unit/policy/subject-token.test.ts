/**
 * policies/lib/subject.rego `token()` and policies/lib/jetstream.rego `_name()` check their character allow-lists
 * with `trim()` instead of `regex.match` (in wasm a regex is compiled again in every evaluation). `opa test` proves
 * them against the reference patterns in OPA's Go evaluator (policies/lib/*_test.rego); this proves the same in the
 * compiled module our engine runs, where trim is OPA's C implementation: every code point up to U+02FF alone and
 * inside a name, plus separators, format characters, astral characters and the length limits.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { readBundle } from "../../../src/policy/bundle.js";
import { PolicyEngine } from "../../../src/policy/engine.js";
import { REPO, buildWasmFixture, skipWithoutOpa } from "../../support/index.js";

/** The patterns token() and _name() stood for when they used regex.match; token's length limit (code points). */
const TOKEN = /^[!-)+-\-/-=?-~]+$/;
const MAX_TOKEN_LENGTH = 128;
const NAME = /^[-_A-Za-z0-9]{1,64}$/;
const expected = {
  tokens: (s: string): boolean => TOKEN.test(s) && [...s].length <= MAX_TOKEN_LENGTH,
  names: (s: string): boolean => NAME.test(s),
};

const PROBE = `package probe

import data.nats.lib.jetstream
import data.nats.lib.subject

tokens := [i | some i, s in input.probes; subject.token(s) == s]

names := [i | some i, s in input.probes; jetstream._name(s) == s]
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
  out.push("B".repeat(64), "B".repeat(65), "ORDERS_v2-eu", "KV_prefs");
  out.push("!#$%&'()+,-/:;<=?@[\\]^_`{|}~", "bench-u99999", "idp-frank", "u-1234@example", "$KV");
  return out;
}

describe("allow-list checks in the compiled module", { skip: skipWithoutOpa }, () => {
  const lib = (f: string) => readFileSync(path.join(REPO, "policies", "lib", f), "utf8");
  const eps = ["probe/tokens", "probe/names"];
  for (const kind of ["tokens", "names"] as const) {
    test(`${kind === "tokens" ? "subject.token" : "jetstream._name"} accepts exactly what the reference pattern accepts`, async () => {
      const files = {
        "lib/subject.rego": lib("subject.rego"),
        "lib/jetstream.rego": lib("jetstream.rego"),
        "probe.rego": PROBE,
      };
      const { bytes } = buildWasmFixture(files, eps);
      const engine = await PolicyEngine.load(readBundle(bytes, eps).wasm, {});
      const list = probes();
      const accepted = new Set(engine.evaluate({ probes: list }, `probe/${kind}`).result as number[]);
      const wrong = list
        .map((s, i) => ({ s, want: expected[kind](s), got: accepted.has(i) }))
        .filter((r) => r.want !== r.got)
        .map((r) => `${JSON.stringify(r.s)}: want ${r.want}, got ${r.got}`);
      assert.deepEqual(wrong, []);
      assert.ok(accepted.size > 50 && accepted.size < list.length - 100, "both outcomes are exercised");
    });
  }
});
