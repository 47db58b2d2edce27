/**
 * Grant coverage: is a live connection's issued grant still fully covered by the grant the new policy revision
 * would issue? `covers(next, old)` is true only when every right the old user JWT carries is also in the new one;
 * anything it cannot prove (an unknown field, a changed identity, a deny it cannot place) is "not covered", and the
 * caller disconnects the client so it re-authenticates and gets the new grant. Pure functions, no I/O.
 *
 * Subjects follow NATS wildcard semantics: `*` matches one token, `>` one or more trailing tokens. A permission side
 * as issued (src/callout/claims.ts `permissionClaim`) is never empty: it has an allow list, or is `deny: [">"]`. An
 * empty or missing allow list is read as NATS reads it (allow everything not denied).
 */
import type { ResponsePermission, SubjectPermission, TimeRange } from "../types.js";
import type { IssuedSummary } from "../callout/pipeline.js";

/**
 * What re-evaluation compares: the user JWT's rights as issued — the pipeline's IssuedSummary without who signed it
 * and for which user key (`exp` is unix seconds, 0 = none; `subs`/`data`/`payload` -1 = unlimited).
 */
export type GrantSummary = Omit<IssuedSummary, "issuer" | "user_nkey">;

/** True when every subject `specific` can match is also matched by `general` (`general` ⊇ `specific`). */
export function subjectCovers(general: string, specific: string): boolean {
  const g = general.split(".");
  const s = specific.split(".");
  for (let i = 0; i < g.length; i++) {
    const gt = g[i]!;
    if (gt === ">") return s.length > i; // one or more tokens left, whatever they are (`>` included)
    if (i >= s.length) return false;
    const st = s[i]!;
    if (st === ">") return false; // `>` matches more than any single-token pattern
    if (gt === "*") continue;
    if (st === "*" || st !== gt) return false;
  }
  return g.length === s.length;
}

/** True when some subject is matched by both patterns. */
export function subjectsIntersect(a: string, b: string): boolean {
  const x = a.split(".");
  const y = b.split(".");
  for (let i = 0; ; i++) {
    const xa = x[i];
    const yb = y[i];
    if (xa === undefined || yb === undefined) return xa === undefined && yb === undefined;
    if (xa === ">" || yb === ">") return true; // the other has a token here; `>` takes it and the rest
    if (xa === "*" || yb === "*" || xa === yb) continue;
    return false;
  }
}

const ALL = [">"];

/** The allow list as NATS reads it: missing or empty → everything. */
const allowOf = (p: SubjectPermission | undefined): readonly string[] =>
  p?.allow !== undefined && p.allow.length > 0 ? p.allow : ALL;
const denyOf = (p: SubjectPermission | undefined): readonly string[] => p?.deny ?? [];

/**
 * Is everything `old` permits also permitted by `next`? Every old allow subject must be inside a new allow subject,
 * and every new deny must either be inside an old deny (it denied that already) or miss every old allow subject.
 */
export function permissionCovers(
  next: SubjectPermission | undefined,
  old: SubjectPermission | undefined,
): boolean {
  const oldAllow = allowOf(old);
  const oldDeny = denyOf(old);
  // Nothing allowed before (deny ">" covers every allow): nothing to lose.
  if (oldDeny.some((d) => oldAllow.every((a) => subjectCovers(d, a)))) return true;
  const newAllow = allowOf(next);
  if (!oldAllow.every((a) => newAllow.some((n) => subjectCovers(n, a)))) return false;
  for (const d of denyOf(next)) {
    if (oldDeny.some((od) => subjectCovers(od, d))) continue;
    if (oldAllow.some((a) => subjectsIntersect(a, d))) return false;
  }
  return true;
}

/** A limit where -1 means unlimited: does `next` allow at least what `old` did? */
export function limitCovers(next: number, old: number): boolean {
  if (next === -1) return true;
  if (old === -1) return false;
  return next >= old;
}

function respCovers(next: ResponsePermission | undefined, old: ResponsePermission | undefined): boolean {
  if (old === undefined) return true;
  if (next === undefined) return false;
  // max -1 = unlimited; ttl 0 is read as "no expiry" by the server: unsure which is wider, so equal or wider only.
  const maxOk = next.max === old.max || next.max === -1 || (old.max > 0 && next.max >= old.max);
  const ttlOk = next.ttl_ms === old.ttl_ms || (old.ttl_ms > 0 && next.ttl_ms >= old.ttl_ms);
  return maxOk && ttlOk;
}

/** An optional restriction list (src, connection types): absent = unrestricted; each old entry must stay allowed. */
function restrictionCovers(next: readonly string[] | undefined, old: readonly string[] | undefined): boolean {
  if (next === undefined || next.length === 0) return true;
  if (old === undefined || old.length === 0) return false;
  return old.every((o) => next.includes(o));
}

function sameStrings(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = [...(a ?? [])].sort();
  const y = [...(b ?? [])].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function timesCover(next: GrantSummary, old: GrantSummary): boolean {
  if (next.times === undefined || next.times.length === 0) return true;
  if (old.times === undefined || old.times.length === 0) return false;
  // Equal windows in the same zone only: comparing windows across zones and midnight wraps is not worth the risk.
  if ((next.times_location ?? "") !== (old.times_location ?? "")) return false;
  const key = (t: readonly TimeRange[]) => t.map((r) => `${r.start}-${r.end}`);
  return sameStrings(key(next.times), key(old.times));
}

/** Why `next` does not cover `old` (a stable short code for logs and metrics), or undefined when it does. */
export function uncoveredReason(next: GrantSummary, old: GrantSummary): string | undefined {
  if (next.account !== old.account || next.account_public_key !== old.account_public_key) return "account";
  if (next.name !== old.name || !sameStrings(next.tags, old.tags)) return "identity";
  if (!permissionCovers(next.pub, old.pub)) return "pub";
  if (!permissionCovers(next.sub, old.sub)) return "sub";
  if (!respCovers(next.resp, old.resp)) return "resp";
  if (!limitCovers(next.subs, old.subs) || !limitCovers(next.data, old.data)) return "limits";
  if (!limitCovers(next.payload, old.payload)) return "limits";
  if (!restrictionCovers(next.src, old.src)) return "src";
  if (!timesCover(next, old)) return "times";
  if (!restrictionCovers(next.allowed_connection_types, old.allowed_connection_types))
    return "connection_types";
  if ((next.bearer_token ?? false) !== (old.bearer_token ?? false)) return "bearer_token";
  // 0 = no expiry; a new grant that ends sooner than the old JWT would shorten the session.
  if (old.exp === 0 ? next.exp !== 0 : next.exp !== 0 && next.exp < old.exp) return "expiry";
  return undefined;
}

/** Is the old grant still fully covered by the new one? Conservative: when unsure, false. */
export function covers(next: GrantSummary, old: GrantSummary): boolean {
  return uncoveredReason(next, old) === undefined;
}
