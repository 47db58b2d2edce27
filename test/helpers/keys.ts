/**
 * Fixtures for the auth-callout protocol: key sets, and authorization requests built the way
 * nats-server 2.10+ builds them (see /work/shared/PROTOCOL.md), optionally sealed with xkey, with
 * overrides for forging (wrong aud, non-N issuer, expired, tampered signature, …).
 *
 * The request JWT is encoded here by hand (not with src/callout/jwt.ts) and sealed with
 * @nats-io/nkeys' own CurveKP, so decoding tests cross two implementations.
 */
import {
  createAccount,
  createCurve,
  createServer,
  createUser,
  fromCurveSeed,
  fromSeed,
  type KeyPair,
} from "@nats-io/nkeys";
import { signerFromSeed, xkeyFromSeed, type Signer, type XKey } from "../../src/callout/keys.js";

const td = new TextDecoder();
const te = new TextEncoder();

/** An Ed25519 nkey with its seed, a fast signer and the (slow, tweetnacl) nkeys KeyPair. */
export interface TestKey {
  seed: string;
  publicKey: string;
  signer: Signer;
  kp: KeyPair;
}

/** A curve (xkey) key with its seed, our XKey and the nkeys KeyPair. */
export interface TestXKey {
  seed: string;
  publicKey: string;
  xkey: XKey;
  kp: KeyPair;
}

/** Everything one config- or operator-mode test setup needs. */
export interface TestKeys {
  /** The server's N key (request `iss` = `server_id.id`). */
  server: TestKey;
  /** Config mode: `auth_callout.issuer`. Operator mode: the callout account. */
  issuer: TestKey;
  /** The service's xkey (`auth_callout.xkey`). */
  xkey: TestXKey;
  /** The server's per-process curve key (sent in `Nats-Server-Xkey`). */
  serverXkey: TestXKey;
}

function ed(kp: KeyPair, kind: "account" | "server" | "user" | "operator"): TestKey {
  const seed = td.decode(kp.getSeed());
  return { seed, publicKey: kp.getPublicKey(), signer: signerFromSeed(seed, kind), kp };
}

function curve(kp: KeyPair): TestXKey {
  const seed = td.decode(kp.getSeed());
  return { seed, publicKey: kp.getPublicKey(), xkey: xkeyFromSeed(seed), kp };
}

/** A fresh account key (e.g. an operator-mode target account or signing key). */
export function newAccountKey(): TestKey {
  return ed(createAccount(), "account");
}

/** A fresh server key. */
export function newServerKey(): TestKey {
  return ed(createServer(), "server");
}

/** A fresh user public key (`U…`), as the server makes one per connection attempt. */
export function newUserNkey(): string {
  return createUser().getPublicKey();
}

/** A fresh curve key. */
export function newXKey(): TestXKey {
  return curve(createCurve());
}

/** Generates a full key set. */
export function makeKeys(): TestKeys {
  return { server: newServerKey(), issuer: newAccountKey(), xkey: newXKey(), serverXkey: newXKey() };
}

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

/** The default authorization request claims for keys (plaintext unless `sealed`). */
export function requestClaims(keys: TestKeys, o: RequestOptions = {}): Record<string, unknown> {
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

/** Re-creates slow nkeys key pairs from seeds (cross-checks only; tweetnacl is ~20 ms per op). */
export function slowKeyPair(seed: string): KeyPair {
  return seed.startsWith("SX") ? fromCurveSeed(te.encode(seed)) : fromSeed(te.encode(seed));
}
