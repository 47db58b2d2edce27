/**
 * Shared CLI plumbing: exit codes, usage errors, version lookup, small output helpers.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Process exit codes (documented in `--help` and docs/operations.md). */
export const EXIT = {
  OK: 0,
  /** Runtime failure: lost NATS for good, unexpected fault, a decision case failed in `check`. */
  RUNTIME: 1,
  /** Bad flags, bad config (every problem listed), unreadable files. */
  USAGE: 2,
  /** The policy did not compile or load at start (serve) or in `check`. */
  POLICY: 3,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0  success (serve: stopped cleanly on SIGTERM/SIGINT)
  1  runtime failure (serve: fatal error after start; check: a decision case failed)
  2  usage or configuration error (every problem is listed, naming its field)
  3  policy error: the policy did not compile or load at start`;

/** A usage error: printed with a hint to `--help`, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export { packageVersion } from "../version.js";

/** The repository / package root (directory holding package.json). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string };
      if (pkg.name === "nats-opa-callout") return dir;
    } catch {
      /* keep walking up */
    }
    dir = dirname(dir);
  }
  return process.cwd();
}

export function out(s: string): void {
  process.stdout.write(s.endsWith("\n") ? s : s + "\n");
}

export function err(s: string): void {
  process.stderr.write(s.endsWith("\n") ? s : s + "\n");
}

/** Parse an integer flag value or throw a UsageError naming the flag. */
export function intFlag(name: string, v: string | undefined, def: number, min = 0, max = 65535): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer between ${min} and ${max}, got "${v}"`);
  }
  return n;
}

/** Turn a node:util parseArgs error into a UsageError. */
export function asUsage(e: unknown): never {
  const msg = e instanceof Error ? e.message : String(e);
  throw new UsageError(msg);
}
