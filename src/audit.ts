/**
 * Decision log: one event per authorization request (allow, deny, abort and error alike), written as one JSON
 * line once the reply's fate is known: `outcome` is what the client got (allow or deny only when that reply
 * reached the server before the request expired), `reply` what became of the reply, and `decided` the decision
 * when its reply failed (`reply_failed`) or came too late (`reply_late`). The event carries the policy input as a
 * **masked deep copy**: secrets (`connect_opts.pass`, `auth_token`, `jwt`, `sig`, `client_info.nonce`, any string
 * elsewhere that contains a credential in any case or an 8-character fragment of one (src/secrets.ts; e.g.
 * `client_info.user` on 2.10), and anything shaped like a JWT or an nkey seed) are replaced by "[REDACTED]" and their
 * JSON pointers listed in `masked`; a `reason` containing a credential becomes "redacted". A policy may add its own
 * masks (see `MaskFunction`; the CLI evaluates `policy.mask_entrypoint`); the built-in masks always apply first, and
 * if the policy mask fails the event is written WITHOUT its input rather than unmasked.
 *
 * Events are valid input for `nats-opa-callout eval`, which replays `input` through the policy. Because secrets
 * are masked, decisions that depend on a password or token cannot be reproduced exactly from the log alone.
 */
import type { AuthorizationRequest } from "./types.js";
import { SECRET_KEYS } from "./secret-keys.js";
import { redactText, requestCredentials, type CredentialSource, type Credentials } from "./secrets.js";

export const DECISION_EVENT_TYPE = "nats_opa_callout.decision";
export const MASK = "[REDACTED]";

/** The decision event's `issued` field: a projection of the core's IssuedSummary (user = user_nkey, resp.ttl in ms). */
export interface IssuedEvent {
  account?: string;
  /** Operator mode: the target account's public key. */
  account_public_key?: string;
  user?: string;
  name?: string;
  pub?: { allow?: string[]; deny?: string[] };
  sub?: { allow?: string[]; deny?: string[] };
  /** `ttl` in milliseconds. */
  resp?: { max?: number; ttl?: number };
  /** Unix seconds. */
  exp?: number;
  tags?: string[];
  src?: string[];
  allowed_connection_types?: string[];
}

export interface DecisionTimings {
  /** Waiting for a concurrency slot. */
  queue_us?: number;
  decode_us?: number;
  eval_us?: number;
  sign_us?: number;
  /** Publishing the reply until the server confirmed it (or it failed, or its deadline passed). */
  reply_us?: number;
  total_us?: number;
}

/** What became of the reply: sent in time, failed, late, or none to send (abort, drop). */
export type ReplyStatusEvent = "sent" | "failed" | "late" | "none";

/** The decision itself, when what the client got differs from it (its reply failed or came late). */
export interface DecidedEvent {
  outcome: "allow" | "deny";
  /** `ok` for an allow, else the deny's code. */
  code: string;
}

/** What one finished authorization looks like to the decision log (mapped from the service's result hook). */
export interface DecisionRecord {
  decisionId: string;
  receivedAt: Date;
  /** What the client got. */
  outcome: "allow" | "deny" | "abort";
  reply?: ReplyStatusEvent;
  decided?: DecidedEvent;
  reason?: string;
  /** Error code (src/errors.ts) or the policy's deny reason code. */
  code?: string;
  /** True when the outcome came from a fault (an exception), not from a decision. */
  error?: boolean;
  /** Why the policy evaluation failed (OPA's text, file:line; already scrubbed of credentials). */
  eval_error?: EvalErrorInfo;
  revision?: string;
  entrypoint?: string;
  /** The policy input document, unmasked (masked here). */
  input?: unknown;
  /**
   * Evaluates another entrypoint of the policy snapshot that made this decision, with the decision's frozen time
   * (set by the policy handler when a mask entrypoint is configured; never serialised). Throws on failure.
   */
  evaluate?: SnapshotEvaluator;
  /** The verified request, when no input document was built (e.g. no policy ran). */
  request?: AuthorizationRequest;
  issued?: IssuedEvent;
  timings?: DecisionTimings;
  /** Set when the service dropped the request without deciding it (queue_full, stopping, …). */
  dropped?: string;
  /** Non-secret request facts for correlation when there is no input (decode failures). */
  user_nkey?: string;
  server?: { id?: string; name?: string };
}

