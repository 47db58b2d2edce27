/**
 * OPA's `units.parse_bytes`: "10MB" → 10000000, "1.5GiB" → 1610612736. OPA multiplies with Go's
 * `big.Float` at 64-bit precision and truncates; this emulates that rounding exactly (correctly
 * rounded parse, correctly rounded product). Amounts beyond 1e400 are refused (undefined).
 */
import { BuiltinError } from "./util.js";

const KB = 1000n;
const UNITS: Record<string, bigint> = {
  "": 1n,
  kb: KB,
  k: KB,
  kib: 1n << 10n,
  ki: 1n << 10n,
  mb: KB ** 2n,
  m: KB ** 2n,
  mib: 1n << 20n,
  mi: 1n << 20n,
  gb: KB ** 3n,
  g: KB ** 3n,
  gib: 1n << 30n,
  gi: 1n << 30n,
  tb: KB ** 4n,
  t: KB ** 4n,
  tib: 1n << 40n,
  ti: 1n << 40n,
  pb: KB ** 5n,
  p: KB ** 5n,
  pib: 1n << 50n,
  pi: 1n << 50n,
  eb: KB ** 6n,
  e: KB ** 6n,
  eib: 1n << 60n,
  ei: 1n << 60n,
};

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";

function extractNumAndUnit(s: string): [string, string] {
  let first = -1;
  for (let i = 0; i < s.length; i++) {
    const r = s[i] as string;
    if (!(isDigit(r) || r === ".") && r !== "e" && r !== "E" && r !== "+" && r !== "-") {
      first = i;
      break;
    }
    if (r === "e" || r === "E") {
      const next = s[i + 1];
      if (i === s.length - 1 || (!isDigit(next) && next !== "+" && next !== "-")) {
        first = i;
        break;
      }
      if (next === "+" || next === "-") i++;
      let end = i + 1;
      while (end < s.length && isDigit(s[end])) end++;
      if (end - (i + 1) > 6) throw new BuiltinError("units.parse_bytes: exponent too large");
    }
  }
  if (first === -1) return [s, ""];
  if (first === 0) return ["", s];
  return [s.slice(0, first), s.slice(first)];
}

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

const TWO63 = 1n << 63n;
const TWO64 = 1n << 64n;

/** n/d (both > 0) rounded to a 64-bit mantissa, nearest-even: value = q · 2^e. */
function round64(n: bigint, d: bigint): [bigint, number] {
  let e = bitLength(n) - bitLength(d) - 64;
  for (;;) {
    const num = e >= 0 ? n : n << BigInt(-e);
    const den = e >= 0 ? d << BigInt(e) : d;
    let q = num / den;
    if (q >= TWO64) {
      e++;
      continue;
    }
    if (q < TWO63) {
      e--;
      continue;
    }
    const r2 = (num % den) * 2n;
    if (r2 > den || (r2 === den && (q & 1n) === 1n)) q++;
    if (q === TWO64) return [q >> 1n, e + 1];
    return [q, e];
  }
}

export function parseBytes(raw: string): bigint {
  const s = raw.toLowerCase().replaceAll('"', "");
  if (s.includes(" ")) throw new BuiltinError("units.parse_bytes: spaces not allowed in resource strings");
  const [num, unit] = extractNumAndUnit(s);
  if (num === "") throw new BuiltinError("units.parse_bytes: no byte amount provided");
  const mult = UNITS[unit];
  if (mult === undefined) throw new BuiltinError("units.parse_bytes: byte unit not recognized");
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/.exec(num);
  if (!m || ((m[2] ?? "") === "" && (m[3] ?? "") === "")) {
    throw new BuiltinError("units.parse_bytes: could not parse byte amount to a number");
  }
  const neg = m[1] === "-";
  const frac = m[3] ?? "";
  const exp10 = Number(m[4] ?? "0") - frac.length;
  if (Math.abs(exp10) > 400) throw new BuiltinError("units.parse_bytes: amount out of range");
  const mant = BigInt((m[2] ?? "") + frac || "0");
  if (mant === 0n) return 0n;
  const [n, d] = exp10 >= 0 ? [mant * 10n ** BigInt(exp10), 1n] : [mant, 10n ** BigInt(-exp10)];
  const [q1, e1] = round64(n, d);
  const [q2, e2] = round64(q1 * mult, 1n);
  const e = e1 + e2;
  const total = e >= 0 ? q2 << BigInt(e) : q2 >> BigInt(-e);
  return neg ? -total : total;
}
