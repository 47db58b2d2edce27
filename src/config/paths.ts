/**
 * File access for config values: paths resolve against the config file's directory (`baseDir`); a missing
 * or unreadable file becomes a problem naming the field, the resolved path and the errno code, never a throw.
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
  const abs = resolvePath(baseDir, path);
  try {
    return readFileSync(abs, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    problems.push({ field, message: `cannot read ${abs} (${code})` });
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
    if (dir && !st.isDirectory()) problems.push({ field, message: `${abs} is not a directory` });
    if (!dir && !st.isFile()) problems.push({ field, message: `${abs} is not a file` });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    problems.push({ field, message: `${abs} not found (${code})` });
  }
  return abs;
}
