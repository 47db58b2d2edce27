/**
 * NATS v2 JWTs, encoded and decoded by hand on node:crypto.
 *
 * Format: base64url(header) "." base64url(claims) "." base64url(ed25519 signature over "header.claims"),
 * all without padding; header `{"typ":"JWT","alg":"ed25519-nkey"}`. `jti` is base32 (RFC 4648, no
 * padding) of SHA-512/256 over the claims JSON without `jti`, the scheme nats-io/jwt uses (it hashes
 * only the standard claims; we hash the whole claims object, so two JWTs differing only in
 * permissions get different ids — nats-server does not check `jti`).
 */
import { hash } from "node:crypto";
import { RequestDecodeError } from "../errors.js";
import type { KeyKind, Signer, Verifier } from "./keys.js";

/** The only algorithm accepted and written (v1 "ed25519" signed only the payload). */
export const JWT_ALGORITHM = "ed25519-nkey";

/** Default upper bound on an encoded JWT we agree to decode, in bytes. */
export const DEFAULT_MAX_JWT_BYTES = 64 * 1024;

const HEADER_B64 = Buffer.from(JSON.stringify({ typ: "JWT", alg: JWT_ALGORITHM })).toString("base64url");

/** The claims to encode: `iss`, `iat` and `jti` are filled in by `encodeJwt`. */
export interface UnsignedClaims {
  aud?: string;
  exp?: number;
  name?: string;
  nbf?: number;
  sub?: string;
  nats?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Standard claims plus the NATS-specific `nats` object (as decoded: values are unchecked). */
export interface JwtClaims extends UnsignedClaims {
  jti?: string;
  iat?: number;
  iss?: string;
}

const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE32 = Buffer.from(BASE32_ALPHABET, "latin1");
const B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE64URL = Buffer.from(B64URL_ALPHABET, "latin1");

/** RFC 4648 base32, upper case, no padding (Go's `base32.StdEncoding.WithPadding(NoPadding)`). */
export function base32NoPad(bytes: Uint8Array): string {
  const out = Buffer.allocUnsafe(Math.ceil((bytes.length * 8) / 5));
  base32Into(bytes, out, 0);
  return out.toString("latin1");
}

/** Writes base32NoPad(bytes) into `out` at `at`; returns the offset after it. */
function base32Into(bytes: Uint8Array, out: Uint8Array, at: number): number {
  let bits = 0;
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    value = ((value << 8) | (bytes[i] as number)) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out[at++] = BASE32[(value >>> (bits - 5)) & 31] as number;
      bits -= 5;
    }
  }
  if (bits > 0) out[at++] = BASE32[(value << (5 - bits)) & 31] as number;
  return at;
}

/** Length of unpadded base64url for `n` bytes. */
const base64urlLength = (n: number): number => Math.ceil((n * 4) / 3);

/**
 * Writes unpadded base64url of `bytes` into `out` at `at` (the same text as `toString("base64url")`, without making
 * it a string first); returns the offset after it.
 */
export function base64urlInto(bytes: Uint8Array, out: Uint8Array, at: number): number {
  const whole = bytes.length - (bytes.length % 3);
  let i = 0;
  for (; i < whole; i += 3) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8) | (bytes[i + 2] as number);
    out[at] = BASE64URL[n >>> 18] as number;
    out[at + 1] = BASE64URL[(n >>> 12) & 63] as number;
    out[at + 2] = BASE64URL[(n >>> 6) & 63] as number;
    out[at + 3] = BASE64URL[n & 63] as number;
    at += 4;
  }
  const left = bytes.length - whole;
  if (left > 0) {
    const n = ((bytes[i] as number) << 16) | (left === 2 ? (bytes[i + 1] as number) << 8 : 0);
    out[at++] = BASE64URL[n >>> 18] as number;
    out[at++] = BASE64URL[(n >>> 12) & 63] as number;
    if (left === 2) out[at++] = BASE64URL[(n >>> 6) & 63] as number;
  }
  return at;
}

