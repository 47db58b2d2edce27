/** Where the tools and caches live; env overrides as in the Makefile. */
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const TOOLS_BIN = join(REPO, ".tools", "bin");
export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? join(TOOLS_BIN, "nats-server");
export const NATS_SERVER_210_BIN = process.env.NATS_SERVER_210_BIN ?? join(TOOLS_BIN, "nats-server-2.10");
export const OPA_BIN = process.env.OPA_BIN ?? join(TOOLS_BIN, "opa");
/** Build outputs and venvs for the benchmarks: outside the repo. */
export const BENCH_CACHE =
  process.env.NOC_BENCH_CACHE ??
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "nats-opa-callout", "bench");
export const CLI_JS = join(REPO, "dist", "src", "cli.js");
