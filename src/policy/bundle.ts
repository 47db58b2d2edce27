/**
 * Policy bundles: build one from a directory snapshot with `opa build -t wasm`, read a bundle.tar.gz
 * (ours or prebuilt, for hosts without opa), and the loader that turns either source into a compiled
 * module plus its data document (JSON bytes) — reusing the compiled module when only data files
 * changed, and refusing a data document above `maxDataBytes` before parsing or copying it.
 * Instantiation happens in the evaluation workers (./pool.ts), off the serving thread.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PolicyLoadError } from "../errors.js";
import { faultText, mib } from "./faults.js";
import { inputReads, type InputPath } from "./input-reads.js";
import { POOL_DEFAULTS } from "./limits.js";
import { checkDataSize } from "./pool.js";
import {
  mergeData,
  snapshotFromBundle,
  takeSnapshot,
  type PolicySnapshot,
  type SnapshotOptions,
} from "./snapshot.js";
import { TarError, readTarGz } from "./tar.js";
import { wasmApi, type WasmModule } from "./wasm.js";

export interface BundleManifest {
  revision: string;
  roots?: string[];
  rego_version?: number;
  wasm: { entrypoint: string; module: string }[];
  [key: string]: unknown;
}

export interface PolicyBundle {
  wasm: Uint8Array;
  /** data.json exactly as in the bundle (raw bytes keep big numbers exact). */
  dataJson: Buffer;
  manifest: BundleManifest;
}

/**
 * Read a bundle.tar.gz: requires /policy.wasm, /data.json and /.manifest, and a manifest that lists
 * every entrypoint (with /policy.wasm as its module).
 */
export function readBundle(gz: Uint8Array, entrypoints: readonly string[]): PolicyBundle {
  let files: Map<string, Buffer>;
  try {
    files = readTarGz(gz);
  } catch (err) {
    throw new PolicyLoadError(`invalid bundle: ${err instanceof TarError ? err.message : String(err)}`, {
      cause: err,
    });
  }
  const get = (name: string): Buffer | undefined => files.get(name) ?? files.get(name.slice(1));
  const wasm = get("/policy.wasm");
  const dataJson = get("/data.json");
  const manifestRaw = get("/.manifest");
  const missing = [
    ["/policy.wasm", wasm],
    ["/data.json", dataJson],
    ["/.manifest", manifestRaw],
  ]
    .filter(([, v]) => v === undefined)
    .map(([n]) => n);
  if (missing.length > 0 || !wasm || !dataJson || !manifestRaw) {
    throw new PolicyLoadError(`invalid bundle: missing ${missing.join(", ")}`);
  }
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(manifestRaw.toString("utf8")) as BundleManifest;
  } catch (err) {
    throw new PolicyLoadError("invalid bundle: .manifest is not JSON", { cause: err });
  }
  if (typeof manifest !== "object" || manifest === null || !Array.isArray(manifest.wasm)) {
    throw new PolicyLoadError("invalid bundle: .manifest has no wasm entrypoints");
  }
  for (const ep of entrypoints) {
    const entry = manifest.wasm.find((w) => w && w.entrypoint === ep);
    if (!entry) throw new PolicyLoadError(`invalid bundle: manifest does not list entrypoint ${ep}`);
    if (entry.module !== "/policy.wasm") {
      throw new PolicyLoadError(`invalid bundle: entrypoint ${ep} is in module ${String(entry.module)}`);
    }
  }
  if (typeof manifest.revision !== "string") manifest.revision = "";
  return { wasm: new Uint8Array(wasm), dataJson, manifest };
}

