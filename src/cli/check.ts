/**
 * `nats-opa-callout check`: compile and verify the policy exactly as `serve` does (createPolicyEngine: opa build
 * with the pinned capabilities, builtin check, entrypoint check, smoke evaluation), print the revision and
 * entrypoints, then run the golden decision cases through the same wasm engine.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { decide } from "../callout/decide.js";
import { AuthError } from "../errors.js";
import { policyHandler } from "../policy/handler.js";
import { maskInput } from "../audit.js";
import { EXIT, UsageError, asUsage, out } from "./common.js";
import { openPolicyOrExit, policySettings, type PolicyHandle } from "./policy.js";
import { requestFromInput } from "./request.js";
import { loadServeConfig } from "./serve.js";

export const CHECK_HELP = `Usage: nats-opa-callout check [--policy-dir <dir> | --bundle <file> | --config <file>] [options]

Compile and validate a policy exactly as "serve" does (opa build -t wasm with the pinned capabilities,
host builtin check, entrypoint check, smoke evaluation), print its revision and entrypoints, then run
the decision cases through the service's wasm engine. Any problem → non-zero exit, with the compiler's
file:line text for policy errors.

Options:
  --policy-dir <dir>     Rego policy directory (default: ./policies, or the config's policy)
  --bundle <file>        prebuilt wasm bundle instead of a directory
  --config <file>        take policy settings and the account allow-list from a service config
  --entrypoint <path>    decision entrypoint (default: nats/authz/decision)
  --cases <dir|file>     decision cases: JSON files of {name, input, now?, expect} objects, keyed by name
                         (default: <policy-dir>/cases when it exists; "none" to skip)
  --opa <path>           opa binary (default: $OPA_BIN or "opa" on PATH)
  -v, --verbose          list every case
  -h, --help             show this help

Each case's "expect" is compared with the whole decision document; "now" (RFC 3339) freezes
time.now_ns(). Allow decisions are also validated the way the service validates grants (shape,
account allow-list when --config is given, source CIDRs, connection types).

Examples:
  nats-opa-callout check --policy-dir policies
  nats-opa-callout check --bundle build/bundle.tar.gz --cases policies/cases
  nats-opa-callout check --config deploy/service.yaml

Exit codes: 0 all good; 1 a decision case failed; 2 usage error; 3 the policy does not compile or load.
`;

export interface DecisionCase {
  name: string;
  file: string;
  input: unknown;
  now?: string;
  expect: unknown;
}

/** Read cases from a file or a directory of *.json files (object keyed by name, array, or one case). */
export function readCases(path: string): DecisionCase[] {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => f.endsWith(".json"))
        .sort()
        .map((f) => join(path, f))
    : [path];
  const cases: DecisionCase[] = [];
  for (const file of files) {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new UsageError(`${file}: not valid JSON (${(e as Error).message})`);
    }
    const list: [string | undefined, unknown][] = Array.isArray(doc)
      ? doc.map((c) => [undefined, c])
      : typeof doc === "object" && doc !== null && "input" in doc && "expect" in doc
        ? [[undefined, doc]]
        : Object.entries(doc as Record<string, unknown>);
    for (const [key, c] of list) {
      if (typeof c !== "object" || c === null || !("input" in c) || !("expect" in c)) {
        throw new UsageError(`${file}: case ${key ?? "?"} needs "input" and "expect"`);
      }
      const cc = c as { name?: unknown; input: unknown; now?: unknown; expect: unknown };
      const name = typeof cc.name === "string" ? cc.name : (key ?? basename(file));
      const dc: DecisionCase = { name, file, input: cc.input, expect: cc.expect };
      if (typeof cc.now === "string") dc.now = cc.now;
      cases.push(dc);
    }
  }
  return cases;
}

/** RFC 3339 (or unix seconds) → Date; throws UsageError. */
export function parseNow(v: string, what = "--now"): Date {
  const d = /^\d+(\.\d+)?$/.test(v) ? new Date(Number(v) * 1000) : new Date(v);
  if (Number.isNaN(d.getTime()))
    throw new UsageError(`${what}: not an RFC 3339 time or unix seconds: "${v}"`);
  return d;
}

/** Keep secrets out of failure output: case inputs are masked like decision-log inputs. */
function safe(v: unknown): string {
  return JSON.stringify(maskInput(v).input);
}

export interface CaseResult {
  name: string;
  file: string;
  ok: boolean;
  problem?: string;
}

