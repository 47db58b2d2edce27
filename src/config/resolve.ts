/**
 * `resolveConfig()`: applies the defaults from CONFIG_FIELDS, checks every field and cross-field rule
 * section by section, reads key files and parses keys, and throws ONE `ConfigError` listing every problem
 * (each names its field path). Non-fatal findings come back in `warnings` for the caller to log once.
 */
import { dirname, resolve as resolvePath } from "node:path";
import { ConfigError } from "../errors.js";
import { parseListenAddress, type ListenAddress } from "./listen.js";
import { checkFile } from "./paths.js";
import { resolveIdentity } from "./resolve-accounts.js";
import { resolveNats } from "./resolve-nats.js";
import { resolvePolicy } from "./resolve-policy.js";
import { resolveRevocation } from "./resolve-revocation.js";
import { collect, configDefault } from "./schema.js";
import {
  isPlainObject,
  typeName,
  type DecisionLogDestination,
  type FieldReader,
  type LogFormat,
  type LogLevel,
  type Problems,
  type ResolveOptions,
  type ResolvedConfig,
} from "./types.js";

/**
 * Applies defaults, checks every field and cross-field rule, reads key files and parses keys.
 * Throws one ConfigError listing every problem (each names its field path).
 */
export function resolveConfig(input: unknown, options: ResolveOptions = {}): ResolvedConfig {
  const problems: Problems = [];
  const warnings: string[] = [];
  const baseDir = options.baseDir ?? process.cwd();
  if (!isPlainObject(input)) {
    throw new ConfigError([{ field: "(root)", message: `expected an object, got ${typeName(input)}` }]);
  }
  const values = collect(input, problems);
  const get = <T>(path: string): T => (values.has(path) ? values.get(path) : configDefault(path)) as T;
  const given = (path: string): boolean => values.has(path);
  const r: FieldReader = { values, get, given, baseDir, problems, warnings };

  const nats = resolveNats(r);
  const identity = resolveIdentity(r);

  // ---- expiry, limits ----
  const expiry = {
    defaultSeconds: get<number>("expiry.default_seconds"),
    maxSeconds: get<number>("expiry.max_seconds"),
    responseSeconds: get<number>("expiry.response_seconds"),
  };
  if (expiry.defaultSeconds > expiry.maxSeconds) {
    problems.push({
      field: "expiry.default_seconds",
      message: `must not exceed expiry.max_seconds (${expiry.maxSeconds})`,
    });
  }
  const limits = {
    maxConcurrency: get<number>("limits.max_concurrency"),
    maxQueue: get<number>("limits.max_queue"),
    shedExpired: get<boolean>("limits.shed_expired"),
    maxRequestBytes: get<number>("limits.max_request_bytes"),
  };

  const policy = resolvePolicy(r, options);
  const revocation = resolveRevocation(r, nats);

  // ---- log, decision log, metrics ----
  const log = { level: get<LogLevel>("log.level"), format: get<LogFormat>("log.format") };
  const dest = get<string>("decision_log.destination");
  let decisionLog: DecisionLogDestination;
  if (dest === "stdout") decisionLog = { kind: "stdout" };
  else if (dest === "off") decisionLog = { kind: "off" };
  else {
    const abs = resolvePath(baseDir, dest);
    checkFile(dirname(abs), "decision_log.destination", baseDir, problems, true);
    decisionLog = { kind: "file", path: abs };
  }
  let listen: ListenAddress | null = null;
  try {
    listen = parseListenAddress(get<string>("metrics.listen"));
  } catch (e) {
    problems.push({ field: "metrics.listen", message: (e as Error).message });
  }
  const metrics = { listen };

  if (problems.length > 0) throw new ConfigError(problems);

  const out: ResolvedConfig = {
    ...identity,
    nats,
    expiry,
    limits,
    log,
    decisionLog,
    metrics,
    warnings,
  };
  if (policy) out.policy = policy;
  if (revocation) out.revocation = revocation;
  return out;
}