/** policies/capabilities.json shipped with this package, if present. */
export function defaultCapabilitiesPath(): string | undefined {
  for (const rel of ["../../policies/capabilities.json", "../../../policies/capabilities.json"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return undefined;
}

export interface BuildOptions {
  entrypoints: readonly string[];
  /** Capabilities file for `opa build` (default: the packaged policies/capabilities.json). */
  capabilities?: string;
  /** The opa binary (default "opa" on PATH). */
  opaBin?: string;
  timeoutMs?: number;
  /**
   * Sign the bundle (`opa build --bundle --signing-key`): a PEM private key file (RS*, PS*, ES*) or, for HS*, the
   * shared secret itself (opa takes it on its command line: prefer asymmetric keys on shared build hosts).
   */
  signing?: { algorithm: string; key: string };
}

/** First "file:line" an opa error message names (paths are relative to the policy directory). */
export function parseOpaErrorLocation(text: string): { file?: string; line?: number } {
  const m = /(?:^|[\s:])((?:[\w.@+-]+\/)*[\w.@+-]+\.(?:rego|json|ya?ml))(?::(\d+))?:/m.exec(text);
  if (!m) return {};
  const file = (m[1] as string).replace(/^\.\//, "");
  return m[2] ? { file, line: Number(m[2]) } : { file };
}

function cleanOpaOutput(text: string): string {
  const t = text.trim().replace(/^error: /, "");
  return t.length > 4000 ? `${t.slice(0, 4000)}…` : t;
}

/** The opa binary to run from any cwd: a relative path resolved now, a bare name left to PATH. */
function opaBinary(opaBin: string | undefined): string {
  if (opaBin === undefined) return "opa";
  return opaBin.includes(path.sep) ? path.resolve(opaBin) : opaBin;
}

/** Compile a snapshot with `opa build -t wasm` in a private temp dir; returns the bundle bytes. */
export async function buildBundle(snapshot: PolicySnapshot, opts: BuildOptions): Promise<Buffer> {
  const work = await mkdtemp(path.join(tmpdir(), "nats-opa-callout-build-"));
  try {
    const src = path.join(work, "src");
    for (const f of snapshot.files) {
      const dest = path.join(src, ...f.rel.split("/"));
      await mkdir(path.dirname(dest), { recursive: true });
      await writeFile(dest, f.content);
    }
    const out = path.join(work, "bundle.tar.gz");
    const args = ["build", "-t", "wasm"];
    if (opts.signing)
      args.push("--bundle", "--signing-alg", opts.signing.algorithm, "--signing-key", opts.signing.key);
    for (const ep of opts.entrypoints) args.push("-e", ep);
    const caps = opts.capabilities ?? defaultCapabilitiesPath();
    if (caps) args.push("--capabilities", path.resolve(caps));
    args.push("-r", snapshot.revision, "-o", out, ".");
    // opa runs with cwd = the temp copy: a relative binary path is resolved here, a bare name via PATH
    const bin = opaBinary(opts.opaBin);
    await new Promise<void>((resolve, reject) => {
      execFile(
        bin,
        args,
        { cwd: src, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 4 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (!err) return resolve();
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") {
            return reject(
              new PolicyLoadError(`opa binary not found (${bin}); install opa or load a prebuilt bundle`),
            );
          }
          if (err.killed)
            return reject(new PolicyLoadError(`opa build timed out after ${opts.timeoutMs ?? 60_000} ms`));
          const text = cleanOpaOutput(`${stderr}${stdout}`) || err.message;
          const loc = parseOpaErrorLocation(text);
          reject(new PolicyLoadError(text, { cause: err, ...loc }));
        },
      );
    });
    return await readFile(out);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// ---- loader ----

export type PolicySource = { dir: string; bundle?: undefined } | { bundle: string; dir?: undefined };

export interface LoaderOptions extends BuildOptions, SnapshotOptions {
  /** Largest data document, in JSON bytes (default 8 MiB; policy.max_data_bytes). */
  maxDataBytes?: number;
}

export interface LoadedPolicy {
  /** The compiled module (shared by every worker's instance). */
  module: WasmModule;
  /** The data document as JSON bytes. */
  data: Uint8Array;
  revision: string;
  /** False when only data changed and the previous module was reused. */
  compiled: boolean;
  /** The input paths the Rego may read (./input-reads.ts); undefined: unknown (a wasm bundle), may read anything. */
  inputReads?: InputPath[] | undefined;
}

function sha16(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex").slice(0, 16);
}

/**
 * Turns a policy source into engine instances. Remembers the last successful build so that it can
 * say "unchanged" (same content hash) and skip `opa build` when only data files changed.
 * Not re-entrant: the watcher serialises calls.
 */
/**
 * A bundle without `/policy.wasm` (a Rego bundle, as OPA bundle servers serve them) as a snapshot to compile on
 * arrival like a directory; undefined for a wasm bundle (or anything that is not a readable archive: readBundle
 * reports that).
 */
function regoBundleSnapshot(gz: Buffer, label: string): PolicySnapshot | undefined {
  let files: Map<string, Buffer>;
  try {
    files = readTarGz(gz);
  } catch {
    return undefined;
  }
  if (files.has("/policy.wasm")) return undefined;
  let revision: string | undefined;
  try {
    const m = JSON.parse(files.get("/.manifest")?.toString("utf8") ?? "{}") as { revision?: unknown };
    if (typeof m.revision === "string") revision = m.revision;
  } catch {
    /* no usable manifest: the content hash names the revision */
  }
  return snapshotFromBundle(files, `Rego bundle ${path.basename(label)}`, revision);
}

export class PolicyLoader {
  private lastRevision: string | undefined;
  private lastRegoHash: string | undefined;
  private lastModule: WasmModule | undefined;
  private lastInputReads: InputPath[] | undefined;
  /** Content revision of the source the last load() call read (set before any build). */
  lastAttempted: string | undefined;

  constructor(
    readonly source: PolicySource,
    private readonly opts: LoaderOptions,
  ) {}

  /** Content revision of the source right now (cheap: read + hash, no build). */
  async currentRevision(): Promise<{ revision: string; snapshot?: PolicySnapshot; bundle?: Buffer }> {
    if (this.source.bundle !== undefined) {
      let bytes: Buffer;
      try {
        bytes = await readFile(this.source.bundle);
      } catch (err) {
        throw new PolicyLoadError(
          `cannot read bundle ${path.resolve(this.source.bundle)}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      return { revision: sha16(bytes), bundle: bytes };
    }
    const snapshot = await takeSnapshot(this.source.dir, this.opts);
    return { revision: snapshot.revision, snapshot };
  }

  /** The revision of the source as it was last activated (undefined before the first success). */
  get activeRevision(): string | undefined {
    return this.lastRevision;
  }

  /**
   * Load a new engine instance, or return undefined when the content is unchanged since the last
   * successful load (unless `force`). The caller verifies and activates it, then calls `commit`.
   */
  async load(force = false): Promise<(LoadedPolicy & { commit: () => void }) | undefined> {
    const current = await this.currentRevision();
    if (!force && current.revision === this.lastRevision) return undefined;
    this.lastAttempted = current.revision;
    const maxData = this.opts.maxDataBytes ?? POOL_DEFAULTS.maxDataBytes;
    if (current.bundle) {
      const rego = regoBundleSnapshot(current.bundle, this.source.bundle ?? "bundle");
      if (rego !== undefined) return this.loadSnapshot(rego, maxData, current.revision);
      const bundle = readBundle(current.bundle, this.opts.entrypoints);
      checkDataSize(bundle.dataJson.byteLength, maxData, "the bundle's data.json");
      const module = await compileModule(bundle.wasm);
      const revision = bundle.manifest.revision || current.revision;
      return {
        module,
        data: bundle.dataJson,
        revision,
        compiled: true,
        commit: () => {
          this.lastRevision = current.revision;
        },
      };
    }
    return this.loadSnapshot(current.snapshot as PolicySnapshot, maxData);
  }

  /**
   * Compile a snapshot (a directory, or a Rego bundle's files) and prepare its data, reusing an unchanged module.
   * `sourceRevision` is what currentRevision() reports for the source (a bundle file's content hash), recorded on
   * commit so an unchanged file is not rebuilt; it defaults to the snapshot's revision.
   */
  private async loadSnapshot(
    snapshot: PolicySnapshot,
    maxData: number,
    sourceRevision = snapshot.revision,
  ): Promise<LoadedPolicy & { commit: () => void }> {
    const dataFiles = snapshot.files.filter((f) => f.kind === "data");
    const rawBytes = dataFiles.reduce((n, f) => n + f.content.byteLength, 0);
    checkDataSize(rawBytes, maxData, dataDescription(dataFiles));
    const data = Buffer.from(JSON.stringify(mergeData(snapshot))); // validates data files with file:line before any build
    checkDataSize(data.byteLength, maxData, "the merged data document");
    if (this.lastModule && snapshot.regoHash === this.lastRegoHash) {
      return {
        module: this.lastModule,
        data,
        revision: snapshot.revision,
        compiled: false,
        inputReads: this.lastInputReads,
        commit: () => {
          this.lastRevision = sourceRevision;
        },
      };
    }
    const [gz, reads] = await Promise.all([
      buildBundle(snapshot, this.opts),
      inputReads(
        snapshot.files.filter((f) => f.kind === "rego"),
        opaBinary(this.opts.opaBin),
      ),
    ]);
    const bundle = readBundle(gz, this.opts.entrypoints);
    const module = await compileModule(bundle.wasm);
    return {
      module,
      data,
      revision: snapshot.revision,
      compiled: true,
      inputReads: reads,
      commit: () => {
        this.lastRevision = sourceRevision;
        this.lastRegoHash = snapshot.regoHash;
        this.lastModule = module;
        this.lastInputReads = reads;
      },
    };
  }
}

async function compileModule(wasm: Uint8Array): Promise<WasmModule> {
  try {
    return await wasmApi.compile(wasm);
  } catch (err) {
    throw new PolicyLoadError(`invalid wasm module: ${faultText(err)}`, { cause: err });
  }
}

/** "data.json" or "data files (a/data.json 3.0 MiB, data.yaml 1.0 KiB)" for the size error. */
function dataDescription(files: readonly { rel: string; content: Buffer }[]): string {
  if (files.length === 1) return (files[0] as { rel: string }).rel;
  const parts = files.map((f) => `${f.rel} ${mib(f.content.byteLength)}`);
  return `the data files together (${parts.join(", ")})`;
}
