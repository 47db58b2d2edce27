/**
 * One authorization, transport-agnostic: bytes in → Outcome + reply bytes out.
 *
 *   decode (verify) → nkey proof → decide (./decide.ts: handler → validateGrant, typed DecisionFacts)
 *   → user JWT → signed response (sealed like the request)
 *
 * Outcomes, fail closed:
 * - decode error → **abort** (no reply): the request is not authentic or not for us, so there is no
 *   trustworthy `user_nkey`/server to answer, and a stale request's client is already gone.
 *   Exception: AnswerableDecodeError (signature, envelope and addressing verified, only an optional
 *   field malformed) → **deny** with a signed error, so the client is not left waiting.
 * - the client's nkey proof fails (nonce, nkey and a missing/wrong signature; src/callout/nkey-proof.ts) →
 *   deny `nkey_proof_failed` naming the field; a proven nkey is handed on as `req.proven_nkey`.
 * - handler throws AuthError → deny (its reason); AbortAuth → abort; any other throw → deny with
 *   code `handler_error` (or the CalloutError's own code), never the thrown message.
 * - the request expired while the handler ran → abort (`request_expired`): the server stopped listening.
 *   Expired means past `exp` (+ clock skew) on this clock, or held longer than the server's timeout
 *   (`exp - iat`) since it was received, which holds whatever the clocks say.
 * - validateGrant fails → deny with its code (`decision_shape_error`, `account_not_allowed`, …).
 * - the signed allow response is larger than the server accepts (`maxReplyBytes`, the connection's
 *   `max_payload`) → deny with `grant_too_large` (a publish would fail and leave the client waiting). A grant
 *   whose subject lists alone make the reply too large is denied so before validation and signing.
 * - validateGrant fails → deny with its code (`decision_shape_error`, `account_not_allowed`, …); for a handler that
 *   is not injection-guarded (src/injection.ts), a client string verbatim in a subject → `subject_injection`.
 * - signing/sealing fails → a signed deny if that still works, else abort. Never allow.
 *
 * Every deny/abort/allow reason is redacted to "redacted" when it contains a credential of the request
 * (src/secrets.ts), whatever produced it (policy, plain handler, error).
 *
 * This module never logs and never touches the network; the service wires it to NATS.
 */
import { performance } from "node:perf_hooks";
import { randomUUID } from "node:crypto";
import {
  AuthError,
  CalloutError,
  ConfigError,
  DecisionShapeError,
  NkeyProofError,
  RequestDecodeError,
  ResponseEncodeError,
  type ErrorCode,
} from "../errors.js";
import { redactText, requestCredentials } from "../secrets.js";
import type {
  AuthorizationRequest,
  Outcome,
  ResponsePermission,
  SubjectPermission,
  TimeRange,
} from "../types.js";
import { buildUserClaims } from "./claims.js";
import { AnswerableDecodeError, decodeRequest, type ReplyTarget } from "./decode.js";
import { encodeJwt } from "./jwt.js";
import { isPublicKey, Verifier, type Signer, type XKey } from "./keys.js";
import { encodeResponse, type ResponseOptions } from "./respond.js";
import { clientKeyVerifier, proveNkey } from "./nkey-proof.js";
import { CORE_DEFAULTS } from "./defaults.js";
import { decide, tooLarge, type DecisionFacts, type Handler } from "./decide.js";

export type { DecisionFacts, Handler, HandlerContext } from "./decide.js";
export { replyBytesLowerBound } from "./decide.js";

/** Defaults for CoreOptions (also the service's defaults; defined in ./defaults.ts). */
export { CORE_DEFAULTS };

/** An account's public key and a signer for it (the account key itself or one of its signing keys). */
export interface AccountKeys {
  publicKey: string;
  signer: Signer;
}

interface CoreOptionsBase {
  /** The service's xkey (`SX…` parsed with xkeyFromSeed) when the server is configured with `xkey`. */
  xkey?: XKey;
  defaultExpirySeconds?: number;
  maxExpirySeconds?: number;
  responseExpirySeconds?: number;
  clockSkewSeconds?: number;
  maxRequestBytes?: number;
  /**
   * Largest reply the server accepts (its `max_payload`, from the connection's INFO): a number, or a getter
   * read per request (the value can change on reconnect). Undefined = no check.
   */
  maxReplyBytes?: number | (() => number | undefined);
  /** Shared verifier (key cache); one is created when omitted. */
  verifier?: Verifier;
  /** Clock, ms since the epoch (tests). Default Date.now. */
  now?: () => number;
}

