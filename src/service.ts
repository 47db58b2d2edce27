/**
 * The service runtime: NATS wiring around the protocol core.
 *
 * - connects with @nats-io/transport-node (user/password, token, nkey seed or creds), reconnecting forever
 *   (`maxReconnectAttempts: -1`): after a nats-server restart the client re-subscribes and serving resumes;
 * - one queue subscription on the callout subject, so replicas share the load;
 * - bounded concurrency (src/callout/queue.ts): at most `limits.maxConcurrency` requests run, at most
 *   `limits.maxQueue` wait; a full queue sheds its OLDEST request (`shed_overflow`), and a queued request
 *   that can no longer be answered before the server's auth timeout is shed unread (`shed_expired`, when
 *   `limits.shedExpired`). Shed requests get no reply (the client retries) and are counted, never decided.
 *   Requests whose JWT `exp` has passed are dropped by the core's decode before any work;
 * - every reply is confirmed (src/reply.ts): a result says allow or deny only when that reply reached the server
 *   before the request's deadline; a refused or failed publish is recorded as abort `reply_failed`, a reply
 *   confirmed too late as abort `reply_late` (the client saw a timeout either way). Allow responses larger than
 *   the server's max_payload are denied before replying (`grant_too_large`);
 * - `onResult` is called exactly once per request, after the reply's fate is known, from a `finally` block,
 *   even when something threw;
 * - `onStatus` on connection state changes; `status()` for health checks;
 * - `stop()` drains without loss: unsubscribes, keeps deciding every message the server delivered before the
 *   unsubscribe took effect, finishes queued and in-flight requests, then closes. Only requests still queued
 *   when the stop deadline passes are dropped (`stopping`, code `service_stopping`).
 *
 * Each failure is logged once, with its code and decision id; never secrets.
 */
import { randomBytes } from "node:crypto";
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type Authenticator,
  type Msg,
  type NatsConnection,
  type NodeConnectionOptions,
  type Status,
  type Subscription,
} from "@nats-io/transport-node";
import {
  createAuthorizer,
  replyDeadline,
  type AccountKeys,
  type AuthResult,
  type CoreOptions,
  type Handler,
} from "./callout/pipeline.js";
import { XKEY_HEADER, peekRequestTimes } from "./callout/decode.js";
import { createQueue, shedReporter } from "./callout/queue.js";
import { createReplier, type ReplyFate, type Replier } from "./reply.js";
import type { Outcome } from "./types.js";
import { signerFromSeed, xkeyFromSeed } from "./callout/keys.js";
import { noNonceReporter, nonceObserver } from "./callout/nkey-proof.js";
import { resolveConfig, type ResolvedConfig, type ServiceConfig } from "./config.js";
import { CalloutError, ConfigError, type ErrorCode } from "./errors.js";
import { silentLogger, type Logger } from "./log.js";
import { createTopologyWatch } from "./topology-watch.js";

// ---------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "draining" | "closed";

/** Why a request was dropped by the service before (or instead of) the core deciding it. */
export type DropReason = "queue_full" | "shed_overflow" | "shed_expired" | "no_reply_subject" | "stopping";

/** What became of the reply: see src/reply.ts; `none` when there was nothing to send (abort or drop). */
export type ReplyStatus = ReplyFate | "none";

/** One finished request, handed to `onResult` exactly once. */
export interface ResultEvent {
  decisionId: string;
  /** When the message arrived. */
  receivedAt: Date;
  /** Time spent waiting for a concurrency slot, microseconds. */
  queue_us: number;
  /** The core's decision. For drops and unexpected faults the service builds an abort result with the code. */
  result: AuthResult;
  /**
   * What the client got: the core's outcome when its reply was sent in time (or there was none to send), else
   * abort with code `reply_failed` or `reply_late` (the decided outcome stays in `result.outcome`).
   */
  outcome: Outcome;
  /** The reply's fate. */
  reply: ReplyStatus;
  /** Publishing the reply until its fate was known (confirmation, refusal or deadline), microseconds. */
  reply_us?: number;
  /** Set when the service dropped the request without running the core. */
  dropped?: DropReason;
  /** Whether a reply reached the server in time (`reply === "sent"`). */
  replied: boolean;
  /** An unexpected fault (the core threw, or the reply failed). */
  error?: unknown;
}

