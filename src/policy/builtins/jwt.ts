/**
 * OPA's `io.jwt.*` verification builtins on node:crypto: `decode`, `decode_verify` and the
 * `verify_*` family, following OPA's rules (v1 topdown/tokens.go) step by step, including which
 * failures make the call undefined (errors) and which yield `[false, {}, {}]` / `false`.
 * No `encode_sign*`: a policy never needs to mint tokens.
 */
import {
  X509Certificate,
  createHmac,
  createPublicKey,
  timingSafeEqual,
  verify as cryptoVerify,
  constants,
  type JsonWebKey,
  type KeyObject,
} from "node:crypto";
import { base64UrlDecode, hexEncode } from "./encoding.js";
import { BuiltinError, bytesToString, numberOperand, objectOperand, stringOperand, utf8 } from "./util.js";
import { JWS_ALGORITHMS } from "../algorithms.js";

interface Token {
  header: string;
  payload: string;
  signature: string;
  decodedHeader?: Record<string, unknown>;
}

function decodeJwt(v: unknown): Token {
  const s = stringOperand(v, 1);
  if (!s.includes(".")) throw new BuiltinError("encoded JWT had no period separators");
  const parts = s.split(".");
  if (parts.length !== 3) throw new BuiltinError("encoded JWT must have 3 sections");
  return { header: parts[0] as string, payload: parts[1] as string, signature: parts[2] as string };
}

/** OPA's extractJSONObject (json.unmarshal, then must be an object). */
function jsonObject(bytes: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(bytesToString(bytes));
  } catch {
    throw new BuiltinError("invalid JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new BuiltinError("decoded JSON type was not an Object");
  }
  return v as Record<string, unknown>;
}

function decodeHeader(token: Token): Record<string, unknown> {
  const h = jsonObject(base64UrlDecode(token.header));
  if (Object.hasOwn(h, "enc")) throw new BuiltinError("JWT is a JWE object, which is not supported");
  token.decodedHeader = h;
  return h;
}

function decodeSignature(token: Token): Uint8Array {
  return base64UrlDecode(token.signature);
}

interface ParsedHeader {
  alg: string;
  kid: string;
  cty: string;
  crit: Set<string> | undefined;
  unknown: string[];
}

function parseHeader(h: Record<string, unknown>): ParsedHeader {
  const out: ParsedHeader = { alg: "", kid: "", cty: "", crit: undefined, unknown: [] };
  for (const [k, v] of Object.entries(h)) {
    switch (k) {
      case "alg":
      case "kid":
      case "cty":
        if (typeof v !== "string") throw new BuiltinError(`${k}: must be a string`);
        out[k] = v;
        break;
      case "typ":
        if (typeof v !== "string") throw new BuiltinError("typ: must be a string");
        break;
      case "crit": {
        if (!Array.isArray(v)) throw new BuiltinError("crit: must be a list");
        const crit = new Set<string>();
        for (const e of v) if (typeof e === "string") crit.add(e);
        if (crit.size === 0) throw new BuiltinError("crit: must be a nonempty list");
        out.crit = crit;
        break;
      }
      default:
        out.unknown.push(k);
    }
  }
  return out;
}

function headerValid(h: ParsedHeader): boolean {
  if (h.alg === "") return false;
  return !h.unknown.some((u) => h.crit?.has(u));
}

// ---- keys ----

type KeyMaterial = { kind: "asym"; key: KeyObject } | { kind: "secret"; key: Uint8Array };

interface VerificationKey {
  material: KeyMaterial;
  alg: string;
  kid: string;
}

export const TOKEN_ALGORITHMS = new Set<string>([...JWS_ALGORITHMS, "EdDSA"]);

/** Algorithms jwx accepts in a JWK's "alg" (JWS and JWE key management); others fail parsing. */
const JWK_ALGORITHMS = new Set([
  ...TOKEN_ALGORITHMS,
  "ES256K",
  "none",
  "RSA1_5",
  "RSA-OAEP",
  "RSA-OAEP-256",
  "RSA-OAEP-384",
  "RSA-OAEP-512",
  "A128KW",
  "A192KW",
  "A256KW",
  "dir",
  "ECDH-ES",
  "ECDH-ES+A128KW",
  "ECDH-ES+A192KW",
  "ECDH-ES+A256KW",
  "A128GCMKW",
  "A192GCMKW",
  "A256GCMKW",
  "PBES2-HS256+A128KW",
  "PBES2-HS384+A192KW",
  "PBES2-HS512+A256KW",
]);

