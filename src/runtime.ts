/**
 * The composition root: from one ResolvedConfig, the whole service stack `serve` runs, startable in-process by a
 * library user with the same behaviour.
 *
 *   logger → metrics (prom-client) → decision log (stdout or a reopenable file) → HTTP (/metrics /healthz /readyz
 *   /status; up before the policy, so /readyz can say why it is not ready) → policy source (policy.source) →
 *   policy engine (watching; hot reload) → live revocation (revocation.*) → NATS callout service (queue group,
 *   topology watch) whose per-request results feed the decision log, the metrics and live revocation.
 *
 * startRuntime resolves once requests are being served. It fails, after closing whatever it had started, with
 * ConfigError (decision-log file or metrics address unusable), PolicyLoadError (no valid policy at start; logged
 * fatal) or RuntimeStartError (NATS could not be started; logged fatal, the cause attached).
 *
 * What stays with the CLI (src/cli/serve.ts): argv, environment, the config file, signals and exit codes.
 */
import { pino } from "pino";
import { CRYPTO_BACKEND, cryptoFallbackReason } from "./callout/crypto-backend.js";
import type { ResolvedConfig } from "./config.js";
import { listenErrorText } from "./config/listen.js";
import { ConfigError, PolicyLoadError } from "./errors.js";
import { createLogger, type Logger } from "./log.js";
import { createDecisionLog, type DecisionLog, type DecisionRecord } from "./audit.js";
import { decisionRecordFromResult, observeResult } from "./decision-record.js";
import { ReopenableFile } from "./logfile.js";
import { CalloutMetrics } from "./metrics.js";
import { startHttpServer, type HttpServer, type Readiness } from "./http.js";
import { startCallout, type CalloutService, type CalloutStatus, type ResultEvent } from "./service.js";
import { startLiveRevocation, type LiveRevocationHandle } from "./live/index.js";
import { openPolicy, type PolicyHandle } from "./policy/open.js";
import type { PolicyStatus } from "./policy/store.js";
import { startPolicySource, type PolicySourceHandle } from "./policy/sources/index.js";
import type { ReloadOutcome } from "./policy/watcher.js";
import { packageVersion } from "./version.js";

/** Anything pino can write to (a pino.destination, a file stream, a test's capture). */
export type LogDestination = Parameters<typeof pino>[1];

export interface RuntimeOptions {
  /**
   * Where the service log goes, and `decision_log.destination: stdout` lines with it (one buffered stream, so a
   * decision line never interleaves with a log line). Default: an asynchronous stdout (fd 1). Ignored for the
   * service log when `logger` is given.
   */
  destination?: LogDestination;
  /** Use this logger instead of one built from `log.*` of the config. */
  logger?: Logger;
  /** Called once per request after the decision log and metrics saw it. Must not throw. */
  onResult?: (ev: ResultEvent) => void;
}

/** What /status shows (and Runtime.status() returns). */
export interface RuntimeStatus {
  version: string;
  crypto: string;
  phase: "starting" | "serving" | "stopping" | "stopped";
  policy: PolicyStatus | null;
  policy_source?: ReturnType<PolicySourceHandle["status"]>;
  service: CalloutStatus | null;
  revocation?: ReturnType<LiveRevocationHandle["status"]>;
  [key: string]: unknown;
}

export interface Runtime {
  readonly logger: Logger;
  readonly config: ResolvedConfig;
  /** The policy engine (handler, store, watcher, decision-log mask). */
  readonly policy: PolicyHandle;
  /** The NATS callout service. */
  readonly service: CalloutService;
  readonly metrics: CalloutMetrics;
  /** The bound metrics/health address ("127.0.0.1:9464"), when `metrics.listen` is set. */
  readonly httpAddress: string | undefined;
  /** Reload the policy now when its files changed (SIGHUP). Failures are logged and keep the last good revision. */
  reload(): Promise<ReloadOutcome | undefined>;
  /** Reopen the decision-log file at its path (log rotation). No-op unless the decision log is a file. */
  reopenLogs(): void;
  /** Readiness as /readyz answers it. */
  readiness(): Readiness;
  status(): RuntimeStatus;
  /**
   * Drain: stop taking requests, finish every request already delivered (up to drainTimeoutMs, default 10 000),
   * then close live revocation, the policy source and engine, HTTP and the decision log, and flush the log.
   * Idempotent.
   */
  stop(opts?: { drainTimeoutMs?: number }): Promise<void>;
  /**
   * Resolves when the runtime ended: "stopped" after stop(), "nats_closed" when the NATS connection closed for
   * good on its own (logged fatal; everything else is closed by then).
   */
  closed(): Promise<"stopped" | "nats_closed">;
}

