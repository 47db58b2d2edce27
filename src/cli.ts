#!/usr/bin/env node
/**
 * nats-opa-callout command line: serve | init | check | eval | version.
 * The only place (with src/cli/**) that reads argv/env, prints to the terminal and sets the exit code.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ConfigError, CalloutError } from "./errors.js";
import { EXIT, EXIT_CODES_HELP, UsageError, err, out, packageVersion } from "./cli/common.js";

export const MAIN_HELP = `nats-opa-callout — NATS auth callout service with decisions from Rego policies compiled to WebAssembly.

Usage: nats-opa-callout <command> [options]

Commands:
  serve     run the callout service (config file + env + flags)
  init      generate keys, a nats-server config and a service config
  check     compile and validate a policy, run its decision cases
  eval      dry run: replay a decision-log event, request JWT or input document offline
  bundle    build a (signed) wasm bundle, or push it to a NATS Object Store object services watch
  version   print the version

Run "nats-opa-callout <command> --help" for a command's options and examples.

Examples:
  nats-opa-callout init --dir ./deploy --websocket
  nats-opa-callout check --policy-dir ./policies --cases ./policies/cases
  nats-opa-callout serve --config ./deploy/service.yaml --log-format pretty
  nats-opa-callout eval --policy-dir ./policies --event decision.json
  nats-opa-callout bundle push --policy-dir ./policies --bucket policy --creds ./policy-admin.creds

${EXIT_CODES_HELP}
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case "help":
    case "-h":
    case "--help":
      out(MAIN_HELP);
      return cmd === undefined ? EXIT.USAGE : EXIT.OK;
    case "version":
    case "--version":
    case "-v":
      out(`nats-opa-callout ${packageVersion()} (node ${process.versions.node})`);
      return EXIT.OK;
    case "init":
      return (await import("./cli/init.js")).initCommand(rest);
    case "serve":
      return (await import("./cli/serve.js")).serveCommand(rest);
    case "check":
      return (await import("./cli/check.js")).checkCommand(rest);
    case "eval":
      return (await import("./cli/eval.js")).evalCommand(rest);
    case "bundle":
      return (await import("./cli/bundle.js")).bundleCommand(rest);
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

/** Report an error without leaking secrets: messages of our own errors are written to be safe to print. */
export function reportError(e: unknown): number {
  if (e instanceof UsageError) {
    err(`error: ${e.message}`);
    err(`Run "nats-opa-callout --help" for usage.`);
    return EXIT.USAGE;
  }
  if (e instanceof ConfigError) {
    err(`configuration error (${e.problems.length} problem${e.problems.length === 1 ? "" : "s"}):`);
    for (const p of e.problems) err(`  ${p.field}: ${p.message}`);
    return EXIT.USAGE;
  }
  if (e instanceof CalloutError) {
    err(`error [${e.code}]: ${e.message}`);
    return e.code === "policy_load_error"
      ? EXIT.POLICY
      : e.code === "config_error" || e.code === "key_error"
        ? EXIT.USAGE
        : EXIT.RUNTIME;
  }
  // Unknown errors: print the class and message only (no stack, no cause chain with possible request data).
  const name = e instanceof Error ? e.name : "Error";
  const msg = e instanceof Error ? e.message : String(e);
  err(`error: ${name}: ${msg}`);
  return EXIT.RUNTIME;
}

const isMain = (() => {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (isMain) {
  // `nats-opa-callout check | head`: a closed pipe ends the output, not the process with a stack trace.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw e;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      // serve resolves only when stopped; other commands exit when their output is flushed.
      process.exitCode = code;
    },
    (e: unknown) => {
      process.exitCode = reportError(e);
    },
  );
}
