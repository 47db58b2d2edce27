/**
 * Subject injection, checked by behaviour instead of by spelling: a client-controlled string must not be able to put
 * a wildcard (`*`, `>`), a token boundary (`.`), whitespace or a control character into what a login is granted
 * (pub/sub allow and deny subjects, `resp`, the account, the user name, the tags), whatever the policy does to it
 * (split, lower/upper, trim, replace, substring, concat, sprintf, regex, base64/hex/JSON/JWT decoding, …).
 *
 * How: when a client string carries one of those characters — in its raw text or in a layer it decodes to — the
 * decision is repeated on *probes*: copies of the request where such characters are replaced by an inert
 * placeholder (or a letter). If the probe is still allowed, its grant must have the same structure as the real one
 * (same account and `resp`; for every subject, name and tag the same sequence of dangerous characters). A login
 * whose allow needs the exact character (a password, a signed token, an exact lookup, a pattern that requires a dot
 * at that place) is probed field by field, then character by character; a character that no probe can replace
 * without losing the allow is vetted by the policy and left alone. Outcomes:
 *
 * - no client string carries a dangerous character → nothing to do (no extra evaluation);
 * - a probe is allowed with a different structure → `subject_injection`, naming the request field(s), never values;
 * - more probes needed than MAX_PROBES, or more text to rewrite than MAX_PROBE_CHARS → `subject_injection`
 *   (fail closed).
 *
 * The module knows nothing of Rego: it takes a `decide(request) → grant | undefined` callback, so it guards any
 * deterministic, side-effect-free decision function (policies always are; plain handlers opt in with guardHandler).
 * Plain handlers that do not opt in get the weaker verbatim check, verbatimInjection.
 */
import { isUtf8 } from "node:buffer";
import { DecisionShapeError, PolicyEvalError, PolicyTimeoutError } from "./errors.js";
import type { DecisionFacts, Handler } from "./callout/facts.js";
import { mayRead, type InputPath } from "./policy/input-reads.js";
import type { AuthorizationRequest, Grant } from "./types.js";

/**
 * `client_info` keys the server fills in itself. Every other key of `client_info`, and every key of `connect_opts`,
 * is client-controlled — including keys a future server version adds (until they are classified here).
 * `server_id`, `user_nkey`, `request_issuer`, `client_tls` and `derived` are server- or service-controlled.
 */
export const SERVER_CONTROLLED_CLIENT_INFO: ReadonlySet<string> = new Set([
  "host",
  "id",
  "kind",
  "type",
  "nonce",
]);

// eslint-disable-next-line no-control-regex
const DANGEROUS = /[.*>\s\u0000-\u001f\u007f-\u009f]/u;
// eslint-disable-next-line no-control-regex
const NOT_DANGEROUS = /[^.*>\s\u0000-\u001f\u007f-\u009f]/gu;

/**
 * The inert stand-in for a dangerous character: one BMP code point (so lengths, indexes and substring positions match
 * the original), unchanged by lower/upper, not whitespace, not a word character, not a separator anyone splits on,
 * valid inside a NATS subject token.
 */
export const PLACEHOLDER = "\u00a4"; // ¤
/** The second stand-in, for patterns that refuse the placeholder but accept letters (`^[a-z.]+$`). */
export const LETTER = "x";

/** Most probe evaluations per request before failing closed. */
export const MAX_PROBES = 64;
/** Most characters rewritten into probes per request before failing closed (bounds the work a huge string causes). */
export const MAX_PROBE_CHARS = 128 * 1024;
/** Decoding depth (base64 inside JSON inside a JWT segment = 3). */
const MAX_DEPTH = 4;
/** Longest string we look into for encoded layers: nats-server's default max_payload (1 MiB) bounds a request anyway. */
const MAX_DECODE_LENGTH = 1024 * 1024;

