/**
 * Service configuration: the input shape (`ServiceConfig`, e.g. parsed YAML), the one table of fields
 * with their types, defaults and descriptions (`CONFIG_FIELDS`, also the source of the config reference
 * docs), and `resolveConfig()`, which applies the defaults, checks everything, pre-parses keys and throws
 * ONE `ConfigError` listing every problem, each naming its field path.
 *
 * The library never reads the environment: `applyEnvOverrides()` is a helper the CLI calls.
 * Seeds, passwords, tokens and creds are wrapped in `Secret` so that they cannot reach a log line by
 * accident (JSON and util.inspect print `[REDACTED]`).
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, resolve as resolvePath } from "node:path";
import { fromCurveSeed, fromPublic, fromSeed } from "@nats-io/nkeys";
import { CORE_DEFAULTS } from "./callout/defaults.js";
import { ConfigError } from "./errors.js";
import { POOL_DEFAULTS } from "./policy/limits.js";

// ---------------------------------------------------------------------------------------------------
// Input shape
// ---------------------------------------------------------------------------------------------------

export type Mode = "config" | "operator";
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
export type LogFormat = "json" | "pretty";

/** A key given inline or as a file holding it (exactly one of the two). */
export interface SeedInput {
  seed?: string;
  seed_file?: string;
}

/** Operator mode: one target account of the allow-list. */
export interface OperatorAccountInput {
  /** The account's public key (`A…`). */
  public_key?: string;
  /** Seed (`SA…`) of the account key or one of its signing keys; signs the user JWTs. */
  signing_key_seed?: string;
  signing_key_seed_file?: string;
}

/** Operator mode: the account whose JWT carries `authorization.auth_users` (the callout account). */
export interface CalloutAccountInput extends SeedInput {
  /** The callout account's public key (`A…`); `seed` is its key or one of its signing keys. */
  public_key?: string;
}

/** The configuration as written by an operator (snake_case, every field optional; see CONFIG_FIELDS). */
export interface ServiceConfig {
  nats?: {
    servers?: string | string[];
    user?: string;
    password?: string;
    token?: string;
    nkey_seed_file?: string;
    creds_file?: string;
    tls?: { ca_file?: string; cert_file?: string; key_file?: string };
    name?: string;
    queue_group?: string;
    subject?: string;
  };
  mode?: Mode;
  issuer?: SeedInput;
  accounts?: string[] | Record<string, OperatorAccountInput>;
  callout_account?: CalloutAccountInput;
  xkey?: SeedInput;
  expiry?: { default_seconds?: number; max_seconds?: number; response_seconds?: number };
  limits?: { max_concurrency?: number; max_queue?: number; max_request_bytes?: number };
  policy?: {
    dir?: string;
    bundle?: string;
    entrypoint?: string;
    mask_entrypoint?: string;
    watch?: boolean;
    opa_binary?: string;
    eval_workers?: number;
    eval_timeout_ms?: number;
    max_data_bytes?: number;
    max_memory_mb?: number;
  };
  log?: { level?: LogLevel; format?: LogFormat };
  decision_log?: { destination?: string };
  metrics?: { listen?: string };
}

// ---------------------------------------------------------------------------------------------------
// The field table: one place for names, types, defaults and descriptions
// ---------------------------------------------------------------------------------------------------

type FieldKind = "string" | "strings" | "integer" | "boolean" | "enum" | "accounts";

/** One configuration field. `path` is dotted; `*` stands for any key of a map. */
export interface ConfigField {
  path: string;
  /** Human-readable type, for the docs. */
  type: string;
  /** Default value; absent when the field has none. */
  default?: unknown;
  description: string;
  /** The value is a secret (never printed). */
  secret?: boolean;
  /** @internal validation kind */
  kind: FieldKind;
  values?: readonly string[];
  min?: number;
  max?: number;
}

