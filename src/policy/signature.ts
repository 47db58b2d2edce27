/**
 * Signed bundles, verified the way OPA verifies them (open-policy-agent/opa v1/bundle/verify.go, hash.go), so a
 * bundle signed by `opa build --signing-key …` or any OPA-compatible pipeline loads here unchanged:
 *
 * 1. The bundle holds exactly one `.signatures.json` with exactly one JWS (compact) in `signatures`.
 * 2. Key id: the configured `key_id`, else the JWS header `kid`, else the payload's `keyid`; it must name a
 *    configured key, whose algorithm is the only one accepted (no `alg` confusion: jose is told the algorithm).
 * 3. The JWS verifies (jose `compactVerify`); the payload's `scope` equals the configured scope (or the key's).
 * 4. Every bundle file except `.signatures.json` and the `exclude_files` globs (Go `filepath.Match`, on the name
 *    without its leading "/") must be listed in the payload's `files` with a matching digest; every listed file
 *    must be in the bundle. Structured documents (`data.json`, `data.yaml`/`.yml`, `.manifest`) are hashed in
 *    OPA's canonical form (parsed, object keys sorted, number literals kept); everything else as raw bytes.
 *
 * OPA's canonical hash is hand-written below because no library implements it: it must reproduce Go's
 * encoding/json output for strings and keep JSON number literals exactly (JSON.parse would turn 1.0 into 1).
 *
 * Failures throw PolicyLoadError naming the file or the check; nothing here logs.
 */
import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { compactVerify, decodeProtectedHeader, errors as joseErrors } from "jose";
import { parse as parseYaml } from "yaml";
import { PolicyLoadError } from "../errors.js";
import { JWS_ALGORITHMS } from "./algorithms.js";

/** JWS algorithms OPA's bundle signing supports. */
export const SIGNING_ALGORITHMS = JWS_ALGORITHMS;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** One verification key, as in OPA's `keys:` config. */
export interface VerificationKey {
  algorithm: SigningAlgorithm;
  /** PEM public key / certificate (RS*, PS*, ES*), or the shared secret (HS*). */
  key: string;
  scope?: string;
}

export interface VerificationConfig {
  /** Key id → key. */
  keys: Readonly<Record<string, VerificationKey>>;
  /** Use this key id whatever the bundle says (OPA's `signing.keyid`). */
  keyId?: string;
  /** Expected scope (OPA's `signing.scope`); default the key's scope, else "". */
  scope?: string;
  /** Globs (Go filepath.Match) of files not covered by the signature. */
  excludeFiles?: readonly string[];
}

/** What a verified signature vouches for: file name (without leading "/") → digest. */
export interface VerifiedSignature {
  keyId: string;
  scope: string;
  files: Map<string, { hash: string; algorithm: string }>;
}

const SIGNATURES_FILE = "/.signatures.json";

const HASHES: Record<string, string> = {
  MD5: "md5",
  "SHA-1": "sha1",
  "SHA-224": "sha224",
  "SHA-256": "sha256",
  "SHA-384": "sha384",
  "SHA-512": "sha512",
  "SHA-512-224": "sha512-224",
  "SHA-512-256": "sha512-256",
};

function fail(message: string, cause?: unknown): never {
  throw new PolicyLoadError(`bundle signature: ${message}`, cause === undefined ? undefined : { cause });
}

