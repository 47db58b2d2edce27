/**
 * Which parts of `input` a policy can read, from its Rego source (`opa parse --format json`, the AST before any
 * compiler rewriting): every reference to `input` is cut at its first non-constant term, and the constant prefix is
 * a subtree the policy may read. `input.connect_opts.user` reads [connect_opts, user]; `input.connect_opts[k]` and
 * `object.get(input.connect_opts, k, d)` read all of [connect_opts]; a bare `input` (`json.marshal(input)`,
 * `walk(input, …)`, `x := input`, `import input`) reads everything, [].
 *
 * The injection guard (src/injection.ts) uses this to leave alone the client strings a policy cannot see: a probe
 * that neutralises only such strings evaluates, for the policy, the very same input as the real request, so it
 * would give the very same decision. Anything this module cannot establish — a file opa cannot parse, no Rego source
 * (a prebuilt wasm bundle), an opa failure — yields `undefined`, which means "may read anything" (probe as before).
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

/** A constant path into `input`, e.g. ["connect_opts", "user"]; [] is the whole input. */
export type InputPath = readonly (string | number)[];

interface Term {
  type?: unknown;
  value?: unknown;
}

const isConstant = (t: Term): t is { type: "string" | "number"; value: string | number } =>
  (t.type === "string" && typeof t.value === "string") ||
  (t.type === "number" && typeof t.value === "number");

/** The input paths one parsed module (opa's JSON AST) references. */
export function inputPathsOfAst(ast: unknown): InputPath[] {
  const out: InputPath[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const n of node) visit(n);
      return;
    }
    if (typeof node !== "object" || node === null) return;
    const t = node as Term;
    if (t.type === "var" && t.value === "input") {
      out.push([]); // input outside a reference: all of it
      return;
    }
    if (t.type === "ref" && Array.isArray(t.value)) {
      const [head, ...rest] = t.value as Term[];
      if (head?.type === "var" && head.value === "input") {
        const prefix: (string | number)[] = [];
        let i = 0;
        for (; i < rest.length && isConstant(rest[i]!); i++)
          prefix.push((rest[i] as { value: string | number }).value);
        out.push(prefix);
        visit(rest.slice(i)); // variables, calls and nested refs inside the dynamic part
        return;
      }
    }
    for (const v of Object.values(node)) visit(v);
  };
  visit(ast);
  return out;
}

/** Drops paths another path already covers (its prefix). */
export function minimalPaths(paths: readonly InputPath[]): InputPath[] {
  const sorted = [...paths].sort((a, b) => a.length - b.length);
  const out: InputPath[] = [];
  for (const p of sorted) if (!out.some((q) => isPrefix(q, p))) out.push(p);
  return out;
}

function isPrefix(prefix: InputPath, path: InputPath): boolean {
  if (prefix.length > path.length) return false;
  for (let i = 0; i < prefix.length; i++) if (String(prefix[i]) !== String(path[i])) return false;
  return true;
}

/**
 * True when a policy reading `reads` may observe the value at `path`: a read covers it (prefix) or reaches inside it.
 * Keys compare as text (`input.tags["0"]` and `input.tags[0]` both count), erring towards "may read".
 */
export function mayRead(reads: readonly InputPath[] | undefined, path: InputPath): boolean {
  if (reads === undefined) return true;
  return reads.some((r) => isPrefix(r, path) || isPrefix(path, r));
}

/** opa parse processes at once. */
const PARALLEL_PARSES = 4;

function parseOne(bin: string, file: string, v0: boolean, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const args = ["parse", "--format", "json", ...(v0 ? ["--v0-compatible"] : []), file];
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 }, (err, stdout) => {
      if (err) return reject(err);
      try {
        const ast = JSON.parse(stdout) as { errors?: unknown };
        if (ast.errors !== undefined) return reject(new Error("opa parse reported errors"));
        resolve(ast);
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

/**
 * The input paths a set of Rego files may read (minimal, sorted), or undefined when any file cannot be analysed.
 * Never throws.
 */
export async function inputReads(
  files: readonly { rel: string; content: Buffer }[],
  opaBin = "opa",
  timeoutMs = 30_000,
): Promise<InputPath[] | undefined> {
  let work: string | undefined;
  try {
    const dir = (work = await mkdtemp(path.join(tmpdir(), "nats-opa-callout-reads-")));
    // opa parse takes one file: a few at a time, so that a policy of many files does not start a process per file.
    const asts: unknown[] = [];
    let next = 0;
    const parser = async (): Promise<void> => {
      for (let i = next++; i < files.length; i = next++) {
        const file = path.join(dir, `${i}.rego`);
        await writeFile(file, files[i]!.content);
        asts[i] = await parseOne(opaBin, file, false, timeoutMs).catch(() =>
          parseOne(opaBin, file, true, timeoutMs),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARSES, files.length) }, parser));
    return minimalPaths(asts.flatMap(inputPathsOfAst)).sort((a, b) =>
      a.join("\0").localeCompare(b.join("\0")),
    );
  } catch {
    return undefined;
  } finally {
    if (work !== undefined) await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}