export async function runCases(
  policy: PolicyHandle,
  cases: DecisionCase[],
  accounts?: readonly string[],
): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const c of cases) {
    const res: CaseResult = { name: c.name, file: c.file, ok: false };
    try {
      const now = c.now !== undefined ? parseNow(c.now, `case ${c.name}: now`) : new Date();
      // The decide stage serve uses, on the case's own input document (the policy's grant checks included).
      const req = requestFromInput(
        typeof c.input === "object" && c.input !== null && !Array.isArray(c.input) ? c.input : {},
        now,
      );
      const handler = policyHandler(policy.engine.store, { input: () => c.input });
      const { verdict, facts } = await decide(
        req,
        { decisionId: `check:${c.name}`, now },
        { handler, ...(accounts !== undefined ? { accounts } : {}) },
      );
      const fault = (e: { code: string; message: string }) => `[${e.code}] ${e.message}`;
      if (facts.eval_error !== undefined) {
        res.problem = fault(facts.eval_error);
      } else if (!isDeepStrictEqual(facts.result, c.expect)) {
        res.problem = `expected ${safe(c.expect)}\n      got      ${facts.result === undefined ? "undefined" : safe(facts.result)}`;
      } else if (verdict.kind === "deny" && !(verdict.error instanceof AuthError)) {
        // the decision's shape, or the grant's checks (account allow-list, subjects, limits)
        res.problem = fault(verdict.error);
      } else {
        res.ok = true;
      }
    } catch (e) {
      const code = (e as { code?: string }).code;
      res.problem = `${code ? `[${code}] ` : ""}${(e as Error).message ?? String(e)}`;
    }
    results.push(res);
  }
  return results;
}

export async function checkCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        "policy-dir": { type: "string" },
        bundle: { type: "string" },
        config: { type: "string" },
        entrypoint: { type: "string" },
        cases: { type: "string" },
        opa: { type: "string" },
        verbose: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    asUsage(e);
  }
  if (values.help) {
    out(CHECK_HELP);
    return EXIT.OK;
  }
  const dir = values["policy-dir"] as string | undefined;
  const bundle = values.bundle as string | undefined;
  if (dir !== undefined && bundle !== undefined)
    throw new UsageError("use --policy-dir or --bundle, not both");
  let settings;
  let accounts: string[] | undefined;
  if (values.config !== undefined) {
    const overrides: [string, string][] = [];
    if (dir !== undefined) overrides.push(["policy-dir", dir]);
    if (bundle !== undefined) overrides.push(["bundle", bundle]);
    if (values.entrypoint !== undefined) overrides.push(["entrypoint", values.entrypoint as string]);
    const cfg = loadServeConfig({ config: values.config as string, overrides }, process.env);
    settings = { ...cfg.policy!, watch: false };
    if (values.opa !== undefined) settings.opaBinary = values.opa as string;
    accounts = cfg.accounts.map((a) => a.name);
  } else {
    const p: { dir?: string; bundle?: string; entrypoint?: string; opaBinary?: string } = {};
    if (bundle !== undefined) p.bundle = resolve(bundle);
    else p.dir = resolve(dir ?? "policies");
    if (values.entrypoint !== undefined) p.entrypoint = values.entrypoint as string;
    if (values.opa !== undefined) p.opaBinary = values.opa as string;
    settings = policySettings(p);
    const target = (p.dir ?? p.bundle) as string;
    if (!existsSync(target)) throw new UsageError(`${target} does not exist`);
  }

  const t0 = performance.now();
  const policy = await openPolicyOrExit(settings);
  if (policy === EXIT.POLICY) return EXIT.POLICY;
  try {
    const active = policy.engine.store.current();
    const ms = Math.round(performance.now() - t0);
    out(`policy      ${settings.dir ?? settings.bundle}`);
    out(`revision    ${active.revision}`);
    out(`entrypoints ${active.policy.entrypoints.join(", ")}  (decision: ${active.entrypoint})`);
    out(`builtins    ${active.policy.requiredBuiltins.join(", ") || "(none from the host)"}`);
    out(`loaded in   ${ms} ms; smoke evaluation passed`);

    let casesPath = values.cases as string | undefined;
    if (casesPath === undefined && settings.dir !== undefined && existsSync(join(settings.dir, "cases"))) {
      casesPath = join(settings.dir, "cases");
    }
    if (casesPath === undefined || casesPath === "none") {
      out("cases       none");
      return EXIT.OK;
    }
    if (!existsSync(casesPath)) throw new UsageError(`--cases: ${casesPath} does not exist`);
    const cases = readCases(casesPath);
    const results = await runCases(policy, cases, accounts);
    const failed = results.filter((r) => !r.ok);
    for (const r of results) {
      if (!r.ok) out(`✘ ${r.name} (${basename(r.file)})\n      ${r.problem}`);
      else if (values.verbose) out(`✔ ${r.name}`);
    }
    out(`cases       ${results.length - failed.length} passed, ${failed.length} failed (${casesPath})`);
    return failed.length === 0 ? EXIT.OK : EXIT.RUNTIME;
  } finally {
    await policy.close();
  }
}
