/**
 * A minimal reader for the tar.gz bundles `opa build` writes: gunzip (bounded) + ustar entries,
 * with PAX (`x`) and GNU long-name (`L`) headers. Regular files only; everything else is skipped.
 */
import { gunzipSync } from "node:zlib";

export class TarError extends Error {}

const BLOCK = 512;

function cstr(buf: Buffer, start: number, len: number): string {
  const slice = buf.subarray(start, start + len);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul === -1 ? slice.length : nul).toString("utf8");
}

function octal(buf: Buffer, start: number, len: number): number {
  const first = buf[start] ?? 0;
  if (first & 0x80) throw new TarError("base-256 sizes are not supported");
  const s = cstr(buf, start, len).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarError("invalid octal field in tar header");
  return parseInt(s, 8);
}

function paxPath(data: Buffer): string | undefined {
  let off = 0;
  let path: string | undefined;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp === -1) break;
    const len = parseInt(data.subarray(off, sp).toString("ascii"), 10);
    if (!Number.isFinite(len) || len <= 0) throw new TarError("invalid PAX record");
    const rec = data.subarray(sp + 1, off + len - 1).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq !== -1 && rec.slice(0, eq) === "path") path = rec.slice(eq + 1);
    off += len;
  }
  return path;
}

/** Regular files of a tar.gz, keyed by member name as written (opa build: "/policy.wasm", …). */
export function readTarGz(gz: Uint8Array, maxBytes = 512 * 1024 * 1024): Map<string, Buffer> {
  let tar: Buffer;
  try {
    tar = gunzipSync(gz, { maxOutputLength: maxBytes });
  } catch (err) {
    throw new TarError(`not a gzip stream or larger than ${maxBytes} bytes`, { cause: err });
  }
  const files = new Map<string, Buffer>();
  let off = 0;
  let longName: string | undefined;
  while (off + BLOCK <= tar.length) {
    const header = tar.subarray(off, off + BLOCK);
    if (header.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
    if (sum !== octal(header, 148, 8)) throw new TarError("tar header checksum mismatch");
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] ?? 0);
    let name = cstr(header, 0, 100);
    if (cstr(header, 257, 6) === "ustar") {
      const prefix = cstr(header, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    const start = off + BLOCK;
    const end = start + size;
    if (end > tar.length) throw new TarError("truncated tar member");
    const body = tar.subarray(start, end);
    off = start + Math.ceil(size / BLOCK) * BLOCK;
    if (type === "x") {
      longName = paxPath(body) ?? longName;
      continue;
    }
    if (type === "L") {
      longName = cstr(body, 0, body.length);
      continue;
    }
    if (type === "g") continue;
    if (longName !== undefined) {
      name = longName;
      longName = undefined;
    }
    if (type === "0" || type === "\0") files.set(name, Buffer.from(body));
  }
  return files;
}
