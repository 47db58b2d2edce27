/**
 * The one table of configuration fields (`CONFIG_FIELDS`: names, types, defaults, descriptions; also the
 * source of docs/configuration.md) and the walk that checks an input document against it (`collect`):
 * unknown fields and wrongly typed values become problems; the rest come back by path.
 */
import { CORE_DEFAULTS } from "../callout/defaults.js";
import { POOL_DEFAULTS } from "../policy/limits.js";
import { JWS_ALGORITHMS } from "../policy/algorithms.js";
import { isPlainObject, typeName, type ConfigField, type Problems } from "./types.js";

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
    path: "nats.connect_timeout_ms",
    type: "integer",
    kind: "integer",
    default: 2000,
    min: 100,
    max: 60_000,
    description:
      "Longest wait for the server's handshake on each connect and reconnect attempt before the next attempt (nats.go's default; nats.js's own is 20 s, which after a server restart can leave the callout away for 20 s while every client fails). Also applies to the connection of policy.source.object_store.",
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
    default: 128,
    min: 1,
    max: 10_000,
    description:
      "Requests handled at the same time (each waits on a worker evaluation and on the server's confirmation of its reply, so more than the cores pays).",
  },
  {
    path: "limits.max_queue",
    type: "integer",
    kind: "integer",
    default: 8192,
    min: 0,
    max: 1_000_000,
    description:
      'Requests waiting for a slot. When full, the OLDEST queued request (the closest to its deadline) is shed to make room for the new one (`requests_dropped_total{reason="shed_overflow"}`); with 0, a request finding every slot busy is dropped (`queue_full`). Either way the client gets no reply and retries.',
  },
  {
    path: "limits.shed_expired",
    type: "boolean",
    kind: "boolean",
    default: true,
    description:
      "Shed a queued request, without deciding it, once the server's auth timeout for it (from the request's iat/exp and when it arrived) will have passed before it could be answered: the server has given up on it and the client retries. Counted as `requests_dropped_total{reason=\"shed_expired\"}` (outcome abort, code request_expired), never as allow or deny. false only to measure the difference.",
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
    path: "policy.source.http.url",
    type: "string",
    kind: "string",
    description:
      "Download the bundle from an OPA bundle server (OPA's bundle service protocol: ETag polling, long polling) " +
      "into policy.bundle, which then holds the last good copy across restarts. Needs policy.bundle.",
  },
  {
    path: "policy.source.http.token_file",
    type: "path",
    kind: "string",
    description: "File holding a bearer token sent as Authorization: Bearer … (never logged).",
  },
  {
    path: "policy.source.http.ca_file",
    type: "path",
    kind: "string",
    description: "PEM CA bundle to verify the bundle server with (default: the system CAs).",
  },
  {
    path: "policy.source.http.cert_file",
    type: "path",
    kind: "string",
    description: "PEM client certificate for mutual TLS (with policy.source.http.key_file).",
  },
  {
    path: "policy.source.http.key_file",
    type: "path",
    kind: "string",
    description: "PEM private key of policy.source.http.cert_file.",
  },
  {
    path: "policy.source.http.min_delay_seconds",
    type: "integer",
    kind: "integer",
    default: 60,
    min: 1,
    max: 86_400,
    description:
      "Polling: the shortest random wait between two downloads (as OPA's polling.min_delay_seconds).",
  },
  {
    path: "policy.source.http.max_delay_seconds",
    type: "integer",
    kind: "integer",
    default: 120,
    min: 1,
    max: 86_400,
    description: "Polling: the longest random wait between two downloads, and the cap of the retry backoff.",
  },
  {
    path: "policy.source.http.long_polling_timeout_seconds",
    type: "integer",
    kind: "integer",
    default: 0,
    min: 0,
    max: 3_600,
    description:
      "Ask the server to hold each request up to this long (Prefer: wait=N) and answer as soon as the bundle changes; " +
      "servers without long polling are polled. 0 = plain polling.",
  },
  {
    path: "policy.source.object_store.bucket",
    type: "string",
    kind: "string",
    description:
      "Watch a bundle in this NATS Object Store bucket (with policy.source.object_store.name); each new version is " +
      "written to policy.bundle and activated. Needs policy.bundle.",
  },
  {
    path: "policy.source.object_store.name",
    type: "string",
    kind: "string",
    default: "bundle.tar.gz",
    description: "The object holding the bundle.",
  },
  {
    path: "policy.source.object_store.servers",
    type: "string | string[]",
    kind: "strings",
    description: "NATS servers for the Object Store connection (default: nats.servers).",
  },
  {
    path: "policy.source.object_store.creds_file",
    type: "path",
    kind: "string",
    description:
      "Creds of a user allowed to read the bucket (the callout user may only answer auth requests). " +
      "Alternative: policy.source.object_store.user + password.",
  },
  {
    path: "policy.source.object_store.user",
    type: "string",
    kind: "string",
    description: "User allowed to read the bucket (with policy.source.object_store.password).",
  },
  {
    path: "policy.source.object_store.password",
    type: "string",
    kind: "string",
    secret: true,
    description: "Password of policy.source.object_store.user.",
  },
  {
    path: "policy.signing.key_file",
    type: "path",
    kind: "string",
    description:
      "Require signed bundles from policy.source: the PEM public key or certificate (RS*, PS*, ES*) or the shared " +
      "secret (HS*) that verifies .signatures.json, as OPA verifies it. Unsigned or tampered bundles are refused.",
  },
  {
    path: "policy.signing.algorithm",
    type: JWS_ALGORITHMS.map((a) => `"${a}"`).join(" | "),
    kind: "enum",
    values: JWS_ALGORITHMS,
    default: "RS256",
    description: "The only algorithm accepted for policy.signing.key_file.",
  },
  {
    path: "policy.signing.key_id",
    type: "string",
    kind: "string",
    default: "default",
    description:
      'Key id of policy.signing.key_file (opa build signs with kid "default" unless told otherwise).',
  },
  {
    path: "policy.signing.scope",
    type: "string",
    kind: "string",
    description: "Expected signature scope (as OPA's signing.scope); unset = no scope.",
  },
  {
    path: "policy.signing.exclude_files",
    type: "string[]",
    kind: "strings",
    default: [],
    description: "Globs (Go filepath.Match) of bundle files the signature does not cover.",
  },
  {
    path: "revocation.enabled",
    type: "boolean",
    kind: "boolean",
    default: false,
    description:
      "Live revocation: when a new policy revision activates, re-decide every connection this replica authorized and disconnect (KICK) those now denied or no longer covered by their grant. Needs a system-account credential in revocation.nats.",
  },
  {
    path: "revocation.nats.servers",
    type: "string | string[]",
    kind: "strings",
    description: "Servers for the revocation connection (default: nats.servers; TLS files from nats.tls).",
  },
  {
    path: "revocation.nats.user",
    type: "string",
    kind: "string",
    description:
      "User of the server's system_account allowed to publish $SYS.REQ.SERVER.*.KICK (and subscribe to _INBOX.>); needs revocation.nats.password.",
  },
  {
    path: "revocation.nats.password",
    type: "string",
    kind: "string",
    secret: true,
    description: "Password for revocation.nats.user.",
  },
  {
    path: "revocation.nats.token",
    type: "string",
    kind: "string",
    secret: true,
    description: "Token of the system-account user (alternative to user/password, nkey or creds).",
  },
  {
    path: "revocation.nats.nkey_seed_file",
    type: "path",
    kind: "string",
    description: "File holding the system-account user's nkey seed (SU…).",
  },
  {
    path: "revocation.nats.creds_file",
    type: "path",
    kind: "string",
    description: "Creds file of the system-account user (operator mode).",
  },
  {
    path: "revocation.rate_per_second",
    type: "integer",
    kind: "integer",
    default: 200,
    min: 1,
    max: 100_000,
    description:
      "Most KICKs sent per second (token bucket, burst of a tenth of a second): a revision that revokes 10k connections takes 50 s at the default instead of reconnecting them all at once.",
  },
  {
    path: "revocation.periodic_seconds",
    type: "integer",
    kind: "integer",
    default: 0,
    min: 0,
    max: 86_400,
    description:
      "Also re-decide every live connection every N seconds, for time-dependent policies (office hours); 0 turns it off.",
  },
  {
    path: "revocation.max_live_grants",
    type: "integer",
    kind: "integer",
    default: 100_000,
    min: 1,
    max: 10_000_000,
    description:
      "Most live grants kept in memory (about 15 MB of heap per 10k, see docs/operations.md); beyond it the oldest is forgotten (counted in nats_opa_callout_live_grants_evicted_total) and keeps its grant until its JWT expires.",
  },
  {
    path: "revocation.concurrency",
    type: "integer",
    kind: "integer",
    default: 4,
    min: 1,
    max: 256,
    description: "Re-evaluations running at once during a run (each yields to logins between evaluations).",
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
    description:
      'Prometheus /metrics, /healthz, /readyz and /status listener: "127.0.0.1:9464", "[::1]:9464", ":9464" (all IPv4 interfaces), or port 0 for a free port (logged and shown in /status); "off" (or "" or "0") disables it. Replicas on one host each need their own port (--metrics-listen) or port 0.',
  },
];

const FIELD_BY_PATH = new Map(CONFIG_FIELDS.map((f) => [f.path, f]));

/** The default of a field, from CONFIG_FIELDS. */
export function configDefault(path: string): unknown {
  return FIELD_BY_PATH.get(path)?.default;
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
export function collect(input: Record<string, unknown>, problems: Problems): Map<string, unknown> {
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