export interface DecisionEvent {
  type: typeof DECISION_EVENT_TYPE;
  msg: "decision";
  time: string;
  decision_id: string;
  outcome: "allow" | "deny" | "abort";
  reason?: string;
  code?: string;
  error?: boolean;
  reply?: ReplyStatusEvent;
  decided?: DecidedEvent;
  eval_error?: EvalErrorInfo;
  revision?: string;
  entrypoint?: string;
  dropped?: string;
  user_nkey?: string;
  server?: { id?: string; name?: string };
  client?: { host?: string; id?: number; user?: string; name?: string; type?: string; kind?: string };
  input?: unknown;
  masked?: string[];
  /** Set when the input was left out: "mask_error" (a policy mask failed), "too_large", "unavailable". */
  input_dropped?: string;
  issued?: IssuedEvent;
  timings: DecisionTimings;
}

/** A failed policy evaluation: code (policy_eval_error, policy_timeout), text, and where OPA located it. */
export interface EvalErrorInfo {
  code: string;
  message: string;
  file?: string;
  line?: number;
}

/** Evaluate `entrypoint` with `input` on one fixed policy snapshot; returns its value (undefined = undefined). */
export type SnapshotEvaluator = (entrypoint: string, input: unknown) => unknown;

/** What a mask function sees besides the masked copy. */
export interface MaskContext {
  /** The input document as the policy saw it (UNMASKED: never log it). */
  input: unknown;
  /** The record being logged (its `evaluate`, when set, runs on the deciding policy snapshot). */
  record: DecisionRecord;
}

/**
 * A mask the policy author controls, like OPA's `system.log.mask`: given the MASKED input (built-in masks already
 * applied) and the context, return JSON pointers to erase (e.g. "/client_info/name") or upsert ops
 * (`{op: "upsert", path: "/connect_opts/user", value: "x"}`). Paths may be prefixed with "/input". Erased values
 * become "[REDACTED]". Throwing (or a malformed op) drops the event's input.
 */
export type MaskOp = string | { op: "remove" | "upsert"; path: string; value?: unknown };
export type MaskFunction = (maskedInput: unknown, ctx: MaskContext) => MaskOp[] | undefined;

const JWT_RE = /^eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;
/** nkey seeds: S + type letter + base32 (operator, account, user, curve, server, cluster, private). */
const SEED_RE = /^S[OACUNXP][A-Z2-7]{50,}$/;
/** A creds file or seed embedded in a longer string. */
const EMBEDDED_RE = /(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)|(S[OACUNXP][A-Z2-7]{54,})/;

/** Keys masked wherever they occur, at any depth: the shared secret field names, plus the server nonce. */
const MASKED_KEYS: ReadonlySet<string> = new Set([...SECRET_KEYS, "nonce"]);

