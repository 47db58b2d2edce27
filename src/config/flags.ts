/**
 * `serve` flags that override config fields: one table, read by the flag parser, `--help`, config loading
 * (load.ts) and the generated configuration reference (scripts/gen-config-docs.ts).
 */
import type { ServiceConfig } from "./types.js";

export interface FlagOverride {
  flag: string;
  /** Config field path the flag sets. */
  path: string;
  arg: string;
  description: string;
  /** Set the value into a config document (mutates). */
  apply(cfg: ServiceConfig, v: string): void;
}

const nats = (cfg: ServiceConfig) => (cfg.nats ??= {});
const policy = (cfg: ServiceConfig) => (cfg.policy ??= {});

export const FLAG_OVERRIDES: readonly FlagOverride[] = [
  {
    flag: "nats-url",
    path: "nats.servers",
    arg: "<url,…>",
    description: "NATS server URL(s), comma-separated",
    apply: (c, v) => {
      nats(c).servers = v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
    },
  },
  {
    flag: "creds",
    path: "nats.creds_file",
    arg: "<file>",
    description: "creds file of the callout user (replaces other NATS auth settings)",
    apply: (c, v) => {
      const n = nats(c);
      delete n.user;
      delete n.password;
      delete n.token;
      delete n.nkey_seed_file;
      n.creds_file = v;
    },
  },
  {
    flag: "policy-dir",
    path: "policy.dir",
    arg: "<dir>",
    description: "Rego policy directory (replaces policy.bundle)",
    apply: (c, v) => {
      const p = policy(c);
      delete p.bundle;
      p.dir = v;
    },
  },
  {
    flag: "bundle",
    path: "policy.bundle",
    arg: "<file>",
    description: "prebuilt wasm bundle (replaces policy.dir)",
    apply: (c, v) => {
      const p = policy(c);
      delete p.dir;
      p.bundle = v;
    },
  },
  {
    flag: "entrypoint",
    path: "policy.entrypoint",
    arg: "<path>",
    description: "decision entrypoint",
    apply: (c, v) => {
      policy(c).entrypoint = v;
    },
  },
  {
    flag: "log-level",
    path: "log.level",
    arg: "<level>",
    description: "trace|debug|info|warn|error|fatal|silent",
    apply: (c, v) => {
      (c.log ??= {}).level = v as never;
    },
  },
  {
    flag: "log-format",
    path: "log.format",
    arg: "<fmt>",
    description: "json|pretty",
    apply: (c, v) => {
      (c.log ??= {}).format = v as never;
    },
  },
  {
    flag: "decision-log",
    path: "decision_log.destination",
    arg: "<dest>",
    description: "stdout|off|<file>",
    apply: (c, v) => {
      (c.decision_log ??= {}).destination = v;
    },
  },
  {
    flag: "metrics-listen",
    path: "metrics.listen",
    arg: "<addr>",
    description: 'metrics/health address: "host:port", ":port", port 0 = free port, or "off"',
    apply: (c, v) => {
      (c.metrics ??= {}).listen = v;
    },
  },
];
