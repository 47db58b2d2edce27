/**
 * Where the repository, the pinned tools and the build caches are, for tests and benchmarks alike.
 * Environment overrides as in the Makefile (NATS_SERVER_BIN, NATS_SERVER_210_BIN, OPA_BIN).
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const TOOLS_BIN = join(REPO, ".tools", "bin");
export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? join(TOOLS_BIN, "nats-server");
export const NATS_SERVER_210_BIN = process.env.NATS_SERVER_210_BIN ?? join(TOOLS_BIN, "nats-server-2.10");

/** opa: OPA_BIN when that file exists, else the pinned one in .tools/bin when present, else undefined. */
export const OPA_BIN: string | undefined = (() => {
  const fromEnv = process.env.OPA_BIN;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const local = join(TOOLS_BIN, "opa");
  return existsSync(local) ? local : undefined;
})();

/** The built CLI (`make build`). */
export const CLI_JS = join(REPO, "dist", "src", "cli.js");

/** Go builds and Python venvs of the benchmarks and the reliability suite: outside the repo. */
export const BENCH_CACHE =
  process.env.NOC_BENCH_CACHE ??
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "nats-opa-callout", "bench");