export const DEFAULT_SUBJECT = "$SYS.REQ.USER.AUTH";
export const DEFAULT_QUEUE_GROUP = "nats-opa-callout";
export const DEFAULT_ENTRYPOINT = "nats/authz/decision";

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** Every configuration field. The config reference docs and resolveConfig() both read this table. */
export const CONFIG_FIELDS: readonly ConfigField[] = [
  {
    path: "nats.servers",
    type: "string | string[]",
    kind: "strings",
    default: ["nats://127.0.0.1:4222"],
    description: "NATS server URLs (nats:// or tls://, or host:port) the service connects to.",
  },
  {
    path: "nats.user",
    type: "string",
    kind: "string",
    description: "User name of the callout user (one of auth_callout.auth_users); needs nats.password.",
  },
  {
    path: "nats.password",
    type: "string",
    kind: "string",
    secret: true,
    description: "Password for nats.user.",
  },
  {
    path: "nats.token",
    type: "string",
    kind: "string",
    secret: true,
    description: "Authentication token (alternative to user/password, nkey or creds).",
  },
  {
    path: "nats.nkey_seed_file",
    type: "path",
    kind: "string",
    description: "File holding the callout user's nkey seed (SU…).",
  },
  {
    path: "nats.creds_file",
    type: "path",
    kind: "string",
    description: "Creds file (user JWT + seed) of the callout user; typical in operator mode.",
  },
  {
    path: "nats.tls.ca_file",
    type: "path",
    kind: "string",
    description: "CA certificate to verify the NATS server with.",
  },
  {
    path: "nats.tls.cert_file",
    type: "path",
    kind: "string",
    description: "Client certificate for TLS to NATS; needs nats.tls.key_file.",
  },
  {
    path: "nats.tls.key_file",
    type: "path",
    kind: "string",
    description: "Private key of nats.tls.cert_file.",
  },
  {
    path: "nats.name",
    type: "string",
    kind: "string",
    default: "nats-opa-callout",
    description: "Connection name shown in the server's monitoring (connz).",
  },
  {
    path: "nats.queue_group",
    type: "string",
    kind: "string",
    default: DEFAULT_QUEUE_GROUP,
    description: "Queue group of the subscription, so that replicas share the requests.",
  },
  {
    path: "nats.subject",
    type: "string",
    kind: "string",
    default: DEFAULT_SUBJECT,
    description: "Subject the server publishes authorization requests on.",
  },
  {
    path: "mode",
    type: '"config" | "operator"',
    kind: "enum",
    values: ["config", "operator"],
    default: "config",
    description:
      "config: accounts in the server config, users signed by the issuer key. operator: accounts are JWTs, users signed by the target account's (signing) key.",
  },
  {
    path: "issuer.seed",
    type: "string",
    kind: "string",
    secret: true,
    description:
      "Config mode: seed (SA…) of the account key named in auth_callout.issuer; signs user JWTs and responses.",
  },
  {
    path: "issuer.seed_file",
    type: "path",
    kind: "string",
    description: "Config mode: file holding issuer.seed (alternative to issuer.seed).",
  },
  {
    path: "accounts",
    type: "string[] | map",
    kind: "accounts",
    description:
      "Allow-list of target accounts. Config mode: account names. Operator mode: name → {public_key, signing_key_seed | signing_key_seed_file}. SYS only if named explicitly (warns).",
  },
  {
    path: "accounts.*.public_key",
    type: "string",
    kind: "string",
    description: "Operator mode: public key (A…) of the target account.",
  },
  {
    path: "accounts.*.signing_key_seed",
    type: "string",
    kind: "string",
    secret: true,
    description: "Operator mode: seed (SA…) of the account key or one of its signing keys; signs user JWTs.",
  },
  {
    path: "accounts.*.signing_key_seed_file",
    type: "path",
    kind: "string",
    description: "Operator mode: file holding signing_key_seed.",
  },
  {
    path: "callout_account.public_key",
    type: "string",
    kind: "string",
    description:
      "Operator mode: public key (A…) of the callout account (the one with authorization.auth_users).",
  },
  {
    path: "callout_account.seed",
    type: "string",
    kind: "string",
    secret: true,
    description:
      "Operator mode: seed (SA…) of the callout account key or one of its signing keys; signs responses.",
  },
  {
    path: "callout_account.seed_file",
    type: "path",
    kind: "string",
    description: "Operator mode: file holding callout_account.seed.",
  },
  {
    path: "xkey.seed",
    type: "string",
    kind: "string",
    secret: true,
    description:
      "Curve seed (SX…) whose public key (X…) is the server's auth_callout xkey; enables encryption.",
  },
  {
    path: "xkey.seed_file",
    type: "path",
    kind: "string",
    description: "File holding xkey.seed.",
  },
  {
    path: "expiry.default_seconds",
    type: "integer",
    kind: "integer",
    default: CORE_DEFAULTS.defaultExpirySeconds,
    min: 1,
    max: 2_592_000,
    description: "Lifetime of an issued user JWT when the grant does not set expires_in.",
  },
  {
    path: "expiry.max_seconds",
    type: "integer",
    kind: "integer",
    default: CORE_DEFAULTS.maxExpirySeconds,
    min: 1,
    max: 2_592_000,
    description: "Upper bound for a grant's expires_in (longer requests are capped).",
  },
  {
    path: "expiry.response_seconds",
    type: "integer",
    kind: "integer",
    default: CORE_DEFAULTS.responseExpirySeconds,
    min: 1,
    max: 300,
    description: "Lifetime of the signed authorization response.",
  },
  {
    path: "limits.max_concurrency",
    type: "integer",
    kind: "integer",
    default: 32,
    min: 1,
    max: 10_000,
    description: "Requests handled at the same time.",
  },
  {
    path: "limits.max_queue",
    type: "integer",
    kind: "integer",
    default: 1024,
    min: 0,
    max: 1_000_000,
    description:
      "Requests waiting for a slot; when full, the newest request is dropped (the client times out) and counted.",
  },
  {
    path: "limits.max_request_bytes",
    type: "integer",
    kind: "integer",
    default: CORE_DEFAULTS.maxRequestBytes,
    min: 1024,
    max: 8_388_608,
    description: "Larger requests are dropped unread.",
  },
  {
    path: "policy.dir",
    type: "path",
    kind: "string",
    description: "Directory of Rego policies (compiled to wasm with opa). Exclusive with policy.bundle.",
  },
  {
    path: "policy.bundle",
    type: "path",
    kind: "string",
    description: "Prebuilt wasm bundle (opa build -t wasm). Exclusive with policy.dir.",
  },
  {
    path: "policy.entrypoint",
    type: "string",
    kind: "string",
    default: DEFAULT_ENTRYPOINT,
    description: "Entrypoint of the decision document.",
  },
  {
    path: "policy.mask_entrypoint",
    type: "string",
    kind: "string",
    description:
      'Optional decision-log mask rule, e.g. "nats/authz/mask": given the same input, it returns JSON pointers ' +
      "(or upsert ops) to blank out of the logged input, on top of the built-in secret masking. The policy must " +
      "define it (load error otherwise). Unset: no policy mask.",
  },
  {
    path: "policy.watch",
    type: "boolean",
    kind: "boolean",
    default: true,
    description: "Reload the policy when policy.dir or policy.bundle changes.",
  },
  {
    path: "policy.poll_seconds",
    type: "integer",
    kind: "integer",
    default: 10,
    min: 0,
    max: 3600,
    description:
      "With policy.watch, also re-hash the policy every N seconds and reload a change the file events missed (ConfigMap symlink swaps, network file systems, a recreated directory). 0 turns the poll off.",
  },
  {
    path: "policy.opa_binary",
    type: "path",
    kind: "string",
    default: "opa",
    description: "opa executable used to compile policy.dir.",
  },
  // ---- evaluation limits (src/policy/limits.ts; docs/operations.md "Evaluation limits") ----
  {
    path: "policy.eval_workers",
    type: "integer",
    kind: "integer",
    default: POOL_DEFAULTS.workers,
    min: 1,
    max: 64,
    description:
      "Worker threads that evaluate the policy, each with its own wasm instance and copy of the data. A slow evaluation holds one worker; the others keep answering.",
  },
  {
    path: "policy.eval_timeout_ms",
    type: "integer",
    kind: "integer",
    default: POOL_DEFAULTS.timeoutMs,
    min: 10,
    max: 60_000,
    description:
      "Longest evaluation: past it the request is denied with policy_timeout and its worker is replaced. A request is also answered no later than its own expiry. Keep it well under the server's auth timeout.",
  },
  {
    path: "policy.max_data_bytes",
    type: "integer",
    kind: "integer",
    default: POOL_DEFAULTS.maxDataBytes,
    min: 1024,
    max: 1_073_741_824,
    description:
      "Largest data document (data.json / data.yaml files, or a bundle's data.json) a revision may load; a larger one fails the reload and the last good revision keeps serving.",
  },
  {
    path: "policy.max_memory_mb",
    type: "integer",
    kind: "integer",
    default: POOL_DEFAULTS.maxMemoryMb,
    min: 4,
    max: 4096,
    description:
      "Wasm memory ceiling of each evaluation instance, MiB. Loaded data takes several times its JSON size; data that does not fit fails the reload, an evaluation that runs out fails with policy_eval_error.",
  },
  {
    path: "log.level",
    type: LOG_LEVELS.map((l) => `"${l}"`).join(" | "),
    kind: "enum",
    values: LOG_LEVELS,
    default: "info",
    description: "Minimum log level.",
  },
  {
    path: "log.format",
    type: '"json" | "pretty"',
    kind: "enum",
    values: ["json", "pretty"],
    default: "json",
    description: "json lines, or pretty lines for terminals.",
  },
  {
    path: "decision_log.destination",
    type: '"stdout" | "off" | path',
    kind: "string",
    default: "stdout",
    description:
      "Where one redacted decision event per request goes: stdout, off, or a file path (appended).",
  },
  {
    path: "metrics.listen",
    type: '"host:port" | "off"',
    kind: "string",
    default: "off",
    description: 'Prometheus /metrics (and health) listener, e.g. "127.0.0.1:9090"; off disables it.',
  },
];