/** A connection state change, handed to `onStatus`. */
export interface StatusChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** Server the client is (re)connected to, when known. */
  server?: string;
  at: Date;
}

export interface CalloutStatus {
  connection: ConnectionState;
  /** Requests being decided now. */
  inFlight: number;
  /** Requests waiting for a slot. */
  queued: number;
  /** Requests finished (any outcome, drops included). */
  served: number;
  allowed: number;
  denied: number;
  aborted: number;
  /** Dropped by the service (shed from the queue, queue full, no reply subject, stopping); also counted in aborted. */
  dropped: number;
  /** Unexpected faults (core threw, reply failed or late). */
  errors: number;
  /** Successful reconnects since start. */
  reconnects: number;
  startedAt: Date;
  /** Subject and queue group being served. */
  subject: string;
  queueGroup: string;
  /** Last failure code and when, if any. */
  lastError?: { code: string; decisionId: string; at: Date };
}

export interface StartCalloutOptions {
  /** A resolved config, or raw input that is resolved here (throws ConfigError). */
  config: ResolvedConfig | ServiceConfig;
  /** Decides each verified request (a plain function, or the policy engine's handler). */
  handler: Handler;
  logger?: Logger;
  /** Called once per request, from a finally block. Must not throw (errors are logged and swallowed). */
  onResult?: (event: ResultEvent) => void;
  /** Called on connection state changes. */
  onStatus?: (change: StatusChange) => void;
  /**
   * Milliseconds between reconnect attempts (default 100, with up to 50 ms jitter). Short on purpose: after a
   * nats-server restart the clients come back within ~250 ms, and every login that arrives before this replica
   * has re-subscribed fails (bench/reconnect.bench.ts measured all 600 clients failing once at 1000 ms).
   */
  reconnectTimeWaitMs?: number;
  /** Keep retrying the first connect instead of failing (default false: startCallout rejects). */
  waitOnFirstConnect?: boolean;
}

