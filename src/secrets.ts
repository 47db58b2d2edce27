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
// eslint-disable-next-line no-control-regex -- as above, without A-Z
const ASCII_NO_CAPITALS = /^[\x00-\x40\x5b-\x7f]*$/;

/**
 * Case folding used on both sides of every comparison. ASCII text without capitals is its own fold; other ASCII text
 * is `toLowerCase()` (the same result); only other text needs the upper-then-lower round (ß → SS → ss).
 */
export function fold(s: string): string {
  if (ASCII_NO_CAPITALS.test(s)) return s; // toLowerCase would copy it unchanged
  return ASCII.test(s) ? s.toLowerCase() : s.toUpperCase().toLowerCase();
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

const CREDENTIAL_KEYS = ["pass", "auth_token", "jwt", "sig"] as const;

/** The raw credential strings of a request or input document (non-empty, unique). */
export function credentialValues(src: CredentialSource | AuthorizationRequest | null | undefined): string[] {
  const co = (src?.connect_opts ?? {}) as Record<string, unknown>;
  const ci = (src?.client_info ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  const add = (v: string | undefined) => {
    if (v !== undefined && !out.includes(v)) out.push(v);
  };
  for (const k of CREDENTIAL_KEYS) add(str(co[k]));
  const user = str(ci.user);
  if (user !== undefined && user !== co.user && user !== co.nkey) add(user);
  return out;
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
 * Up to this many pieces in all (a password of up to 71 characters), a value with fewer windows than that is
 * compared with the credentials character by character: at most PIECES² comparisons, and no string is cut.
 */
const COMPARE_PIECES = 64;

/** True when `v` and `c` have the same MIN_FRAGMENT characters at some pair of positions (no allocation). */
function sharePiece(v: string, c: string): boolean {
  const lastV = v.length - MIN_FRAGMENT;
  const lastC = c.length - MIN_FRAGMENT;
  for (let i = 0; i <= lastV; i++) {
    const first = v.charCodeAt(i);
    for (let j = 0; j <= lastC; j++) {
      if (c.charCodeAt(j) !== first) continue;
      let k = 1;
      while (k < MIN_FRAGMENT && v.charCodeAt(i + k) === c.charCodeAt(j + k)) k++;
      if (k === MIN_FRAGMENT) return true;
    }
  }
  return false;
}

/**
 * A request's credentials, folded once (see {@link credentialsOf}). A class, not closures: one is made per
 * request, so what it allocates is per-login garbage.
 */
class CredentialSet implements Credentials {
  readonly empty: boolean;
  /** Folded credentials shorter than MIN_FRAGMENT (matched whole) and the others (matched by any piece). */
  private readonly short: string[] = [];
  private readonly long: string[] = [];
  /** How many MIN_FRAGMENT-character pieces the long credentials have. */
  private readonly pieceCount: number = 0;
  /** The pieces, cut on first use. */
  private pieceList: string[] | undefined;
  /** Set once the indexOf budget for window lookups is spent: from then on windows are looked up in it. */
  private pieceSet: Set<string> | undefined;
  private budget = INDEXOF_BUDGET;

  constructor(values: readonly string[]) {
    for (const raw of values) {
      const v = fold(raw);
      if (v.length >= MIN_FRAGMENT) {
        this.long.push(v);
        this.pieceCount += v.length - MIN_FRAGMENT + 1;
      } else if (v !== "") this.short.push(v);
    }
    this.empty = this.short.length === 0 && this.long.length === 0;
  }

  private pieces(): string[] {
    if (this.pieceList === undefined) {
      const list: string[] = [];
      for (const c of this.long)
        for (let i = 0; i + MIN_FRAGMENT <= c.length; i++) list.push(c.slice(i, i + MIN_FRAGMENT));
      this.pieceList = list;
    }
    return this.pieceList;
  }

  private inLong(window: string): boolean {
    if (this.pieceSet !== undefined) return this.pieceSet.has(window);
    for (const c of this.long) if (c.includes(window)) return true;
    return false;
  }

  contains(value: string): boolean {
    if (this.empty || typeof value !== "string" || value === "") return false;
    const v = fold(value);
    const windows = v.length - MIN_FRAGMENT + 1;
    if (this.long.length > 0 && windows > 0) {
      if (this.pieceCount <= windows) {
        // A long value: search it for each piece.
        for (const piece of this.pieces()) if (v.includes(piece)) return true;
      } else if (this.pieceCount <= COMPARE_PIECES) {
        // A short value and short credentials: compare in place.
        for (const c of this.long) if (sharePiece(v, c)) return true;
      } else {
        // A short value and a long credential (a client JWT): look the value's windows up in it.
        if (this.pieceSet === undefined && (this.budget -= windows) < 0)
          this.pieceSet = new Set(this.pieces());
        for (let i = 0; i < windows; i++) if (this.inLong(v.slice(i, i + MIN_FRAGMENT))) return true;
      }
    }
    for (const s of this.short) if (containsWhole(v, s)) return true;
    return false;
  }
}

/**
 * Folds `values` once and returns the shared `contains` test. Three ways to find an 8-character piece of a
 * credential in a value, the cheapest per value: search the value for each piece of the credentials (a long value);
 * compare the value with the credentials character by character (a short value and a password: a few dozen
 * comparisons, nothing allocated); or look each 8-character window of the value up in the credentials (a short
 * value and a client JWT of hundreds of pieces). Window lookups search the credentials with indexOf for the first
 * INDEXOF_BUDGET windows (no set to build: a 650-character client JWT would cost ~0.1 ms), then the credentials'
 * pieces go into a Set once.
 */
export function credentialsOf(values: readonly string[]): Credentials {
  return new CredentialSet(values);
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
