/**
 * Request bytes (+ `Nats-Server-Xkey` header) → verified AuthorizationRequest.
 *
 * Order (cheap drops first): size cap → encryption vs. config (`eyJ` prefix = plaintext JWT) → open →
 * parse → `exp` (stale requests dropped before any signature work) → `iss` is an N key equal to
 * `nats.server_id.id` → Ed25519 signature (node:crypto, key cached per server) → `aud`, `nats.type`,
 * `nats.version`, `user_nkey`, `sub`, header xkey = `server_id.xkey` → field shapes.
 *
 * Every failure throws RequestDecodeError (codes request_decode_error, request_expired,
 * encryption_mismatch). A request whose signature, addressing (`user_nkey`, server id) and envelope
 * all verified but which carries a malformed optional field throws AnswerableDecodeError: the
 * pipeline can still send an authentic deny instead of letting the client wait out the timeout.
 * Messages never contain request content.
 */
import { RequestDecodeError } from "../errors.js";
import type { AuthorizationRequest, ClientInfo, ClientTls, ConnectOpts, ServerId } from "../types.js";
import { parseJwt, verifyJwt, DEFAULT_MAX_JWT_BYTES, type JwtClaims } from "./jwt.js";
import { isPublicKey, type Verifier, type XKey } from "./keys.js";
import { CORE_DEFAULTS } from "./defaults.js";

/** `aud` of every authorization request. */
export const AUTH_REQUEST_AUDIENCE = "nats-authorization-request";
/** Header carrying the server's per-process xkey on sealed requests. */
export const XKEY_HEADER = "Nats-Server-Xkey";

/** Default allowed clock skew between this service and nats-server, seconds. */
export const DEFAULT_CLOCK_SKEW_SECONDS = CORE_DEFAULTS.clockSkewSeconds;

/** What decodeRequest needs. */
export interface DecodeOptions {
  /** Verifies the server's signature (caches one KeyObject per server key). */
  verifier: Verifier;
  /** Set when the server is configured with an xkey: requests must then be sealed. */
  xkey?: XKey;
  /** Cap on the raw request (sealed or not), bytes. Default 64 KiB. */
  maxRequestBytes?: number;
  /** Tolerance for `exp`/`nbf`, seconds. Default 5. */
  clockSkewSeconds?: number;
  /** When set, the request `sub` (issuer / callout account) must equal it. */
  expectedIssuer?: string;
  /** Current time, ms since the epoch. Default Date.now(). */
  now?: number;
}

/** Where an authentic reply goes: enough of a request to address and seal a response. */
export interface ReplyTarget {
  user_nkey: string;
  server_id: { id: string; xkey?: string };
  encrypted: boolean;
}

/** A verified request with a malformed field: can be answered (denied), not authorized. */
export class AnswerableDecodeError extends RequestDecodeError {
  readonly target: ReplyTarget;
  constructor(message: string, target: ReplyTarget) {
    super(message, "request_decode_error");
    this.target = target;
  }
}

const EYJ = [0x65, 0x79, 0x4a]; // "eyJ" — base64url of '{"'
const utf8 = new TextDecoder("utf-8", { fatal: true });

function looksLikeJwt(data: Uint8Array): boolean {
  return data.byteLength >= 3 && data[0] === EYJ[0] && data[1] === EYJ[1] && data[2] === EYJ[2];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === "string");
}

/**
 * Decodes and fully verifies an authorization request. Throws RequestDecodeError
 * (or its subclass AnswerableDecodeError).
 */