const FIELD_BY_PATH = new Map(CONFIG_FIELDS.map((f) => [f.path, f]));

/** The default of a field, from CONFIG_FIELDS. */
export function configDefault(path: string): unknown {
  return FIELD_BY_PATH.get(path)?.default;
}

// ---------------------------------------------------------------------------------------------------
// Resolved shape
// ---------------------------------------------------------------------------------------------------

const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/** A secret value: prints as `[REDACTED]` in JSON, String() and util.inspect. Use reveal() to read it. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toJSON(): string {
    return "[REDACTED]";
  }
  toString(): string {
    return "[REDACTED]";
  }
  [INSPECT](): string {
    return "Secret([REDACTED])";
  }
}

/** A parsed key pair: the seed (secret) and its public key. */
export interface ResolvedKey {
  seed: Secret;
  publicKey: string;
}

export type NatsAuth =
  | { kind: "none" }
  | { kind: "user"; user: string; password: Secret }
  | { kind: "token"; token: Secret }
  | { kind: "nkey"; seed: Secret; publicKey: string; file: string }
  | { kind: "creds"; creds: Secret; file: string };

export interface ResolvedNats {
  servers: string[];
  auth: NatsAuth;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  name: string;
  queueGroup: string;
  subject: string;
}

/** One allow-listed target account. Operator mode adds its public key and the key that signs its users. */
export interface ResolvedAccount {
  name: string;
  publicKey?: string;
  signingKey?: ResolvedKey;
}

