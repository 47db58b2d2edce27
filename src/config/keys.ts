/**
 * Key parsing: nkey seeds (`SA…`, `SU…`, `SX…`) given inline or in a file, and account public keys (`A…`).
 * Checks prefix and checksum; a bad key becomes a problem naming the field, never the key itself.
 */
import { fromCurveSeed, fromPublic, fromSeed } from "@nats-io/nkeys";
import { readSecretFile } from "./paths.js";
import { Secret, type Problems, type ResolvedKey } from "./types.js";

const PREFIX_NAMES: Record<string, string> = {
  SA: "an account seed (SA…)",
  SO: "an operator seed (SO…)",
  SU: "a user seed (SU…)",
  SX: "a curve (xkey) seed (SX…)",
  SN: "a server seed (SN…)",
  SC: "a cluster seed (SC…)",
};

const enc = new TextEncoder();

/** Parses a seed of the wanted kind; never puts the seed itself into a message. */
export function parseSeed(
  seed: string,
  want: "SA" | "SU" | "SX",
  field: string,
  problems: Problems,
): ResolvedKey | undefined {
  const s = seed.trim();
  const prefix = s.slice(0, 2);
  if (prefix !== want) {
    const got = PREFIX_NAMES[prefix] ?? (s.startsWith("S") ? "an unknown seed type" : "not a seed");
    problems.push({ field, message: `expected ${PREFIX_NAMES[want]}, got ${got}` });
    return undefined;
  }
  try {
    const kp = want === "SX" ? fromCurveSeed(enc.encode(s)) : fromSeed(enc.encode(s));
    const publicKey = kp.getPublicKey();
    kp.clear();
    return { seed: new Secret(s), publicKey };
  } catch (err) {
    const reason = err instanceof Error && /checksum/.test(err.message) ? "bad checksum" : "malformed";
    problems.push({ field, message: `${PREFIX_NAMES[want]} is invalid (${reason})` });
    return undefined;
  }
}

export function checkAccountPublicKey(key: string, field: string, problems: Problems): boolean {
  if (!key.startsWith("A")) {
    problems.push({ field, message: "expected an account public key (A…)" });
    return false;
  }
  try {
    fromPublic(key);
    return true;
  } catch {
    problems.push({ field, message: "account public key is invalid (bad checksum or length)" });
    return false;
  }
}

/** Seed given inline (`<base>.<inlineKey>`) or as a file (`<base>.<fileKey>`), exactly one. */
export function seedFrom(
  values: Map<string, unknown>,
  base: string,
  inlineKey: string,
  fileKey: string,
  want: "SA" | "SX",
  baseDir: string,
  problems: Problems,
): ResolvedKey | undefined | null {
  const inline = values.get(`${base}.${inlineKey}`) as string | undefined;
  const file = values.get(`${base}.${fileKey}`) as string | undefined;
  if (inline !== undefined && file !== undefined) {
    problems.push({
      field: `${base}.${inlineKey}`,
      message: `set either ${inlineKey} or ${fileKey}, not both`,
    });
    return undefined;
  }
  if (inline !== undefined) return parseSeed(inline, want, `${base}.${inlineKey}`, problems);
  if (file !== undefined) {
    const text = readSecretFile(file, `${base}.${fileKey}`, baseDir, problems);
    return text === undefined ? undefined : parseSeed(text, want, `${base}.${fileKey}`, problems);
  }
  return null; // not given
}
