/**
 * File access for config values: paths resolve against the config file's directory (`baseDir`); a missing
 * or unreadable file becomes a problem naming the field and the errno code, never a throw.
 */
import { readFileSync, statSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import type { Problems } from "./types.js";

export function readSecretFile(
  path: string,
  field: string,
  baseDir: string,
  problems: Problems,
): string | undefined {
  try {
    return readFileSync(resolvePath(baseDir, path), "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    problems.push({ field, message: `cannot read file (${code})` });
    return undefined;
  }
}

export function checkFile(
  path: string,
  field: string,
  baseDir: string,
  problems: Problems,
  dir = false,
): string {
  const abs = resolvePath(baseDir, path);
  try {
    const st = statSync(abs);
    if (dir && !st.isDirectory()) problems.push({ field, message: "not a directory" });
    if (!dir && !st.isFile()) problems.push({ field, message: "not a file" });
  } catch (err) {
    problems.push({ field, message: `not found (${(err as NodeJS.ErrnoException).code ?? "error"})` });
  }
  return abs;
}