export function decodeRequest(
  data: Uint8Array,
  xkeyHeader: string | undefined,
  opts: DecodeOptions,
): AuthorizationRequest {
  const maxBytes = opts.maxRequestBytes ?? DEFAULT_MAX_JWT_BYTES;
  const skew = opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  const nowSec = Math.floor((opts.now ?? Date.now()) / 1000);

  if (!(data instanceof Uint8Array)) throw new RequestDecodeError("request body is not bytes");
  if (data.byteLength === 0) throw new RequestDecodeError("empty request");
  if (data.byteLength > maxBytes) throw new RequestDecodeError(`request larger than ${maxBytes} bytes`);

  const header = xkeyHeader === undefined || xkeyHeader === "" ? undefined : xkeyHeader;
  const plaintext = looksLikeJwt(data);
  let jwtBytes: Uint8Array;
  if (opts.xkey !== undefined) {
    if (plaintext)
      throw new RequestDecodeError("plaintext request but an xkey is configured", "encryption_mismatch");
    if (header === undefined) throw new RequestDecodeError(`sealed request without ${XKEY_HEADER} header`);
    try {
      jwtBytes = opts.xkey.open(data, header);
    } catch (err) {
      throw new RequestDecodeError("cannot open sealed request", "request_decode_error", { cause: err });
    }
  } else {
    if (!plaintext)
      throw new RequestDecodeError("sealed request but no xkey is configured", "encryption_mismatch");
    if (header !== undefined) {
      throw new RequestDecodeError(`${XKEY_HEADER} header on a plaintext request`, "encryption_mismatch");
    }
    jwtBytes = data;
  }
  const encrypted = opts.xkey !== undefined;

  let token: string;
  try {
    token = utf8.decode(jwtBytes);
  } catch {
    throw new RequestDecodeError("request is not UTF-8");
  }
  const parsed = parseJwt(token, maxBytes);
  const c: JwtClaims = parsed.claims;

  // Stale requests are dropped before any signature work.
  if (typeof c.exp !== "number" || !Number.isSafeInteger(c.exp) || c.exp <= 0) {
    throw new RequestDecodeError("request exp missing or invalid");
  }
  if (nowSec > c.exp + skew) throw new RequestDecodeError("request expired", "request_expired");
  if (c.nbf !== undefined) {
    if (typeof c.nbf !== "number" || !Number.isFinite(c.nbf))
      throw new RequestDecodeError("request nbf invalid");
    if (c.nbf > nowSec + skew) throw new RequestDecodeError("request not yet valid");
  }

  if (!isPublicKey(c.iss, "server")) throw new RequestDecodeError("request iss is not a server (N…) key");
  const nats = c.nats;
  if (!isObject(nats)) throw new RequestDecodeError("request nats claims missing");
  const sid = nats.server_id;
  if (!isObject(sid)) throw new RequestDecodeError("request nats.server_id missing");
  if (sid.id !== c.iss) throw new RequestDecodeError("request iss does not equal nats.server_id.id");

  verifyJwt(parsed, opts.verifier, "server");

  if (c.aud !== AUTH_REQUEST_AUDIENCE)
    throw new RequestDecodeError(`request aud is not ${AUTH_REQUEST_AUDIENCE}`);
  if (nats.type !== "authorization_request")
    throw new RequestDecodeError("request nats.type is not authorization_request");
  if (nats.version !== 2) throw new RequestDecodeError("request nats.version is not 2");
  if (!isPublicKey(nats.user_nkey, "user"))
    throw new RequestDecodeError("request nats.user_nkey is not a user (U…) key");
  if (!isPublicKey(c.sub, "account")) throw new RequestDecodeError("request sub is not an account (A…) key");
  if (opts.expectedIssuer !== undefined && c.sub !== opts.expectedIssuer) {
    throw new RequestDecodeError("request sub is not the configured issuer / callout account");
  }
  if (encrypted) {
    if (sid.xkey !== header)
      throw new RequestDecodeError(`${XKEY_HEADER} header does not match server_id.xkey`);
  } else if (sid.xkey !== undefined) {
    throw new RequestDecodeError("server_id.xkey on a plaintext request", "encryption_mismatch");
  }

  const target: ReplyTarget = {
    user_nkey: nats.user_nkey,
    server_id: encrypted ? { id: c.iss, xkey: header as string } : { id: c.iss },
    encrypted,
  };
  const bad = (what: string): never => {
    throw new AnswerableDecodeError(`request ${what} is malformed`, target);
  };

  if (typeof c.iat !== "number" || !Number.isSafeInteger(c.iat)) bad("iat");
  const server_id = readServerId(sid, bad);
  if (!isObject(nats.client_info)) bad("nats.client_info");
  const client_info = readClientInfo(nats.client_info as Record<string, unknown>, bad);
  if (!isObject(nats.connect_opts)) bad("nats.connect_opts");
  const connect_opts = readConnectOpts(nats.connect_opts as Record<string, unknown>, bad);

  const req: AuthorizationRequest = {
    server_id,
    user_nkey: nats.user_nkey,
    client_info,
    connect_opts,
    request_issuer: c.sub,
    issued_at: c.iat as number,
    expires_at: c.exp,
    encrypted,
  };
  if (nats.client_tls !== undefined && nats.client_tls !== null) {
    if (!isObject(nats.client_tls)) bad("nats.client_tls");
    req.client_tls = readClientTls(nats.client_tls as Record<string, unknown>, bad);
  }
  return req;
}

