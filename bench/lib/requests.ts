/**
 * Authorization requests as nats-server builds them (claims shape from PROTOCOL.md), signed by a
 * fake server key and optionally sealed with a fake server xkey. For the in-process stage benchmark
 * and the bad-input reliability test; never on the wire.
 */
import { createCurve, createServer, createUser } from "@nats-io/nkeys";
import { encodeJwt, signerFromSeed, xkeyFromSeed, type Signer, type XKey } from "../../src/callout/index.js";

const td = new TextDecoder();
const te = new TextEncoder();

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
export function userNkey(): string {
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

export function requestClaims(s: RequestSpec): Record<string, unknown> {
  const now = Math.floor((s.nowMs ?? Date.now()) / 1000);
  const serverId: Record<string, unknown> = {
    name: "bench-server",
    host: "127.0.0.1",
    id: s.server.id,
    version: "2.15.3",
  };
  if (s.sealFor) serverId.xkey = s.server.xkey.publicKey;
  const connectOpts: Record<string, unknown> = { lang: "go", version: "1.55.0", protocol: 1 };
  if (s.user !== undefined) connectOpts.user = s.user;
  if (s.pass !== undefined) connectOpts.pass = s.pass;
  if (s.token !== undefined) connectOpts.auth_token = s.token;
  return {
    aud: "nats-authorization-request",
    exp: now + (s.ttlS ?? 2),
    sub: s.issuer,
    nats: {
      server_id: serverId,
      user_nkey: s.userNkey ?? userNkey(),
      client_info: {
        host: s.host ?? "127.0.0.1",
        id: 7,
        user: s.user ?? "",
        kind: "Client",
        type: "nats",
      },
      connect_opts: connectOpts,
      type: "authorization_request",
      version: 2,
    },
  };
}

/** The request body and header as the service would receive them. */
export function makeRequest(s: RequestSpec): { data: Uint8Array; header?: string; jwt: string } {
  const claims = requestClaims(s);
  s.mutate?.(claims);
  const jwt = encodeJwt(claims, s.signWith ?? s.server.signer, s.nowMs ?? Date.now());
  const bytes = te.encode(jwt);
  if (!s.sealFor) return { data: bytes, jwt };
  return { data: s.server.xkey.seal(bytes, s.sealFor), header: s.server.xkey.publicKey, jwt };
}