function pointerEscape(k: string): string {
  if (!k.includes("~") && !k.includes("/")) return k;
  return k.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** Shortest string JWT_RE, SEED_RE or EMBEDDED_RE can match ("eyJ" + 4 + two dots): shorter ones skip the regexes. */
const MIN_SECRET_SHAPE = 9;

function pointerUnescape(k: string): string {
  return k.replace(/~1/g, "/").replace(/~0/g, "~");
}

/**
 * Deep copy of `input` with secrets replaced by "[REDACTED]". Returns the copy and the JSON pointers masked.
 * Pure and total: never throws for JSON-like input (cycles are cut).
 */
export function maskInput(input: unknown): { input: unknown; masked: string[] } {
  return maskCopy(input, inputCredentials(input));
}

/** The input's credentials (src/secrets.ts), so copies and fragments of them elsewhere are masked too. */
function inputCredentials(input: unknown): Credentials {
  return requestCredentials(
    typeof input === "object" && input !== null ? (input as CredentialSource) : undefined,
  );
}

/**
 * A record's credentials. Credentials are read from `connect_opts` and `client_info` only, so when the input holds
 * the request's own objects (the policy input does), they are the request's, which the pipeline has already
 * computed; otherwise they are read from the input.
 */
function recordCredentials(raw: unknown, req: AuthorizationRequest | undefined): Credentials {
  const src = typeof raw === "object" && raw !== null ? (raw as CredentialSource) : undefined;
  if (req !== undefined && src?.connect_opts === req.connect_opts && src?.client_info === req.client_info) {
    return requestCredentials(req);
  }
  return inputCredentials(raw);
}

function maskCopy(input: unknown, secrets: Credentials): { input: unknown; masked: string[] } {
  const masked: string[] = [];
  // The objects on the path to the value being walked (a cycle is one of them again). An array, not a Set: input
  // documents are a few levels deep, and a scan of those beats hashing every object.
  const ancestors: object[] = [];
  // The JSON pointer of the value being walked, as escaped segments; joined only for a value that is masked.
  const at: string[] = [];
  const mask = (): string => {
    masked.push(at.length === 0 ? "" : `/${at.map(pointerEscape).join("/")}`);
    return MASK;
  };
  const walk = (v: unknown, key: string | undefined): unknown => {
    if (typeof v === "string") {
      if (
        (key !== undefined && MASKED_KEYS.has(key) && v.length > 0) ||
        secrets.contains(v) ||
        (v.length >= MIN_SECRET_SHAPE && (JWT_RE.test(v) || SEED_RE.test(v) || EMBEDDED_RE.test(v)))
      ) {
        return mask();
      }
      return v;
    }
    if (v === null || typeof v !== "object") {
      if (key !== undefined && MASKED_KEYS.has(key) && v !== undefined && v !== null) return mask();
      return v;
    }
    if (ancestors.includes(v)) return null; // a cycle (not JSON): cut it
    ancestors.push(v);
    try {
      if (Array.isArray(v)) {
        const out: unknown[] = new Array<unknown>(v.length);
        for (let i = 0; i < v.length; i++) {
          at.push(String(i));
          out[i] = walk(v[i], undefined);
          at.pop();
        }
        return out;
      }
      const out: Record<string, unknown> = {};
      const keys = Object.keys(v); // own enumerable keys, in for-in order
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string;
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) continue;
        at.push(k);
        out[k] = walk(x, k);
        at.pop();
      }
      return out;
    } finally {
      ancestors.pop();
    }
  };
  const copy = walk(input, undefined);
  return { input: copy, masked };
}

/** Parsed mask paths: a policy mask names the same few paths for every event. */
const parsedPaths = new Map<string, { path: string; parts: readonly string[] }>();
const MAX_PARSED_PATHS = 256;

/** A mask op's path below the input (a leading "/input" dropped) and its unescaped segments; throws when invalid. */
function parsePath(opPath: string): { path: string; parts: readonly string[] } {
  const hit = parsedPaths.get(opPath);
  if (hit) return hit;
  let path = opPath;
  if (path.startsWith("/input/")) path = path.slice("/input".length);
  if (!path.startsWith("/") || path === "/")
    throw new TypeError(`mask path must be a JSON pointer below /input`);
  const parts = path.slice(1).split("/").map(pointerUnescape);
  if (parts.includes("__proto__")) throw new TypeError("mask path must not contain __proto__");
  const parsed = { path, parts };
  if (parsedPaths.size >= MAX_PARSED_PATHS) parsedPaths.clear();
  parsedPaths.set(opPath, parsed);
  return parsed;
}

/**
 * Apply policy mask ops to an already-masked copy (mutates it). Throws on a malformed op. Only own properties are
 * followed, and a "__proto__" segment is refused, so a mask can never reach an object's prototype.
 */
export function applyMaskOps(doc: unknown, ops: readonly MaskOp[], masked: string[]): void {
  for (const op of ops) {
    const o = typeof op === "string" ? { op: "remove" as const, path: op } : op;
    if (!o || typeof o.path !== "string" || (o.op !== "remove" && o.op !== "upsert")) {
      throw new TypeError("mask op must be a JSON pointer string or {op: remove|upsert, path, value}");
    }
    const { path, parts } = parsePath(o.path);
    let cur: unknown = doc;
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts[i] as string;
      if (cur === null || typeof cur !== "object") {
        cur = undefined;
        break;
      }
      let next = Object.hasOwn(cur, p) ? (cur as Record<string, unknown>)[p] : undefined;
      if (next === undefined && o.op === "upsert") {
        next = {};
        (cur as Record<string, unknown>)[p] = next;
      }
      cur = next;
    }
    const last = parts[parts.length - 1] as string;
    if (cur === null || typeof cur !== "object") continue; // path absent: nothing to remove
    const obj = cur as Record<string, unknown>;
    if (o.op === "remove") {
      if (!Object.hasOwn(obj, last)) continue;
      obj[last] = MASK;
    } else {
      obj[last] = o.value;
    }
    masked.push(path);
  }
}

