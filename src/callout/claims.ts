/**
 * Grant + request → user JWT claims (nats-io/jwt v2 `UserClaims`), deny-by-default:
 *
 * - `sub` = the request's `user_nkey`; `exp` always set and capped (`min(expires_in ?? default, max)`).
 * - `pub` and `sub` permissions are always present with an explicit allow or deny: a side without a
 *   non-empty allow list becomes `{ "deny": [">"] }` (nats-server treats a missing/empty side as
 *   allow-all).
 * - `resp.ttl` in nanoseconds (Go time.Duration), `times_location` (what the server reads; jwt.js's
 *   `locale` is ignored by it), `src` as a JSON array (jwt v2 CIDRList accepts array or comma string).
 * - Config mode: `aud` = target account name, no `issuer_account` (the server rejects it).
 *   Operator mode: `iss` = the account or one of its signing keys; `issuer_account` = the account's
 *   public key when the signer is a signing key.
 */
import type { AuthorizationRequest, Grant, SubjectPermission } from "../types.js";
import { encodeJwt, type UnsignedClaims } from "./jwt.js";
import type { Signer } from "./keys.js";

/** Inputs beyond the grant and request. */
export interface UserClaimsOptions {
  mode: "config" | "operator";
  /** Signs the user JWT: the issuer account (config) or the target account / its signing key (operator). */
  signer: Signer;
  /** Operator mode: the target account's public key (A…). */
  accountPublicKey?: string;
  /** Lifetime when the grant has no `expires_in`, seconds. */
  defaultExpirySeconds: number;
  /** Upper bound for any lifetime, seconds. */
  maxExpirySeconds: number;
  /** Current time, ms since the epoch. */
  nowMs: number;
}

/** `{ deny: [">"] }` — what a side without allowances becomes. */
const DENY_ALL: Readonly<SubjectPermission> = Object.freeze({ deny: [">"] });

/** The wire form of one permission side: never empty, never allow-all by omission. */
export function permissionClaim(p: SubjectPermission | undefined): SubjectPermission {
  if (p?.allow === undefined || p.allow.length === 0) return { deny: [...(DENY_ALL.deny ?? [])] };
  const out: SubjectPermission = { allow: [...p.allow] };
  if (p.deny !== undefined && p.deny.length > 0) out.deny = [...p.deny];
  return out;
}

/**
 * The user name recorded in the JWT: `grant.name`, else `connect_opts.user`, else `client_info.user`
 * (skipped when the client sent a token: nats-server 2.10 puts the raw token there), else `user_nkey`.
 */
export function userName(grant: Grant, req: AuthorizationRequest): string {
  const nonEmpty = (s: string | undefined): s is string => typeof s === "string" && s.length > 0;
  if (nonEmpty(grant.name)) return grant.name;
  if (nonEmpty(req.connect_opts.user)) return req.connect_opts.user;
  if (nonEmpty(req.client_info.user) && !nonEmpty(req.connect_opts.auth_token)) return req.client_info.user;
  return req.user_nkey;
}

/** Lifetime in whole seconds: `min(expires_in ?? default, max)`, at least 1. */
export function lifetimeSeconds(
  grant: Grant,
  opts: Pick<UserClaimsOptions, "defaultExpirySeconds" | "maxExpirySeconds">,
) {
  const wanted = grant.expires_in ?? opts.defaultExpirySeconds;
  return Math.max(1, Math.floor(Math.min(wanted, opts.maxExpirySeconds)));
}

/** Builds the unsigned user claims for a validated grant (see module doc). */
export function buildUserClaims(
  grant: Grant,
  req: AuthorizationRequest,
  opts: UserClaimsOptions,
): UnsignedClaims {
  const nowSec = Math.floor(opts.nowMs / 1000);
  const nats: Record<string, unknown> = {
    pub: permissionClaim(grant.pub),
    sub: permissionClaim(grant.sub),
  };
  if (grant.resp !== undefined) nats.resp = { max: grant.resp.max, ttl: grant.resp.ttl_ms * 1_000_000 };
  if (grant.src !== undefined && grant.src.length > 0) nats.src = [...grant.src];
  if (grant.times !== undefined && grant.times.length > 0) {
    nats.times = grant.times.map((t) => ({ start: t.start, end: t.end }));
  }
  if (grant.times_location !== undefined) nats.times_location = grant.times_location;
  nats.subs = grant.subs ?? -1;
  nats.data = grant.data ?? -1;
  nats.payload = grant.payload ?? -1;
  if (grant.bearer_token === true) nats.bearer_token = true;
  if (grant.allowed_connection_types !== undefined && grant.allowed_connection_types.length > 0) {
    nats.allowed_connection_types = [...grant.allowed_connection_types];
  }
  if (opts.mode === "operator") {
    if (opts.accountPublicKey === undefined) throw new TypeError("operator mode needs accountPublicKey");
    if (opts.accountPublicKey !== opts.signer.publicKey) nats.issuer_account = opts.accountPublicKey;
  }
  if (grant.tags !== undefined && grant.tags.length > 0) nats.tags = [...grant.tags];
  nats.type = "user";
  nats.version = 2;

  const claims: UnsignedClaims = {
    exp: nowSec + lifetimeSeconds(grant, opts),
    name: userName(grant, req),
    sub: req.user_nkey,
    nats,
  };
  if (opts.mode === "config") claims.aud = grant.account;
  return claims;
}

/** Builds and signs the user JWT. Returns the token and the claims as signed. */
export function encodeUserJwt(
  grant: Grant,
  req: AuthorizationRequest,
  opts: UserClaimsOptions,
): { jwt: string; claims: UnsignedClaims } {
  const claims = buildUserClaims(grant, req, opts);
  return { jwt: encodeJwt(claims, opts.signer, opts.nowMs), claims };
}
