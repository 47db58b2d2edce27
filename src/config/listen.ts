/**
 * Listen addresses (metrics.listen).
 */
import type { Problems } from "./types.js";

export function parseListen(
  s: string,
  field: string,
  problems: Problems,
): { host: string; port: number } | null {
  if (s === "off") return null;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    problems.push({ field, message: `expected "host:port" or "off", got ${JSON.stringify(s)}` });
    return null;
  }
  return { host: (m[1] ?? m[2]) as string, port };
}