export interface CalloutService {
  status(): CalloutStatus;
  /** Graceful: stop taking requests, finish queued and in-flight ones (up to timeoutMs), close. */
  stop(opts?: { timeoutMs?: number }): Promise<void>;
  /** Resolves when the connection is closed for good (stop() or a fatal error). */
  closed(): Promise<void>;
  /** The underlying connection (e.g. for monitoring); do not close it directly. */
  readonly connection: NatsConnection;
  readonly config: ResolvedConfig;
  [Symbol.asyncDispose](): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

/** Short unique decision ids: a per-process random prefix and a counter (base 36). */
export function decisionIdGenerator(): () => string {
  const boot = randomBytes(4).toString("hex");
  let n = 0;
  return () => `${boot}-${(++n).toString(36)}`;
}

function isResolved(c: ResolvedConfig | ServiceConfig): c is ResolvedConfig {
  const r = c as Partial<ResolvedConfig>;
  return Array.isArray(r.warnings) && typeof r.nats === "object" && r.nats !== null && "auth" in r.nats;
}

const enc = new TextEncoder();

/** The protocol core's options (parsed signers, xkey, limits) from a resolved config. */
export function coreOptionsFromConfig(cfg: ResolvedConfig): CoreOptions {
  const common = {
    defaultExpirySeconds: cfg.expiry.defaultSeconds,
    maxExpirySeconds: cfg.expiry.maxSeconds,
    responseExpirySeconds: cfg.expiry.responseSeconds,
    maxRequestBytes: cfg.limits.maxRequestBytes,
    ...(cfg.xkey ? { xkey: xkeyFromSeed(cfg.xkey.seed.reveal()) } : {}),
  };
  if (cfg.mode === "config") {
    if (!cfg.issuer) throw new ConfigError([{ field: "issuer.seed", message: "required in config mode" }]);
    return {
      mode: "config",
      issuer: signerFromSeed(cfg.issuer.seed.reveal(), "account"),
      accounts: cfg.accounts.map((a) => a.name),
      ...common,
    };
  }
  if (!cfg.calloutAccount) {
    throw new ConfigError([{ field: "callout_account", message: "required in operator mode" }]);
  }
  const accounts: Record<string, AccountKeys> = {};
  for (const a of cfg.accounts) {
    if (!a.publicKey || !a.signingKey) {
      throw new ConfigError([
        { field: `accounts.${a.name}`, message: "needs public_key and signing_key_seed" },
      ]);
    }
    accounts[a.name] = {
      publicKey: a.publicKey,
      signer: signerFromSeed(a.signingKey.seed.reveal(), "account"),
    };
  }
  return {
    mode: "operator",
    callout: {
      publicKey: cfg.calloutAccount.publicKey,
      signer: signerFromSeed(cfg.calloutAccount.signingKey.seed.reveal(), "account"),
    },
    accounts,
    ...common,
  };
}

/** NATS connection options (auth, TLS, reconnect forever) from a resolved config. */
export function connectionOptions(
  cfg: ResolvedConfig,
  o: { reconnectTimeWaitMs?: number; waitOnFirstConnect?: boolean } = {},
): NodeConnectionOptions {
  const opts: NodeConnectionOptions = {
    servers: cfg.nats.servers,
    name: cfg.nats.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: o.reconnectTimeWaitMs ?? 100,
    reconnectJitter: 50,
    timeout: cfg.nats.connectTimeoutMs,
    waitOnFirstConnect: o.waitOnFirstConnect ?? false,
  };
  const auth = cfg.nats.auth;
  switch (auth.kind) {
    case "user":
      opts.user = auth.user;
      opts.pass = auth.password.reveal();
      break;
    case "token":
      opts.token = auth.token.reveal();
      break;
    case "nkey":
      opts.authenticator = nkeyAuthenticator(enc.encode(auth.seed.reveal()));
      break;
    case "creds":
      opts.authenticator = credsAuthenticator(enc.encode(auth.creds.reveal()));
      break;
    case "none":
      break;
  }
  if (cfg.nats.tls) opts.tls = { ...cfg.nats.tls };
  return opts;
}

/** An abort result for requests the core never saw (drops, unexpected faults). */
function syntheticAbort(
  decisionId: string,
  code: ErrorCode,
  reason: string,
  error: CalloutError,
): AuthResult {
  return {
    decisionId,
    outcome: { kind: "abort", code, reason },
    error,
    facts: {},
    timings: { decode_us: 0, handler_us: 0, sign_us: 0, total_us: 0 },
  };
}

/** Waits for `p` until `deadline` (ms epoch): true if it settled in time (rejections count as settled). */
async function withDeadline(p: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      expired,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function errorType(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}

/** The outcome the client got, given the core's outcome and the reply's fate. */
export function deliveredOutcome(decided: Outcome, reply: ReplyStatus, error?: unknown): Outcome {
  if (decided.kind === "abort" || reply === "sent" || reply === "none") return decided;
  const what = `${decided.kind} reply`;
  if (reply === "late") {
    return { kind: "abort", code: "reply_late", reason: `${what} not confirmed before the request expired` };
  }
  const why = error instanceof Error && error.message ? `: ${error.message.slice(0, 200)}` : "";
  return { kind: "abort", code: "reply_failed", reason: `${what} failed${why}` };
}

// ---------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------

/** Connects, subscribes and serves until stop(). Throws ConfigError on bad config, or the connect error. */
export async function startCallout(options: StartCalloutOptions): Promise<CalloutService> {
  const cfg = isResolved(options.config) ? options.config : resolveConfig(options.config);
  const log = (options.logger ?? silentLogger).child({ component: "service" });
  let nc: NatsConnection | undefined;
  // The server's max_payload (from its INFO; it can change on reconnect) bounds every reply.
  const authorize = createAuthorizer(
    { ...coreOptionsFromConfig(cfg), maxReplyBytes: () => nc?.info?.max_payload },
    options.handler,
  );
  const replier: Replier = createReplier(() => nc);
  const topology = createTopologyWatch(log.child({ component: "topology" }));
  const nextId = decisionIdGenerator();
  const { maxConcurrency, maxQueue, shedExpired } = cfg.limits;

  const counters = { served: 0, allowed: 0, denied: 0, aborted: 0, dropped: 0, errors: 0, reconnects: 0 };
  let lastError: CalloutStatus["lastError"];
  let state: ConnectionState = "connecting";
  /** Whether the service is past serving (state is mutated from callbacks; a function defeats narrowing). */
  const ending = (): boolean => state === "draining" || state === "closed";
  type Job = { msg: Msg; id: string; receivedAt: Date; t0: number };
  /** The server's auth timeout as last seen on a decoded request (ms): the deadline of a sealed request. */
  let authTimeoutMs: number | undefined;
  let idle: (() => void) | undefined;
  const startedAt = new Date();

  // Whoever resolves the config logs its warnings, once: a caller passing a ResolvedConfig has done so.
  if (cfg !== options.config) for (const w of cfg.warnings) log.warn({ warning: w }, "config warning");

  const setState = (next: ConnectionState, server?: string): void => {
    if (next === state) return;
    const change: StatusChange = { state: next, previous: state, at: new Date() };
    if (server !== undefined) change.server = server;
    state = next;
    const level = next === "connected" ? "info" : "warn";
    log[level]({ state: next, previous: change.previous, server }, "nats connection state");
    try {
      options.onStatus?.(change);
    } catch (err) {
      log.error({ error_type: errorType(err) }, "onStatus hook threw");
    }
  };

  const emit = (ev: ResultEvent): void => {
    counters.served++;
    const o = ev.outcome;
    if (o.kind === "allow") counters.allowed++;
    else if (o.kind === "deny") counters.denied++;
    else counters.aborted++;
    if (ev.dropped) counters.dropped++;
    if (ev.error !== undefined) counters.errors++;
    if (o.kind !== "allow") {
      lastError = { code: o.code, decisionId: ev.decisionId, at: new Date() };
      // One line per failure, with its code; handler denials/aborts are routine (info), the rest warn.
      const routine = o.code === "auth_denied" || o.code === "auth_aborted";
      const shed = ev.dropped === "shed_expired" || ev.dropped === "shed_overflow";
      const fields: Record<string, unknown> = { decision_id: ev.decisionId, outcome: o.kind, code: o.code };
      if (ev.dropped) fields.dropped = ev.dropped;
      if (o !== ev.result.outcome) fields.decided = ev.result.outcome.kind;
      if (!routine) fields.reason = o.reason;
      if (ev.error !== undefined) fields.error_type = errorType(ev.error);
      const msg =
        o.code === "reply_failed"
          ? "reply failed"
          : o.code === "reply_late"
            ? "reply late"
            : o.kind === "deny"
              ? "authorization denied"
              : "authorization aborted";
      // Shed requests come in thousands during a storm: one debug line each, a rate-limited warn summary.
      log[shed ? "debug" : routine ? "info" : "warn"](fields, msg);
    } else {
      log.debug({ decision_id: ev.decisionId, account: o.grant.account }, "authorization allowed");
    }
    topology.observe(ev.result);
    try {
      options.onResult?.(ev);
    } catch (err) {
      log.error({ decision_id: ev.decisionId, error_type: errorType(err) }, "onResult hook threw");
    }
  };

  const checkIdle = (): void => {
    if (queue.inFlight === 0 && queue.length === 0 && idle) {
      const f = idle;
      idle = undefined;
      f();
    }
  };

  const run = async (msg: Msg, id: string, receivedAt: Date, t0: number): Promise<void> => {
    const queue_us = Math.round((performance.now() - t0) * 1000);
    let result: AuthResult | undefined;
    let reply: ReplyStatus = "none";
    let reply_us: number | undefined;
    let error: unknown;
    try {
      result = await authorize(msg.data, msg.headers?.get(XKEY_HEADER) || undefined, id, { receivedAt: t0 });
      if (result.replyBy !== undefined) authTimeoutMs = result.replyBy - t0;
      if (result.reply) {
        const ts = performance.now();
        const r = await replier.send(msg.reply!, result.reply, result.replyBy);
        reply_us = Math.round((performance.now() - ts) * 1000);
        reply = r.fate;
        if (r.error !== undefined) error = r.error;
        else if (r.fate === "late") error = new CalloutError("reply_late", "reply not confirmed in time");
      }
    } catch (err) {
      error = err;
    } finally {
      if (!result) {
        result = syntheticAbort(
          id,
          "handler_error",
          "unexpected fault",
          new CalloutError("handler_error", "unexpected fault", { cause: error }),
        );
      }
      emit({
        decisionId: id,
        receivedAt,
        queue_us,
        result,
        outcome: deliveredOutcome(result.outcome, reply, error),
        reply,
        ...(reply_us !== undefined ? { reply_us } : {}),
        replied: reply === "sent",
        ...(error !== undefined ? { error } : {}),
      });
    }
  };

  const DROPS: Record<DropReason, { code: ErrorCode; text: string }> = {
    queue_full: { code: "overloaded", text: "queue full" },
    shed_overflow: { code: "overloaded", text: "shed from a full queue (oldest first)" },
    shed_expired: { code: "request_expired", text: "shed from the queue: the server's auth timeout passed" },
    no_reply_subject: { code: "request_decode_error", text: "no reply subject" },
    stopping: { code: "service_stopping", text: "service stopped before deciding it" },
  };
  /** `t0`: when it arrived (performance.now()), for requests that waited in the queue. */
  const drop = (id: string, receivedAt: Date, reason: DropReason, t0?: number): void => {
    const { code, text } = DROPS[reason];
    const result = syntheticAbort(id, code, text, new CalloutError(code, text));
    emit({
      decisionId: id,
      receivedAt,
      queue_us: t0 === undefined ? 0 : Math.round((performance.now() - t0) * 1000),
      result,
      outcome: result.outcome,
      reply: "none",
      dropped: reason,
      replied: false,
    });
  };

  const shedLog = shedReporter((counts, first) =>
    log.warn(
      { ...counts, queued: queue.length, in_flight: queue.inFlight, margin_ms: Math.round(queue.marginMs) },
      first ? "shedding queued requests that cannot be answered in time" : "shed queued requests",
    ),
  );
  /** When the server gives up on a job (performance.now() ms): the request's own iat/exp, else the last seen timeout. */
  const deadline = (job: Job): number | undefined => {
    const times = peekRequestTimes(job.msg.data, cfg.limits.maxRequestBytes);
    if (times) return replyDeadline(times, job.t0);
    return authTimeoutMs === undefined ? undefined : job.t0 + authTimeoutMs;
  };
  const queue = createQueue<Job>({
    maxConcurrency,
    maxQueue,
    run: (job) => run(job.msg, job.id, job.receivedAt, job.t0),
    onShed: (job, reason) => {
      shedLog.shed(reason);
      drop(job.id, job.receivedAt, reason, job.t0);
    },
    ...(shedExpired ? { deadline } : {}),
  });
  queue.onSettled = checkIdle;

  const onMessage = (err: Error | null, msg: Msg): void => {
    const receivedAt = new Date();
    const t0 = performance.now();
    const id = nextId();
    if (err) {
      // Subscription-level error (e.g. permissions): not a request.
      log.error({ error_type: errorType(err), message: err.message }, "subscription error");
      return;
    }
    if (!msg.reply) return drop(id, receivedAt, "no_reply_subject");
    // While stopping, too: the server delivers requests until it has processed the unsubscribe, and each
    // one it delivered here went to no other replica.
    if (!queue.push({ msg, id, receivedAt, t0 })) drop(id, receivedAt, "queue_full");
  };

  // ---- connect and subscribe ----
  const natsOptions = connectionOptions(cfg, {
    ...(options.reconnectTimeWaitMs !== undefined
      ? { reconnectTimeWaitMs: options.reconnectTimeWaitMs }
      : {}),
    ...(options.waitOnFirstConnect !== undefined ? { waitOnFirstConnect: options.waitOnFirstConnect } : {}),
  });
  // Without a nonce no client nkey can be proven (derived.nkey never appears): say so once.
  const checkNonce = noNonceReporter(() =>
    log.warn(
      { code: "no_nonce" },
      "nats-server sends no nonce: client nkeys cannot be proven (config mode needs one nkey user; see docs/operations.md)",
    ),
  );
  natsOptions.authenticator = nonceObserver(natsOptions.authenticator, checkNonce) as Authenticator[];
  try {
    nc = await connect(natsOptions);
  } catch (err) {
    log.error({ error_type: errorType(err), message: (err as Error).message }, "cannot connect to nats");
    throw err;
  }
  const conn = nc;
  // Status first: a refused reply is reported here, and replies start as soon as the subscription does.
  void (async () => {
    for await (const s of conn.status() as AsyncIterable<Status>) {
      replier.onStatus(s);
      switch (s.type) {
        case "disconnect":
        case "reconnecting":
          if (!ending()) setState("reconnecting");
          break;
        case "reconnect":
          counters.reconnects++;
          if (!ending()) setState("connected", s.server);
          break;
        case "error":
          log.warn({ error_type: errorType(s.error), message: s.error?.message }, "nats async error");
          break;
        case "ldm":
          log.warn({ server: s.server }, "server entering lame duck mode");
          break;
        default:
          break;
      }
    }
  })().catch(() => {});

  const sub: Subscription = conn.subscribe(cfg.nats.subject, {
    queue: cfg.nats.queueGroup,
    callback: onMessage,
  });
  await conn.flush();
  setState("connected", conn.getServer());

  const closedP: Promise<void> = conn.closed().then((err) => {
    if (err)
      log.error({ error_type: errorType(err), message: err.message }, "nats connection closed with error");
    setState("closed");
  });

  let stopP: Promise<void> | undefined;
  const stop = (opts: { timeoutMs?: number } = {}): Promise<void> => {
    stopP ??= (async () => {
      if (!ending()) setState("draining");
      // One deadline for the whole shutdown: draining needs the server, which may be gone.
      const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
      const done = new Promise<void>((resolve) => {
        idle = resolve;
      });
      // Unsubscribe and wait until the server confirms it: every request it delivered before is queued by then.
      let inTime = true;
      if (!conn.isClosed()) inTime = await withDeadline(sub.drain(), deadline);
      checkIdle();
      inTime = (await withDeadline(done, deadline)) && inTime;
      if (!inTime) {
        log.warn({ in_flight: queue.inFlight, queued: queue.length }, "stop timed out; closing anyway");
        for (const job of queue.clear()) drop(job.id, job.receivedAt, "stopping");
      }
      shedLog.flush();
      // nc.drain() rejects at once while disconnected; whatever happened, make sure the connection closes.
      if (!conn.isClosed()) await withDeadline(conn.drain(), deadline);
      if (!conn.isClosed()) await conn.close().catch(() => {});
      await closedP;
    })();
    return stopP;
  };
  const service: CalloutService = {
    connection: conn,
    config: cfg,
    status: () => {
      const s: CalloutStatus = {
        connection: state,
        inFlight: queue.inFlight,
        queued: queue.length,
        ...counters,
        startedAt,
        subject: cfg.nats.subject,
        queueGroup: cfg.nats.queueGroup,
      };
      if (lastError) s.lastError = lastError;
      return s;
    },
    stop,
    closed: () => closedP,
    [Symbol.asyncDispose]: () => stop(),
  };
  log.info(
    {
      subject: cfg.nats.subject,
      queue_group: cfg.nats.queueGroup,
      mode: cfg.mode,
      accounts: cfg.accounts.map((a) => a.name),
    },
    "serving auth callout",
  );
  return service;
}

/**
 * The one-call library entry point: resolve `config`, connect and serve `handler`.
 * `const svc = await callout((req) => ({ account: "APP", pub: { allow: ["x.>"] } }), config)`.
 */
export function callout(
  handler: Handler,
  config: ResolvedConfig | ServiceConfig,
  opts: Omit<StartCalloutOptions, "handler" | "config"> = {},
): Promise<CalloutService> {
  return startCallout({ ...opts, handler, config });
}