/** Config mode: one issuer account signs responses and user JWTs; users are placed by account name. */
export interface ConfigModeOptions extends CoreOptionsBase {
  mode: "config";
  /** Signer of `auth_callout.issuer` (an `SA…` seed). */
  issuer: Signer;
  /** Names of the accounts a grant may place users in (SYS only if listed). */
  accounts: readonly string[];
}

/** Operator mode: the callout account signs responses; each target account signs its users. */
export interface OperatorModeOptions extends CoreOptionsBase {
  mode: "operator";
  /** The callout account (receives requests) and its response signer. */
  callout: AccountKeys;
  /** Target accounts by the name grants use. */
  accounts: Readonly<Record<string, AccountKeys>>;
}

/** Options of createAuthorizer. */
export type CoreOptions = ConfigModeOptions | OperatorModeOptions;

/** What was issued on allow: no JWTs, no secrets. */
export interface IssuedSummary {
  account: string;
  /** Operator mode: the target account key. */
  account_public_key?: string;
  /** Public key that signed the user JWT. */
  issuer: string;
  name: string;
  user_nkey: string;
  pub: SubjectPermission;
  sub: SubjectPermission;
  resp?: ResponsePermission;
  /** Unix seconds. */
  exp: number;
  subs: number;
  data: number;
  payload: number;
  src?: string[];
  times?: TimeRange[];
  times_location?: string;
  allowed_connection_types?: string[];
  bearer_token?: boolean;
  tags?: string[];
}

/** The result of one authorize() call. */
export interface AuthResult {
  decisionId: string;
  outcome: Outcome;
  /** Bytes to publish to the request's reply subject; undefined on abort. */
  reply?: Uint8Array;
  /** The verified request (absent when decoding failed). */
  request?: AuthorizationRequest;
  /** Why the outcome is deny/abort (never carries secrets). */
  error?: CalloutError;
  /** What deciding established (HandlerContext.facts): revision, input, decision, eval timing, … */
  facts: DecisionFacts;
  /** Microseconds per stage (`sign_us` includes grant validation and claims building). */
  timings: { decode_us: number; handler_us: number; sign_us: number; total_us: number };
  issued?: IssuedSummary;
  /**
   * When the request was decoded: the moment (performance.now() ms) after which the server has certainly
   * stopped waiting for the reply. A transport confirms the reply before it or records it late.
   */
  replyBy?: number;
}

/** Per-call facts of authorize() beyond the message itself. */
export interface AuthorizeOptions {
  /** When the message arrived, performance.now() ms (default: when authorize() was called). */
  receivedAt?: number;
}

/** Authorizes one request: raw message body, its `Nats-Server-Xkey` header, an optional decision id. */
export type Authorize = (
  data: Uint8Array,
  xkeyHeader?: string,
  decisionId?: string,
  opts?: AuthorizeOptions,
) => Promise<AuthResult>;

/**
 * The moment (performance.now() ms) after which the server has certainly given up on `req`, received at
 * `receivedAt`: it sent the request before we received it and waits `exp - iat` seconds (its auth timeout),
 * and it stops at the latest one second after `exp` (exp is rounded down to a second) on its clock, which
 * is assumed to agree with this one.
 */
export function replyDeadline(
  req: Pick<AuthorizationRequest, "issued_at" | "expires_at">,
  receivedAt: number,
  nowWallMs: number = Date.now(),
  nowPerfMs: number = performance.now(),
): number {
  const byTimeout = receivedAt + Math.max(0, req.expires_at - req.issued_at) * 1000;
  const byExp = nowPerfMs + ((req.expires_at + 1) * 1000 - nowWallMs);
  return Math.min(byTimeout, byExp);
}

const us = (fromMs: number, toMs: number): number => Math.max(0, Math.round((toMs - fromMs) * 1000));

