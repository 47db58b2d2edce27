/**
 * Generates policies/capabilities.json: the builtins a policy may use when it runs in this service's
 * wasm engine, for `opa build --capabilities` / `opa check --capabilities`.
 *
 *   node --import tsx scripts/capabilities.ts            # write policies/capabilities.json
 *   node --import tsx scripts/capabilities.ts --check    # exit 1 if the committed file is stale
 *
 * Method (empirical, so it always matches the pinned opa): start from `opa capabilities --current`,
 * keep `features` and `future_keywords`, then compile a probe policy that calls every builtin with
 * `opa build -t wasm` and read the module's `builtins()` export: those are the builtins the host must
 * supply; all others are compiled into the module (native). Deprecated builtins (refused by Rego v1)
 * are probed in a v0 module. The result is native ∪ opa-wasm's six JS builtins ∪ our host builtins
 * (src/policy/builtins.ts), each with its `decl` from opa.
 *
 * Special cases: `assign` and `eq` are the `:=` / `=` operators (compiled natively; probing them as
 * functions is meaningless); `print` is erased by the wasm compiler (checked below);
 * `internal.test_case` exists only for `opa test`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { HOST_BUILTINS, JS_BUILTINS } from "../src/policy/builtins.js";
import { readTarGz } from "../src/policy/tar.js";
import { wasmApi } from "../src/policy/wasm.js";

interface Decl {
  args?: unknown[];
  result?: unknown;
  variadic?: unknown;
}
interface BuiltinCap {
  name: string;
  decl?: Decl;
  [k: string]: unknown;
}
interface Capabilities {
  builtins: BuiltinCap[];
  [k: string]: unknown;
}

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const OUT = path.join(ROOT, "policies", "capabilities.json");
const OPA =
  process.env.OPA_BIN ??
  (existsSync(path.join(ROOT, ".tools/bin/opa")) ? path.join(ROOT, ".tools/bin/opa") : "opa");

function run(args: string[], cwd?: string): { ok: boolean; out: string } {
  const r = spawnSync(OPA, args, { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

/** Builtins the compiled module imports from the host (its `builtins()` export). */
function hostImports(wasm: Uint8Array): Set<string> {
  const memory = new wasmApi.Memory({ initial: 5 });
  const fail = (): never => {
    throw new Error("probe module called the host");
  };
  const env: Record<string, unknown> = { memory, opa_abort: fail, opa_println: fail };
  for (let i = 0; i <= 4; i++) env[`opa_builtin${i}`] = fail;
  const instance = new wasmApi.Instance(new wasmApi.Module(wasm), { env });
  const ex = instance.exports as unknown as { builtins(): number; opa_json_dump(a: number): number };
  const addr = ex.opa_json_dump(ex.builtins());
  const buf = new Uint8Array(memory.buffer);
  let end = addr;
  while (buf[end] !== 0) end++;
  return new Set(Object.keys(JSON.parse(new TextDecoder().decode(buf.subarray(addr, end))) as object));
}

/** Compile `lines` (one rule each) into a wasm module; drop lines opa refuses, report them. */
function probe(lines: Map<string, string>, v0: boolean): { host: Set<string>; refused: Set<string> } {
  const refused = new Set<string>();
  const work = mkdtempSync(path.join(tmpdir(), "caps-probe-"));
  try {
    for (let attempt = 0; attempt < 50; attempt++) {
      const names = [...lines.keys()].filter((n) => !refused.has(n));
      const src = ["package probe", "", ...names.map((n) => lines.get(n) as string), ""].join("\n");
      writeFileSync(path.join(work, "probe.rego"), src);
      const args = ["build", "-t", "wasm", "-e", "probe", "-o", path.join(work, "b.tar.gz"), "probe.rego"];
      if (v0) args.splice(1, 0, "--v0-compatible");
      const r = run(args, work);
      if (r.ok) {
        const files = readTarGz(readFileSync(path.join(work, "b.tar.gz")));
        const wasm = files.get("/policy.wasm");
        if (!wasm) throw new Error("probe bundle has no /policy.wasm");
        return { host: hostImports(wasm), refused };
      }
      const bad = [...r.out.matchAll(/probe\.rego:(\d+)/g)].map((m) => Number(m[1]));
      if (bad.length === 0) throw new Error(`probe build failed: ${r.out}`);
      for (const lineNo of bad) {
        const name = names[lineNo - 3];
        if (name) refused.add(name);
      }
    }
    throw new Error("probe did not converge");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function callFor(b: BuiltinCap, i: number, v0: boolean): string | undefined {
  const args = b.decl?.args ?? [];
  if (!b.decl?.result) return undefined;
  const call = `${b.name}(${args.map((_, k) => `input.a${k}`).join(", ")})`;
  return v0 ? `r${i} = ${call}` : `r${i} := ${call}`;
}

export function generate(): Capabilities {
  const current = JSON.parse(run(["capabilities", "--current"]).out) as Capabilities;
  const byName = new Map(current.builtins.map((b) => [b.name, b]));
  const special = new Set(["assign", "eq", "print", "internal.print", "internal.test_case"]);

  const lines = new Map<string, string>();
  current.builtins.forEach((b, i) => {
    if (special.has(b.name)) return;
    const line = callFor(b, i, false);
    if (line) lines.set(b.name, line);
  });
  const first = probe(lines, false);
  const hostNeeded = new Set(first.host);
  if (first.refused.size > 0) {
    const v0lines = new Map<string, string>();
    current.builtins.forEach((b, i) => {
      if (!first.refused.has(b.name)) return;
      const line = callFor(b, i, true);
      if (line) v0lines.set(b.name, line);
    });
    const second = probe(v0lines, true);
    for (const n of second.host) hostNeeded.add(n);
    for (const n of second.refused) hostNeeded.add(n); // unprobeable: leave it out
  }

  // print() must be erased by the wasm compiler (no host import), else it is not allowed
  const printProbe = probe(new Map([["print", 'r if { print("x", input.a) }']]), false);
  const native = new Set<string>(["assign", "eq"]);
  if (printProbe.host.size === 0 && printProbe.refused.size === 0) {
    native.add("print");
    native.add("internal.print");
  }
  for (const name of lines.keys()) if (!hostNeeded.has(name)) native.add(name);
  for (const name of first.refused) if (!hostNeeded.has(name)) native.add(name);

  const allowed = new Set([...native, ...JS_BUILTINS, ...HOST_BUILTINS]);
  const missingDecl = [...allowed].filter((n) => !byName.has(n));
  if (missingDecl.length > 0) throw new Error(`opa does not know builtins: ${missingDecl.join(", ")}`);

  const out: Capabilities = { ...current };
  out.builtins = current.builtins
    .filter((b) => allowed.has(b.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}

function serialise(caps: Capabilities): string {
  return `${JSON.stringify(caps, null, 2)}\n`;
}

function main(): void {
  const check = process.argv.includes("--check");
  const text = serialise(generate());
  if (check) {
    const committed = existsSync(OUT) ? readFileSync(OUT, "utf8") : "";
    if (committed !== text) {
      console.error(`${path.relative(ROOT, OUT)} is stale: run node --import tsx scripts/capabilities.ts`);
      process.exit(1);
    }
    console.log(`${path.relative(ROOT, OUT)} is up to date`);
    return;
  }
  writeFileSync(OUT, text);
  const n = (JSON.parse(text) as Capabilities).builtins.length;
  console.log(`wrote ${path.relative(ROOT, OUT)}: ${n} builtins`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