/** A client-controlled string and where it sits in the request (`connect_opts.user`, `client_info.tags[1]`). */
export interface ClientString {
  path: string;
  /** The same path as keys, from the request's root. */
  keys: readonly (string | number)[];
  value: string;
}

function collect(v: unknown, path: string, keys: readonly (string | number)[], out: ClientString[]): void {
  if (typeof v === "string") out.push({ path, keys, value: v });
  else if (Array.isArray(v)) v.forEach((item, i) => collect(item, `${path}[${i}]`, [...keys, i], out));
  else if (typeof v === "object" && v !== null) {
    for (const [k, item] of Object.entries(v)) collect(item, `${path}.${k}`, [...keys, k], out);
  }
  // Numbers and booleans: decode.ts admits only integers (protocol, id), whose text has none of the characters.
}

/** Every client-controlled string of the request, in a stable order. */
export function clientStrings(req: AuthorizationRequest): ClientString[] {
  const out: ClientString[] = [];
  for (const [k, v] of Object.entries(req.connect_opts ?? {})) {
    collect(v, `connect_opts.${k}`, ["connect_opts", k], out);
  }
  for (const [k, v] of Object.entries(req.client_info ?? {})) {
    if (!SERVER_CONTROLLED_CLIENT_INFO.has(k)) collect(v, `client_info.${k}`, ["client_info", k], out);
  }
  return out;
}

// ---- occurrences: dangerous characters in the raw text and in decoded layers ----

/** Which occurrences a rewrite replaces, and with what (raw characters only; JSON syntax has its own neutral forms). */
interface Rewrite {
  pick: (index: number) => boolean;
  char: string;
}

/** Walks a string's layers in a fixed order, numbering dangerous occurrences; replaces the picked ones. */
class Walker {
  count = 0;
  constructor(private readonly rw?: Rewrite) {}
  occurrence(original: string, replacement: string = this.rw?.char ?? original): string {
    const i = this.count++;
    return this.rw !== undefined && this.rw.pick(i) ? replacement : original;
  }
  /** The stand-in this rewrite uses (undefined when only counting). */
  replacement(): string | undefined {
    return this.rw?.char;
  }
  /** True when one of the next `n` occurrences is picked. */
  picks(n: number): boolean {
    for (let i = this.count; i < this.count + n; i++) if (this.rw?.pick(i)) return true;
    return false;
  }
}

function utf8Text(bytes: Buffer): string | undefined {
  return isUtf8(bytes) ? bytes.toString("utf8") : undefined;
}

/** Recent counts of long strings: nested layers are counted again at every level above them. */
const counted = new Map<string, number>();
const COUNT_MEMO_MIN_LENGTH = 64;
const COUNT_MEMO_ENTRIES = 256;

/** Number of dangerous occurrences in `s` (raw and decoded). */
export function countOccurrences(s: string, depth = 0): number {
  const key = s.length >= COUNT_MEMO_MIN_LENGTH ? `${depth}\u0000${s}` : undefined;
  const known = key === undefined ? undefined : counted.get(key);
  if (known !== undefined) return known;
  const w = new Walker();
  walk(s, depth, w);
  if (key !== undefined) {
    if (counted.size >= COUNT_MEMO_ENTRIES) counted.clear();
    counted.set(key, w.count);
  }
  return w.count;
}

/** `s` with the picked occurrences replaced. */
function rewriteString(s: string, rw: Rewrite): string {
  return walk(s, 0, new Walker(rw));
}

