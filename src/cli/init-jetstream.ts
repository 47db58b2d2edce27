/**
 * `init --jetstream`: the JetStream parts of the generated configuration, kept apart from init.ts.
 *
 * Config mode: a server `jetstream {}` block (store dir, optional server-wide caps), `jetstream: {…}` limits on
 * every target account, and one static JetStream admin user per target account (`js-admin-<ACCOUNT>`, listed in
 * `auth_users` so it skips the callout; random password, stored only as a bcrypt hash in the server config).
 * Operator mode: the same server block, JetStream limits in each target account's JWT (signed by the operator),
 * and the admin as a creds file whose user JWT the target account signs.
 *
 * The admin may manage streams, KV buckets and object stores of its account ($JS.API.>, $KV.>, $O.>, replies on
 * _INBOX.>) and nothing else; callout users get JetStream rights only through the policy.
 */
import type { KeyPair } from "@nats-io/nkeys";
import { createUser } from "@nats-io/nkeys";
import { encodeUser, fmtCreds, type JetStreamLimits } from "@nats-io/jwt";
import { UsageError } from "./common.js";

export const JETSTREAM_HELP = `  --jetstream            enable JetStream: server jetstream block, JetStream on every target account,
                         and a JetStream admin per target account (js-admin-<ACCOUNT>, skips the callout)
  --js-store-dir <path>  where streams, KV and object stores are kept (default: <dir>/jetstream)
  --js-max-mem <size>    server-wide memory store cap (default: nats-server's, 75% of RAM)
  --js-max-file <size>   server-wide file store cap (default: nats-server's, up to 1 TB of disk)
  --js-account-max-mem <size>, --js-account-max-file <size>
                         per target account: memory / file storage (default: -1, no account limit)
  --js-account-max-streams <n>, --js-account-max-consumers <n>
                         per target account: streams (KV buckets and object stores count) / consumers
                         (watchers count) (default: -1)
                         Sizes are bytes or a number with K, M, G or T (powers of 1024); -1 = no limit.`;

/** The parseArgs option table of the JetStream flags (merged into init's). */
export const JETSTREAM_FLAGS = {
  jetstream: { type: "boolean" },
  "js-store-dir": { type: "string" },
  "js-max-mem": { type: "string" },
  "js-max-file": { type: "string" },
  "js-account-max-mem": { type: "string" },
  "js-account-max-file": { type: "string" },
  "js-account-max-streams": { type: "string" },
  "js-account-max-consumers": { type: "string" },
} as const;

export interface JetStreamInitOptions {
  /** Store directory; default `<dir>/jetstream`. */
  storeDir?: string;
  /** Server-wide caps in bytes; undefined = the server's default. */
  maxMemory?: number;
  maxFile?: number;
  /** Per target account; -1 = no account limit. */
  accountMaxMemory: number;
  accountMaxFile: number;
  accountMaxStreams: number;
  accountMaxConsumers: number;
}

/** One JetStream admin: config mode has a password, operator mode a creds file. */
export interface JetStreamAdmin {
  account: string;
  user: string;
  /** File with the password (config mode) or the creds (operator mode); 0600. */
  file: string;
}

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "-1", "1048576", "256M", "1G", "2GB" → bytes (-1 = no limit). */
export function parseSize(flag: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  if (v.trim() === "-1") return -1;
  const m = /^(\d+)\s*([KMGT]?)B?$/i.exec(v.trim());
  const n = m ? Number(m[1]) * (UNITS[(m[2] ?? "").toUpperCase()] ?? NaN) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`--${flag} must be -1 or a size like 1048576, 256M or 1G, got "${v}"`);
  }
  return n;
}

function countFlag(flag: string, v: string | undefined): number {
  if (v === undefined) return -1;
  const n = Number(v);
  if (!Number.isInteger(n) || n < -1 || n === 0 || n > 1_000_000) {
    throw new UsageError(`--${flag} must be -1 or a positive integer, got "${v}"`);
  }
  return n;
}