/**
 * The input exactly as the decision log writes it: a deep copy with the built-in masks, then the policy mask's ops
 * (`mask`), then the built-in masks once more (so an upsert can never put a secret back). Returns the copy and the
 * masked JSON pointers (each once), or `undefined` when the policy mask threw or returned a malformed result — the
 * caller must then leave the input out. Never throws.
 */
export function maskLoggedInput(
  raw: unknown,
  mask: MaskFunction | undefined,
  record: DecisionRecord,
  secrets: Credentials = inputCredentials(raw),
): { input: unknown; masked: string[] } | undefined {
  let { input, masked } = maskCopy(raw, secrets);
  if (mask) {
    try {
      const ops = mask(input, { input: raw, record });
      if (ops !== undefined) {
        if (!Array.isArray(ops)) throw new TypeError("mask result must be an array");
        applyMaskOps(input, ops, masked);
        if (ops.some((op) => typeof op !== "string")) {
          const again = maskCopy(input, secrets);
          input = again.input;
          masked.push(...again.masked);
        }
      }
    } catch {
      return undefined;
    }
  }
  if (masked.length > 1) masked = [...new Set(masked)];
  return { input, masked };
}

/** Non-secret client facts for quick filtering (user omitted when it is a copy of a secret). */
function clientSummary(maskedInput: unknown): DecisionEvent["client"] | undefined {
  const ci = (maskedInput as { client_info?: Record<string, unknown> } | null)?.client_info;
  if (!ci || typeof ci !== "object") return undefined;
  const pick = <T>(k: string, t: string): T | undefined => (typeof ci[k] === t ? (ci[k] as T) : undefined);
  const out: NonNullable<DecisionEvent["client"]> = {};
  const host = pick<string>("host", "string");
  if (host !== undefined) out.host = host;
  const id = pick<number>("id", "number");
  if (id !== undefined) out.id = id;
  const user = pick<string>("user", "string");
  if (user !== undefined && user !== MASK) out.user = user;
  const name = pick<string>("name", "string");
  if (name !== undefined) out.name = name;
  const type = pick<string>("type", "string");
  if (type !== undefined) out.type = type;
  const kind = pick<string>("kind", "string");
  if (kind !== undefined) out.kind = kind;
  return out;
}

/** Build the input document from a bare request when no policy built one (mirrors the policy input shape). */
function inputFromRequest(req: AuthorizationRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {
    version: 1,
    server_id: req.server_id,
    user_nkey: req.user_nkey,
    client_info: req.client_info,
    connect_opts: req.connect_opts,
    request_issuer: req.request_issuer,
  };
  if (req.client_tls) out.client_tls = req.client_tls;
  return out;
}

export interface BuildEventOptions {
  mask?: MaskFunction;
  /** Events whose masked input JSON is larger than this are written without input. Default 64 KiB. */
  maxInputBytes?: number;
}

/** Build one decision event (pure; does not write). */
export function buildDecisionEvent(rec: DecisionRecord, opts: BuildEventOptions = {}): DecisionEvent {
  return build(rec, opts).ev;
}

/**
 * The event and its log line, serialised once: the input (when kept) is the event's last field, so the line ends
 * with it, and `JSON.parse(line)` gives the event.
 */