function looksLikeJson(s: string): boolean {
  const c = s.trimStart()[0];
  if (c === undefined || !/[[{"\-0-9]/.test(c)) return false;
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * Occurrences are numbered in two readings of the same string: first as one encoded layer (see encodedLayer), then
 * split at its raw dangerous characters with each harmless chunk walked again (a JWT: the two dots, then the
 * segments). A rewrite that picks an occurrence of the encoded reading re-encodes the whole string (its raw dangerous
 * characters go with it); otherwise the split reading is rewritten.
 */
function walk(s: string, depth: number, w: Walker): string {
  if (depth < MAX_DEPTH && s.length <= MAX_DECODE_LENGTH && looksLikeJson(s)) return walkJson(s, depth, w);
  const layer = encodedLayer(s, depth);
  if (layer !== undefined) {
    const n = countOccurrences(layer.text, depth + 1);
    if (w.picks(n)) {
      const text = walk(layer.text, depth + 1, w);
      const split = new Walker();
      walkSplit(s, depth, split);
      w.count += split.count;
      return layer.encode(text);
    }
    w.count += n;
  }
  return walkSplit(s, depth, w);
}

/**
 * A backslash escape that YAML double-quoted scalars (and JSON) turn into a character: `\x2a`, `\u002e`, `\U0000003e`,
 * `\t`, `\N` (U+0085), `\_` (NBSP), `\L`, `\P`, `\ ` … Counted when it stands for a dangerous character.
 */
const ESCAPE = /\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0abtnvfreN_LP \t])/y;
const NAMED_ESCAPES: Record<string, string> = {
  "0": "\u0000",
  a: "\u0007",
  b: "\b",
  t: "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\u001b",
  N: "\u0085",
  _: "\u00a0",
  L: "\u2028",
  P: "\u2029",
  " ": " ",
  "\t": "\t",
};

/** The dangerous character an escape at `s[i]` stands for, and the escape's length; undefined otherwise. */
function dangerousEscape(s: string, i: number): string | undefined {
  ESCAPE.lastIndex = i;
  const m = ESCAPE.exec(s);
  if (m === null) return undefined;
  const e = m[0].slice(1);
  const ch =
    e.length === 1 ? NAMED_ESCAPES[e]! : String.fromCodePoint(Number.parseInt(e.slice(1), 16) % 0x110000);
  return DANGEROUS.test(ch) ? m[0] : undefined;
}

function walkSplit(s: string, depth: number, w: Walker): string {
  if (!DANGEROUS.test(s) && !s.includes("\\")) return s;
  let out = "";
  let chunk = "";
  let split = false;
  for (let i = 0; i < s.length;) {
    const escape = s[i] === "\\" ? dangerousEscape(s, i) : undefined;
    const ch = escape ?? String.fromCodePoint(s.codePointAt(i)!);
    i += ch.length;
    if (escape === undefined && !DANGEROUS.test(ch)) {
      chunk += ch;
      continue;
    }
    split = true;
    // An escape is replaced by the escaped form of the stand-in, so the text still unescapes (YAML, JSON).
    const char = w.replacement();
    const stand = escape !== undefined && char === PLACEHOLDER ? "\\u00a4" : char;
    out += walk(chunk, depth, w) + w.occurrence(ch, stand);
    chunk = "";
  }
  // Only harmless backslashes: `s` is one chunk, already looked at by walk().
  return split ? out + walk(chunk, depth, w) : s;
}

/**
 * JSON text: string literals are decoded and walked (and re-encoded only when changed); outside them, whitespace is
 * an occurrence whose neutral form is nothing, and a number's "." one whose neutral form is "0" (the text stays JSON).
 */
function walkJson(s: string, depth: number, w: Walker): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === "\\" ? 2 : 1;
      const literal = s.slice(i, j + 1);
      const value = JSON.parse(literal) as string;
      const inner = walk(value, depth + 1, w);
      out += inner === value ? literal : JSON.stringify(inner);
      i = j;
    } else if (/\s/.test(ch)) out += w.occurrence(ch, "");
    else if (ch === ".") out += w.occurrence(ch, "0");
    else out += ch;
  }
  return out;
}

interface Layer {
  text: string;
  encode: (text: string) => string;
}

/**
 * `s` read by a decoder a policy may apply, when the text holds dangerous characters: hex (strict, like the wasm
 * `hex.decode`), else base64/base64url the lenient way the wasm decoders read it (characters outside both alphabets
 * skipped, padding and trailing bits ignored: "K*g==", "Kh==" and "Kg" all decode to "*"). Re-encoding is canonical,
 * in the original's alphabet and padding.
 */
