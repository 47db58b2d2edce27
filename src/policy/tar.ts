/**
 * Reads the tar.gz bundles `opa build` writes (and any OPA bundle server serves) with node-tar, the archive
 * library npm itself uses. We only bound and police what comes out:
 *
 * - gunzip is bounded (`maxBytes`, default 512 MiB) so a small download cannot expand without limit;
 * - regular files only; directories are skipped; links, devices and FIFOs are refused (a bundle has no use for
 *   them, and following one could read outside the archive);
 * - member names are normalised to one leading "/" (opa writes "/policy.wasm"; other tools write "policy.wasm")
 *   and must not contain "." or ".." segments, NUL or backslashes;
 * - a name that appears twice is refused (which copy a loader saw would otherwise depend on the reader);
 * - a truncated or corrupt archive is refused (strict parsing), never half-read.
 *
 * Errors are TarError with a message naming the member, never its content.
 */
import { gunzipSync } from "node:zlib";
import { Parser, type ReadEntry } from "tar";

export class TarError extends Error {}

const REGULAR = new Set(["File", "OldFile", "ContiguousFile"]);
const SKIPPED = new Set(["Directory", "GlobalExtendedHeader", "ExtendedHeader", "NextFileHasLongPath"]);

/** "/a/b" for "a/b", "./a/b" or "/a/b"; throws on unsafe names. */
export function normaliseMemberName(raw: string): string {
  if (raw.includes("\0") || raw.includes("\\"))
    throw new TarError(`unsafe member name ${JSON.stringify(raw)}`);
  const parts = raw.split("/").filter((p, i) => !(p === "" && i === 0) && !(p === "." && i === 0));
  if (parts.length === 0 || parts.some((p) => p === "" || p === "." || p === "..")) {
    throw new TarError(`unsafe member name ${JSON.stringify(raw)}`);
  }
  return "/" + parts.join("/");
}

/** Regular files of a tar.gz, keyed by normalised member name ("/policy.wasm", "/data.json", …). */
export function readTarGz(gz: Uint8Array, maxBytes = 512 * 1024 * 1024): Map<string, Buffer> {
  let tar: Buffer;
  try {
    tar = gunzipSync(gz, { maxOutputLength: maxBytes });
  } catch (err) {
    throw new TarError(`not a gzip stream or larger than ${maxBytes} bytes`, { cause: err });
  }
  const files = new Map<string, Buffer>();
  let failure: TarError | undefined;
  const fail = (e: TarError): void => {
    failure ??= e;
  };
  const parser = new Parser({
    strict: true,
    onwarn: (_code: string, message: string | Error) =>
      fail(new TarError(`corrupt tar archive: ${message instanceof Error ? message.message : message}`)),
    onReadEntry: (entry: ReadEntry) => {
      if (SKIPPED.has(entry.type)) {
        entry.resume();
        return;
      }
      let name: string;
      try {
        if (!REGULAR.has(entry.type))
          throw new TarError(`member ${JSON.stringify(entry.path)} is a ${entry.type}`);
        name = normaliseMemberName(entry.path);
        if (files.has(name)) throw new TarError(`member ${name} appears twice`);
      } catch (err) {
        fail(err as TarError);
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      entry.on("data", (c: Buffer) => chunks.push(c));
      entry.on("end", () => files.set(name, Buffer.concat(chunks)));
    },
  });
  parser.on("error", (err: Error) => fail(new TarError(`corrupt tar archive: ${err.message}`)));
  // node-tar parses a whole in-memory buffer synchronously: every entry has ended when end() returns.
  parser.end(tar);
  if (failure) throw failure;
  if (files.size === 0) throw new TarError("the archive has no files");
  return files;
}