/** NATS could not be started (connect, subscribe): `cause` says why. */
export class RuntimeStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RuntimeStartError";
  }
}

export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

function openDecisionSink(
  cfg: ResolvedConfig,
  stdout: (line: string) => void,
  onError: (e: NodeJS.ErrnoException) => void,
): { sink?: (line: string) => void; file?: ReopenableFile } {
  const d = cfg.decisionLog;
  if (d.kind === "off") return {};
  if (d.kind === "stdout") return { sink: stdout };
  // Open synchronously so an unwritable path is a config error at start, not a crash later.
  let file: ReopenableFile;
  try {
    file = new ReopenableFile(d.path, onError);
  } catch (e) {
    throw new ConfigError([
      {
        field: "decision_log.destination",
        message: `cannot open ${d.path} for appending: ${(e as NodeJS.ErrnoException).code ?? "error"}`,
      },
    ]);
  }
  return { sink: (line) => file.write(line), file };
}

/** Flush a pino destination when it can be flushed (a SonicBoom); other streams are left alone. */
function flushDestination(d: LogDestination): Promise<void> {
  const f = (d as { flush?: (cb?: (err?: Error) => void) => void } | undefined)?.flush;
  if (typeof f !== "function") return Promise.resolve();
  return new Promise<void>((resolve) => {
    try {
      f.call(d, () => resolve());
    } catch {
      resolve();
    }
  });
}

/**
 * The service log's one-line, secret-free summary of a request whose full event goes elsewhere (a file) or nowhere
 * (`off`). Denials, aborts and faults are logged at info: they are what an operator watches for. Allows are logged at
 * debug when the decision log is a file, which holds each of them in full: at thousands of logins per second an info
 * line each would double what is written per login (and about half the cost of the decision log itself). With the
 * decision log off, the summary is the only record of a request, so every one is logged at info.
 */
function logSummary(logger: Logger, rec: DecisionRecord, fileHasIt: boolean): void {
  const level = rec.outcome === "allow" && fileHasIt ? "debug" : "info";
  const enabled = (logger as { isLevelEnabled?: (l: string) => boolean }).isLevelEnabled;
  if (enabled !== undefined && !enabled.call(logger, level)) return;
  const line: Record<string, unknown> = { decision_id: rec.decisionId, outcome: rec.outcome };
  if (rec.code && rec.outcome !== "allow") line.code = rec.code;
  if (rec.decided) line.decided = rec.decided.outcome;
  if (rec.reason) line.reason = rec.reason;
  if (rec.issued?.account) line.account = rec.issued.account;
  if (rec.issued?.name) line.user = rec.issued.name;
  if (rec.revision) line.revision = rec.revision;
  line.us = rec.timings?.total_us;
  logger[level](line, "decision");
}