function encodedLayer(s: string, depth: number): Layer | undefined {
  if (depth >= MAX_DEPTH || s.length < 2 || s.length > MAX_DECODE_LENGTH) return undefined;
  if (/^(?:[0-9a-fA-F]{2})+$/.test(s)) {
    const text = utf8Text(Buffer.from(s, "hex"));
    if (text !== undefined && countOccurrences(text, depth + 1) > 0) {
      const upper = s === s.toUpperCase();
      return {
        text,
        encode: (t) => {
          const hex = Buffer.from(t, "utf8").toString("hex");
          return upper ? hex.toUpperCase() : hex;
        },
      };
    }
  }
  const stripped = s.replace(/[^A-Za-z0-9+/_-]/g, "");
  if (stripped.length < 2) return undefined;
  const text = utf8Text(Buffer.from(stripped, "base64"));
  if (text === undefined || countOccurrences(text, depth + 1) === 0) return undefined;
  const url = /[-_]/.test(stripped) && !/[+/]/.test(stripped);
  const padded = s.includes("=");
  return {
    text,
    encode: (t) => {
      const e = Buffer.from(t, "utf8")
        .toString(url ? "base64url" : "base64")
        .replace(/=+$/, "");
      return padded ? e.padEnd(Math.ceil(e.length / 4) * 4, "=") : e;
    },
  };
}

// ---- fields and probes ----

/** A client string with at least one dangerous occurrence. */
export interface DangerousField extends ClientString {
  occurrences: number;
}

/**
 * The client strings that carry dangerous characters (raw or decoded); empty for most honest logins. With `reads`
 * (the input paths a policy may read, src/policy/input-reads.ts; request and input share these paths), only the
 * strings the policy can observe: a probe that neutralised the others would be, for the policy, the real request.
 */
export function dangerousFields(req: AuthorizationRequest, reads?: readonly InputPath[]): DangerousField[] {
  return clientStrings(req)
    .filter((f) => mayRead(reads, f.keys))
    .map((f) => ({ ...f, occurrences: countOccurrences(f.value) }))
    .filter((f) => f.occurrences > 0);
}

function setPath(root: Record<string, unknown>, keys: readonly (string | number)[], value: string): void {
  let node = root as Record<string | number, unknown>;
  for (let i = 0; i < keys.length - 1; i++) node = node[keys[i]!] as Record<string | number, unknown>;
  node[keys[keys.length - 1]!] = value;
}

function setField(req: AuthorizationRequest, f: ClientString, value: string): AuthorizationRequest {
  const copy = structuredClone(req) as unknown as Record<string, unknown>;
  setPath(copy, f.keys, value);
  return copy as unknown as AuthorizationRequest;
}

/**
 * For a compact JWS with a signature (three base64url segments, a JSON header whose `alg` is not "none"): the same
 * token with the signature's first character changed, still valid base64url. If the policy's allow does not survive
 * that, it verifies the signature over header and payload, so no change to the payload's characters can keep the
 * allow either: per-character probes of this field would all be refused and are skipped. Otherwise undefined.
 */
export function signatureCanary(value: string): string | undefined {
  const m = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(value);
  if (m === null) return undefined;
  try {
    const header = JSON.parse(Buffer.from(m[1]!, "base64url").toString("utf8")) as { alg?: unknown };
    if (typeof header !== "object" || header === null || typeof header.alg !== "string") return undefined;
    if (header.alg.toLowerCase() === "none") return undefined;
  } catch {
    return undefined;
  }
  const sig = m[3]!;
  return `${m[1]}.${m[2]}.${sig[0] === "A" ? "B" : "A"}${sig.slice(1)}`;
}

/**
 * A copy of `req` where, in each listed field, the occurrences chosen by `pick` (numbered per field) are replaced by
 * `char`. The copy shares nothing mutable with `req`.
 */
