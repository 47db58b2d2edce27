/**
 * Byte encodings with Go's exact acceptance rules (Node's decoders are lenient: they skip invalid
 * characters, which would make a malformed token decode here but not in OPA).
 */
import { BuiltinError } from "./util.js";

const URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const STD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function decodeMap(alphabet: string): Int16Array {
  const m = new Int16Array(256).fill(-1);
  for (let i = 0; i < alphabet.length; i++) m[alphabet.charCodeAt(i)] = i;
  return m;
}
const URL_MAP = decodeMap(URL_ALPHABET);
const STD_MAP = decodeMap(STD_ALPHABET);

function corrupt(): never {
  throw new BuiltinError("illegal base64 data");
}

/** Go's `base64.Encoding.DecodeString` (padded, non-strict: `\r`/`\n` skipped, trailing bits ignored). */
function goBase64Decode(s: string, map: Int16Array): Uint8Array {
  const src = Buffer.from(s, "latin1");
  if (Buffer.byteLength(s, "utf8") !== s.length) corrupt(); // non-ASCII is never valid base64
  const out: number[] = [];
  let si = 0;
  const isNl = (c: number | undefined): boolean => c === 0x0a || c === 0x0d;
  while (si < src.length) {
    const dbuf = [0, 0, 0, 0];
    let dlen = 4;
    let j = 0;
    for (; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return Uint8Array.from(out);
        corrupt(); // padded encoding: an incomplete quantum is an error
      }
      const c = src[si] as number;
      si++;
      const v = map[c] as number;
      if (v >= 0) {
        dbuf[j] = v;
        continue;
      }
      if (isNl(c)) {
        j--;
        continue;
      }
      if (c !== 0x3d) corrupt();
      // padding
      if (j === 0 || j === 1) corrupt();
      if (j === 2) {
        while (si < src.length && isNl(src[si])) si++;
        if (si === src.length || src[si] !== 0x3d) corrupt();
        si++;
      }
      while (si < src.length && isNl(src[si])) si++;
      if (si < src.length) corrupt(); // trailing garbage
      dlen = j;
      break;
    }
    const val =
      ((dbuf[0] as number) << 18) |
      ((dbuf[1] as number) << 12) |
      ((dbuf[2] as number) << 6) |
      (dbuf[3] as number);
    const b0 = (val >> 16) & 0xff;
    const b1 = (val >> 8) & 0xff;
    const b2 = val & 0xff;
    if (dlen === 4) out.push(b0, b1, b2);
    else if (dlen === 3) out.push(b0, b1);
    else if (dlen === 2) out.push(b0);
    if (dlen < 4) break;
  }
  return Uint8Array.from(out);
}

/** OPA's `base64url.decode`: adds missing padding (RFC 7515 appendix C), then Go's URL decoding. */
export function base64UrlDecode(s: string): Uint8Array {
  let t = s;
  if (!t.endsWith("=")) {
    switch (t.length % 4) {
      case 0:
        break;
      case 2:
        t += "==";
        break;
      case 3:
        t += "=";
        break;
      default:
        throw new BuiltinError("illegal base64url string");
    }
  }
  return goBase64Decode(t, URL_MAP);
}

export function base64StdDecode(s: string): Uint8Array {
  return goBase64Decode(s, STD_MAP);
}

/** Go's `hex.DecodeString` (either case, even length). */
export function hexDecode(s: string): Uint8Array {
  if (!/^[0-9a-fA-F]*$/.test(s)) throw new BuiltinError("invalid byte in hex string");
  if (s.length % 2 === 1) throw new BuiltinError("odd length hex string");
  return Uint8Array.from(Buffer.from(s, "hex"));
}

export function hexEncode(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}
