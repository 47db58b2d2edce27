/**
 * Result → Decision (COMMON contract §3). Checks only the top level — `allow` (boolean, required),
 * `abort` (boolean, only with allow false), `reason` (string) — and rejects unknown top-level keys;
 * the remaining keys are the Grant, validated strictly by src/grant.ts. Errors name the field and
 * the actual JSON type, never the value.
 */
import { DecisionShapeError, PolicyEvalError } from "../errors.js";
import { GRANT_KEYS } from "../grant.js";
import { REDACTED_TEXT, requestCredentials, type Credentials } from "../secrets.js";
import type { ConnectOpts, Grant } from "../types.js";

export type Decision =
  | { kind: "allow"; grant: Grant; reason?: string }
  | { kind: "deny"; reason: string }
  | { kind: "abort"; reason: string };

/** Keys of a Grant, the only other keys a decision may carry: one list, owned by src/grant.ts. */
export const GRANT_FIELDS: ReadonlySet<string> = GRANT_KEYS;

export const DEFAULT_DENY_REASON = "denied_by_policy";
export const DEFAULT_ABORT_REASON = "aborted_by_policy";
export const MAX_REASON_LENGTH = 256;
export const REDACTED_REASON = REDACTED_TEXT;

export function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/**
 * Defence in depth: a reason that contains a client credential (src/secrets.ts: in any case, or any 8-character
 * fragment of it) is replaced by "redacted" — reasons reach nats-server's log and our decision log. `secrets` is
 * the request's connect_opts, or credentials already collected with src/secrets.ts.
 */
export function redactReason(reason: string, secrets: ConnectOpts | Credentials | undefined): string {
  if (secrets !== undefined) {
    const creds = isCredentials(secrets) ? secrets : requestCredentials({ connect_opts: secrets });
    if (creds.contains(reason)) return REDACTED_REASON;
  }
  return reason.length > MAX_REASON_LENGTH ? reason.slice(0, MAX_REASON_LENGTH) : reason;
}

function isCredentials(v: ConnectOpts | Credentials): v is Credentials {
  return typeof (v as Credentials).contains === "function";
}

/**
 * Interpret a decision document. `undefined` (no result) → PolicyEvalError; a malformed document →
 * DecisionShapeError naming the field. `secrets` are the request's connect_opts (for redaction).
 */
export function toDecision(result: unknown, secrets?: ConnectOpts | Credentials): Decision {
  if (result === undefined) {
    throw new PolicyEvalError("policy decision is undefined (give the decision rule a default)");
  }
  if (typeof result !== "object" || result === null || Array.isArray(result)) {
    throw new DecisionShapeError("decision", `must be an object, got ${jsonType(result)}`);
  }
  const doc = result as Record<string, unknown>;
  for (const key of Object.keys(doc)) {
    if (key !== "allow" && key !== "abort" && key !== "reason" && !GRANT_FIELDS.has(key)) {
      throw new DecisionShapeError(key, "unknown decision field");
    }
  }
  if (!Object.hasOwn(doc, "allow")) throw new DecisionShapeError("allow", "missing (must be a boolean)");
  if (typeof doc.allow !== "boolean")
    throw new DecisionShapeError("allow", `must be a boolean, got ${jsonType(doc.allow)}`);
  if (Object.hasOwn(doc, "abort") && typeof doc.abort !== "boolean") {
    throw new DecisionShapeError("abort", `must be a boolean, got ${jsonType(doc.abort)}`);
  }
  if (Object.hasOwn(doc, "reason") && typeof doc.reason !== "string") {
    throw new DecisionShapeError("reason", `must be a string, got ${jsonType(doc.reason)}`);
  }
  const reason = typeof doc.reason === "string" ? redactReason(doc.reason, secrets) : undefined;
  if (doc.abort === true) {
    if (doc.allow) throw new DecisionShapeError("abort", "only allowed with allow false");
    return { kind: "abort", reason: reason || DEFAULT_ABORT_REASON };
  }
  if (!doc.allow) return { kind: "deny", reason: reason || DEFAULT_DENY_REASON };
  const grant: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) {
    if (GRANT_FIELDS.has(k)) grant[k] = v;
  }
  return reason
    ? { kind: "allow", grant: grant as unknown as Grant, reason }
    : { kind: "allow", grant: grant as unknown as Grant };
}
