/**
 * `nats-opa-callout serve`: config file → env → flags → resolveConfig (every problem at once, before
 * connecting) → logger, metrics, decision log, HTTP → policy (fail fast, exit 3) → NATS service → wait for
 * SIGTERM/SIGINT and drain; SIGHUP reloads the policy and reopens the decision-log file.
 */
import { parseArgs } from "node:util";
import { pino } from "pino";
import { CRYPTO_BACKEND, cryptoFallbackReason } from "../callout/crypto-backend.js";
import type { ResolvedConfig } from "../config.js";
import { listenErrorText } from "../config/listen.js";
import { loadServeConfig } from "../config/load.js";
export { loadServeConfig, readConfigFile } from "../config/load.js";
import { ConfigError, PolicyLoadError } from "../errors.js";
import { createLogger, type Logger } from "../log.js";
import { createDecisionLog, type DecisionLog } from "../audit.js";
import { CalloutMetrics } from "../metrics.js";
import { startHttpServer, type HttpServer, type Readiness } from "../http.js";
import { startCallout, type CalloutService, type ResultEvent } from "../service.js";
import { startLiveRevocation, type LiveRevocationHandle } from "../live/index.js";
import { EXIT, EXIT_CODES_HELP, UsageError, asUsage, err, packageVersion } from "./common.js";
import { ENV_OVERRIDES, FLAG_OVERRIDES } from "./flags.js";
import { openPolicy, type PolicyHandle } from "./policy.js";
import { startPolicySource, type PolicySourceHandle } from "../policy/sources/index.js";
import { decisionRecordFromResult, observeResult } from "./result.js";
import { ReopenableFile } from "./logfile.js";

export const SERVE_HELP = `Usage: nats-opa-callout serve [--config <file>] [options]

Run the auth callout service: subscribe to the authorization subject in a queue group, decide each
request with the policy, reply with a signed user JWT (allow) or a signed error (deny), or not at all
(abort). Configuration comes from the YAML file, then environment variables, then flags; all problems
are reported together, naming each field, before anything connects.

Options:
  --config <file>            service config (YAML); see docs/configuration.md
${FLAG_OVERRIDES.map((f) => `  --${(f.flag + " " + f.arg).padEnd(25)}${f.description}`).join("\n")}
  --drain-timeout <ms>       how long SIGTERM waits for in-flight requests (default: 10000)
  -h, --help                 show this help

Environment (NATS conventions, applied before flags):
${ENV_OVERRIDES.map((e) => `  ${e.name.padEnd(27)}${e.path}`).join("\n")}

Endpoints (metrics.listen): /metrics, /healthz, /readyz (200 only when connected and a policy is
loaded), /status.

Signals: SIGTERM/SIGINT drain (stop taking requests, finish every request already delivered, flush
logs, exit 0); a second signal exits at once with code 1. SIGHUP reloads the policy (when it changed)
and reopens the decision-log file (log rotation).

Examples:
  nats-opa-callout serve --config deploy/service.yaml
  NATS_URL=nats://10.0.0.5:4222 nats-opa-callout serve --config service.yaml --log-level debug
  nats-opa-callout serve --config service.yaml --bundle build/bundle.tar.gz --metrics-listen :9464

${EXIT_CODES_HELP}
`;

interface ServeFlags {
  config?: string;
  drainTimeoutMs: number;
  overrides: [string, string][];
}

function parseServeFlags(argv: string[]): ServeFlags | "help" {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    config: { type: "string", short: "c" },
    "drain-timeout": { type: "string" },
    help: { type: "boolean", short: "h" },
  };
  for (const f of FLAG_OVERRIDES) options[f.flag] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, allowPositionals: false, strict: true }));
  } catch (e) {
    asUsage(e);
  }
  if (values.help) return "help";
  const drain = values["drain-timeout"] as string | undefined;
  const drainTimeoutMs = drain === undefined ? 10_000 : Number(drain);
  if (!Number.isInteger(drainTimeoutMs) || drainTimeoutMs < 0) {
    throw new UsageError(`--drain-timeout must be a non-negative integer (ms), got "${drain}"`);
  }
  const overrides: [string, string][] = [];
  for (const f of FLAG_OVERRIDES) {
    const v = values[f.flag];
    if (typeof v === "string") overrides.push([f.flag, v]);
  }
  const out: ServeFlags = { drainTimeoutMs, overrides };
  if (typeof values.config === "string") out.config = values.config;
  return out;
}

