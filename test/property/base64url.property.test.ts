/**
 * The JWT decoder's canonical-base64url check (src/callout/jwt.ts) looks only at the spare bits of the last
 * character; here it is compared with the definition: decoding and re-encoding gives the same text. And the JWT
 * encoder's own base64url and base32 writers are compared with Buffer's base64url and with RFC 4648 base32 written
 * out bit by bit.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { base32NoPad, base64urlInto, canonicalB64url } from "../../src/callout/jwt.js";

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

test("base64urlInto writes what Buffer's base64url encoding gives, at any offset, and nothing else", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 7 }), (bytes, at) => {
      const expected = Buffer.from(bytes).toString("base64url");
      const out = Buffer.alloc(at + expected.length + 3, 0x2a);
      const end = base64urlInto(bytes, out, at);
      assert.equal(end, at + expected.length);
      assert.equal(out.toString("latin1"), "*".repeat(at) + expected + "***");
    }),
    { numRuns: 5_000, seed: 21 },
  );
});

test("base32NoPad is RFC 4648 base32 without padding", () => {
  const reference = (bytes: Uint8Array): string => {
    const bits = [...bytes].map((b) => b.toString(2).padStart(8, "0")).join("");
    let out = "";
    for (let i = 0; i < bits.length; i += 5)
      out += "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[parseInt(bits.slice(i, i + 5).padEnd(5, "0"), 2)];
    return out;
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      assert.equal(base32NoPad(bytes), reference(bytes));
    }),
    { numRuns: 5_000, seed: 32 },
  );
});