/** The JetStream options from init's parsed flags; undefined without --jetstream (other js flags then refused). */
export function jetStreamOptions(
  values: Record<string, string | boolean | undefined>,
): JetStreamInitOptions | undefined {
  const str = (k: string) => values[k] as string | undefined;
  if (values.jetstream !== true) {
    const stray = Object.keys(JETSTREAM_FLAGS).find((k) => k !== "jetstream" && values[k] !== undefined);
    if (stray) throw new UsageError(`--${stray} needs --jetstream`);
    return undefined;
  }
  const o: JetStreamInitOptions = {
    accountMaxMemory: parseSize("js-account-max-mem", str("js-account-max-mem"), -1),
    accountMaxFile: parseSize("js-account-max-file", str("js-account-max-file"), -1),
    accountMaxStreams: countFlag("js-account-max-streams", str("js-account-max-streams")),
    accountMaxConsumers: countFlag("js-account-max-consumers", str("js-account-max-consumers")),
  };
  const storeDir = str("js-store-dir");
  if (storeDir !== undefined) o.storeDir = storeDir;
  const maxMem = parseSize("js-max-mem", str("js-max-mem"), -1);
  const maxFile = parseSize("js-max-file", str("js-max-file"), -1);
  if (maxMem > 0) o.maxMemory = maxMem;
  if (maxFile > 0) o.maxFile = maxFile;
  return o;
}

/** The admin user's name for a target account. */
export function jetStreamAdminName(account: string): string {
  return `js-admin-${account}`;
}

/** Files `--jetstream` writes, for init's collision check. */
export function jetStreamFiles(accounts: string[], operator: boolean): string[] {
  return accounts.map((a) => `${jetStreamAdminName(a)}.${operator ? "creds" : "password"}`);
}

/** What the admin may do: manage and use JetStream in its account, read API replies. Nothing else. */
export const JETSTREAM_ADMIN_PERMISSIONS = Object.freeze({
  pub: ["$JS.API.>", "$KV.>", "$O.>", "$JS.ACK.>", "$JS.FC.>"],
  sub: ["_INBOX.>"],
});

const hcl = (s: string): string => JSON.stringify(s);
const list = (xs: readonly string[]): string => `[${xs.map(hcl).join(", ")}]`;

/** The server-level `jetstream {}` block (both modes). */
export function serverJetStreamBlock(o: JetStreamInitOptions, storeDir: string): string {
  const cap = (key: string, v: number | undefined, dflt: string) =>
    v === undefined ? `  # ${key}: 1073741824   # bytes; unset = ${dflt}` : `  ${key}: ${v}`;
  return `
# JetStream (init --jetstream): streams, KV buckets and object stores are kept under store_dir.
# Server-wide caps below; per-account limits are on each account (config mode) or in its JWT (operator mode).
jetstream {
  store_dir: ${hcl(storeDir)}
${cap("max_memory_store", o.maxMemory, "75% of RAM")}
${cap("max_file_store", o.maxFile, "up to 1 TB of disk")}
}
`;
}

/**
 * The body of a config-mode target account: its JetStream limits and its admin user (bcrypt hash).
 * -1 = no account limit (the server-wide caps still apply).
 */
export function configAccountBody(o: JetStreamInitOptions, account: string, passwordHash: string): string {
  const p = JETSTREAM_ADMIN_PERMISSIONS;
  return `
    # JetStream limits of this account; -1 = no account limit (the server-wide caps still apply).
    jetstream: {
      max_mem: ${o.accountMaxMemory}
      max_file: ${o.accountMaxFile}
      max_streams: ${o.accountMaxStreams}
      max_consumers: ${o.accountMaxConsumers}
    }
    users: [
      # JetStream admin (creates buckets and streams); listed in auth_users, so it skips the callout.
      {
        user: ${hcl(jetStreamAdminName(account))}
        password: ${hcl(passwordHash)}
        permissions: { publish: { allow: ${list(p.pub)} }, subscribe: { allow: ${list(p.sub)} } }
      }
    ]
  `;
}

/** JetStream limits for a target account's JWT (operator mode); a non-zero storage limit enables JetStream. */
export function accountJwtJetStreamLimits(o: JetStreamInitOptions): Partial<JetStreamLimits> {
  return {
    mem_storage: o.accountMaxMemory,
    disk_storage: o.accountMaxFile,
    streams: o.accountMaxStreams,
    consumer: o.accountMaxConsumers,
  };
}

/** Operator mode: the admin's creds, a user JWT signed by the target account. */
export async function adminCreds(account: string, accountKp: KeyPair): Promise<string> {
  const kp = createUser();
  const p = JETSTREAM_ADMIN_PERMISSIONS;
  const jwt = await encodeUser(jetStreamAdminName(account), kp, accountKp, {
    pub: { allow: [...p.pub] },
    sub: { allow: [...p.sub] },
  });
  return new TextDecoder().decode(fmtCreds(jwt, kp));
}