/** Go's filepath.Match (no "/" crossing for * and ?), as OPA's exclude_files uses it. */
export function goGlobMatch(pattern: string, name: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\" && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) return false; // Go: ErrBadPattern → no match
      let cls = pattern.slice(i + 1, end);
      const negate = cls.startsWith("^");
      if (negate) cls = cls.slice(1);
      re += `[${negate ? "^/" : ""}${cls.replace(/[\]\\]/g, "\\$&")}]`;
      i = end;
    } else re += escapeRe(c);
  }
  try {
    return new RegExp(re + "$", "su").test(name);
  } catch {
    return false;
  }
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Go encoding/json's string encoding (SetEscapeHTML(false)): JSON.stringify plus \u2028/\u2029, well-formed. */
function goString(s: string): string {
  return JSON.stringify(s.replace(LONE_SURROGATE, "\ufffd"))
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

const utf8Compare = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * OPA's canonical serialisation of a JSON text (hash.go `walk`): objects with keys sorted bytewise (last duplicate
 * wins, as Go's map decoding does), arrays in order, strings as Go encodes them, numbers as their literal text.
 */
export function canonicalJson(text: string): string {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const value = (): string => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const entries = new Map<string, string>();
      ws();
      if (text[i] === "}") {
        i++;
        return "{}";
      }
      for (;;) {
        ws();
        if (text[i] !== '"') throw new SyntaxError(`expected a key at ${i}`);
        const key = str();
        ws();
        if (text[i++] !== ":") throw new SyntaxError(`expected ":" at ${i - 1}`);
        entries.set(key, value());
        ws();
        const sep = text[i++];
        if (sep === "}") break;
        if (sep !== ",") throw new SyntaxError(`expected "," or "}" at ${i - 1}`);
      }
      const keys = [...entries.keys()].sort(utf8Compare);
      return `{${keys.map((k) => `${goString(k)}:${entries.get(k)!}`).join(",")}}`;
    }
    if (c === "[") {
      i++;
      const items: string[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return "[]";
      }
      for (;;) {
        items.push(value());
        ws();
        const sep = text[i++];
        if (sep === "]") break;
        if (sep !== ",") throw new SyntaxError(`expected "," or "]" at ${i - 1}`);
      }
      return `[${items.join(",")}]`;
    }
    if (c === '"') return goString(str());
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) throw new SyntaxError(`unexpected token at ${i}`);
    i += m[0].length;
    return m[0];
  };
  const str = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    if (i >= text.length) throw new SyntaxError(`unterminated string at ${start}`);
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const out = value();
  ws();
  if (i !== text.length) throw new SyntaxError(`unexpected data after the JSON value at ${i}`);
  return out;
}

/** Canonical form of a JSON value (YAML data: parsed by the yaml library, numbers as JS prints them). */
function canonicalValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalValue).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort(utf8Compare);
    return `{${keys.map((k) => `${goString(k)}:${canonicalValue(o[k])}`).join(",")}}`;
  }
  if (typeof v === "string") return goString(v);
  return JSON.stringify(v) ?? "null";
}

function isStructured(name: string): boolean {
  const base = name.slice(name.lastIndexOf("/") + 1);
  return base === "data.json" || base === "data.yaml" || base === "data.yml" || base === ".manifest";
}

/** The digest OPA computes for one bundle file (hex). */
export function fileDigest(name: string, bytes: Buffer, algorithm: string): string {
  const h = HASHES[algorithm];
  if (h === undefined) fail(`${name}: unsupported hashing algorithm ${JSON.stringify(algorithm)}`);
  let material: Buffer | string = bytes;
  if (isStructured(name)) {
    try {
      material =
        name.endsWith(".json") || name.endsWith(".manifest")
          ? canonicalJson(bytes.toString("utf8"))
          : canonicalValue(parseYaml(bytes.toString("utf8")));
    } catch (err) {
      fail(
        `${name}: not valid ${name.endsWith(".json") || name.endsWith(".manifest") ? "JSON" : "YAML"}`,
        err,
      );
    }
  }
  return createHash(h).update(material).digest("hex");
}

async function verificationKey(k: VerificationKey): Promise<KeyObject | Uint8Array> {
  if (k.algorithm.startsWith("HS")) return new TextEncoder().encode(k.key);
  try {
    return createPublicKey(k.key);
  } catch (err) {
    fail(`the configured ${k.algorithm} key is not a PEM public key, private key or certificate`, err);
  }
}

/**
 * Verify a bundle's files (normalised names, "/data.json" …) against its `.signatures.json` and the configuration.
 * Returns what the signature vouched for; throws PolicyLoadError on any mismatch.
 */
