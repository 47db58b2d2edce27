/**
 * docs/configuration.md is generated from CONFIG_FIELDS (src/config.ts) and the serve flag/env tables: the
 * committed file must equal the generated one, and every config field must appear in it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CONFIG_FIELDS } from "../../src/config.js";
import { FLAG_OVERRIDES } from "../../src/cli/flags.js";
import { CONFIG_DOCS_PATH, renderConfigDocs } from "../../scripts/gen-config-docs.js";

test("docs/configuration.md is up to date (node --import tsx scripts/gen-config-docs.ts)", () => {
  const committed = readFileSync(CONFIG_DOCS_PATH, "utf8");
  assert.equal(committed, renderConfigDocs(), "stale: run node --import tsx scripts/gen-config-docs.ts");
});

test("every config field, its default and every serve flag are documented", () => {
  const text = renderConfigDocs();
  for (const f of CONFIG_FIELDS) {
    assert.ok(text.includes(`| \`${f.path}\` |`), `${f.path} missing`);
    if (f.default !== undefined) {
      const row = text.split("\n").find((l) => l.startsWith(`| \`${f.path}\` |`)) ?? "";
      assert.ok(row.includes(JSON.stringify(f.default).replace(/\|/g, "\\|")), `${f.path} default missing`);
    }
    if (f.secret) {
      const row = text.split("\n").find((l) => l.startsWith(`| \`${f.path}\` |`)) ?? "";
      assert.match(row, /\*\*secret\*\*/, `${f.path} not marked secret`);
    }
  }
  for (const f of FLAG_OVERRIDES) assert.ok(text.includes(`\`--${f.flag} `), `--${f.flag} missing`);
});
