/**
 * Logging: a small interface the library logs through, and a pino-backed default that redacts
 * every field that can carry a secret. The library never calls console.*.
 */
import { pino, type DestinationStream, type LoggerOptions } from "pino";
import { SECRET_KEYS } from "./secret-keys.js";

export interface Logger {
  trace(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  fatal(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Keys whose values are secrets wherever they appear (any depth up to the listed patterns). */
export { SECRET_KEYS };

/** pino redact paths: each secret key at the top level and up to four levels deep. */
export function redactPaths(): string[] {
  const paths: string[] = [];
  for (const k of SECRET_KEYS) {
    paths.push(k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`, `*.*.*.*.${k}`);
  }
  // On 2.10 the raw token is also sent as client_info.user when a token is used: redact it there too.
  paths.push("client_info.user", "*.client_info.user", "*.*.client_info.user", "*.*.*.client_info.user");
  return paths;
}

export const REDACTED = "[REDACTED]";

export interface CreateLoggerOptions {
  level?: string;
  /** "json" (default) or "pretty" (human-readable lines for terminals). */
  format?: "json" | "pretty";
  destination?: DestinationStream;
  name?: string;
}

/** A pino logger with redaction of secrets. */
export function createLogger(opts: CreateLoggerOptions = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? "info",
    redact: { paths: redactPaths(), censor: REDACTED },
    base: { name: opts.name ?? "nats-opa-callout" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  const dest = opts.destination ?? pino.destination({ dest: 1, sync: false });
  if (opts.format === "pretty") {
    return pino(options, prettyStream(dest)) as unknown as Logger;
  }
  return pino(options, dest) as unknown as Logger;
}

/** A logger that drops everything (library default when none is given). */
export const silentLogger: Logger = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  fatal() {},
  child() {
    return silentLogger;
  },
};

/** Minimal pretty printer: `HH:MM:SS.mmm LEVEL msg key=value …` (values already redacted by pino). */
function prettyStream(dest: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        dest.write(line);
        return;
      }
      const { time, level, msg, name: _name, pid: _pid, hostname: _host, ...rest } = rec;
      const t = typeof time === "string" ? time.slice(11, 23) : "";
      const kv = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      dest.write(`${t} ${String(level).toUpperCase().padEnd(5)} ${String(msg ?? "")}${kv ? " " + kv : ""}\n`);
    },
  };
}
