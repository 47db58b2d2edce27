/**
 * Authorization requests built the way nats-server 2.10+ builds them (see /work/shared/PROTOCOL.md), optionally
 * sealed with xkey, with overrides for forging (wrong aud, non-N issuer, expired, tampered signature, …).
 *
 * One claims builder (`requestClaims`) with two front ends:
 * - `buildRequest(keys, options)`: the protocol tests. The JWT is encoded here by hand (not with
 *   src/callout/jwt.ts) and sealed with @nats-io/nkeys' own CurveKP, so decoding tests cross two implementations.
 * - `makeRequest(spec)`: the stage benchmarks and the bad-input reliability test. Many requests, fast: signed
 *   with src/callout/jwt.ts and sealed with our cached-box XKey, user keys from a pool.
 */
import { createCurve, createServer, createUser } from "@nats-io/nkeys";
import { encodeJwt } from "../../src/callout/jwt.js";
import { signerFromSeed, xkeyFromSeed, type Signer, type XKey } from "../../src/callout/keys.js";
import { newUserNkey, type TestKeys, type TestXKey } from "./keys.js";

const td = new TextDecoder();
const te = new TextEncoder();

/** Set a key to `undefined` to delete it. */
type Patch = Record<string, unknown>;

function applyPatch(target: Record<string, unknown>, patch: Patch | undefined): void {
  if (patch === undefined) return;
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete target[k];
    else target[k] = v;
  }
}

/** How to build (or forge) a request. */
export interface RequestOptions {
  /** Seal with xkey like a server configured with `xkey` (default false). */
  sealed?: boolean;
  /** Seal to this xkey instead of keys.xkey (forging). */
  sealTo?: string;
  /** Seal with this server curve key instead of keys.serverXkey. */
  sealWith?: TestXKey;
  /** Header value to send; default the sealing key's public key when sealed, none otherwise. `null` = no header. */
  header?: string | null;
  /** Current time in ms (iat = now, exp = now + timeoutSeconds). */
  now?: number;
  /** Server auth timeout → `exp` = iat + timeout. Default 2. */
  timeoutSeconds?: number;
  /** User nkey (default: a fresh one). */
  userNkey?: string;
  /** Top-level claim overrides (aud, exp, iss, sub, …). */
  claims?: Patch;
  /** `nats` overrides. */
  nats?: Patch;
  server_id?: Patch;
  client_info?: Patch;
  connect_opts?: Patch;
  /** Present only for TLS clients. */
  client_tls?: Record<string, unknown>;
  /** Header overrides, e.g. `{ alg: "ed25519" }`. */
  jwtHeader?: Patch;
  /** Sign with this key instead of keys.server (iss stays as set unless claims.iss is given). */
  signer?: Signer;
  /** Post-process the compact token (e.g. corrupt the signature). */
  tamper?: (token: string) => string;
}

/** A built request: what the service would receive. */
export interface BuiltRequest {
  data: Uint8Array;
  header?: string;
  token: string;
  claims: Record<string, unknown>;
  userNkey: string;
}

const b64url = (s: string | Uint8Array): string => Buffer.from(s).toString("base64url");