export interface ResolvedPolicy {
  dir?: string;
  bundle?: string;
  entrypoint: string;
  /** Decision-log mask entrypoint (policy.mask_entrypoint), when set. */
  maskEntrypoint?: string;
  watch: boolean;
  /** Seconds between content-hash polls while watching (0 = file events only). */
  pollSeconds: number;
  opaBinary: string;
  /** Evaluation limits (policy.eval_workers, …); absent = src/policy/limits.ts defaults. */
  evaluation?: ResolvedEvaluation;
}

export interface ResolvedEvaluation {
  workers: number;
  timeoutMs: number;
  maxDataBytes: number;
  maxMemoryMb: number;
}

export type DecisionLogDestination = { kind: "stdout" } | { kind: "off" } | { kind: "file"; path: string };

export interface ResolvedConfig {
  mode: Mode;
  nats: ResolvedNats;
  /** Config mode: the auth_callout.issuer key (signs user JWTs and responses). */
  issuer?: ResolvedKey;
  /** The target-account allow-list (never empty). */
  accounts: ResolvedAccount[];
  /** Operator mode: the callout account's public key and the key that signs responses. */
  calloutAccount?: { publicKey: string; signingKey: ResolvedKey };
  xkey?: ResolvedKey;
  expiry: { defaultSeconds: number; maxSeconds: number; responseSeconds: number };
  limits: { maxConcurrency: number; maxQueue: number; maxRequestBytes: number };
  /** Absent when neither policy.dir nor policy.bundle is set (library use with a plain handler). */
  policy?: ResolvedPolicy;
  log: { level: LogLevel; format: LogFormat };
  decisionLog: DecisionLogDestination;
  metrics: { listen: { host: string; port: number } | null };
  /** Non-fatal findings (e.g. SYS in the allow-list); the caller logs them. */
  warnings: string[];
}

export interface ResolveOptions {
  /** Require policy.dir or policy.bundle (the CLI sets this). */
  requirePolicy?: boolean;
  /** Base directory for relative file paths (default: process.cwd()). */
  baseDir?: string;
}

// ---------------------------------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------------------------------

type Problems = { field: string; message: string }[];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** Schema path of an input path: map keys under `accounts` become `*`. */
function schemaPathOf(parts: string[]): string {
  return parts.map((p, i) => (i === 1 && parts[0] === "accounts" ? "*" : p)).join(".");
}

function hasChildren(schemaPath: string): boolean {
  const prefix = schemaPath + ".";
  return CONFIG_FIELDS.some((f) => f.path.startsWith(prefix));
}

/** Checks one present leaf against its field; returns false (and records a problem) if it does not fit. */
function checkLeaf(field: ConfigField, path: string, v: unknown, problems: Problems): boolean {
  switch (field.kind) {
    case "string":
      if (typeof v !== "string") {
        problems.push({ field: path, message: `expected a string, got ${typeName(v)}` });
        return false;
      }
      if (v.trim() === "") {
        problems.push({ field: path, message: "must not be empty" });
        return false;
      }
      return true;
    case "strings": {
      const list = typeof v === "string" ? [v] : v;
      if (!Array.isArray(list)) {
        problems.push({ field: path, message: `expected a string or a list of strings, got ${typeName(v)}` });
        return false;
      }
      let ok = true;
      list.forEach((s, i) => {
        if (typeof s !== "string" || s.trim() === "") {
          problems.push({
            field: `${path}[${i}]`,
            message: `expected a non-empty string, got ${typeName(s)}`,
          });
          ok = false;
        }
      });
      if (list.length === 0) {
        problems.push({ field: path, message: "must not be empty" });
        ok = false;
      }
      return ok;
    }
    case "integer":
      if (typeof v !== "number" || !Number.isInteger(v)) {
        problems.push({ field: path, message: `expected an integer, got ${typeName(v)}` });
        return false;
      }
      if ((field.min !== undefined && v < field.min) || (field.max !== undefined && v > field.max)) {
        problems.push({ field: path, message: `must be between ${field.min} and ${field.max}, got ${v}` });
        return false;
      }
      return true;
    case "boolean":
      if (typeof v !== "boolean") {
        problems.push({ field: path, message: `expected true or false, got ${typeName(v)}` });
        return false;
      }
      return true;
    case "enum":
      if (typeof v !== "string" || !field.values?.includes(v)) {
        problems.push({
          field: path,
          message: `expected one of ${field.values?.join(", ")}, got ${typeof v === "string" ? JSON.stringify(v) : typeName(v)}`,
        });
        return false;
      }
      return true;
    case "accounts":
      if (Array.isArray(v)) {
        let ok = true;
        v.forEach((s, i) => {
          if (typeof s !== "string") {
            problems.push({
              field: `${path}[${i}]`,
              message: `expected an account name, got ${typeName(s)}`,
            });
            ok = false;
          }
        });
        return ok;
      }
      if (isPlainObject(v)) return true;
      problems.push({ field: path, message: `expected a list of names or a map, got ${typeName(v)}` });
      return false;
  }
}

