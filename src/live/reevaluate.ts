/**
 * Re-deciding a live connection: the stored verified request goes through the same handler (the policy's, on the
 * revision active now) and the same grant validation as a login, and comes back as the grant summary the new user
 * JWT would carry — or as deny. Nothing is signed and nothing is sent.
 *
 * Outcomes (never throws): `allow` with the would-be grant, or `deny` with a reason. A handler abort, a handler
 * fault, an invalid grant or an unknown target account are all `deny` (fail closed: the caller disconnects the
 * client, and its reconnect is decided by the login path, which logs the real cause).
 */
import { lifetimeSeconds, permissionClaim, userName } from "../callout/claims.js";
import type { DecisionFacts, Handler } from "../callout/facts.js";
import type { IssuedSummary } from "../callout/pipeline.js";
import { AbortAuth, CalloutError } from "../errors.js";
import { validateGrant } from "../grant.js";
import type { AuthorizationRequest, Grant } from "../types.js";
import type { GrantSummary } from "./coverage.js";

export type ReDecision =
  | { kind: "allow"; grant: GrantSummary; revision?: string }
  | { kind: "deny"; reason: string; revision?: string };

/** Re-decides one stored request on the active revision. */
export type Reevaluate = (req: AuthorizationRequest) => Promise<ReDecision>;

export interface ReevaluatorOptions {
  /** Target accounts a grant may name; operator mode: name → public key. */
  accounts: readonly string[] | Readonly<Record<string, string>>;
  defaultExpirySeconds: number;
  maxExpirySeconds: number;
  /** Clock, ms since the epoch (tests). */
  now?: () => number;
}

/** The would-be user JWT's rights for a validated grant (the fields buildUserClaims writes). */
export function summarizeGrant(
  g: Grant,
  req: AuthorizationRequest,
  o: { defaultExpirySeconds: number; maxExpirySeconds: number; nowMs: number; accountPublicKey?: string },
): GrantSummary {
  const s: GrantSummary = {
    account: g.account,
    name: userName(g, req),
    pub: permissionClaim(g.pub),
    sub: permissionClaim(g.sub),
    exp: Math.floor(o.nowMs / 1000) + lifetimeSeconds(g, o),
    subs: g.subs ?? -1,
    data: g.data ?? -1,
    payload: g.payload ?? -1,
  };
  if (o.accountPublicKey !== undefined) s.account_public_key = o.accountPublicKey;
  if (g.resp !== undefined) s.resp = g.resp;
  if (g.src !== undefined && g.src.length > 0) s.src = g.src;
  if (g.times !== undefined && g.times.length > 0) s.times = g.times;
  if (g.times_location !== undefined) s.times_location = g.times_location;
  if (g.allowed_connection_types !== undefined && g.allowed_connection_types.length > 0) {
    s.allowed_connection_types = g.allowed_connection_types;
  }
  if (g.bearer_token === true) s.bearer_token = true;
  if (g.tags !== undefined && g.tags.length > 0) s.tags = g.tags;
  return s;
}

/** The pipeline's IssuedSummary (what was signed) as a GrantSummary. */
export function summaryFromIssued(i: IssuedSummary): GrantSummary {
  const s: GrantSummary = {
    account: i.account,
    name: i.name,
    pub: i.pub,
    sub: i.sub,
    exp: i.exp,
    subs: i.subs,
    data: i.data,
    payload: i.payload,
  };
  if (i.account_public_key !== undefined) s.account_public_key = i.account_public_key;
  if (i.resp !== undefined) s.resp = i.resp;
  if (i.src !== undefined && i.src.length > 0) s.src = i.src;
  if (i.times !== undefined && i.times.length > 0) s.times = i.times;
  if (i.times_location !== undefined) s.times_location = i.times_location;
  if (i.allowed_connection_types !== undefined && i.allowed_connection_types.length > 0) {
    s.allowed_connection_types = i.allowed_connection_types;
  }
  if (i.bearer_token === true) s.bearer_token = true;
  if (i.tags !== undefined && i.tags.length > 0) s.tags = i.tags;
  return s;
}

let reevalSeq = 0;

/** A Reevaluate over a Handler (the policy's handler, or a library user's plain function). */
export function reevaluatorFromHandler(handler: Handler, o: ReevaluatorOptions): Reevaluate {
  const names = Array.isArray(o.accounts) ? [...o.accounts] : Object.keys(o.accounts);
  const keys = Array.isArray(o.accounts) ? undefined : (o.accounts as Readonly<Record<string, string>>);
  const clock = o.now ?? Date.now;
  return async (req) => {
    const facts: DecisionFacts = {};
    const nowMs = clock();
    const rev = (): { revision?: string } =>
      facts.revision !== undefined ? { revision: facts.revision } : {};
    let raw: unknown;
    try {
      raw = await handler(req, {
        decisionId: `reeval-${(++reevalSeq).toString(36)}`,
        now: new Date(nowMs),
        facts,
      });
    } catch (e) {
      const reason = e instanceof AbortAuth ? "abort" : e instanceof CalloutError ? e.code : "handler_error";
      return { kind: "deny", reason: reason === "auth_denied" ? "deny" : reason, ...rev() };
    }
    try {
      const g = validateGrant(raw, req, { accounts: names });
      const pub = keys?.[g.account];
      return {
        kind: "allow",
        grant: summarizeGrant(g, req, {
          defaultExpirySeconds: o.defaultExpirySeconds,
          maxExpirySeconds: o.maxExpirySeconds,
          nowMs,
          ...(pub !== undefined ? { accountPublicKey: pub } : {}),
        }),
        ...rev(),
      };
    } catch (e) {
      return { kind: "deny", reason: e instanceof CalloutError ? e.code : "decision_shape_error", ...rev() };
    }
  };
}
