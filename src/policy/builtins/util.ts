/**
 * Shared helpers for the host builtins: the error type that turns into "undefined" (OPA's default,
 * non-strict builtin error semantics), operand checks mirroring OPA's `builtins.*Operand`, and exact
 * int64 results.
 *
 * Numbers and precision: opa-wasm hands builtin arguments over through `JSON.parse`, so a number
 * above 2^53 arrives as the nearest double (±128 ns for nanosecond timestamps before 2043, ±256 ns
 * until 2116). Results are different: returning an `ArrayBuffer` makes opa-wasm copy the bytes as raw
 * JSON, so int64 results (nanoseconds) reach the policy exactly.
 */

/** A builtin failed: the calling expression becomes undefined (as with `opa eval` by default). */
export class BuiltinError extends Error {}

const encoder = new TextEncoder();

/** Raw JSON bytes for opa-wasm (copied verbatim into the module, so big integers stay exact). */
export function rawJson(text: string): ArrayBuffer {
  const bytes = encoder.encode(text);
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) {
    return bytes.buffer as ArrayBuffer;
  }
  return bytes.slice().buffer as ArrayBuffer;
}

/** An exact integer result (e.g. nanoseconds), passed as raw JSON. */
export function intResult(n: bigint): ArrayBuffer {
  return rawJson(n.toString());
}

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;

export function stringOperand(v: unknown, pos: number): string {
  if (typeof v !== "string") throw new BuiltinError(`operand ${pos} must be string`);
  return v;
}

export function numberOperand(v: unknown, pos: number): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new BuiltinError(`operand ${pos} must be number`);
  return v;
}

export function intOperand(v: unknown, pos: number): number {
  const n = numberOperand(v, pos);
  if (!Number.isInteger(n)) throw new BuiltinError(`operand ${pos} must be integer`);
  return n;
}

export function objectOperand(v: unknown, pos: number): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new BuiltinError(`operand ${pos} must be object`);
  }
  return v as Record<string, unknown>;
}

const SAFE = 2 ** 53;

/**
 * A nanosecond timestamp argument as an exact integer. Doubles beyond 2^53 are not exact; they are
 * snapped to the nearest microsecond, which restores every value that had microsecond precision
 * (the host clock has millisecond precision; RFC 3339 times in data are usually whole seconds or
 * milliseconds). Sub-microsecond digits of larger values cannot be recovered.
 */
export function nanosOperand(v: unknown, pos: number): bigint {
  const n = numberOperand(v, pos);
  if (!Number.isInteger(n)) throw new BuiltinError("timestamp too big");
  let b = BigInt(n);
  if (Math.abs(n) > SAFE) {
    const neg = b < 0n;
    if (neg) b = -b;
    b = ((b + 500n) / 1000n) * 1000n;
    if (neg) b = -b;
  }
  if (b < INT64_MIN || b > INT64_MAX) throw new BuiltinError("timestamp too big");
  return b;
}

/**
 * Bytes → string the way OPA hands a Go string to JSON: valid UTF-8 as is, each invalid byte as
 * one U+FFFD (Go's utf8.DecodeRune rule; WHATWG decoding, as in Buffer.toString, would merge a
 * truncated sequence into a single U+FFFD).
 */
export function bytesToString(b: Uint8Array): string {
  let ascii = true;
  for (let i = 0; i < b.length; i++) {
    if ((b[i] as number) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
  let out = "";
  let i = 0;
  const cont = (k: number): boolean => k < b.length && ((b[k] as number) & 0xc0) === 0x80;
  while (i < b.length) {
    const c = b[i] as number;
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i++;
      continue;
    }
    let cp = -1;
    let width = 1;
    if (c >= 0xc2 && c <= 0xdf && cont(i + 1)) {
      cp = ((c & 0x1f) << 6) | ((b[i + 1] as number) & 0x3f);
      width = 2;
    } else if (c >= 0xe0 && c <= 0xef && cont(i + 1) && cont(i + 2)) {
      const c1 = b[i + 1] as number;
      const ok = (c === 0xe0 && c1 >= 0xa0) || (c === 0xed && c1 <= 0x9f) || (c !== 0xe0 && c !== 0xed);
      if (ok) {
        cp = ((c & 0x0f) << 12) | ((c1 & 0x3f) << 6) | ((b[i + 2] as number) & 0x3f);
        width = 3;
      }
    } else if (c >= 0xf0 && c <= 0xf4 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      const c1 = b[i + 1] as number;
      const ok = (c === 0xf0 && c1 >= 0x90) || (c === 0xf4 && c1 <= 0x8f) || (c > 0xf0 && c < 0xf4);
      if (ok) {
        cp =
          ((c & 0x07) << 18) |
          ((c1 & 0x3f) << 12) |
          (((b[i + 2] as number) & 0x3f) << 6) |
          ((b[i + 3] as number) & 0x3f);
        width = 4;
      }
    }
    out += cp < 0 ? "\ufffd" : String.fromCodePoint(cp);
    i += cp < 0 ? 1 : width;
  }
  return out;
}

export function utf8(s: string): Buffer {
  return Buffer.from(s, "utf8");
}