type Bad = (what: string) => never;

function optString<T extends object>(
  src: Record<string, unknown>,
  dst: T,
  key: keyof T & string,
  path: string,
  bad: Bad,
) {
  const v = src[key];
  if (v === undefined) return;
  if (typeof v !== "string") bad(`${path}.${key}`);
  (dst as Record<string, unknown>)[key] = v;
}

function optStringArray<T extends object>(
  src: Record<string, unknown>,
  dst: T,
  key: keyof T & string,
  path: string,
  bad: Bad,
) {
  const v = src[key];
  if (v === undefined || v === null) return;
  if (!isStringArray(v)) bad(`${path}.${key}`);
  (dst as Record<string, unknown>)[key] = [...(v as string[])];
}

function readServerId(sid: Record<string, unknown>, bad: Bad): ServerId {
  if (typeof sid.name !== "string") bad("nats.server_id.name");
  if (typeof sid.host !== "string") bad("nats.server_id.host");
  if (sid.version !== undefined && typeof sid.version !== "string") bad("nats.server_id.version");
  const out: ServerId = {
    name: sid.name as string,
    host: sid.host as string,
    id: sid.id as string,
    version: (sid.version as string | undefined) ?? "",
  };
  optString(sid, out, "cluster", "nats.server_id", bad);
  optStringArray(sid, out, "tags", "nats.server_id", bad);
  optString(sid, out, "xkey", "nats.server_id", bad);
  return out;
}

function readClientInfo(ci: Record<string, unknown>, bad: Bad): ClientInfo {
  const out: ClientInfo = {};
  for (const k of ["host", "user", "name", "name_tag", "kind", "type", "mqtt_id", "nonce"] as const) {
    optString(ci, out, k, "nats.client_info", bad);
  }
  if (ci.id !== undefined) {
    if (typeof ci.id !== "number" || !Number.isSafeInteger(ci.id) || ci.id < 0) bad("nats.client_info.id");
    out.id = ci.id as number;
  }
  optStringArray(ci, out, "tags", "nats.client_info", bad);
  return out;
}

function readConnectOpts(co: Record<string, unknown>, bad: Bad): ConnectOpts {
  const out: ConnectOpts = {};
  for (const k of ["jwt", "nkey", "sig", "auth_token", "user", "pass", "name", "lang", "version"] as const) {
    optString(co, out, k, "nats.connect_opts", bad);
  }
  if (co.protocol !== undefined) {
    if (typeof co.protocol !== "number" || !Number.isSafeInteger(co.protocol))
      bad("nats.connect_opts.protocol");
    out.protocol = co.protocol as number;
  }
  return out;
}

function readClientTls(tls: Record<string, unknown>, bad: Bad): ClientTls {
  const out: ClientTls = {};
  optString(tls, out, "version", "nats.client_tls", bad);
  optString(tls, out, "cipher", "nats.client_tls", bad);
  optStringArray(tls, out, "certs", "nats.client_tls", bad);
  const vc = tls.verified_chains;
  if (vc !== undefined && vc !== null) {
    if (!Array.isArray(vc) || !vc.every(isStringArray)) bad("nats.client_tls.verified_chains");
    out.verified_chains = (vc as string[][]).map((chain) => [...chain]);
  }
  return out;
}

/**
 * The `iat` and `exp` of a plaintext request, read WITHOUT verifying anything (undefined for sealed or
 * malformed requests): only good for deciding that a queued request is too old to be worth deciding, which
 * costs the sender nothing it could not lose anyway (its request is then not answered).
 */
export function peekRequestTimes(
  data: Uint8Array,
  maxBytes: number = DEFAULT_MAX_JWT_BYTES,
): { issued_at: number; expires_at: number } | undefined {
  if (!(data instanceof Uint8Array) || data.byteLength > maxBytes || !looksLikeJwt(data)) return undefined;
  try {
    const c = parseJwt(utf8.decode(data), maxBytes).claims;
    if (typeof c.iat !== "number" || typeof c.exp !== "number") return undefined;
    if (!Number.isFinite(c.iat) || !Number.isFinite(c.exp)) return undefined;
    return { issued_at: c.iat, expires_at: c.exp };
  } catch {
    return undefined;
  }
}