function openDecisionSink(
  cfg: ResolvedConfig,
  stdout: ReturnType<typeof pino.destination>,
  onError: (e: NodeJS.ErrnoException) => void,
): { sink?: (line: string) => void; file?: ReopenableFile } {
  const d = cfg.decisionLog;
  if (d.kind === "off") return {};
  // Same buffered stream as the logger, so a decision line can never interleave with a log line.
  if (d.kind === "stdout") return { sink: (line) => void stdout.write(line) };
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

export async function serveCommand(argv: string[]): Promise<number> {
  const flags = parseServeFlags(argv);
  if (flags === "help") {
    process.stdout.write(SERVE_HELP);
    return EXIT.OK;
  }
  // 1. Config: every problem at once, before anything starts.
  const cfg = loadServeConfig(flags, process.env);
  const policyCfg = cfg.policy;
  if (!policyCfg)
    throw new ConfigError([{ field: "policy.dir", message: "required: policy.dir or policy.bundle" }]);

  const stdout = pino.destination({ dest: 1, sync: false });
  const logger: Logger = createLogger({ level: cfg.log.level, format: cfg.log.format, destination: stdout });
  for (const w of cfg.warnings) logger.warn({ warning: w }, "config warning");
  logger.info(
    {
      version: packageVersion(),
      node: process.versions.node,
      mode: cfg.mode,
      pid: process.pid,
      crypto: CRYPTO_BACKEND,
      ...(cryptoFallbackReason !== undefined ? { crypto_fallback: cryptoFallbackReason } : {}),
    },
    "starting nats-opa-callout",
  );

  // 2. Metrics, decision log, HTTP (up before the policy loads, so /readyz can say why it is not ready).
  const metrics = new CalloutMetrics({
    version: packageVersion(),
    accounts: cfg.accounts.map((a) => a.name),
  });
  const { sink, file: decisionFile } = openDecisionSink(cfg, stdout, (e) => {
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
  let phase: "starting" | "serving" | "stopping" = "starting";
  const readiness = (): Readiness => {
    const reasons: string[] = [];
    const conn = service?.status().connection ?? "connecting";
    if (conn !== "connected") reasons.push(`nats: ${conn}`);
    const ps = policy?.status();
    if (!ps?.ready) reasons.push("policy: not loaded");
    if (phase === "stopping") reasons.push("stopping");
    const r: Readiness = { ready: reasons.length === 0, reasons, nats: conn };
    if (ps?.revision) r.revision = ps.revision;
    return r;
  };
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
      http = await startHttpServer({
        listen,
        metrics: () => metrics.render(),
        readiness,
        status: () => ({
          version: packageVersion(),
          crypto: CRYPTO_BACKEND,
          phase,
          policy: policy?.status() ?? null,
          ...(source !== undefined ? { policy_source: source.status() } : {}),
          service: service?.status() ?? null,
          ...(live ? { revocation: live.status() } : {}),
        }),
      });
    } catch (e) {
      await decisionFile?.end();
      throw new ConfigError([
        {
          field: "metrics.listen",
          message: `cannot listen on ${listen}: ${listenErrorText(e)}`,
        },
      ]);
    }
    logger.info({ address: http.address }, "metrics and health listening");
  }

  // SIGHUP (logrotate's postrotate, "reload now"): reopen the decision-log file, then reload the policy if it
  // changed. Registered before anything slow, so a SIGHUP never kills the process; one at a time.
  let closing = false;
  const hangup = async (): Promise<void> => {
    if (closing) return;
    logger.info({ signal: "SIGHUP" }, "reopening log files and reloading the policy");
    if (decisionFile) {
      try {
        decisionFile.reopen();
        logger.info({ path: decisionFile.path }, "decision log reopened");
      } catch (e) {
        logger.error(
          { path: decisionFile.path, code: (e as NodeJS.ErrnoException).code ?? "error" },
          "cannot reopen the decision log; still writing to the previous file",
        );
      }
    }
    if (!policy) {
      logger.info({}, "policy not loaded yet: nothing to reload");
      return;
    }
    // Failures are logged by the policy engine (file:line) and keep the last good revision.
    const out = await policy.engine.watcher.reload(true);
    logger.info({ result: out.result, revision: out.revision }, "policy reload on SIGHUP");
  };
  let hangups = Promise.resolve();
  process.on("SIGHUP", () => {
    hangups = hangups.then(hangup).catch((e: unknown) => {
      logger.error({ error_type: e instanceof Error ? e.name : typeof e }, "SIGHUP handling failed");
    });
  });

  const closeAll = async () => {
    closing = true;
    await live?.close().catch(() => {});
    await source?.stop().catch(() => {});
    await policy?.close().catch(() => {});
    await http?.close().catch(() => {});
    await decisionFile?.end();
    await new Promise<void>((r) => stdout.flush(() => r()));
  };

  // 3. Policy: fail fast (exit 3) when the first load fails; later failures keep the last good revision.
  //    A remote source (policy.source) first brings policy.bundle up to date (or keeps the last good copy).
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
      err(`policy error: ${e.message}`);
      return EXIT.POLICY;
    }
    throw e;
  }

  // 4. NATS.
  const onResult = (ev: ResultEvent) => {
    live?.onResult(ev);
    observeResult(metrics, ev, policyCfg.entrypoint);
    const rec = decisionRecordFromResult(ev, policyCfg.entrypoint);
    decisionLog.record(rec);
    if (cfg.decisionLog.kind !== "stdout") {
      // Keep a one-line, secret-free summary in the service log when the full events go elsewhere.
      logger.info(
        {
          decision_id: rec.decisionId,
          outcome: rec.outcome,
          ...(rec.code && rec.outcome !== "allow" ? { code: rec.code } : {}),
          ...(rec.decided ? { decided: rec.decided.outcome } : {}),
          ...(rec.reason ? { reason: rec.reason } : {}),
          ...(rec.issued?.account ? { account: rec.issued.account } : {}),
          ...(rec.issued?.name ? { user: rec.issued.name } : {}),
          ...(rec.revision ? { revision: rec.revision } : {}),
          us: rec.timings?.total_us,
        },
        "decision",
      );
    }
  };
  try {
    service = await startCallout({
      config: cfg,
      handler: policy.handler,
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
    err(`error: cannot connect to NATS (${(e as Error)?.message ?? String(e)})`);
    return EXIT.RUNTIME;
  }
  phase = "serving";

  // 5. Wait for a signal or the connection's end.
  return await new Promise<number>((resolveExit) => {
    let signals = 0;
    const shutdown = async (sig: string) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal: sig }, "second signal: exiting now");
        resolveExit(EXIT.RUNTIME);
        setImmediate(() => process.exit(EXIT.RUNTIME));
        return;
      }
      phase = "stopping";
      logger.info({ signal: sig }, "draining");
      try {
        await service?.stop({ timeoutMs: flags.drainTimeoutMs });
      } finally {
        await closeAll();
        logger.info({}, "stopped");
        resolveExit(EXIT.OK);
      }
    };
    process.on("SIGTERM", () => void shutdown("SIGTERM"));
    process.on("SIGINT", () => void shutdown("SIGINT"));
    void service!.closed().then(async () => {
      if (phase !== "stopping") {
        logger.fatal({}, "nats connection closed for good");
        await closeAll();
        resolveExit(EXIT.RUNTIME);
      }
    });
  });
}
