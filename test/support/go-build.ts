/**
 * Build the Go programs under bench/ (the storm driver and the Go callout peer) from the Go module
 * proxy, into the user cache — never into the repo. A build is reused while its sources are unchanged.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { BENCH_CACHE, REPO } from "./paths.js";

const execFileP = promisify(execFile);

/** `dir` is relative to the repo (e.g. "bench/storm-go"); returns the binary's absolute path. */
export async function buildGo(dir: string, name: string): Promise<string> {
  const src = join(REPO, dir);
  const h = createHash("sha256");
  for (const f of readdirSync(src).sort()) {
    if (f.endsWith(".go") || f === "go.mod" || f === "go.sum") h.update(f).update(readFileSync(join(src, f)));
  }
  const outDir = join(BENCH_CACHE, "bin");
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, `${name}-${h.digest("hex").slice(0, 12)}`);
  if (existsSync(out)) return out;
  await execFileP("go", ["build", "-trimpath", "-o", out, "."], {
    cwd: src,
    env: {
      ...process.env,
      CGO_ENABLED: "0",
      GOFLAGS: "-mod=readonly",
      GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? "local",
    },
    maxBuffer: 16 * 2 ** 20,
  });
  return out;
}
