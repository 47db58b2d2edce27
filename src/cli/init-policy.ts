/**
 * `init --policy <dir>`: scaffold a starter policy directory from what the package ships: the starter
 * (examples/policy-starter/: a default-deny decision, its unit tests, data, golden cases and their runner), the
 * policy libraries with their tests (policies/lib/) and the capabilities of the service's wasm engine
 * (policies/capabilities.json). Writes nothing else; refuses to overwrite a file unless --force; never deletes.
 */
import { cpSync, existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { EXIT, UsageError, out, packageRoot } from "./common.js";

export const POLICY_HELP = `  --policy <dir>         only scaffold a starter policy directory at <dir> (no keys, no configs): a
                         default-deny decision (package nats.authz), unit tests, a golden case, the
                         policy libraries (lib/) and capabilities.json; opa test <dir> passes on it`;

/** [source in the package, target relative to the new directory]. */
function sources(root: string): [string, string][] {
  const starter = join(root, "examples", "policy-starter");
  const lib = join(root, "policies", "lib");
  const out: [string, string][] = [[starter, "."]];
  for (const f of readdirSync(lib)) if (f.endsWith(".rego")) out.push([join(lib, f), join("lib", f)]);
  out.push([join(root, "policies", "capabilities.json"), "capabilities.json"]);
  return out;
}

function filesUnder(p: string): string[] {
  return statSync(p).isDirectory() ? readdirSync(p).flatMap((f) => filesUnder(join(p, f))) : [p];
}

/** Copies the starter into `dir`; returns the files written (absolute paths). */
export function scaffoldPolicy(dir: string, force: boolean): string[] {
  const target = resolve(dir);
  const plan: [string, string][] = [];
  for (const [src, rel] of sources(packageRoot())) {
    if (!existsSync(src)) throw new UsageError(`this installation lacks ${src}; reinstall nats-opa-callout`);
    for (const f of filesUnder(src)) plan.push([f, join(target, rel, relative(src, f))]);
  }
  if (!force) {
    const clash = plan.find(([, to]) => existsSync(to));
    if (clash) throw new UsageError(`${clash[1]} exists; use --force to overwrite`);
  }
  for (const [from, to] of plan) cpSync(from, to, { force: true });
  return plan.map(([, to]) => to);
}

/** `init --policy <dir>` (the rest of init's flags do not apply, except --force). */
export function initPolicyCommand(values: Record<string, string | boolean | undefined>): number {
  const other = Object.keys(values).find((k) => values[k] !== undefined && !["policy", "force"].includes(k));
  if (other) throw new UsageError(`--policy scaffolds a policy directory only; --${other} does not apply`);
  const dir = values.policy as string;
  if (dir.trim() === "") throw new UsageError("--policy needs a directory");
  const files = scaffoldPolicy(dir, values.force === true);
  const rel = (p: string) => {
    const r = relative(process.cwd(), p) || ".";
    return r.startsWith("..") ? p : r;
  };
  out(`Wrote a starter policy to ${rel(resolve(dir))}/ (${files.length} files):`);
  for (const f of files) out(`  ${rel(f)}`);
  out("");
  out("Next:");
  out(`  opa test ${rel(resolve(dir))}                               # unit tests and golden cases`);
  out(
    `  nats-opa-callout check --policy-dir ${rel(resolve(dir))}    # compiled to wasm as the service runs it`,
  );
  out(`  nats-opa-callout init --policy-dir ${rel(resolve(dir))} ...  # a deployment that serves it`);
  return EXIT.OK;
}