export function neutralise(
  req: AuthorizationRequest,
  fields: readonly ClientString[],
  char: string = PLACEHOLDER,
  pick: (field: ClientString, index: number) => boolean = () => true,
): AuthorizationRequest {
  const copy = structuredClone(req) as unknown as Record<string, unknown>;
  for (const f of fields) {
    setPath(copy, f.keys, rewriteString(f.value, { pick: (i) => pick(f, i), char }));
  }
  return copy as unknown as AuthorizationRequest;
}

// ---- structural comparison ----

/** The dangerous characters of `s`, in order: "user.*.>" → ".*.>", "a b" → " ". */
export function skeleton(s: string): string {
  return s.replace(NOT_DANGEROUS, "");
}

function skeletons(v: unknown): string[] | undefined {
  if (v === undefined) return [];
  if (!Array.isArray(v)) return undefined;
  return v.map((s) => (typeof s === "string" ? skeleton(s) : `\u0000${JSON.stringify(s)}`));
}

/** "equal", "lost" (the probe has only a part of the real list: some entries vanished) or "differs". */
function compareList(real: unknown, probe: unknown): "equal" | "lost" | "differs" {
  const r = skeletons(real);
  const p = skeletons(probe);
  if (r === undefined || p === undefined) return "differs";
  const left = new Map<string, number>();
  for (const k of r) left.set(k, (left.get(k) ?? 0) + 1);
  for (const k of p) {
    const n = left.get(k) ?? 0;
    if (n === 0) return "differs";
    left.set(k, n - 1);
  }
  return p.length === r.length ? "equal" : "lost";
}

function side(g: Record<string, unknown>, kind: string, list: string): unknown {
  const p = g[kind];
  return typeof p === "object" && p !== null ? (p as Record<string, unknown>)[list] : undefined;
}

/** How a probe's grant relates to the real one; see structuralDiff. */
export interface Comparison {
  /** Grant paths whose structure differs (injection). */
  differs: string[];
  /** Grant paths where the probe only lost entries (a decoder failed on the probe): not evidence either way. */
  lost: string[];
}

/**
 * Compares the real grant with a probe's: `account` and `resp` must be equal; pub/sub allow/deny and tags must have
 * the same multiset of skeletons, `name` the same skeleton. A probe list that is a strict sub-multiset of the real one
 * (or a probe without the real `name`) counts as *lost*, not as a difference: the neutralised text no longer decoded.
 */
export function compareGrants(real: unknown, probe: unknown): Comparison {
  const r = (typeof real === "object" && real !== null ? real : {}) as Record<string, unknown>;
  const p = (typeof probe === "object" && probe !== null ? probe : {}) as Record<string, unknown>;
  const out: Comparison = { differs: [], lost: [] };
  const record = (path: string, c: "equal" | "lost" | "differs") => {
    if (c !== "equal") out[c].push(path);
  };
  record("account", r.account === p.account ? "equal" : "differs");
  record("resp", JSON.stringify(r.resp) === JSON.stringify(p.resp) ? "equal" : "differs");
  for (const kind of ["pub", "sub"]) {
    for (const list of ["allow", "deny"]) {
      record(`${kind}.${list}`, compareList(side(r, kind, list), side(p, kind, list)));
    }
  }
  record(
    "name",
    compareList(r.name === undefined ? undefined : [r.name], p.name === undefined ? undefined : [p.name]),
  );
  record("tags", compareList(r.tags, p.tags));
  return out;
}

/** Grant paths whose structure differs between the real grant and a probe's (lost entries count as different). */
export function structuralDiff(real: unknown, probe: unknown): string[] {
  const c = compareGrants(real, probe);
  return [...c.differs, ...c.lost].sort();
}

// ---- the guard ----

/** Decides a (probe) request: the granted object on allow, undefined on anything else (deny, abort, error). */
export type Decide = (req: AuthorizationRequest) => Promise<unknown>;

