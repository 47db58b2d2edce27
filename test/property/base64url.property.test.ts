/**
 * The JWT decoder's canonical-base64url check (src/callout/jwt.ts) looks only at the spare bits of the last
 * character; here it is compared with the definition: decoding and re-encoding gives the same text.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { canonicalB64url } from "../../src/callout/jwt.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

test("canonicalB64url agrees with decode + re-encode for every unpadded base64url text", () => {
  const text = fc
    .array(fc.constantFrom(...ALPHABET), { maxLength: 40 })
    .map((cs) => cs.join(""))
    .filter((t) => t.length % 4 !== 1);
  fc.assert(
    fc.property(text, (t) => {
      assert.equal(canonicalB64url(t), Buffer.from(t, "base64url").toString("base64url") === t, t);
    }),
    { numRuns: 20_000, seed: 12 },
  );
});

test("every last character of a 2- and 3-character text: exactly the canonical ones pass", () => {
  let canonical = 0;
  for (const len of [2, 3, 6, 7]) {
    for (const c of ALPHABET) {
      const t = "A".repeat(len - 1) + c;
      const ok = Buffer.from(t, "base64url").toString("base64url") === t;
      assert.equal(canonicalB64url(t), ok, t);
      if (ok) canonical++;
    }
  }
  assert.equal(canonical, 2 * (4 + 16)); // 4 of 64 last characters fit 2 chars, 16 fit 3 (for each of two lengths)
});