function build(rec: DecisionRecord, opts: BuildEventOptions): { ev: DecisionEvent; line: string } {
  const ev: DecisionEvent = {
    type: DECISION_EVENT_TYPE,
    msg: "decision",
    time: rec.receivedAt.toISOString(),
    decision_id: rec.decisionId,
    outcome: rec.outcome,
    timings: { ...(rec.timings ?? {}) },
  };
  const raw = rec.input ?? (rec.request ? inputFromRequest(rec.request) : undefined);
  const secrets = recordCredentials(raw, rec.request);
  // The reason was redacted where it was made; checked again here with the same definition (src/secrets.ts).
  if (rec.reason !== undefined) ev.reason = redactText(rec.reason, secrets);
  if (rec.code !== undefined) ev.code = rec.code;
  if (rec.error) ev.error = true;
  if (rec.reply !== undefined) ev.reply = rec.reply;
  if (rec.decided !== undefined) ev.decided = { ...rec.decided };
  if (rec.eval_error) ev.eval_error = rec.eval_error;
  if (rec.revision !== undefined) ev.revision = rec.revision;
  if (rec.entrypoint !== undefined) ev.entrypoint = rec.entrypoint;
  if (rec.dropped !== undefined) ev.dropped = rec.dropped;
  const userNkey = rec.user_nkey ?? rec.request?.user_nkey;
  if (userNkey !== undefined) ev.user_nkey = userNkey;
  const server =
    rec.server ??
    (rec.request ? { id: rec.request.server_id.id, name: rec.request.server_id.name } : undefined);
  if (server) ev.server = server;
  const logged = raw === undefined ? undefined : maskLoggedInput(raw, opts.mask, rec, secrets);
  if (raw === undefined) ev.input_dropped = "unavailable";
  else if (logged === undefined) ev.input_dropped = "mask_error";
  if (logged === undefined) {
    if (rec.issued) ev.issued = rec.issued;
    return { ev, line: JSON.stringify(ev) + "\n" };
  }
  const { input, masked } = logged;
  if (masked.length) ev.masked = masked;
  const client = clientSummary(input);
  if (client) ev.client = client;
  if (rec.issued) ev.issued = rec.issued;
  ev.input = input;
  const line = JSON.stringify(ev);
  const max = opts.maxInputBytes ?? 64 * 1024;
  // The input's JSON is part of the line: a line of at most `max` bytes (3 per UTF-16 unit at most) cannot hold a
  // larger input. Only a long line pays for measuring the input on its own.
  if (line.length * 3 <= max || Buffer.byteLength(JSON.stringify(input)) <= max)
    return { ev, line: line + "\n" };
  const small: DecisionEvent = { ...ev, input_dropped: "too_large" };
  delete small.input;
  delete small.masked;
  delete small.client;
  return { ev: small, line: JSON.stringify(small) + "\n" };
}

export interface DecisionLogOptions extends BuildEventOptions {
  /** A line sink (each line ends with "\n"). "off" disables the log. */
  sink?: ((line: string) => void) | undefined;
  /** Called when an event could not be written or lost its input (for metrics). Never throws. */
  onDrop?: (reason: string) => void;
}

export interface DecisionLog {
  readonly enabled: boolean;
  /** Build, mask and write one event. Never throws: a failure is reported through `onDrop`. */
  record(rec: DecisionRecord): DecisionEvent | undefined;
  /** Replace the policy mask (on reload). */
  setMask(mask: MaskFunction | undefined): void;
}

export function createDecisionLog(opts: DecisionLogOptions): DecisionLog {
  let mask = opts.mask;
  const sink = opts.sink;
  const drop = (reason: string) => {
    try {
      opts.onDrop?.(reason);
    } catch {
      /* a metrics hook must not break the log */
    }
  };
  return {
    enabled: sink !== undefined,
    setMask(m) {
      mask = m;
    },
    record(rec) {
      if (!sink) return undefined;
      let ev: DecisionEvent;
      let line: string;
      try {
        const o: BuildEventOptions = {};
        if (mask) o.mask = mask;
        if (opts.maxInputBytes !== undefined) o.maxInputBytes = opts.maxInputBytes;
        ({ ev, line } = build(rec, o));
      } catch {
        drop("build_error");
        return undefined;
      }
      if (ev.input_dropped && ev.input_dropped !== "unavailable") drop(ev.input_dropped);
      try {
        sink(line);
      } catch {
        drop("write_error");
      }
      return ev;
    },
  };
}

/** Recognise a decision-log event (for `eval`). */
export function isDecisionEvent(v: unknown): v is DecisionEvent {
  return (
    typeof v === "object" &&
    v !== null &&
    (v as { type?: unknown }).type === DECISION_EVENT_TYPE &&
    typeof (v as { decision_id?: unknown }).decision_id === "string"
  );
}
