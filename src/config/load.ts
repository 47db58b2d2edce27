/**
 * Config file loading for the CLI: the YAML file (syntax errors name file:line), then environment
 * overrides, then flag overrides, then resolveConfig(). Relative paths in the file resolve from its
 * directory; paths given as flags or env from the cwd.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseDocument } from "yaml";
import { ConfigError } from "../errors.js";
import { applyEnvOverrides } from "./env.js";
import { FLAG_OVERRIDES } from "./flags.js";
import { resolveConfig } from "./resolve.js";
import type { ResolvedConfig, ServiceConfig } from "./types.js";

/** Read the YAML config file; syntax errors become a ConfigError naming file:line. */
export function readConfigFile(file: string): ServiceConfig {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError([
      { field: "--config", message: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}` },
    ]);
  }
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        field: `${path}:${text.slice(0, e.pos[0]).split("\n").length}`,
        // The YAML message quotes no values beyond the error location; keep only the first line.
        message: `YAML ${e.code}: ${e.message.split("\n")[0] ?? ""}`,
      })),
    );
  }
  const v: unknown = doc.toJS();
  if (v === null || v === undefined) return {};
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new ConfigError([{ field: "(root)", message: `${path}: expected a mapping at the top level` }]);
  }
  return v as ServiceConfig;
}

/** File → env → flags → resolveConfig. Throws ConfigError listing every problem. */
export function loadServeConfig(
  flags: { config?: string; overrides: [string, string][] },
  env: Record<string, string | undefined>,
): ResolvedConfig {
  const file = flags.config !== undefined ? resolve(flags.config) : undefined;
  let doc: ServiceConfig = file ? readConfigFile(file) : {};
  doc = applyEnvOverrides(doc, env);
  for (const [flag, v] of flags.overrides) {
    FLAG_OVERRIDES.find((f) => f.flag === flag)?.apply(doc, v);
  }
  // Relative paths in the file resolve from its directory; paths given as flags from the cwd. A flag path
  // is made absolute here so both hold.
  for (const [flag, v] of flags.overrides) {
    if (flag === "policy-dir") doc.policy!.dir = resolve(v);
    if (flag === "bundle") doc.policy!.bundle = resolve(v);
    if (flag === "creds") doc.nats!.creds_file = resolve(v);
    if (flag === "decision-log" && v !== "stdout" && v !== "off") doc.decision_log!.destination = resolve(v);
  }
  for (const k of ["NATS_CREDS", "NATS_NKEY_SEED", "NATS_NKEY"]) {
    const v = env[k]?.trim();
    if (v) {
      if (k === "NATS_CREDS" && doc.nats?.creds_file === v) doc.nats.creds_file = resolve(v);
      else if (doc.nats?.nkey_seed_file === v) doc.nats.nkey_seed_file = resolve(v);
    }
  }
  // OPA_BIN (the variable the Makefile and tests use) supplies policy.opa_binary when the file does not.
  const opaBin = env.OPA_BIN?.trim();
  if (opaBin && doc.policy && (doc.policy.dir !== undefined || doc.policy.bundle !== undefined)) {
    doc.policy.opa_binary ??= opaBin;
  }
  return resolveConfig(doc, { requirePolicy: true, baseDir: file ? dirname(file) : process.cwd() });
}

/**
 * A config file as `serve --config <file>` resolves it (library users): relative paths from the file's directory,
 * then the environment overrides of `env` when given (NATS_URL, NATS_CREDS, …; pass process.env for serve's
 * behaviour; default none). Throws ConfigError listing every problem.
 */
export function loadConfigFile(file: string, env: Record<string, string | undefined> = {}): ResolvedConfig {
  return loadServeConfig({ config: file, overrides: [] }, env);
}
