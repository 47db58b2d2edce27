/**
 * The last step every remote bundle source shares: check a downloaded bundle and hand it to the service by
 * atomically replacing the local bundle file that the policy watcher already watches (`policy.bundle`). The
 * watcher then does what it does for any bundle file: read, check entrypoints, instantiate, smoke-evaluate,
 * swap — or keep the last good revision and report why.
 *
 * Checked here, before anything touches the file:
 * - the archive reads (bounded gunzip, safe member names — src/policy/tar.ts) and has a `/.manifest`;
 * - when signing is configured, the signature verifies (src/policy/signature.ts). An unsigned or tampered
 *   download never reaches the disk, so a restart cannot load it either.
 *
 * The file is written to a temporary sibling, fsynced and renamed over the target: a reader sees the old or
 * the new bundle, never half of one. Unchanged content (same sha256) is not rewritten.
 */
import { createHash } from "node:crypto";
import { open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { PolicyLoadError } from "../../errors.js";
import { verifyBundleSignature, type VerificationConfig } from "../signature.js";
import { TarError, readTarGz } from "../tar.js";

export interface DeliverOptions {
  /** The local bundle file the watcher loads (`policy.bundle`). */
  target: string;
  /** Signature verification; undefined = signatures not required (a present .signatures.json is ignored). */
  signing?: VerificationConfig;
  /** Largest bundle accepted once decompressed (bytes). */
  maxBytes?: number;
}

export interface Delivered {
  /** sha256 of the delivered archive (hex). */
  sha256: string;
  /** `revision` from the bundle's manifest ("" when absent). */
  revision: string;
  /** False when the target already held exactly these bytes. */
  changed: boolean;
}

/** Check `bytes` and make them the target bundle. Throws PolicyLoadError (bad bundle) or the fs error. */
export async function deliverBundle(bytes: Buffer, opts: DeliverOptions): Promise<Delivered> {
  let files: Map<string, Buffer>;
  try {
    files = readTarGz(bytes, opts.maxBytes);
  } catch (err) {
    throw new PolicyLoadError(`invalid bundle: ${err instanceof TarError ? err.message : String(err)}`, {
      cause: err,
    });
  }
  const manifestRaw = files.get("/.manifest");
  if (manifestRaw === undefined) throw new PolicyLoadError("invalid bundle: missing /.manifest");
  let revision = "";
  try {
    const m = JSON.parse(manifestRaw.toString("utf8")) as { revision?: unknown };
    if (typeof m.revision === "string") revision = m.revision;
  } catch (err) {
    throw new PolicyLoadError("invalid bundle: .manifest is not JSON", { cause: err });
  }
  if (opts.signing !== undefined) await verifyBundleSignature(files, opts.signing);

  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const current = await readFile(opts.target).catch(() => undefined);
  if (current !== undefined && createHash("sha256").update(current).digest("hex") === sha256) {
    return { sha256, revision, changed: false };
  }
  const tmp = path.join(path.dirname(opts.target), `.${path.basename(opts.target)}.${process.pid}.tmp`);
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, opts.target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return { sha256, revision, changed: true };
}
