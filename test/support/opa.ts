/**
 * Test helpers around the real `opa` binary: find it (OPA_BIN, else <repo>/.tools/bin/opa), compile
 * Rego fixtures to wasm bundles (cached by content hash under build/test-cache, keyed by OPA version
 * and capabilities), and run `opa eval` for differential tests.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { OPA_BIN, REPO } from "./paths.js";
import { gzipSync } from "node:zlib";

export const CAPABILITIES = path.join(REPO, "policies", "capabilities.json");
export const FIXTURES = path.join(REPO, "test", "fixtures", "policies");

/** For node:test's `skip` option: a reason when opa is missing, else false. */
export const skipWithoutOpa: string | false = OPA_BIN
  ? false
  : "opa not found (set OPA_BIN or run `make tools`)";

function opa(): string {
  if (!OPA_BIN) throw new Error("opa not found");
  return OPA_BIN;
}

let versionCache: string | undefined;
export function opaVersion(): string {
  versionCache ??= execFileSync(opa(), ["version"], { encoding: "utf8" }).split("\n")[0] ?? "";
  return versionCache;
}

export interface FixtureBuild {
  /** Path of the cached bundle.tar.gz */
  bundlePath: string;
  bytes: Buffer;
}

/**
 * Build `files` (relative path → content) with `opa build -t wasm`. Cached by the hash of the files,
 * entrypoints, capabilities and OPA version. Throws with opa's output on a compile error.
 */
export function buildWasmFixture(
  files: Record<string, string>,
  entrypoints: readonly string[],
  opts: { capabilities?: string | null } = {},
): FixtureBuild {
  const caps = opts.capabilities === undefined ? CAPABILITIES : opts.capabilities;
  const h = createHash("sha256");
  h.update(opaVersion());
  h.update(JSON.stringify(entrypoints));
  if (caps) h.update(readFileSync(caps));
  for (const k of Object.keys(files).sort()) h.update(`${k}\0${files[k]}\0`);
  const cacheDir = path.join(REPO, "build", "test-cache");
  mkdirSync(cacheDir, { recursive: true });
  const bundlePath = path.join(cacheDir, `${h.digest("hex").slice(0, 24)}.tar.gz`);
  if (!existsSync(bundlePath)) {
    const work = mkdtempSync(path.join(tmpdir(), "opa-fixture-"));
    try {
      for (const [rel, content] of Object.entries(files)) {
        const p = path.join(work, "src", rel);
        mkdirSync(path.dirname(p), { recursive: true });
        writeFileSync(p, content);
      }
      const args = ["build", "-t", "wasm", ...entrypoints.flatMap((e) => ["-e", e])];
      if (caps) args.push("--capabilities", caps);
      args.push("-o", path.join(work, "b.tar.gz"), ".");
      const r = spawnSync(opa(), args, { cwd: path.join(work, "src"), encoding: "utf8" });
      if (r.status !== 0) throw new Error(`opa build failed: ${r.stderr}${r.stdout}`);
      writeFileSync(bundlePath, readFileSync(path.join(work, "b.tar.gz")));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return { bundlePath, bytes: readFileSync(bundlePath) };
}

/**
 * `opa eval --format json` of `query` with the given modules, input and data. Returns the value of
 * the first expression, or `undefined` when the query is undefined.
 */
export function opaEval(
  query: string,
  opts: {
    modules?: Record<string, string>;
    input?: unknown;
    /** Raw input JSON (e.g. with integers beyond 2^53). */
    inputJson?: string;
    data?: unknown;
    strictBuiltinErrors?: boolean;
  } = {},
): unknown {
  const work = mkdtempSync(path.join(tmpdir(), "opa-eval-"));
  try {
    const args = ["eval", "--format", "json"];
    for (const [rel, content] of Object.entries(opts.modules ?? {})) {
      const p = path.join(work, rel);
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, content);
      args.push("-d", p);
    }
    if (opts.data !== undefined) {
      const p = path.join(work, "data.json");
      writeFileSync(p, JSON.stringify(opts.data));
      args.push("-d", p);
    }
    if (opts.input !== undefined || opts.inputJson !== undefined) {
      const p = path.join(work, "input.json");
      writeFileSync(p, opts.inputJson ?? JSON.stringify(opts.input));
      args.push("-i", p);
    }
    if (opts.strictBuiltinErrors) args.push("--strict-builtin-errors");
    args.push(query);
    const r = spawnSync(opa(), args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`opa eval failed: ${r.stderr}${r.stdout}`);
    const out = JSON.parse(r.stdout) as { result?: { expressions: { value: unknown }[] }[] };
    return out.result?.[0]?.expressions[0]?.value;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** JSON.stringify that writes bigint values as exact integer literals. */
export function jsonWithBigInts(v: unknown): string {
  const marks: string[] = [];
  const text = JSON.stringify(v, (_k, val: unknown) => {
    if (typeof val === "bigint") {
      marks.push(val.toString());
      return `__BIGINT_${marks.length - 1}__`;
    }
    return val;
  });
  return text.replace(/"__BIGINT_(\d+)__"/g, (_m, i: string) => marks[Number(i)] as string);
}

/** A minimal ustar tar.gz writer for hand-made (e.g. broken) bundles. */
export function tarGz(files: Record<string, Buffer | string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const body = Buffer.isBuffer(content) ? content : Buffer.from(content);
    const h = Buffer.alloc(512);
    h.write(name, 0, 100, "utf8");
    h.write("0000644\0", 100);
    h.write("0000000\0", 108);
    h.write("0000000\0", 116);
    h.write(`${body.length.toString(8).padStart(11, "0")}\0`, 124);
    h.write("00000000000\0", 136);
    h.write("        ", 148);
    h.write("0", 156);
    h.write("ustar\0", 257);
    h.write("00", 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    blocks.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}