export async function verifyBundleSignature(
  files: ReadonlyMap<string, Buffer>,
  cfg: VerificationConfig,
): Promise<VerifiedSignature> {
  const raw = files.get(SIGNATURES_FILE);
  if (raw === undefined) fail("the bundle has no .signatures.json (signing is required by policy.signing)");
  let sigs: unknown;
  try {
    sigs = (JSON.parse(raw.toString("utf8")) as { signatures?: unknown }).signatures;
  } catch (err) {
    fail(".signatures.json is not JSON", err);
  }
  if (!Array.isArray(sigs) || sigs.length === 0) fail(".signatures.json: missing JWT (expected exactly one)");
  if (sigs.length > 1) fail(".signatures.json: multiple JWTs not supported (expected exactly one)");
  const token = sigs[0];
  if (typeof token !== "string") fail(".signatures.json: the signature is not a string");

  let headerKid: string | undefined;
  let payloadRaw: { files?: unknown; keyid?: unknown; scope?: unknown };
  try {
    const hdr = decodeProtectedHeader(token);
    headerKid = typeof hdr.kid === "string" ? hdr.kid : undefined;
    const part = token.split(".")[1] ?? "";
    payloadRaw = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as typeof payloadRaw;
  } catch (err) {
    fail("the signature is not a compact JWS with a JSON payload", err);
  }
  const keyId =
    cfg.keyId ?? headerKid ?? (typeof payloadRaw.keyid === "string" ? payloadRaw.keyid : undefined);
  if (keyId === undefined || keyId === "") fail("verification key ID is empty");
  const key = Object.hasOwn(cfg.keys, keyId) ? cfg.keys[keyId] : undefined;
  if (key === undefined) fail(`key ${JSON.stringify(keyId)} is not configured`);

  try {
    await compactVerify(token, await verificationKey(key), { algorithms: [key.algorithm] });
  } catch (err) {
    if (err instanceof PolicyLoadError) throw err;
    const why =
      err instanceof joseErrors.JOSEAlgNotAllowed
        ? `signed with another algorithm than the configured ${key.algorithm}`
        : "the signature does not verify with the configured key";
    fail(`key ${JSON.stringify(keyId)}: ${why}`, err);
  }
  const scope = cfg.scope ?? key.scope ?? "";
  const signedScope = typeof payloadRaw.scope === "string" ? payloadRaw.scope : "";
  if (signedScope !== scope) fail("scope mismatch");

  if (!Array.isArray(payloadRaw.files)) fail("the signed payload lists no files");
  const listed = new Map<string, { hash: string; algorithm: string }>();
  for (const f of payloadRaw.files as unknown[]) {
    const o = f as { name?: unknown; hash?: unknown; algorithm?: unknown };
    if (typeof o?.name !== "string" || typeof o.hash !== "string")
      fail("the signed payload has a malformed file entry");
    listed.set(o.name.replace(/^\/+/, ""), {
      hash: o.hash.toLowerCase(),
      algorithm: String(o.algorithm ?? ""),
    });
  }
  const unseen = new Map(listed);
  for (const [full, bytes] of files) {
    if (full === SIGNATURES_FILE) continue;
    const name = full.slice(1);
    if ((cfg.excludeFiles ?? []).some((g) => goGlobMatch(g, name))) {
      unseen.delete(name);
      continue;
    }
    const entry = listed.get(name);
    if (entry === undefined) fail(`file ${name} not included in bundle signature`);
    if (entry.algorithm === "") fail(`no hashing algorithm provided for file ${name}`);
    if (fileDigest(name, bytes, entry.algorithm) !== entry.hash) fail(`${name}: digest mismatch`);
    unseen.delete(name);
  }
  if (unseen.size > 0) {
    fail(
      `file(s) ${[...unseen.keys()].sort().join(", ")} specified in bundle signatures but not found in the bundle`,
    );
  }
  return { keyId, scope, files: listed };
}
