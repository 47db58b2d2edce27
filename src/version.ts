/**
 * The package's own version (CLI `--version`, metrics' build info, the runtime's /status).
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cachedVersion: string | undefined;

/** The package version, read from the nearest package.json above this file (works from src/ and dist/src/). */
export function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "nats-opa-callout" && typeof pkg.version === "string") {
        cachedVersion = pkg.version;
        return cachedVersion;
      }
    } catch {
      /* keep walking up */
    }
    dir = dirname(dir);
  }
  cachedVersion = "0.0.0-unknown";
  return cachedVersion;
}