/**
 * Walks the input: unknown fields and wrongly typed values become problems; returns the well-typed
 * values by their input path (dotted, map keys kept).
 */
function collect(input: Record<string, unknown>, problems: Problems): Map<string, unknown> {
  const values = new Map<string, unknown>();
  const walk = (obj: Record<string, unknown>, parts: string[]): void => {
    for (const [key, v] of Object.entries(obj)) {
      const p = [...parts, key];
      const path = p.join(".");
      if (v === undefined || v === null) continue;
      const schemaPath = schemaPathOf(p);
      const field = FIELD_BY_PATH.get(schemaPath);
      if (field) {
        if (checkLeaf(field, path, v, problems)) values.set(path, v);
        if (field.kind === "accounts" && isPlainObject(v)) walk(v, p);
      } else if (hasChildren(schemaPath)) {
        if (isPlainObject(v)) walk(v, p);
        else problems.push({ field: path, message: `expected an object, got ${typeName(v)}` });
      } else {
        problems.push({ field: path, message: "unknown field" });
      }
    }
  };
  walk(input, []);
  return values;
}

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
function parseSeed(
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

function checkAccountPublicKey(key: string, field: string, problems: Problems): boolean {
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

function readSecretFile(
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

function checkFile(path: string, field: string, baseDir: string, problems: Problems, dir = false): string {
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

/** Seed given inline (`<base>.<inlineKey>`) or as a file (`<base>.<fileKey>`), exactly one. */
function seedFrom(
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

const ACCOUNT_NAME = /^[A-Za-z0-9_$][A-Za-z0-9_$-]*$/;
const SYSTEM_NAMES = new Set(["SYS", "$SYS"]);
const ENTRYPOINT = /^[A-Za-z_][A-Za-z0-9_]*(\/[A-Za-z_][A-Za-z0-9_]*)*$/;
const SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;
const QUEUE = /^[^\s]+$/;

function checkServerUrl(s: string, field: string, problems: Problems): string | undefined {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `nats://${s}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    problems.push({ field, message: `not a server URL: ${JSON.stringify(s)}` });
    return undefined;
  }
  if (url.protocol !== "nats:" && url.protocol !== "tls:") {
    problems.push({ field, message: `unsupported scheme ${url.protocol} (use nats:// or tls://)` });
    return undefined;
  }
  if (url.username || url.password) {
    // Never echo the URL back: it carries credentials.
    problems.push({
      field,
      message: "credentials in the URL are not supported; use nats.user/nats.password",
    });
    return undefined;
  }
  if (!url.hostname) {
    problems.push({ field, message: "missing host" });
    return undefined;
  }
  return withScheme;
}

function parseListen(s: string, field: string, problems: Problems): { host: string; port: number } | null {
  if (s === "off") return null;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    problems.push({ field, message: `expected "host:port" or "off", got ${JSON.stringify(s)}` });
    return null;
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

/**
 * Applies defaults, checks every field and cross-field rule, reads key files and parses keys.
 * Throws one ConfigError listing every problem (each names its field path).
 */
export function resolveConfig(input: unknown, options: ResolveOptions = {}): ResolvedConfig {
  const problems: Problems = [];
  const warnings: string[] = [];
  const baseDir = options.baseDir ?? process.cwd();
  if (!isPlainObject(input)) {
    throw new ConfigError([{ field: "(root)", message: `expected an object, got ${typeName(input)}` }]);
  }
  const values = collect(input, problems);
  const get = <T>(path: string): T => (values.has(path) ? values.get(path) : configDefault(path)) as T;
  const given = (path: string): boolean => values.has(path);

  // ---- nats ----
  const rawServers = get<string | string[]>("nats.servers");
  const servers = (typeof rawServers === "string" ? [rawServers] : rawServers)
    .map((s, i) =>
      checkServerUrl(s.trim(), given("nats.servers") ? `nats.servers[${i}]` : "nats.servers", problems),
    )
    .filter((s): s is string => s !== undefined);

  let auth: NatsAuth = { kind: "none" };
  const methods = [
    given("nats.user") || given("nats.password") ? "nats.user" : undefined,
    given("nats.token") ? "nats.token" : undefined,
    given("nats.nkey_seed_file") ? "nats.nkey_seed_file" : undefined,
    given("nats.creds_file") ? "nats.creds_file" : undefined,
  ].filter((m): m is string => m !== undefined);
  if (methods.length > 1) {
    problems.push({
      field: "nats",
      message: `choose one authentication method, got ${methods.join(", ")}`,
    });
  } else if (methods[0] === "nats.user") {
    if (!given("nats.user")) problems.push({ field: "nats.user", message: "required with nats.password" });
    else if (!given("nats.password"))
      problems.push({ field: "nats.password", message: "required with nats.user" });
    else
      auth = {
        kind: "user",
        user: get<string>("nats.user"),
        password: new Secret(get<string>("nats.password")),
      };
  } else if (methods[0] === "nats.token") {
    auth = { kind: "token", token: new Secret(get<string>("nats.token")) };
  } else if (methods[0] === "nats.nkey_seed_file") {
    const file = get<string>("nats.nkey_seed_file");
    const text = readSecretFile(file, "nats.nkey_seed_file", baseDir, problems);
    const key = text === undefined ? undefined : parseSeed(text, "SU", "nats.nkey_seed_file", problems);
    if (key)
      auth = { kind: "nkey", seed: key.seed, publicKey: key.publicKey, file: resolvePath(baseDir, file) };
  } else if (methods[0] === "nats.creds_file") {
    const file = get<string>("nats.creds_file");
    const text = readSecretFile(file, "nats.creds_file", baseDir, problems);
    if (text !== undefined) {
      if (!/-----BEGIN NATS USER JWT-----/.test(text) || !/-----BEGIN USER NKEY SEED-----/.test(text)) {
        problems.push({
          field: "nats.creds_file",
          message: "not a creds file (needs a user JWT and a user seed)",
        });
      } else {
        auth = { kind: "creds", creds: new Secret(text), file: resolvePath(baseDir, file) };
      }
    }
  }

  let tls: ResolvedNats["tls"];
  if (given("nats.tls.ca_file") || given("nats.tls.cert_file") || given("nats.tls.key_file")) {
    tls = {};
    if (given("nats.tls.ca_file"))
      tls.caFile = checkFile(get("nats.tls.ca_file"), "nats.tls.ca_file", baseDir, problems);
    if (given("nats.tls.cert_file") !== given("nats.tls.key_file")) {
      const missing = given("nats.tls.cert_file") ? "nats.tls.key_file" : "nats.tls.cert_file";
      problems.push({ field: missing, message: "nats.tls.cert_file and nats.tls.key_file go together" });
    } else if (given("nats.tls.cert_file")) {
      tls.certFile = checkFile(get("nats.tls.cert_file"), "nats.tls.cert_file", baseDir, problems);
      tls.keyFile = checkFile(get("nats.tls.key_file"), "nats.tls.key_file", baseDir, problems);
    }
  }

  const subject = get<string>("nats.subject");
  if (!SUBJECT.test(subject)) problems.push({ field: "nats.subject", message: "not a literal subject" });
  const queueGroup = get<string>("nats.queue_group");
  if (!QUEUE.test(queueGroup))
    problems.push({ field: "nats.queue_group", message: "must not contain spaces" });

  // ---- mode, keys, accounts ----
  const mode = get<Mode>("mode");
  let issuer: ResolvedKey | undefined;
  let calloutAccount: ResolvedConfig["calloutAccount"];
  const accounts: ResolvedAccount[] = [];

  if (mode === "config") {
    const k = seedFrom(values, "issuer", "seed", "seed_file", "SA", baseDir, problems);
    if (k === null)
      problems.push({ field: "issuer.seed", message: "required in config mode (or issuer.seed_file)" });
    else if (k) issuer = k;
    for (const f of ["callout_account.public_key", "callout_account.seed", "callout_account.seed_file"]) {
      if (given(f)) problems.push({ field: f, message: "only used in operator mode" });
    }
  } else {
    for (const f of ["issuer.seed", "issuer.seed_file"]) {
      if (given(f))
        problems.push({ field: f, message: "only used in config mode (operator mode: callout_account)" });
    }
    const pub = values.get("callout_account.public_key") as string | undefined;
    if (pub === undefined)
      problems.push({ field: "callout_account.public_key", message: "required in operator mode" });
    const pubOk = pub !== undefined && checkAccountPublicKey(pub, "callout_account.public_key", problems);
    const k = seedFrom(values, "callout_account", "seed", "seed_file", "SA", baseDir, problems);
    if (k === null) {
      problems.push({
        field: "callout_account.seed",
        message: "required in operator mode (or callout_account.seed_file)",
      });
    } else if (k && pubOk && pub !== undefined) {
      calloutAccount = { publicKey: pub, signingKey: k };
    }
  }

  const rawAccounts = values.get("accounts");
  if (rawAccounts === undefined) {
    if (!problems.some((p) => p.field.startsWith("accounts"))) {
      problems.push({ field: "accounts", message: "required: the allow-list of target accounts" });
    }
  } else if (mode === "config") {
    if (!Array.isArray(rawAccounts)) {
      problems.push({ field: "accounts", message: "in config mode, a list of account names" });
    } else {
      if (rawAccounts.length === 0)
        problems.push({ field: "accounts", message: "must name at least one account" });
      const seen = new Set<string>();
      rawAccounts.forEach((name: string, i) => {
        const field = `accounts[${i}]`;
        if (!ACCOUNT_NAME.test(name))
          problems.push({ field, message: `not an account name: ${JSON.stringify(name)}` });
        else if (seen.has(name)) problems.push({ field, message: `duplicate account ${name}` });
        else {
          seen.add(name);
          accounts.push({ name });
          if (SYSTEM_NAMES.has(name)) {
            warnings.push(
              `${field}: the system account ${name} is allow-listed: handlers can place users in it`,
            );
          }
        }
      });
    }
  } else {
    if (!isPlainObject(rawAccounts)) {
      problems.push({
        field: "accounts",
        message: "in operator mode, a map name → {public_key, signing_key_seed}",
      });
    } else {
      const entries = Object.entries(rawAccounts);
      if (entries.length === 0)
        problems.push({ field: "accounts", message: "must name at least one account" });
      const seenKeys = new Map<string, string>();
      for (const [name, entry] of entries) {
        const base = `accounts.${name}`;
        if (!ACCOUNT_NAME.test(name)) problems.push({ field: base, message: `not an account name` });
        if (!isPlainObject(entry)) {
          if (!problems.some((p) => p.field === base)) {
            problems.push({
              field: base,
              message: `expected {public_key, signing_key_seed}, got ${typeName(entry)}`,
            });
          }
          continue;
        }
        const pub = values.get(`${base}.public_key`) as string | undefined;
        let pubOk = false;
        if (pub === undefined) {
          if (!problems.some((p) => p.field === `${base}.public_key`)) {
            problems.push({ field: `${base}.public_key`, message: "required" });
          }
        } else if (checkAccountPublicKey(pub, `${base}.public_key`, problems)) {
          pubOk = true;
          const other = seenKeys.get(pub);
          if (other !== undefined) {
            problems.push({ field: `${base}.public_key`, message: `same key as accounts.${other}` });
            pubOk = false;
          } else seenKeys.set(pub, name);
          if (calloutAccount && pub === calloutAccount.publicKey) {
            problems.push({
              field: `${base}.public_key`,
              message: "is the callout account: users must not be placed in it",
            });
            pubOk = false;
          }
        }
        const k = seedFrom(
          values,
          base,
          "signing_key_seed",
          "signing_key_seed_file",
          "SA",
          baseDir,
          problems,
        );
        if (k === null)
          problems.push({
            field: `${base}.signing_key_seed`,
            message: "required (or signing_key_seed_file)",
          });
        if (pubOk && pub !== undefined && k) {
          accounts.push({ name, publicKey: pub, signingKey: k });
          if (SYSTEM_NAMES.has(name)) {
            warnings.push(
              `${base}: the system account ${name} is allow-listed: handlers can place users in it`,
            );
          }
        }
      }
    }
  }

  let xkey: ResolvedKey | undefined;
  const xk = seedFrom(values, "xkey", "seed", "seed_file", "SX", baseDir, problems);
  if (xk) xkey = xk;

  // ---- expiry, limits ----
  const expiry = {
    defaultSeconds: get<number>("expiry.default_seconds"),
    maxSeconds: get<number>("expiry.max_seconds"),
    responseSeconds: get<number>("expiry.response_seconds"),
  };
  if (expiry.defaultSeconds > expiry.maxSeconds) {
    problems.push({
      field: "expiry.default_seconds",
      message: `must not exceed expiry.max_seconds (${expiry.maxSeconds})`,
    });
  }
  const limits = {
    maxConcurrency: get<number>("limits.max_concurrency"),
    maxQueue: get<number>("limits.max_queue"),
    maxRequestBytes: get<number>("limits.max_request_bytes"),
  };

  // ---- policy ----
  let policy: ResolvedPolicy | undefined;
  const dir = values.get("policy.dir") as string | undefined;
  const bundle = values.get("policy.bundle") as string | undefined;
  if (dir !== undefined && bundle !== undefined) {
    problems.push({ field: "policy.dir", message: "set either policy.dir or policy.bundle, not both" });
  } else if (dir !== undefined || bundle !== undefined) {
    policy = {
      entrypoint: get<string>("policy.entrypoint"),
      watch: get<boolean>("policy.watch"),
      pollSeconds: get<number>("policy.poll_seconds"),
      opaBinary: get<string>("policy.opa_binary"),
    };
    const mask = values.get("policy.mask_entrypoint") as string | undefined;
    if (mask !== undefined) policy.maskEntrypoint = mask;
    policy.evaluation = {
      workers: get<number>("policy.eval_workers"),
      timeoutMs: get<number>("policy.eval_timeout_ms"),
      maxDataBytes: get<number>("policy.max_data_bytes"),
      maxMemoryMb: get<number>("policy.max_memory_mb"),
    };
    if (dir !== undefined) policy.dir = checkFile(dir, "policy.dir", baseDir, problems, true);
    if (bundle !== undefined) policy.bundle = checkFile(bundle, "policy.bundle", baseDir, problems);
  } else if (options.requirePolicy) {
    problems.push({ field: "policy.dir", message: "required: policy.dir or policy.bundle" });
  } else {
    for (const f of [
      "policy.entrypoint",
      "policy.mask_entrypoint",
      "policy.watch",
      "policy.poll_seconds",
      "policy.opa_binary",
      "policy.eval_workers",
      "policy.eval_timeout_ms",
      "policy.max_data_bytes",
      "policy.max_memory_mb",
    ]) {
      if (given(f)) problems.push({ field: f, message: "needs policy.dir or policy.bundle" });
    }
  }
  if (!ENTRYPOINT.test(get<string>("policy.entrypoint"))) {
    problems.push({ field: "policy.entrypoint", message: 'expected a path like "nats/authz/decision"' });
  }
  const maskEp = values.get("policy.mask_entrypoint") as string | undefined;
  if (maskEp !== undefined) {
    if (!ENTRYPOINT.test(maskEp)) {
      problems.push({ field: "policy.mask_entrypoint", message: 'expected a path like "nats/authz/mask"' });
    } else if (maskEp === get<string>("policy.entrypoint")) {
      problems.push({ field: "policy.mask_entrypoint", message: "must differ from policy.entrypoint" });
    }
  }

  // ---- log, decision log, metrics ----
  const log = { level: get<LogLevel>("log.level"), format: get<LogFormat>("log.format") };
  const dest = get<string>("decision_log.destination");
  let decisionLog: DecisionLogDestination;
  if (dest === "stdout") decisionLog = { kind: "stdout" };
  else if (dest === "off") decisionLog = { kind: "off" };
  else {
    const abs = resolvePath(baseDir, dest);
    checkFile(dirname(abs), "decision_log.destination", baseDir, problems, true);
    decisionLog = { kind: "file", path: abs };
  }
  const metrics = { listen: parseListen(get<string>("metrics.listen"), "metrics.listen", problems) };

  if (problems.length > 0) throw new ConfigError(problems);

  const nats: ResolvedNats = {
    servers,
    auth,
    name: get<string>("nats.name"),
    queueGroup,
    subject,
  };
  if (tls) nats.tls = tls;
  const out: ResolvedConfig = {
    mode,
    nats,
    accounts,
    expiry,
    limits,
    log,
    decisionLog,
    metrics,
    warnings,
  };
  if (issuer) out.issuer = issuer;
  if (calloutAccount) out.calloutAccount = calloutAccount;
  if (xkey) out.xkey = xkey;
  if (policy) out.policy = policy;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Environment overrides (called by the CLI; the library never reads env itself)
// ---------------------------------------------------------------------------------------------------

/**
 * Returns a copy of `cfg` with the NATS client conventions from `env` applied:
 * NATS_URL (comma-separated list) → nats.servers; NATS_CREDS → nats.creds_file;
 * NATS_NKEY or NATS_NKEY_SEED (a seed file path) → nats.nkey_seed_file;
 * NATS_USER + NATS_PASSWORD → nats.user/nats.password; NATS_TOKEN → nats.token.
 * When env names any authentication method, the config file's methods are dropped (env wins);
 * two methods in env stay conflicting and resolveConfig() reports them.
 */
export function applyEnvOverrides(
  cfg: ServiceConfig,
  env: Record<string, string | undefined>,
): ServiceConfig {
  const val = (k: string): string | undefined => {
    const v = env[k];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const nats: NonNullable<ServiceConfig["nats"]> = { ...(cfg.nats ?? {}) };
  const url = val("NATS_URL");
  if (url !== undefined)
    nats.servers = url
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");

  const creds = val("NATS_CREDS");
  const nkey = val("NATS_NKEY_SEED") ?? val("NATS_NKEY");
  const user = val("NATS_USER");
  const password = env["NATS_PASSWORD"];
  const token = val("NATS_TOKEN");
  if (creds !== undefined || nkey !== undefined || user !== undefined || token !== undefined) {
    delete nats.user;
    delete nats.password;
    delete nats.token;
    delete nats.nkey_seed_file;
    delete nats.creds_file;
    if (creds !== undefined) nats.creds_file = creds;
    if (nkey !== undefined) nats.nkey_seed_file = nkey;
    if (user !== undefined) {
      nats.user = user;
      if (password !== undefined) nats.password = password;
    }
    if (token !== undefined) nats.token = token;
  } else if (password !== undefined && nats.user !== undefined) {
    nats.password = password;
  }
  return { ...cfg, nats };
}
