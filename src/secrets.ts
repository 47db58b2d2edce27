/**
 * What counts as a client credential, and when a string "contains" one: the one definition used by the grant
 * checks (`secret_in_grant`, src/grant.ts), reason redaction (src/policy/decision.ts, the pipeline's deny
 * reasons) and the decision log's input masking (src/audit.ts). Pure; imports nothing but types.
 *
 * Credentials of a request: `connect_opts.pass`, `auth_token`, `jwt`, `sig`, and `client_info.user` when it is
 * neither the user name nor the nkey the client sent (nats-server 2.10 puts a token client's raw token there).
 *
 * "Contains", case-insensitively (both sides folded with `toUpperCase().toLowerCase()`, so `upper`/`lower` in
 * a policy change nothing):
 * - a credential of at least {@link MIN_FRAGMENT} characters is found when ANY {@link MIN_FRAGMENT}-character
 *   piece of it occurs in the value (a 12-character fragment of a token is caught, and so is the whole token);
 * - a shorter credential is found only whole: as the whole value, or delimited on both sides by the start/end or
 *   a character that is not a letter or digit (a one-character password "a" does not hit "not_authorized",
 *   but does hit "bad password a").
 *
 * Not covered (the policy author's job): encodings (base64, hex, reversal, …) of a credential.
 */
import type { AuthorizationRequest } from "./types.js";

/** Credentials at least this long are matched by any piece of this length; shorter ones only whole. */
export const MIN_FRAGMENT = 8;

/** The request parts credentials are read from (a request, or a policy input document). */
export interface CredentialSource {
  connect_opts?: object | undefined;
  client_info?: object | undefined;
}

/** A request's credentials, folded once; `contains(value)` answers for any value. */
export interface Credentials {
  /** True when there are none (the common checks are then free). */
  readonly empty: boolean;
  /** True when `value` contains a credential (see the module doc). */
  contains(value: string): boolean;
}

// eslint-disable-next-line no-control-regex -- the ASCII range starts at U+0000
const ASCII = /^[\x00-\x7f]*$/;

/**
 * Case folding used on both sides of every comparison. For ASCII text `toLowerCase()` gives the same (and returns the
 * string itself when it has no capitals); only other text needs the upper-then-lower round (ß → SS → ss).
 */
export function fold(s: string): string {
  return ASCII.test(s) ? s.toLowerCase() : s.toUpperCase().toLowerCase();
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/** The raw credential strings of a request or input document (non-empty, unique). */
export function credentialValues(src: CredentialSource | AuthorizationRequest | null | undefined): string[] {
  const co = (src?.connect_opts ?? {}) as Record<string, unknown>;
  const ci = (src?.client_info ?? {}) as Record<string, unknown>;
  const out = new Set<string>();
  for (const k of ["pass", "auth_token", "jwt", "sig"]) {
    const v = str(co[k]);
    if (v !== undefined) out.add(v);
  }
  const user = str(ci.user);
  if (user !== undefined && user !== co.user && user !== co.nkey) out.add(user);
  return [...out];
}

const ALNUM = /[\p{L}\p{N}]/u;

function wholeAt(value: string, at: number, len: number): boolean {
  const before = at > 0 ? value[at - 1]! : "";
  const after = at + len < value.length ? value[at + len]! : "";
  return (before === "" || !ALNUM.test(before)) && (after === "" || !ALNUM.test(after));
}

function containsWhole(value: string, cred: string): boolean {
  for (let at = value.indexOf(cred); at >= 0; at = value.indexOf(cred, at + 1)) {
    if (wholeAt(value, at, cred.length)) return true;
  }
  return false;
}

/** Windows checked with indexOf before the 8-character pieces are put in a Set (cheap for the common case). */
const INDEXOF_BUDGET = 512;

/**
 * Folds `values` once and returns the shared `contains` test. Two ways to find an 8-character piece of a credential
 * in a value, the cheaper one per value: search the value for each piece of the credentials (a password has a few
 * pieces; values are server ids, names, subjects), or look each 8-character window of the value up in the
 * credentials (a client JWT has hundreds of pieces; a reason has few windows). Window lookups search the credentials
 * with indexOf for the first INDEXOF_BUDGET windows (no set to build: a 650-character client JWT would cost
 * ~0.1 ms), then the credentials' pieces go into a Set once.
 */
export function credentialsOf(values: readonly string[]): Credentials {
  const short: string[] = [];
  const long: string[] = [];
  for (const raw of values) {
    const v = fold(raw);
    if (v.length >= MIN_FRAGMENT) long.push(v);
    else if (v !== "") short.push(v);
  }
  const empty = short.length === 0 && long.length === 0;
  // How many 8-character pieces the long credentials have; the pieces themselves are cut on first use.
  let pieceCount = 0;
  for (const c of long) pieceCount += c.length - MIN_FRAGMENT + 1;
  let allPieces: Set<string> | undefined;
  const piecesOfLong = (): Set<string> => {
    if (allPieces === undefined) {
      allPieces = new Set<string>();
      for (const c of long)
        for (let i = 0; i + MIN_FRAGMENT <= c.length; i++) allPieces.add(c.slice(i, i + MIN_FRAGMENT));
    }
    return allPieces;
  };
  // Set once the indexOf budget for window lookups is spent: from then on windows are looked up in it.
  let pieces: Set<string> | undefined;
  let budget = INDEXOF_BUDGET;
  const inLong = (window: string): boolean => {
    if (pieces !== undefined) return pieces.has(window);
    for (const c of long) if (c.includes(window)) return true;
    return false;
  };
  return {
    empty,
    contains(value: string): boolean {
      if (empty || typeof value !== "string" || value === "") return false;
      const v = fold(value);
      if (long.length > 0) {
        const windows = v.length - MIN_FRAGMENT + 1;
        if (windows > 0) {
          if (pieceCount <= windows) {
            for (const piece of piecesOfLong()) if (v.includes(piece)) return true;
          } else {
            if (pieces === undefined && (budget -= windows) < 0) pieces = piecesOfLong();
            for (let i = 0; i < windows; i++) if (inLong(v.slice(i, i + MIN_FRAGMENT))) return true;
          }
        }
      }
      for (const s of short) if (containsWhole(v, s)) return true;
      return false;
    },
  };
}

const cache = new WeakMap<object, Credentials>();

/**
 * The credentials of a request or policy input document, computed once per object (the pipeline, the grant check
 * and the decision log ask for the same request's credentials several times). The object must not change after.
 */
export function requestCredentials(
  src: CredentialSource | AuthorizationRequest | null | undefined,
): Credentials {
  if (src === null || src === undefined) return credentialsOf([]);
  let c = cache.get(src);
  if (c === undefined) {
    c = credentialsOf(credentialValues(src));
    cache.set(src, c);
  }
  return c;
}

/** What a reason that contains a credential becomes. */
export const REDACTED_TEXT = "redacted";

/** `text`, or "redacted" when it contains one of `creds` (deny/abort/allow reasons). */
export function redactText(text: string, creds: Credentials): string {
  return creds.contains(text) ? REDACTED_TEXT : text;
}