export interface InjectionFinding {
  /** Request fields whose characters reached the grant's structure (paths, never values). */
  fields: string[];
  /** Grant paths that differed (`pub.allow`, `name`, …); empty when the probe budget ran out. */
  grant: string[];
  /** Probe evaluations spent. */
  probes: number;
}

export interface InjectionCheck {
  finding?: InjectionFinding;
  /** Fields that carried dangerous characters (paths). */
  fields: string[];
  probes: number;
}

class OutOfProbes extends Error {}

/**
 * Checks an allowed grant against probes of the same request. `decide` must be the very decision function (same
 * policy revision, same frozen time) that produced `realGrant`. Never throws for policy faults: a probe that throws
 * counts as "not allowed" — except an evaluation fault (PolicyEvalError, PolicyTimeoutError), which is rethrown so the
 * login is denied with it: a probe that cannot be evaluated proves nothing.
 */
export async function checkInjection(
  req: AuthorizationRequest,
  realGrant: unknown,
  decide: Decide,
  maxProbes = MAX_PROBES,
  reads?: readonly InputPath[],
): Promise<InjectionCheck> {
  const fields = dangerousFields(req, reads);
  const paths = fields.map((f) => f.path);
  let probes = 0;
  let chars = 0;
  /** Rewrites `fs` (charged to the character budget) into a probe request. */
  const rewrite = (
    fs: readonly DangerousField[],
    char?: string,
    pick?: (f: ClientString, i: number) => boolean,
  ) => {
    chars += fs.reduce((n, f) => n + f.value.length, 0);
    if (chars > MAX_PROBE_CHARS) throw new OutOfProbes();
    return neutralise(req, fs, char, pick);
  };
  const probe = async (r: AuthorizationRequest): Promise<unknown> => {
    if (probes >= maxProbes) throw new OutOfProbes();
    probes++;
    try {
      return await decide(r);
    } catch (err) {
      // A probe that could not be evaluated tells us nothing safe: fail closed with its fault.
      if (err instanceof PolicyEvalError || err instanceof PolicyTimeoutError) throw err;
      return undefined;
    }
  };
  /**
   * The grant paths whose structure a probe changes ([] = none), or undefined when the probe tells nothing: not
   * allowed, or only lost entries (the neutralised text no longer passed a check or a decoder).
   */
  const differs = async (r: AuthorizationRequest): Promise<string[] | undefined> => {
    const g = await probe(r);
    if (g === undefined) return undefined;
    const c = compareGrants(realGrant, g);
    return c.differs.length === 0 && c.lost.length > 0 ? undefined : c.differs;
  };
  if (fields.length === 0) return { fields: paths, probes };
  try {
    const all = await differs(rewrite(fields));
    if (all !== undefined && all.length === 0) return { fields: paths, probes };
    // Either a structural difference (find the culprit fields) or the allow needs some exact character.
    const culprits: string[] = [];
    const grant = new Set(all ?? []);
    for (const f of fields) {
      const d = await differs(rewrite([f]));
      if (d !== undefined) {
        if (d.length > 0) {
          culprits.push(f.path);
          d.forEach((p) => grant.add(p));
        }
        continue;
      }
      if (all !== undefined) continue; // naming only: a field whose probe is denied is not the culprit we look for
      // A signed JWS whose signature the policy checks: every change to its text loses the allow, no need to try each.
      const canary = signatureCanary(f.value);
      if (canary !== undefined) {
        const d = await differs(setField(req, f, canary));
        if (d === undefined) continue;
      }
      // The allow needs this field's exact text: try each character alone, as placeholder and as letter.
      if (probes + f.occurrences > maxProbes) throw new OutOfProbes(); // fail fast: each needs a probe at least
      for (let i = 0; i < f.occurrences && !culprits.includes(f.path); i++) {
        for (const char of [PLACEHOLDER, LETTER]) {
          const one = await differs(rewrite([f], char, (_f, k) => k === i));
          if (one === undefined) continue; // this stand-in loses the allow; try the next one
          if (one.length > 0) {
            culprits.push(f.path);
            one.forEach((p) => grant.add(p));
          }
          break;
        }
      }
    }
    if (all !== undefined && culprits.length === 0) culprits.push(...paths); // only the combination differs
    if (culprits.length === 0) return { fields: paths, probes };
    return { fields: paths, probes, finding: { fields: culprits, grant: [...grant].sort(), probes } };
  } catch (err) {
    if (!(err instanceof OutOfProbes)) throw err;
    return { fields: paths, probes, finding: { fields: paths, grant: [], probes } };
  }
}