/**
 * Signs `claims` as a NATS v2 JWT. Sets `iss` = signer's public key, `iat` = `nowMs` in whole seconds
 * and `jti`. Returns the compact token.
 */
export function encodeJwt(claims: UnsignedClaims, signer: Signer, nowMs: number = Date.now()): string {
  return encodeJwtBytes(claims, signer, nowMs).toString("latin1");
}

/** Length of `jti`: base32 of a 32-byte digest, unpadded. */
const JTI_LENGTH = 52;
/** `"jti":"` + jti + `",` */
const JTI_FIELD_BYTES = 7 + JTI_LENGTH + 2;
/** base64url of a 64-byte Ed25519 signature, unpadded. */
const SIG_B64_LENGTH = 86;
const DOT = 0x2e;

/**
 * {@link encodeJwt}, as the token's bytes (ASCII). The token is assembled in buffers, outside the JavaScript heap:
 * as strings, every part was copied again for each concatenation (the claims with and without `jti`, the signing
 * input, the token), which made JWT encoding the largest allocation of a login.
 */
export function encodeJwtBytes(claims: UnsignedClaims, signer: Signer, nowMs: number = Date.now()): Buffer {
  // iss/iat/jti are always ours, whatever the caller passed.
  const { aud, exp, name, nbf, sub, nats, iss: _iss, iat: _iat, jti: _jti, ...rest } = claims as JwtClaims;
  // Key order mirrors nats-io/jwt (aud, exp, jti, iat, iss, name, nbf, sub, nats); undefined keys vanish. The claims
  // are serialised once, in two parts around jti: jti hashes the claims without it (head + tail), and the token
  // carries head + jti + tail, which parses to the same object as serialising the whole claims with jti would.
  const head = JSON.stringify({ aud, exp });
  const tail = JSON.stringify({
    iat: Math.floor(nowMs / 1000),
    iss: signer.publicKey,
    name,
    nbf,
    sub,
    ...rest,
    nats,
  });
  const open = head === "{}" ? "{" : `${head.slice(0, -1)},`;
  const openBytes = Buffer.byteLength(open);
  const tailBytes = Buffer.byteLength(tail) - 1; // without its "{"
  // The claims without jti: open, then tail after its "{" (tail is written first; open's last byte covers its "{").
  const plain = Buffer.allocUnsafe(openBytes + tailBytes);
  plain.write(tail, openBytes - 1);
  plain.write(open, 0);
  // The claims with jti: open, "jti":"…", the rest of tail.
  const body = Buffer.allocUnsafe(openBytes + JTI_FIELD_BYTES + tailBytes);
  plain.copy(body, 0, 0, openBytes);
  let at = body.write('"jti":"', openBytes, "latin1");
  at = base32Into(hash("sha512-256", plain, "buffer"), body, openBytes + at);
  if (at !== openBytes + JTI_FIELD_BYTES - 2) throw new Error("jti of an unexpected length");
  body.write('",', at, "latin1");
  plain.copy(body, openBytes + JTI_FIELD_BYTES, openBytes);
  // header "." payload "." signature, the signature over the part before its dot.
  const signed = HEADER_B64.length + 1 + base64urlLength(body.length);
  const token = Buffer.allocUnsafeSlow(signed + 1 + SIG_B64_LENGTH);
  token.write(HEADER_B64, 0, "latin1");
  token[HEADER_B64.length] = DOT;
  base64urlInto(body, token, HEADER_B64.length + 1);
  const sig = signer.sign(token.subarray(0, signed));
  if (sig.byteLength !== 64) throw new Error(`signature of ${sig.byteLength} bytes`);
  token[signed] = DOT;
  base64urlInto(sig, token, signed + 1);
  return token;
}

/** A structurally valid but not yet verified JWT. */
export interface ParsedJwt {
  header: { typ: string; alg: string };
  claims: JwtClaims;
  /** The bytes the signature covers: "header.claims". */
  signingInput: Uint8Array;
  signature: Uint8Array;
}

