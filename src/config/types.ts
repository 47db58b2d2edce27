/**
 * Config shapes shared by every config module, and nothing else: the input shape (`ServiceConfig`, as written
 * by an operator), the field-table row type, the resolved shape (`ResolvedConfig` and its parts), `Secret`,
 * and the problem list every check appends to. A leaf: imports nothing from the project, so schema, key
 * parsing, per-section resolution, env and file loading can all import it without importing each other back.
 */

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
    connect_timeout_ms?: number;
  };
  mode?: Mode;
  issuer?: SeedInput;
  accounts?: string[] | Record<string, OperatorAccountInput>;
  callout_account?: CalloutAccountInput;
  xkey?: SeedInput;
  expiry?: { default_seconds?: number; max_seconds?: number; response_seconds?: number };
  limits?: {
    max_concurrency?: number;
    max_queue?: number;
    shed_expired?: boolean;
    max_request_bytes?: number;
  };
  policy?: {
    dir?: string;
    bundle?: string;
    entrypoint?: string;
    mask_entrypoint?: string;
    watch?: boolean;
    poll_seconds?: number;
    opa_binary?: string;
    eval_workers?: number;
    eval_timeout_ms?: number;
    max_data_bytes?: number;
    max_memory_mb?: number;
    source?: {
      http?: {
        url?: string;
        token_file?: string;
        ca_file?: string;
        cert_file?: string;
        key_file?: string;
        min_delay_seconds?: number;
        max_delay_seconds?: number;
        long_polling_timeout_seconds?: number;
      };
      object_store?: {
        bucket?: string;
        name?: string;
        servers?: string | string[];
        creds_file?: string;
        user?: string;
        password?: string;
      };
    };
    signing?: {
      key_file?: string;
      algorithm?: string;
      key_id?: string;
      scope?: string;
      exclude_files?: string[];
    };
  };
  log?: { level?: LogLevel; format?: LogFormat };
  decision_log?: { destination?: string };
  metrics?: { listen?: string };
  revocation?: {
    enabled?: boolean;
    nats?: {
      servers?: string | string[];
      user?: string;
      password?: string;
      token?: string;
      nkey_seed_file?: string;
      creds_file?: string;
    };
    rate_per_second?: number;
    periodic_seconds?: number;
    max_live_grants?: number;
    concurrency?: number;
  };
}

export type FieldKind = "string" | "strings" | "integer" | "boolean" | "enum" | "accounts";

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
  /** Handshake timeout per connect attempt (nats.connect_timeout_ms). */
  connectTimeoutMs: number;
}

/** One allow-listed target account. Operator mode adds its public key and the key that signs its users. */
export interface ResolvedAccount {
  name: string;
  publicKey?: string;
  signingKey?: ResolvedKey;
}

/** Where policy.bundle comes from when it is downloaded (policy.source.*). */
export type ResolvedPolicySource =
  | {
      kind: "http";
      url: string;
      token?: Secret;
      tls?: { ca?: string; cert?: string; key?: Secret };
      minDelaySeconds: number;
      maxDelaySeconds: number;
      longPollSeconds: number;
    }
  | {
      kind: "object_store";
      bucket: string;
      name: string;
      /** Servers for the Object Store connection; undefined = nats.servers. */
      servers?: string[];
      auth:
        | { kind: "creds"; creds: Secret }
        | { kind: "user"; user: string; password: Secret }
        | { kind: "none" };
    };

/** Bundle signature verification (policy.signing.*). */
export interface ResolvedSigning {
  algorithm: string;
  key: Secret;
  keyId: string;
  scope?: string;
  excludeFiles: string[];
}

export interface ResolvedPolicy {
  dir?: string;
  bundle?: string;
  /** Download policy.bundle from here (the file keeps the last good copy). */
  source?: ResolvedPolicySource;
  /** Require bundles from the source to be signed. */
  signing?: ResolvedSigning;
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

/** Live revocation (revocation.*), when enabled. */
export interface ResolvedRevocation {
  /** Servers of the revocation connection (default nats.servers). */
  servers: string[];
  /** The system-account credential (never "none": resolution requires one). */
  auth: NatsAuth;
  ratePerSecond: number;
  /** 0 = no periodic re-evaluation. */
  periodicSeconds: number;
  maxLiveGrants: number;
  concurrency: number;
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
  limits: { maxConcurrency: number; maxQueue: number; shedExpired: boolean; maxRequestBytes: number };
  /** Absent when neither policy.dir nor policy.bundle is set (library use with a plain handler). */
  policy?: ResolvedPolicy;
  log: { level: LogLevel; format: LogFormat };
  decisionLog: DecisionLogDestination;
  /** null: no metrics/health listener. */
  metrics: { listen: { host: string; port: number } | null };
  /** Live revocation; absent unless revocation.enabled. */
  revocation?: ResolvedRevocation;
  /** Non-fatal findings (e.g. SYS in the allow-list); the caller logs them. */
  warnings: string[];
}

export interface ResolveOptions {
  /** Require policy.dir or policy.bundle (the CLI sets this). */
  requirePolicy?: boolean;
  /** Base directory for relative file paths (default: process.cwd()). */
  baseDir?: string;
}

/** Every problem found so far; each names its field path. Resolution appends and throws them together. */
export type Problems = { field: string; message: string }[];

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** What a section resolver reads: the well-typed given values (by input path) and where to report. */
export interface FieldReader {
  /** Given values by input path (dotted, map keys kept); absent or wrongly typed values are not here. */
  values: Map<string, unknown>;
  /** The given value, else the field's default from CONFIG_FIELDS. */
  get<T>(path: string): T;
  given(path: string): boolean;
  /** Base directory for relative file paths. */
  baseDir: string;
  problems: Problems;
  warnings: string[];
}