/** The error a finding becomes: `subject_injection`, naming the request fields (the log and the server see them). */
export function injectionError(finding: InjectionFinding): DecisionShapeError {
  const what =
    finding.grant.length > 0
      ? `characters from these client fields change the structure of ${finding.grant.join(", ")}`
      : `too much to check (budget: ${MAX_PROBES} probes, ${MAX_PROBE_CHARS} characters rewritten)`;
  return new DecisionShapeError(finding.fields.join(","), what, "subject_injection");
}

/**
 * The hook for a decision function: throws `subject_injection` (DecisionShapeError naming the request fields) when a
 * probe finds one; records the fields that needed probes and the probe count in `facts.injection`. `reads`: the input
 * paths the decision function may read (undefined: anything).
 */
export async function enforceNoInjection(
  req: AuthorizationRequest,
  grant: unknown,
  decide: Decide,
  facts: DecisionFacts,
  reads?: readonly InputPath[],
): Promise<void> {
  const check = await checkInjection(req, grant, decide, MAX_PROBES, reads);
  if (check.probes > 0) facts.injection = { fields: check.fields, probes: check.probes };
  if (check.finding !== undefined) throw injectionError(check.finding);
}

// ---- plain handlers ----

const GUARDED = new WeakSet<Handler>();

/** Marks a handler that checks injection itself (the policy handler), so the pipeline skips the verbatim check. */
export function markGuarded(h: Handler): Handler {
  GUARDED.add(h);
  return h;
}

export function isGuarded(h: Handler): boolean {
  return GUARDED.has(h);
}

/**
 * Wraps a plain handler with the probe check. The handler must be deterministic and free of side effects for the
 * grant (it is called again, on neutralised copies of the request, with a throwaway context), because probes are
 * ordinary calls.
 */
export function guardHandler(handler: Handler): Handler {
  const guarded: Handler = async (req, ctx) => {
    const grant = await handler(req, ctx);
    const decide: Decide = async (r) => handler(r, { decisionId: ctx.decisionId, now: ctx.now, facts: {} });
    await enforceNoInjection(req, grant, decide, ctx.facts);
    return grant;
  };
  return markGuarded(guarded);
}

/**
 * The weak check for handlers that are not guarded: a client string that is not one safe subject token must not
 * appear verbatim inside a granted subject. Returns the offending grant path, or undefined.
 */
export function verbatimInjection(grant: Grant, req: AuthorizationRequest): DecisionShapeError | undefined {
  const unsafe = clientStrings(req).filter((f) => f.value.length > 0 && DANGEROUS.test(f.value));
  if (unsafe.length === 0) return undefined;
  for (const kind of ["pub", "sub"] as const) {
    for (const list of ["allow", "deny"] as const) {
      const subjects = grant[kind]?.[list] ?? [];
      for (let i = 0; i < subjects.length; i++) {
        const hit = unsafe.filter((f) => subjects[i]!.includes(f.value));
        if (hit.length > 0) {
          return new DecisionShapeError(
            `${kind}.${list}[${i}]`,
            `contains client field ${hit.map((f) => f.path).join(",")}, which is not a safe subject token`,
            "subject_injection",
          );
        }
      }
    }
  }
  return undefined;
}