const B64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * True when unpadded base64url `part` (alphabet and length already checked) is the canonical encoding of its bytes:
 * the bits of its last character beyond the last whole byte are zero (what re-encoding the decoded bytes would give).
 */
export function canonicalB64url(part: string): boolean {
  const spare = part.length % 4 === 2 ? 0x0f : part.length % 4 === 3 ? 0x03 : 0;
  return spare === 0 || (B64URL_ALPHABET.indexOf(part[part.length - 1] as string) & spare) === 0;
}

function b64urlStrict(part: string, what: string): Buffer {
  if (!B64URL.test(part) || part.length % 4 === 1) {
    throw new RequestDecodeError(`jwt: ${what} is not base64url`);
  }
  // Reject non-canonical encodings (stray trailing bits), which Buffer would silently accept.
  if (!canonicalB64url(part)) throw new RequestDecodeError(`jwt: ${what} is not canonical base64url`);
  return Buffer.from(part, "base64url");
}

function jsonObject(buf: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(buf));
  } catch {
    throw new RequestDecodeError(`jwt: ${what} is not valid UTF-8 JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RequestDecodeError(`jwt: ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/**
 * Parses a compact JWT without verifying it: size cap, three base64url parts, JSON objects, header
 * `typ` JWT and `alg` ed25519-nkey, 64-byte signature. Throws RequestDecodeError.
 */
export function parseJwt(token: string, maxBytes: number = DEFAULT_MAX_JWT_BYTES): ParsedJwt {
  if (typeof token !== "string") throw new RequestDecodeError("jwt: not a string");
  if (token.length > maxBytes) throw new RequestDecodeError(`jwt: larger than ${maxBytes} bytes`);
  const first = token.indexOf(".");
  const second = first < 0 ? -1 : token.indexOf(".", first + 1);
  if (first < 0 || second < 0 || token.indexOf(".", second + 1) >= 0) {
    throw new RequestDecodeError("jwt: expected 3 parts");
  }
  const h = token.slice(0, first);
  const c = token.slice(first + 1, second);
  const s = token.slice(second + 1);
  const header = jsonObject(b64urlStrict(h, "header"), "header");
  if (typeof header.typ !== "string" || header.typ.toUpperCase() !== "JWT") {
    throw new RequestDecodeError("jwt: header typ is not JWT");
  }
  if (typeof header.alg !== "string" || header.alg.toLowerCase() !== JWT_ALGORITHM) {
    throw new RequestDecodeError(`jwt: header alg is not ${JWT_ALGORITHM}`);
  }
  const claims = jsonObject(b64urlStrict(c, "claims"), "claims") as JwtClaims;
  const signature = b64urlStrict(s, "signature");
  if (signature.length !== 64) throw new RequestDecodeError("jwt: signature has the wrong length");
  return {
    header: { typ: header.typ, alg: header.alg },
    claims,
    signingInput: Buffer.from(token.slice(0, second), "latin1"),
    signature,
  };
}

/**
 * Verifies a parsed JWT's signature against its `iss`, which must be a public nkey of role
 * `issuerKind`. Throws RequestDecodeError.
 */
export function verifyJwt(parsed: ParsedJwt, verifier: Verifier, issuerKind: KeyKind): void {
  const iss = parsed.claims.iss;
  if (typeof iss !== "string") throw new RequestDecodeError("jwt: iss missing");
  let ok: boolean;
  try {
    ok = verifier.verify(iss, issuerKind, parsed.signingInput, parsed.signature);
  } catch (err) {
    throw new RequestDecodeError(`jwt: iss is not a valid ${issuerKind} key`, "request_decode_error", {
      cause: err,
    });
  }
  if (!ok) throw new RequestDecodeError("jwt: bad signature");
}

/** parseJwt + verifyJwt: returns verified claims (no time or audience checks). */
export function decodeJwt(
  token: string,
  opts: { verifier: Verifier; issuerKind: KeyKind; maxBytes?: number },
): JwtClaims {
  const parsed = parseJwt(token, opts.maxBytes);
  verifyJwt(parsed, opts.verifier, opts.issuerKind);
  return parsed.claims;
}