/** Signs a claims object as a compact NATS v2 JWT, by hand (independent of src/callout/jwt.ts). */
export function signToken(claims: Record<string, unknown>, signer: Signer, header: Patch = {}): string {
  const h: Record<string, unknown> = { typ: "JWT", alg: "ed25519-nkey" };
  applyPatch(h, header);
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(signer.sign(te.encode(input)))}`;
}

/** The public keys a request names: the server (`iss`, `server_id.id`), the issuer (`sub`), the server's xkey. */
export interface RequestKeys {
  server: { publicKey: string };
  issuer: { publicKey: string };
  serverXkey: { publicKey: string };
}

/** The default authorization request claims for keys (plaintext unless `sealed`). */
export function requestClaims(keys: RequestKeys, o: RequestOptions = {}): Record<string, unknown> {
  const now = o.now ?? Date.now();
  const iat = Math.floor(now / 1000);
  const userNkey = o.userNkey ?? newUserNkey();
  const serverXkey = o.sealWith ?? keys.serverXkey;
  const server_id: Record<string, unknown> = {
    name: "test-server",
    host: "127.0.0.1",
    id: keys.server.publicKey,
    version: "2.10.27",
  };
  if (o.sealed) server_id.xkey = serverXkey.publicKey;
  applyPatch(server_id, o.server_id);
  const client_info: Record<string, unknown> = {
    host: "127.0.0.1",
    id: 7,
    user: "alice",
    kind: "Client",
    type: "nats",
  };
  applyPatch(client_info, o.client_info);
  const connect_opts: Record<string, unknown> = {
    user: "alice",
    pass: "s3cret-pass",
    lang: "nats.js",
    version: "3.4.0",
    protocol: 1,
  };
  applyPatch(connect_opts, o.connect_opts);
  const nats: Record<string, unknown> = {
    server_id,
    user_nkey: userNkey,
    client_info,
    connect_opts,
    type: "authorization_request",
    version: 2,
  };
  if (o.client_tls !== undefined) nats.client_tls = o.client_tls;
  applyPatch(nats, o.nats);
  const claims: Record<string, unknown> = {
    aud: "nats-authorization-request",
    exp: iat + (o.timeoutSeconds ?? 2),
    jti: "FIXTUREJTI",
    iat,
    iss: keys.server.publicKey,
    sub: keys.issuer.publicKey,
    nats,
  };
  applyPatch(claims, o.claims);
  return claims;
}

/** Builds a signed (and optionally sealed) authorization request like nats-server does. */
export function buildRequest(keys: TestKeys, o: RequestOptions = {}): BuiltRequest {
  const claims = requestClaims(keys, o);
  let token = signToken(claims, o.signer ?? keys.server.signer, o.jwtHeader);
  if (o.tamper) token = o.tamper(token);
  const userNkey = (claims.nats as Record<string, unknown> | undefined)?.user_nkey as string;
  if (!o.sealed) {
    const out: BuiltRequest = { data: te.encode(token), token, claims, userNkey };
    if (typeof o.header === "string") out.header = o.header;
    return out;
  }
  const sender = o.sealWith ?? keys.serverXkey;
  // nkeys' own (tweetnacl) CurveKP seals: independent of our cached-box XKey.
  const data = sender.kp.seal(te.encode(token), o.sealTo ?? keys.xkey.publicKey);
  const out: BuiltRequest = { data, token, claims, userNkey };
  if (o.header !== null) out.header = o.header ?? sender.publicKey;
  return out;
}

/** Opens a (possibly sealed) response the way the server does, returning the JWT string. */
export function openResponse(keys: TestKeys, reply: Uint8Array, sealed: boolean): string {
  if (!sealed) return td.decode(reply);
  const opened = keys.serverXkey.kp.open(reply, keys.xkey.publicKey);
  if (opened === null) throw new Error("cannot open sealed response");
  return td.decode(opened);
}

/** Decodes a JWT's claims without verification (tests inspect what was signed). */
export function peekClaims(token: string): Record<string, unknown> {
  const part = token.split(".")[1];
  if (part === undefined) throw new Error("not a jwt");
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>;
}

// ---- many requests, fast (benchmarks, bad input) ----

export interface FakeServer {
  id: string;
  signer: Signer;
  /** The server's per-process curve key (for sealed requests). */
  xkey: XKey;
}

export function fakeServer(): FakeServer {
  const kp = createServer();
  const signer = signerFromSeed(td.decode(kp.getSeed()), "server");
  const x = createCurve();
  return { id: signer.publicKey, signer, xkey: xkeyFromSeed(td.decode(x.getSeed())) };
}

/**
 * A U… key, as the server makes per connection attempt. Key generation is tweetnacl (~ms), so keys
 * come from a pool of 256 (generated on first use, then reused in turn): the decode path treats every
 * user key alike, and nothing caches by it.
 */
const userPool: string[] = [];
let userNext = 0;
export function pooledUserNkey(): string {
  if (userPool.length < 256) {
    const k = createUser().getPublicKey();
    userPool.push(k);
    return k;
  }
  return userPool[userNext++ % userPool.length] as string;
}

export interface RequestSpec {
  server: FakeServer;
  /** `sub`: the issuer account (config mode). */
  issuer: string;
  user?: string;
  pass?: string;
  token?: string;
  userNkey?: string;
  host?: string;
  /** Seal for this service xkey (X…): body becomes "xkv1"‖nonce‖box, header = server xkey. */
  sealFor?: string;
  nowMs?: number;
  /** Lifetime (s): the server uses its auth timeout. */
  ttlS?: number;
  /** Mutate the claims before signing (forgeries). */
  mutate?: (claims: Record<string, unknown>) => void;
  /** Sign with another key than the server's (forged signature). */
  signWith?: Signer;
}

/** The claims of a spec: a Go client (user/password or token) on a 2.15 server. */
export function specClaims(s: RequestSpec): Record<string, unknown> {
  return requestClaims(
    {
      server: { publicKey: s.server.id },
      issuer: { publicKey: s.issuer },
      serverXkey: { publicKey: s.server.xkey.publicKey },
    },
    {
      sealed: s.sealFor !== undefined && s.sealFor !== "",
      now: s.nowMs ?? Date.now(),
      timeoutSeconds: s.ttlS ?? 2,
      userNkey: s.userNkey ?? pooledUserNkey(),
      server_id: { name: "bench-server", version: "2.15.3" },
      client_info: { host: s.host ?? "127.0.0.1", user: s.user ?? "" },
      connect_opts: { lang: "go", version: "1.55.0", user: s.user, pass: s.pass, auth_token: s.token },
    },
  );
}

/** The request body and header as the service would receive them. */
export function makeRequest(s: RequestSpec): { data: Uint8Array; header?: string; jwt: string } {
  const claims = specClaims(s);
  s.mutate?.(claims);
  const jwt = encodeJwt(claims, s.signWith ?? s.server.signer, s.nowMs ?? Date.now());
  const bytes = te.encode(jwt);
  if (!s.sealFor) return { data: bytes, jwt };
  return { data: s.server.xkey.seal(bytes, s.sealFor), header: s.server.xkey.publicKey, jwt };
}