/** Start the whole service from a resolved config (see the module header). */
export async function startRuntime(cfg: ResolvedConfig, opts: RuntimeOptions = {}): Promise<Runtime> {
  const policyCfg = cfg.policy;
  if (!policyCfg)
    throw new ConfigError([{ field: "policy.dir", message: "required: policy.dir or policy.bundle" }]);
  const version = packageVersion();

  const destination: LogDestination = opts.destination ?? pino.destination({ dest: 1, sync: false });
  const logger: Logger =
    opts.logger ?? createLogger({ level: cfg.log.level, format: cfg.log.format, destination });
  for (const w of cfg.warnings) logger.warn({ warning: w }, "config warning");
  logger.info(
    {
      version,
      node: process.versions.node,
      mode: cfg.mode,
      pid: process.pid,
      crypto: CRYPTO_BACKEND,
      ...(cryptoFallbackReason !== undefined ? { crypto_fallback: cryptoFallbackReason } : {}),
    },
    "starting nats-opa-callout",
  );

  // Metrics, decision log, HTTP: up before the policy loads, so /readyz can say why it is not ready.
  const metrics = new CalloutMetrics({ version, accounts: cfg.accounts.map((a) => a.name) });
  const writeStdout = (line: string): void => {
    (destination as { write(s: string): unknown }).write(line);
  };
  const { sink, file: decisionFile } = openDecisionSink(cfg, writeStdout, (e) => {
    metrics.decisionLogDropped.inc({ reason: "write_error" });
    logger.error({ code: e.code ?? "write_error" }, "decision log write failed");
  });
  const decisionLog: DecisionLog = createDecisionLog({
    sink,
    onDrop: (reason) => metrics.decisionLogDropped.inc({ reason }),
  });
  let service: CalloutService | undefined;
  let policy: PolicyHandle | undefined;
  let source: PolicySourceHandle | undefined;
  let live: LiveRevocationHandle | undefined; // revocation.*: re-decides live connections on a new revision
  let phase: RuntimeStatus["phase"] = "starting";
  const readiness = (): Readiness => {
    const reasons: string[] = [];
    const conn = service?.status().connection ?? "connecting";
    if (conn !== "connected") reasons.push(`nats: ${conn}`);
    const ps = policy?.status();
    if (!ps?.ready) reasons.push("policy: not loaded");
    if (phase === "stopping" || phase === "stopped") reasons.push("stopping");
    const r: Readiness = { ready: reasons.length === 0, reasons, nats: conn };
    if (ps?.revision) r.revision = ps.revision;
    return r;
  };
  const status = (): RuntimeStatus => ({
    version,
    crypto: CRYPTO_BACKEND,
    phase,
    policy: policy?.status() ?? null,
    ...(source !== undefined ? { policy_source: source.status() } : {}),
    service: service?.status() ?? null,
    ...(live ? { revocation: live.status() } : {}),
  });
  metrics.bindState({
    connected: () => service?.status().connection === "connected",
    inFlight: () => service?.status().inFlight ?? 0,
    queueDepth: () => service?.status().queued ?? 0,
    wasmMemoryBytes: () => policy?.status().memoryBytes,
    policySource: () => source?.status(),
  });
  let http: HttpServer | undefined;
  if (cfg.metrics.listen) {
    const l = cfg.metrics.listen;
    const listen = l.host.includes(":") ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
    try {
      http = await startHttpServer({ listen, metrics: () => metrics.render(), readiness, status });
    } catch (e) {
      await decisionFile?.end();
      throw new ConfigError([
        { field: "metrics.listen", message: `cannot listen on ${listen}: ${listenErrorText(e)}` },
      ]);
    }
    logger.info({ address: http.address }, "metrics and health listening");
  }

  let closing: Promise<void> | undefined; // once: stop() after the connection ended closes nothing twice
  const closeAll = (): Promise<void> =>
    (closing ??= (async () => {
      await live?.close().catch(() => {});
      await source?.stop().catch(() => {});
      await policy?.close().catch(() => {});
      await http?.close().catch(() => {});
      await decisionFile?.end();
    })());
  const flushLog = () => flushDestination(destination);

  // Policy: the first load must succeed; later failures keep the last good revision. A remote source
  // (policy.source) first brings policy.bundle up to date (or keeps the last good copy).
  try {
    source = await startPolicySource(policyCfg, cfg.nats, logger);
    const open = () =>
      openPolicy(policyCfg, {
        logger, // createPolicyEngine logs every reload (info on success, error with file:line on failure)
        onReload: (ev) => {
          metrics.observeReload(ev.ok, ev.revision, ev.at);
          live?.onReload(ev.ok, ev.revision);
          if (ev.ok && ev.revision !== undefined) void source?.rememberActivated(ev.revision);
        },
      });
    try {
      policy = await open();
    } catch (e) {
      // A downloaded bundle that passed its signature check may still fail to load: serve the last activated copy.
      if (!(e instanceof PolicyLoadError) || !(await source?.restoreLastGood())) throw e;
      logger.warn(
        { code: e.code, error: e.message },
        "policy.bundle failed to load; serving the last good copy kept from the previous activation",
      );
      policy = await open();
    }
    // policy.mask_entrypoint: evaluated per event on the deciding snapshot, after the built-in secret masks; a
    // failing mask drops the event's input (counted as decision_log_dropped{reason="mask_error"}).
    decisionLog.setMask(policy.mask);
    live = await startLiveRevocation(cfg, { handler: policy.handler, logger, registry: metrics.registry });
    if (policyCfg.maskEntrypoint !== undefined) {
      logger.info({ mask_entrypoint: policyCfg.maskEntrypoint }, "decision log masked by the policy");
    }
  } catch (e) {
    await closeAll();
    if (e instanceof PolicyLoadError) {
      logger.fatal({ code: e.code, error: e.message }, "policy failed to load at start");
    }
    await flushLog();
    throw e;
  }
  const activePolicy: PolicyHandle = policy;

  // NATS: every result feeds live revocation, the metrics and the decision log (what the client got).
  const onResult = (ev: ResultEvent) => {
    live?.onResult(ev);
    observeResult(metrics, ev, policyCfg.entrypoint);
    const rec = decisionRecordFromResult(ev, policyCfg.entrypoint);
    decisionLog.record(rec);
    if (cfg.decisionLog.kind !== "stdout") logSummary(logger, rec, cfg.decisionLog.kind === "file");
    opts.onResult?.(ev);
  };
  try {
    service = await startCallout({
      config: cfg,
      handler: activePolicy.handler,
      logger,
      onResult,
      onStatus: (s) => metrics.observeNatsEvent(s.state),
    });
  } catch (e) {
    logger.fatal(
      { error_type: e instanceof Error ? e.name : typeof e, message: (e as Error)?.message },
      "cannot start",
    );
    await closeAll();
    await flushLog();
    throw new RuntimeStartError(`cannot connect to NATS (${(e as Error)?.message ?? String(e)})`, {
      cause: e,
    });
  }
  const svc: CalloutService = service;
  phase = "serving";

  let stopping: Promise<void> | undefined;
  let ended: (how: "stopped" | "nats_closed") => void = () => {};
  const end = new Promise<"stopped" | "nats_closed">((resolve) => (ended = resolve));
  void svc.closed().then(async () => {
    if (stopping !== undefined) return;
    phase = "stopped";
    logger.fatal({}, "nats connection closed for good");
    await closeAll();
    await flushLog();
    ended("nats_closed");
  });

  const stop = (o: { drainTimeoutMs?: number } = {}): Promise<void> => {
    stopping ??= (async () => {
      phase = "stopping";
      try {
        await svc.stop({ timeoutMs: o.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS });
      } finally {
        await closeAll();
        phase = "stopped";
        logger.info({}, "stopped");
        await flushLog();
        ended("stopped");
      }
    })();
    return stopping;
  };

  return {
    logger,
    config: cfg,
    policy: activePolicy,
    service: svc,
    metrics,
    httpAddress: http?.address,
    async reload() {
      if (closing !== undefined) return undefined;
      // Forced (a tree that failed before is retried). Failures are logged by the policy engine (file:line) and
      // keep the last good revision.
      return await activePolicy.engine.watcher.reload(true);
    },
    reopenLogs() {
      if (closing !== undefined || !decisionFile) return;
      try {
        decisionFile.reopen();
        logger.info({ path: decisionFile.path }, "decision log reopened");
      } catch (e) {
        logger.error(
          { path: decisionFile.path, code: (e as NodeJS.ErrnoException).code ?? "error" },
          "cannot reopen the decision log; still writing to the previous file",
        );
      }
    },
    readiness,
    status,
    stop,
    closed: () => end,
  };
}
