/**
 * A full, in-memory snapshot of a policy directory: every `.rego` file (tests excluded) and every
 * `data.json` / `data.yaml` / `data.yml`, read once, so a build never sees a half-edited tree.
 * Everything else (golden cases, keys, capabilities.json, editor files, hidden entries) is ignored,
 * unlike `opa build <dir>`, which loads every .json/.yaml file as data.
 *
 * Revision: sha256 over the lines "<sha256(content)>  <relative path>\n" sorted by path, first 16 hex
 * digits; equivalently `(cd dir && find . -type f \( -name '*.rego' -o -name data.json -o -name data.yaml
 * -o -name data.yml \) ! -name '*_test.rego' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum) |
 * sha256sum | cut -c1-16` (for trees without hidden entries).
 */
import { createHash } from "node:crypto";
import { readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { PolicyLoadError } from "../errors.js";

export interface SnapshotFile {
  /** Path relative to the policy directory, "/"-separated. */
  rel: string;
  content: Buffer;
  kind: "rego" | "data";
}

export interface PolicySnapshot {
  dir: string;
  files: SnapshotFile[];
  /** Revision of the whole snapshot (16 hex digits). */
  revision: string;
  /** Hash of the Rego files only: unchanged means the compiled module can be reused. */
  regoHash: string;
}

const DATA_FILES = new Set(["data.json", "data.yaml", "data.yml"]);

export interface SnapshotOptions {
  /** Also take `*_test.rego` files (default false: tests never block serving). */
  includeTests?: boolean;
}

function isPolicyFile(name: string, opts: SnapshotOptions): SnapshotFile["kind"] | undefined {
  if (DATA_FILES.has(name)) return "data";
  if (name.endsWith(".rego") && (opts.includeTests || !name.endsWith("_test.rego"))) return "rego";
  return undefined;
}

async function walk(root: string, rel: string, opts: SnapshotOptions, out: SnapshotFile[]): Promise<void> {
  const abs = path.join(root, rel);
  const entries = await readdir(abs, { withFileTypes: true });
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const childRel = rel === "" ? e.name : `${rel}/${e.name}`;
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      // A Kubernetes ConfigMap/Secret volume is all symlinks (data.json -> ..data/data.json): follow a
      // link to a file; links to directories are not followed (no cycles, no escaping the policy root).
      const target = await stat(path.join(root, childRel)).catch(() => undefined);
      isFile = target?.isFile() ?? false;
      isDir = false;
    }
    if (isDir) {
      await walk(root, childRel, opts, out);
      continue;
    }
    if (!isFile) continue;
    const kind = isPolicyFile(e.name, opts);
    if (!kind) continue;
    try {
      out.push({ rel: childRel, content: await readFile(path.join(root, childRel)), kind });
    } catch (err) {
      // deleted between readdir and readFile: the watcher will see the deletion and rescan
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}

function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function hashFiles(files: readonly SnapshotFile[]): string {
  const lines = files.map((f) => `${sha256(f.content)}  ${f.rel}\n`).join("");
  return sha256(lines);
}

/**
 * A snapshot of a Rego bundle's files (an OPA bundle without policy.wasm, e.g. from a bundle server): its `.rego`
 * (not `*_test.rego`) and `data.json`/`data.yaml`/`data.yml` files, under their bundle paths, compiled like a
 * directory. `revision` is the bundle manifest's revision when it has one. Throws PolicyLoadError without Rego.
 */
export function snapshotFromBundle(
  files: ReadonlyMap<string, Buffer>,
  label: string,
  manifestRevision?: string,
): PolicySnapshot {
  const out: SnapshotFile[] = [];
  for (const [name, content] of files) {
    const rel = name.replace(/^\/+/, "");
    const kind = isPolicyFile(rel.slice(rel.lastIndexOf("/") + 1), {});
    if (kind !== undefined) out.push({ rel, content, kind });
  }
  out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const rego = out.filter((f) => f.kind === "rego");
  if (rego.length === 0) throw new PolicyLoadError(`${label} has neither policy.wasm nor .rego files`);
  return {
    dir: label,
    files: out,
    revision: manifestRevision || hashFiles(out).slice(0, 16),
    regoHash: hashFiles(rego),
  };
}

export async function takeSnapshot(dir: string, opts: SnapshotOptions = {}): Promise<PolicySnapshot> {
  const files: SnapshotFile[] = [];
  try {
    await walk(dir, "", opts, files);
  } catch (err) {
    throw new PolicyLoadError(
      `cannot read policy directory ${path.resolve(dir)}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const rego = files.filter((f) => f.kind === "rego");
  if (rego.length === 0)
    throw new PolicyLoadError(`policy directory ${path.resolve(dir)} has no .rego files`);
  return {
    dir,
    files,
    revision: hashFiles(files).slice(0, 16),
    regoHash: hashFiles(rego),
  };
}

// ---- data documents ----

/** Offset of the first JSON syntax error in `s` (JSON.parse's messages may quote the content). */
export function jsonErrorOffset(s: string): number {
  let i = 0;
  const ws = (): void => {
    while (i < s.length && " \t\n\r".includes(s[i] as string)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === "{") {
      i++;
      ws();
      if (s[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (s[i] !== '"') fail();
        str();
        ws();
        if (s[i] !== ":") fail();
        i++;
        value();
        ws();
        if (s[i] === ",") {
          i++;
          continue;
        }
        if (s[i] === "}") {
          i++;
          return;
        }
        fail();
      }
    } else if (c === "[") {
      i++;
      ws();
      if (s[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (s[i] === ",") {
          i++;
          continue;
        }
        if (s[i] === "]") {
          i++;
          return;
        }
        fail();
      }
    } else if (c === '"') {
      str();
    } else {
      const m = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(s.slice(i, i + 400));
      if (!m) fail();
      i += (m as RegExpExecArray)[0].length;
    }
  };
  const str = (): void => {
    i++;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 0x5c) {
        const e = s[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) fail();
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) fail();
        i += 2;
        continue;
      }
      i++;
    }
    fail();
  };
  try {
    value();
    ws();
    if (i < s.length) fail();
  } catch (pos) {
    return typeof pos === "number" ? pos : 0;
  }
  return -1;
}

function lineOf(s: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < s.length; i++) if (s.charCodeAt(i) === 10) line++;
  return line;
}

/** Parse one data file; errors name the file and line but never quote its content. */
export function parseDataFile(file: SnapshotFile): unknown {
  const text = file.content.toString("utf8").replace(/^\uFEFF/, "");
  if (file.rel.endsWith(".json")) {
    try {
      return JSON.parse(text);
    } catch (err) {
      const off = jsonErrorOffset(text);
      const line = lineOf(text, off < 0 ? text.length : off);
      throw new PolicyLoadError(`${file.rel}:${line}: invalid JSON`, { cause: err, file: file.rel, line });
    }
  }
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    const pos = (err as { linePos?: [{ line: number }] }).linePos;
    const line = pos?.[0]?.line;
    const code = (err as { code?: string }).code ?? "parse error";
    throw new PolicyLoadError(`${file.rel}${line ? `:${line}` : ""}: invalid YAML (${code})`, {
      cause: err,
      file: file.rel,
      ...(line ? { line } : {}),
    });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The data document of a snapshot, as `opa build` merges it: each data file's content sits at its
 * directory's path; the root file must be an object; a value defined twice is an error.
 */
export function mergeData(snapshot: PolicySnapshot): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const file of snapshot.files) {
    if (file.kind !== "data") continue;
    const value = parseDataFile(file);
    const dirParts = path.posix.dirname(file.rel) === "." ? [] : path.posix.dirname(file.rel).split("/");
    if (dirParts.length === 0 && !isObject(value)) {
      throw new PolicyLoadError(`${file.rel}: document must be of type object`, { file: file.rel });
    }
    let target = root;
    const conflict = (at: string): never => {
      throw new PolicyLoadError(`${file.rel}: merge error: conflicting values at data.${at}`, {
        file: file.rel,
      });
    };
    for (const [i, part] of dirParts.entries()) {
      const last = i === dirParts.length - 1;
      if (last && !isObject(value)) {
        if (Object.hasOwn(target, part)) conflict(dirParts.join("."));
        target[part] = value;
        break;
      }
      const next = target[part];
      if (next === undefined) target[part] = {};
      else if (!isObject(next)) conflict(dirParts.slice(0, i + 1).join("."));
      target = target[part] as Record<string, unknown>;
    }
    if (isObject(value)) deepMerge(target, value, dirParts, conflict);
  }
  return root;
}

function deepMerge(
  into: Record<string, unknown>,
  from: Record<string, unknown>,
  at: string[],
  conflict: (at: string) => never,
): void {
  for (const [k, v] of Object.entries(from)) {
    const existing = into[k];
    if (existing === undefined) {
      into[k] = v;
    } else if (isObject(existing) && isObject(v)) {
      deepMerge(existing, v, [...at, k], conflict);
    } else {
      conflict([...at, k].join("."));
    }
  }
}