/** Go's pem.Decode for the first block, plus OPA's "nothing after it" rule. */
function pemBlock(s: string): { type: string; der: Buffer } | undefined {
  const m = /-----BEGIN ([^\r\n]*?)-----[ \t]*\r?\n([\s\S]*?)\r?\n-----END \1-----[ \t]*(?:\r?\n)?/.exec(s);
  if (!m) return undefined;
  const rest = s.slice(m.index + m[0].length);
  if (rest.length > 0) throw new BuiltinError("extra data after a PEM certificate block");
  const body = (m[2] as string)
    .split(/\r?\n/)
    .filter((line) => !/^[A-Za-z0-9-]+:/.test(line)) // RFC 1421 headers
    .join("")
    .replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
    return undefined;
  }
  return { type: m[1] as string, der: Buffer.from(body, "base64") };
}

function jwkToKey(jwk: unknown): VerificationKey | undefined {
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) throw new BuiltinError("invalid JWK");
  const k = jwk as Record<string, unknown>;
  if (k.alg !== undefined && (typeof k.alg !== "string" || !JWK_ALGORITHMS.has(k.alg))) {
    throw new BuiltinError("failed to parse a JWK key (set)"); // jwx rejects algorithms it does not know
  }
  const alg = typeof k.alg === "string" ? k.alg : "";
  const kid = typeof k.kid === "string" ? k.kid : "";
  let material: KeyMaterial;
  try {
    if (k.kty === "oct") {
      if (typeof k.k !== "string") throw new BuiltinError("invalid oct JWK");
      material = { kind: "secret", key: base64UrlDecode(k.k) };
    } else if (k.kty === "RSA" || k.kty === "EC" || k.kty === "OKP") {
      // createPublicKey derives the public half from a private JWK
      material = { kind: "asym", key: createPublicKey({ key: k as JsonWebKey, format: "jwk" }) };
    } else {
      throw new BuiltinError("unsupported JWK key type");
    }
  } catch {
    throw new BuiltinError("failed to parse a JWK key (set)");
  }
  // keys with an algorithm OPA does not know are skipped
  if (alg !== "" && !TOKEN_ALGORITHMS.has(alg)) return undefined;
  return { material, alg, kid };
}

const keyCache = new Map<string, VerificationKey[]>();
const KEY_CACHE_MAX = 64;

/** OPA's getKeysFromCertOrJWK: a PEM certificate or public key, or a JWK / JWK set (JSON). */
export function keysFromCertOrJwk(s: string): VerificationKey[] {
  const cached = keyCache.get(s);
  if (cached) return cached;
  let keys: VerificationKey[];
  const block = pemBlock(s);
  if (block) {
    try {
      if (block.type === "CERTIFICATE") {
        keys = [
          { material: { kind: "asym", key: new X509Certificate(block.der).publicKey }, alg: "", kid: "" },
        ];
      } else if (block.type === "PUBLIC KEY") {
        keys = [
          {
            material: { kind: "asym", key: createPublicKey({ key: block.der, format: "der", type: "spki" }) },
            alg: "",
            kid: "",
          },
        ];
      } else {
        throw new BuiltinError("failed to extract a Key from the PEM certificate");
      }
    } catch {
      throw new BuiltinError("failed to parse a PEM certificate or key");
    }
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(s);
    } catch {
      throw new BuiltinError("failed to parse a JWK key (set)");
    }
    const set =
      typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) && "keys" in parsed
        ? (parsed as { keys: unknown }).keys
        : [parsed];
    if (!Array.isArray(set)) throw new BuiltinError("failed to parse a JWK key (set)");
    keys = [];
    for (const jwk of set) {
      const key = jwkToKey(jwk);
      if (key) keys.push(key);
    }
  }
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(s, keys);
  return keys;
}

// ---- signature checks ----

const HASH: Record<string, string> = { "256": "sha256", "384": "sha384", "512": "sha512" };

function hmacEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** jwx's jwsbb.Verify: the algorithm from the header, the key type must fit it. */
function verifyWithAlg(material: KeyMaterial, alg: string, signingInput: Buffer, sig: Uint8Array): boolean {
  if (!TOKEN_ALGORITHMS.has(alg)) return false;
  const family = alg.slice(0, 2);
  const hash = HASH[alg.slice(2)];
  try {
    if (family === "HS") {
      if (material.kind !== "secret" || !hash) return false;
      return hmacEqual(createHmac(hash, material.key).update(signingInput).digest(), sig);
    }
    if (material.kind !== "asym") return false;
    const key = material.key;
    const type = key.asymmetricKeyType;
    if (alg === "EdDSA") {
      return type === "ed25519" && cryptoVerify(null, signingInput, key, sig);
    }
    if (family === "RS") {
      return type === "rsa" && !!hash && cryptoVerify(hash, signingInput, key, sig);
    }
    if (family === "PS") {
      return (
        type === "rsa" &&
        !!hash &&
        cryptoVerify(
          hash,
          signingInput,
          // jwx (decode_verify) requires salt length = hash length, as RFC 7518 says
          { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
          sig,
        )
      );
    }
    if (family === "ES") {
      return (
        type === "ec" && !!hash && cryptoVerify(hash, signingInput, { key, dsaEncoding: "ieee-p1363" }, sig)
      );
    }
  } catch {
    return false;
  }
  return false;
}

// ---- builtins ----

/** io.jwt.decode(jwt) → [header, payload, sig_hex] */
export function jwtDecode(v: unknown): unknown {
  const token = decodeJwt(v);
  const header = decodeHeader(token);
  let payloadBytes: Uint8Array;
  try {
    payloadBytes = base64UrlDecode(token.payload);
  } catch {
    throw new BuiltinError("JWT payload had invalid encoding");
  }
  const cty = header.cty;
  if (cty !== undefined) {
    if (typeof cty !== "string") throw new BuiltinError("cty: must be a string");
    if (cty === "JWT") {
      // nested token; jwt.io quotes it, OPA trims quotes
      const inner = bytesToString(payloadBytes).replace(/^["']+|["']+$/g, "");
      return jwtDecode(inner);
    }
  }
  const payload = jsonObject(payloadBytes);
  const sig = base64UrlDecode(token.signature);
  return [header, payload, hexEncode(sig)];
}

interface Constraints {
  secret: string;
  alg: string;
  iss: string;
  aud: string;
  keys: VerificationKey[] | undefined;
  time: number;
}

function parseConstraints(obj: Record<string, unknown>, nowNs: () => number): Constraints {
  const c: Constraints = { secret: "", alg: "", iss: "", aud: "", keys: undefined, time: -1 };
  for (const [name, value] of Object.entries(obj)) {
    switch (name) {
      case "cert":
        if (typeof value !== "string") throw new BuiltinError("cert constraint: must be a string");
        c.keys = keysFromCertOrJwk(value);
        break;
      case "secret":
      case "alg":
      case "iss":
      case "aud":
        if (typeof value !== "string") throw new BuiltinError(`${name} constraint: must be a string`);
        c[name] = value;
        break;
      case "time": {
        const t = numberOperand(value, 2);
        if (t < 0) throw new BuiltinError("token time constraint: must not be negative");
        c.time = t;
        break;
      }
      default:
        throw new BuiltinError("unknown token validation constraint");
    }
  }
  if (c.time === -1) c.time = nowNs();
  const nKeys = (c.keys !== undefined ? 1 : 0) + (c.secret !== "" ? 1 : 0);
  if (nKeys > 1) throw new BuiltinError("duplicate key constraints");
  if (nKeys < 1) throw new BuiltinError("no key constraint");
  return c;
}

function verifyConstraints(c: Constraints, h: ParsedHeader, signingInput: Buffer, sig: Uint8Array): boolean {
  if (c.keys !== undefined) {
    if (h.kid !== "") {
      const byKid = c.keys.find((k) => k.kid === h.kid);
      if (byKid) return verifyWithAlg(byKid.material, h.alg, signingInput, sig);
    }
    for (const k of c.keys) {
      if (k.alg !== "" && k.alg !== h.alg) continue;
      if (verifyWithAlg(k.material, h.alg, signingInput, sig)) return true;
    }
    return false;
  }
  return verifyWithAlg({ kind: "secret", key: utf8(c.secret) }, h.alg, signingInput, sig);
}

const UNVERIFIED = (): unknown[] => [false, {}, {}];

function validAudience(aud: unknown, want: string): boolean {
  if (typeof aud === "string") return aud === want;
  if (!Array.isArray(aud)) return false;
  return aud.some((e) => typeof e === "string" && e === want);
}

/** io.jwt.decode_verify(jwt, constraints) → [valid, header, payload] */
export function jwtDecodeVerify(jwt: unknown, constraintsArg: unknown, nowNs: () => number): unknown {
  const c = parseConstraints(objectOperand(constraintsArg, 2), nowNs);
  let a: unknown = jwt;
  let token: Token;
  let payloadBytes: Uint8Array;
  for (;;) {
    token = decodeJwt(a);
    const header = parseHeader(decodeHeader(token));
    if (!headerValid(header)) return UNVERIFIED();
    if (c.alg !== "" && c.alg !== header.alg) return UNVERIFIED();
    const sig = decodeSignature(token);
    if (!verifyConstraints(c, header, Buffer.from(`${token.header}.${token.payload}`, "utf8"), sig)) {
      return UNVERIFIED();
    }
    try {
      payloadBytes = base64UrlDecode(token.payload);
    } catch {
      throw new BuiltinError("JWT payload had invalid encoding");
    }
    if (header.cty.toUpperCase() === "JWT") {
      a = bytesToString(payloadBytes);
      continue;
    }
    break;
  }
  const payload = jsonObject(payloadBytes);
  const header = token.decodedHeader as Record<string, unknown>;
  if (c.iss !== "") {
    if (!Object.hasOwn(payload, "iss")) return UNVERIFIED();
    if (typeof payload.iss !== "string") throw new BuiltinError("iss must be a string");
    if (payload.iss !== c.iss) return UNVERIFIED();
  }
  if (Object.hasOwn(payload, "aud")) {
    if (!validAudience(payload.aud, c.aud)) return UNVERIFIED();
  } else if (c.aud !== "") {
    return UNVERIFIED();
  }
  const now = c.time / 1e9;
  if (Object.hasOwn(payload, "exp")) {
    if (typeof payload.exp !== "number") throw new BuiltinError("exp value must be a number");
    if (now >= payload.exp) return UNVERIFIED();
  }
  if (Object.hasOwn(payload, "nbf")) {
    if (typeof payload.nbf !== "number") throw new BuiltinError("nbf value must be a number");
    if (now < payload.nbf) return UNVERIFIED();
  }
  return [true, header, payload];
}

/** io.jwt.verify_hs256/384/512(jwt, secret) → bool */
export function jwtVerifyHS(bits: "256" | "384" | "512", jwt: unknown, secretArg: unknown): boolean {
  stringOperand(jwt, 1);
  const secret = stringOperand(secretArg, 2);
  const token = decodeJwt(jwt);
  const mac = createHmac(HASH[bits] as string, utf8(secret))
    .update(Buffer.from(`${token.header}.${token.payload}`, "utf8"))
    .digest();
  return hmacEqual(decodeSignature(token), mac);
}

type AsymFamily = "RS" | "PS" | "ES" | "EdDSA";

/**
 * io.jwt.verify_{rs,ps,es}{256,384,512} and verify_eddsa(jwt, certificate) → bool. As in OPA, the
 * token header's `alg` is only compared with a JWK's `alg`; the builtin's name fixes the algorithm.
 */
export function jwtVerifyAsym(
  family: AsymFamily,
  bits: "256" | "384" | "512",
  jwt: unknown,
  certArg: unknown,
): boolean {
  const token = decodeJwt(jwt);
  const keys = keysFromCertOrJwk(stringOperand(certArg, 2));
  const sig = decodeSignature(token);
  const header = parseHeader(decodeHeader(token));
  const input = Buffer.from(`${token.header}.${token.payload}`, "utf8");
  const hash = HASH[bits] as string;
  const check = (m: KeyMaterial): boolean => {
    if (m.kind !== "asym") return false;
    const type = m.key.asymmetricKeyType;
    try {
      switch (family) {
        case "RS":
          return type === "rsa" && cryptoVerify(hash, input, m.key, sig);
        case "PS":
          // OPA's verify_ps* use Go's rsa.VerifyPSS with nil options: any salt length
          return (
            type === "rsa" &&
            cryptoVerify(
              hash,
              input,
              {
                key: m.key,
                padding: constants.RSA_PKCS1_PSS_PADDING,
                saltLength: constants.RSA_PSS_SALTLEN_AUTO,
              },
              sig,
            )
          );
        case "ES":
          return type === "ec" && cryptoVerify(hash, input, { key: m.key, dsaEncoding: "ieee-p1363" }, sig);
        case "EdDSA":
          return type === "ed25519" && cryptoVerify(null, input, m.key, sig);
      }
    } catch {
      return false;
    }
    return false;
  };
  if (header.kid !== "") {
    const byKid = keys.find((k) => k.kid === header.kid);
    if (byKid) return check(byKid.material);
  }
  for (const k of keys) {
    if (k.alg !== "" && k.alg !== header.alg) continue;
    if (check(k.material)) return true;
  }
  return false;
}
