/**
 * `nats-opa-callout serve`: argv, environment, config file and signals around the runtime (src/runtime.ts).
 * Config file → env → flags → resolveConfig (every problem at once, before connecting, exit 2) → startRuntime
 * (policy fails to load: exit 3; NATS cannot start: exit 1) → wait for SIGTERM/SIGINT and drain (exit 0; a second
 * signal exits 1 at once; the connection closing for good exits 1); SIGHUP reopens the decision-log file and
 * reloads the policy.
 */
import { parseArgs } from "node:util";
import { pino } from "pino";
import { loadServeConfig } from "../config/load.js";
export { loadServeConfig, readConfigFile } from "../config/load.js";
import { ConfigError, PolicyLoadError } from "../errors.js";
import { createLogger, type Logger } from "../log.js";
import { RuntimeStartError, startRuntime, type Runtime } from "../runtime.js";
import { EXIT, EXIT_CODES_HELP, UsageError, asUsage, err } from "./common.js";
import { ENV_OVERRIDES, FLAG_OVERRIDES } from "./flags.js";

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

export async function serveCommand(argv: string[]): Promise<number> {
  const flags = parseServeFlags(argv);
  if (flags === "help") {
    process.stdout.write(SERVE_HELP);
    return EXIT.OK;
  }
  // 1. Config: every problem at once, before anything starts.
  const cfg = loadServeConfig(flags, process.env);
  if (!cfg.policy)
    throw new ConfigError([{ field: "policy.dir", message: "required: policy.dir or policy.bundle" }]);

  // 2. SIGHUP (logrotate's postrotate, "reload now"): reopen the decision-log file, then reload the policy.
  //    Registered before anything slow, so a SIGHUP never kills the process; one at a time. One that arrives
  //    while the runtime starts is handled once it serves.
  const destination = pino.destination({ dest: 1, sync: false });
  const logger: Logger = createLogger({ level: cfg.log.level, format: cfg.log.format, destination });
  let runtime: Runtime | undefined;
  let pendingHangup = false;
  const hangup = async (): Promise<void> => {
    if (!runtime) {
      pendingHangup = true;
      logger.info({}, "policy not loaded yet: nothing to reload");
      return;
    }
    if (runtime.status().phase !== "serving") return; // stopping: nothing left to reopen
    logger.info({ signal: "SIGHUP" }, "reopening log files and reloading the policy");
    runtime.reopenLogs();
    const out = await runtime.reload();
    if (out) logger.info({ result: out.result, revision: out.revision }, "policy reload on SIGHUP");
  };
  let hangups = Promise.resolve();
  const onHangup = () => {
    hangups = hangups.then(hangup).catch((e: unknown) => {
      logger.error({ error_type: e instanceof Error ? e.name : typeof e }, "SIGHUP handling failed");
    });
  };
  process.on("SIGHUP", onHangup);

  // 3. The stack (src/runtime.ts): metrics, decision log, HTTP, policy (fail fast, exit 3), NATS (exit 1).
  try {
    runtime = await startRuntime(cfg, { destination, logger });
  } catch (e) {
    if (e instanceof PolicyLoadError) {
      err(`policy error: ${e.message}`);
      return EXIT.POLICY;
    }
    if (e instanceof RuntimeStartError) {
      err(`error: ${e.message}`);
      return EXIT.RUNTIME;
    }
    throw e;
  }
  const rt = runtime;
  if (pendingHangup) onHangup();

  // 4. Wait for a signal or the connection's end.
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
      logger.info({ signal: sig }, "draining");
      await rt.stop({ drainTimeoutMs: flags.drainTimeoutMs }).catch(() => {});
      resolveExit(EXIT.OK);
    };
    process.on("SIGTERM", () => void shutdown("SIGTERM"));
    process.on("SIGINT", () => void shutdown("SIGINT"));
    void rt.closed().then((how) => {
      if (how === "nats_closed") resolveExit(EXIT.RUNTIME);
    });
  });
}