/** Throws ConfigError listing every problem with the options. */
function checkOptions(opts: CoreOptions): void {
  const problems: { field: string; message: string }[] = [];
  const positive = (field: keyof CoreOptionsBase, v: unknown) => {
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v <= 0)) {
      problems.push({ field, message: "must be a positive number" });
    }
  };
  positive("defaultExpirySeconds", opts.defaultExpirySeconds);
  positive("maxExpirySeconds", opts.maxExpirySeconds);
  positive("responseExpirySeconds", opts.responseExpirySeconds);
  positive("maxRequestBytes", opts.maxRequestBytes);
  if (typeof opts.maxReplyBytes !== "function") positive("maxReplyBytes", opts.maxReplyBytes);
  if (
    opts.clockSkewSeconds !== undefined &&
    (typeof opts.clockSkewSeconds !== "number" ||
      !Number.isFinite(opts.clockSkewSeconds) ||
      opts.clockSkewSeconds < 0)
  ) {
    problems.push({ field: "clockSkewSeconds", message: "must be a number >= 0" });
  }
  const accountSigner = (field: string, s: Signer | undefined) => {
    if (s === undefined || !isPublicKey(s.publicKey, "account") || typeof s.sign !== "function") {
      problems.push({ field, message: "must be an account (SA…) signer" });
    }
  };
  if (opts.mode === "config") {
    accountSigner("issuer", opts.issuer);
    if (!Array.isArray(opts.accounts) || opts.accounts.length === 0) {
      problems.push({ field: "accounts", message: "must list at least one account name" });
    } else {
      opts.accounts.forEach((a, i) => {
        if (typeof a !== "string" || a.length === 0)
          problems.push({ field: `accounts[${i}]`, message: "must be a name" });
      });
    }
  } else if (opts.mode === "operator") {
    if (!isPublicKey(opts.callout?.publicKey, "account")) {
      problems.push({ field: "callout.publicKey", message: "must be an account public key (A…)" });
    }
    accountSigner("callout.signer", opts.callout?.signer);
    const names =
      opts.accounts === null || typeof opts.accounts !== "object" ? [] : Object.keys(opts.accounts);
    if (names.length === 0) problems.push({ field: "accounts", message: "must map at least one account" });
    for (const name of names) {
      const a = opts.accounts[name];
      if (!isPublicKey(a?.publicKey, "account")) {
        problems.push({ field: `accounts.${name}.publicKey`, message: "must be an account public key (A…)" });
      }
      accountSigner(`accounts.${name}.signer`, a?.signer);
    }
  } else {
    problems.push({ field: "mode", message: 'must be "config" or "operator"' });
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

/** The reason a deny sends for `err` (before redaction); `eval` prints the same. */
export function denyReason(err: CalloutError): string {
  if (err instanceof AuthError) return err.message;
  if (err.code === "grant_too_large") return `${err.code}: ${err.message}`;
  if (err instanceof DecisionShapeError || err instanceof NkeyProofError) return `${err.code}: ${err.field}`;
  return err.code;
}

/**
 * Builds the authorize function for one configuration. Keys are parsed by the caller (keys.ts) once;
 * this function checks them and throws ConfigError listing every problem.
 */
export function createAuthorizer(opts: CoreOptions, handler: Handler): Authorize {
  checkOptions(opts);
  if (typeof handler !== "function")
    throw new ConfigError([{ field: "handler", message: "must be a function" }]);

  const clock = opts.now ?? Date.now;
  const verifier = opts.verifier ?? new Verifier();
  const nkeyVerifier = clientKeyVerifier();
  const defaultExpirySeconds = opts.defaultExpirySeconds ?? CORE_DEFAULTS.defaultExpirySeconds;
  const maxExpirySeconds = opts.maxExpirySeconds ?? CORE_DEFAULTS.maxExpirySeconds;
  const responseExpirySeconds = opts.responseExpirySeconds ?? CORE_DEFAULTS.responseExpirySeconds;
  const clockSkewSeconds = opts.clockSkewSeconds ?? CORE_DEFAULTS.clockSkewSeconds;
  const maxRequestBytes = opts.maxRequestBytes ?? CORE_DEFAULTS.maxRequestBytes;
  const maxReply = opts.maxReplyBytes;
  const maxReplyBytes = (): number | undefined => {
    const v = typeof maxReply === "function" ? maxReply() : maxReply;
    return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : undefined;
  };

  // Frozen copies so later mutation of the options cannot change who signs what.
  const accountMap = new Map<string, AccountKeys>();
  let accountNames: readonly string[];
  let responseSigner: Signer;
  let responseIssuerAccount: string | undefined;
  let expectedIssuer: string;
  if (opts.mode === "config") {
    accountNames = Object.freeze([...opts.accounts]);
    responseSigner = opts.issuer;
    expectedIssuer = opts.issuer.publicKey;
  } else {
    for (const [name, keys] of Object.entries(opts.accounts)) {
      accountMap.set(name, { publicKey: keys.publicKey, signer: keys.signer });
    }
    accountNames = Object.freeze([...accountMap.keys()]);
    responseSigner = opts.callout.signer;
    responseIssuerAccount = opts.callout.publicKey;
    expectedIssuer = opts.callout.publicKey;
  }
  const mode = opts.mode;
  const xkey = opts.xkey;

  const responseOptions = (nowMs: number): ResponseOptions => ({
    signer: responseSigner,
    issuerAccount: responseIssuerAccount,
    xkey,
    expirySeconds: responseExpirySeconds,
    nowMs,
  });

  return async function authorize(
    data: Uint8Array,
    xkeyHeader?: string,
    decisionId?: string,
    callOpts: AuthorizeOptions = {},
  ): Promise<AuthResult> {
    const t0 = performance.now();
    const receivedAt = callOpts.receivedAt ?? t0;
    const id = decisionId ?? randomUUID();
    let facts: DecisionFacts = {};
    const timings = { decode_us: 0, handler_us: 0, sign_us: 0, total_us: 0 };
    const decoded: { replyBy?: number } = {}; // set once the request is decoded
    const finish = (r: Omit<AuthResult, "decisionId" | "facts" | "timings">): AuthResult => {
      timings.total_us = us(t0, performance.now());
      return {
        decisionId: id,
        facts,
        timings,
        ...r,
        ...(decoded.replyBy !== undefined ? { replyBy: decoded.replyBy } : {}),
      };
    };
    // Reasons reach nats-server's log and the decision log: never with a credential in them (src/secrets.ts).
    const safe = (reason: string, request?: AuthorizationRequest): string =>
      request ? redactText(reason, requestCredentials(request)) : reason;
    const abort = (code: ErrorCode, reason: string, error: CalloutError, request?: AuthorizationRequest) =>
      finish({
        outcome: { kind: "abort", code, reason: safe(reason, request) },
        error,
        ...(request ? { request } : {}),
      });
    // A signed deny; if even that cannot be produced, abort (never allow).
    const deny = (target: ReplyTarget, error: CalloutError, request?: AuthorizationRequest): AuthResult => {
      const ts = performance.now();
      const reason = safe(denyReason(error), request);
      let reply: Uint8Array;
      try {
        reply = encodeResponse(target, { error: reason }, responseOptions(clock()));
        const max = maxReplyBytes();
        if (max !== undefined && reply.length > max) {
          throw new ResponseEncodeError(`deny response of ${reply.length} bytes exceeds max_payload ${max}`);
        }
      } catch (err) {
        timings.sign_us += us(ts, performance.now());
        const e =
          err instanceof CalloutError ? err : new ResponseEncodeError("cannot encode deny", { cause: err });
        return abort(e.code, "cannot encode deny response", e, request);
      }
      timings.sign_us += us(ts, performance.now());
      return finish({
        outcome: { kind: "deny", code: error.code, reason },
        reply,
        error,
        ...(request ? { request } : {}),
      });
    };

    // 1. decode + verify
    let req: AuthorizationRequest;
    try {
      req = decodeRequest(data, xkeyHeader, {
        verifier,
        xkey,
        maxRequestBytes,
        clockSkewSeconds,
        expectedIssuer,
        now: clock(),
      });
    } catch (err) {
      timings.decode_us = us(t0, performance.now());
      if (err instanceof AnswerableDecodeError) return deny(err.target, err);
      const e =
        err instanceof CalloutError
          ? err
          : new RequestDecodeError("request decode failed", "request_decode_error", { cause: err });
      return abort(e.code, e.message, e);
    }
    // 1b. the client's nkey: proven (handlers see req.proven_nkey), a bare claim, or a forged proof (deny)
    const proof = proveNkey(req, nkeyVerifier);
    if (proof.status === "proven") req.proven_nkey = proof.nkey;
    else if (proof.status === "failed") {
      timings.decode_us = us(t0, performance.now());
      return deny(req, new NkeyProofError(proof.field, proof.message), req);
    }
    const t1 = performance.now();
    timings.decode_us = us(t0, t1);
    decoded.replyBy = replyDeadline(req, receivedAt, clock(), t1);

    const max = maxReplyBytes();
    // 2-4. decide: handler, drop work the server no longer waits for, grant checks (./decide.ts)
    let afterMs = 0;
    let t2 = 0;
    const decided = await decide(
      req,
      { decisionId: id, now: new Date(clock()) },
      {
        handler,
        accounts: accountNames,
        ...(max !== undefined ? { maxReplyBytes: max } : {}),
        afterHandler: () => {
          t2 = performance.now();
          afterMs = clock();
          return Math.floor(afterMs / 1000) > req.expires_at + clockSkewSeconds ||
            t2 > receivedAt + Math.max(0, req.expires_at - req.issued_at) * 1000
            ? new RequestDecodeError("request expired while being handled", "request_expired")
            : undefined;
        },
      },
    );
    facts = decided.facts;
    timings.handler_us = decided.timings.handler_us;
    const verdict = decided.verdict;
    if (verdict.kind !== "allow") {
      if (verdict.kind === "abort") {
        const e = verdict.error;
        return abort(e.code, e.message, e, req);
      }
      return deny(req, verdict.error, req);
    }
    const valid = verdict.grant;

    // 5. user JWT + response
    try {
      const account = mode === "operator" ? accountMap.get(valid.account) : undefined;
      if (mode === "operator" && account === undefined) {
        throw new ResponseEncodeError("no signer for the target account");
      }
      const signer = account?.signer ?? responseSigner;
      const claims = buildUserClaims(valid, req, {
        mode,
        signer,
        accountPublicKey: account?.publicKey,
        defaultExpirySeconds,
        maxExpirySeconds,
        nowMs: afterMs,
      });
      const userJwt = encodeJwt(claims, signer, afterMs);
      const reply = encodeResponse(req, { jwt: userJwt }, responseOptions(afterMs));
      timings.sign_us = us(t2, performance.now());
      if (max !== undefined && reply.length > max) {
        return deny(req, tooLarge(`allow response of ${reply.length} bytes`, max), req);
      }
      const nats = claims.nats as Record<string, unknown>;
      const issued: IssuedSummary = {
        account: valid.account,
        issuer: signer.publicKey,
        name: claims.name as string,
        user_nkey: req.user_nkey,
        pub: nats.pub as SubjectPermission,
        sub: nats.sub as SubjectPermission,
        exp: claims.exp as number,
        subs: nats.subs as number,
        data: nats.data as number,
        payload: nats.payload as number,
      };
      if (account !== undefined) issued.account_public_key = account.publicKey;
      if (valid.resp !== undefined) issued.resp = valid.resp;
      if (valid.src !== undefined) issued.src = valid.src;
      if (valid.times !== undefined) issued.times = valid.times;
      if (valid.times_location !== undefined) issued.times_location = valid.times_location;
      if (valid.allowed_connection_types !== undefined)
        issued.allowed_connection_types = valid.allowed_connection_types;
      if (valid.bearer_token !== undefined) issued.bearer_token = valid.bearer_token;
      if (valid.tags !== undefined) issued.tags = valid.tags;
      if (verdict.reason !== undefined) facts.reason = safe(verdict.reason, req);
      const outcome: Outcome =
        facts.reason !== undefined
          ? { kind: "allow", grant: valid, reason: facts.reason }
          : { kind: "allow", grant: valid };
      return finish({ outcome, reply, request: req, issued });
    } catch (err) {
      timings.sign_us = us(t2, performance.now());
      const e =
        err instanceof ResponseEncodeError
          ? err
          : new ResponseEncodeError("cannot encode the user jwt", { cause: err });
      return deny(req, e, req);
    }
  };
}
