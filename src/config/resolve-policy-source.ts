/**
 * `policy.source.*` and `policy.signing.*`: where a downloaded policy.bundle comes from (an OPA bundle server over
 * HTTP(S), or a NATS Object Store object) and which key its signature must verify with. Secrets (bearer token,
 * client key, Object Store password or creds, signing secret) are read from files and kept as Secret.
 */
import { dirname } from "node:path";
import { existsSync, statSync } from "node:fs";
import { readSecretFile } from "./paths.js";
import { maskUrlCredentials } from "./url.js";
import { Secret, type FieldReader, type ResolvedPolicySource, type ResolvedSigning } from "./types.js";

const HTTP_FIELDS = [
  "policy.source.http.url",
  "policy.source.http.token_file",
  "policy.source.http.ca_file",
  "policy.source.http.cert_file",
  "policy.source.http.key_file",
  "policy.source.http.min_delay_seconds",
  "policy.source.http.max_delay_seconds",
  "policy.source.http.long_polling_timeout_seconds",
] as const;
const OBJECT_STORE_FIELDS = [
  "policy.source.object_store.bucket",
  "policy.source.object_store.name",
  "policy.source.object_store.servers",
  "policy.source.object_store.creds_file",
  "policy.source.object_store.user",
  "policy.source.object_store.password",
] as const;
const SIGNING_FIELDS = [
  "policy.signing.key_file",
  "policy.signing.algorithm",
  "policy.signing.key_id",
  "policy.signing.scope",
  "policy.signing.exclude_files",
] as const;

/** Object Store bucket names: letters, digits, "-" and "_" (as nats.js validates them). */
const BUCKET = /^[-\w]+$/;

/**
 * Resolve the source and signing settings. `bundle` is the resolved policy.bundle path (the download target) and
 * `dir` whether policy.dir is used instead (then a source is a problem).
 */
export function resolvePolicySource(
  r: FieldReader,
  o: { bundle?: string; dir?: string },
): { source?: ResolvedPolicySource; signing?: ResolvedSigning } {
  const { values, get, given, baseDir, problems } = r;
  const out: { source?: ResolvedPolicySource; signing?: ResolvedSigning } = {};
  const http = values.get("policy.source.http.url") as string | undefined;
  const bucket = values.get("policy.source.object_store.bucket") as string | undefined;

  for (const [fields, anchor, set] of [
    [HTTP_FIELDS, "policy.source.http.url", http !== undefined],
    [OBJECT_STORE_FIELDS, "policy.source.object_store.bucket", bucket !== undefined],
  ] as const) {
    if (set) continue;
    for (const f of fields) if (given(f)) problems.push({ field: f, message: `needs ${anchor}` });
  }
  if (http !== undefined && bucket !== undefined) {
    problems.push({
      field: "policy.source.http.url",
      message: "set one policy source: policy.source.http or policy.source.object_store, not both",
    });
    return out;
  }
  if ((http !== undefined || bucket !== undefined) && o.bundle === undefined) {
    problems.push({
      field: http !== undefined ? "policy.source.http.url" : "policy.source.object_store.bucket",
      message:
        o.dir !== undefined
          ? "a policy source downloads a bundle: use policy.bundle (the local copy), not policy.dir"
          : "needs policy.bundle: the file the downloaded bundle is written to (it keeps the last good copy)",
    });
  }

  if (http !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(http);
    } catch {
      problems.push({
        field: "policy.source.http.url",
        message: `not a URL: ${JSON.stringify(maskUrlCredentials(http))}`,
      });
    }
    if (url && url.protocol !== "http:" && url.protocol !== "https:") {
      problems.push({
        field: "policy.source.http.url",
        message: `unsupported scheme ${url.protocol} (use https:// or http://)`,
      });
    } else if (url && (url.username || url.password)) {
      problems.push({
        field: "policy.source.http.url",
        message: "credentials in the URL are not supported; use policy.source.http.token_file",
      });
    }
    const min = get<number>("policy.source.http.min_delay_seconds");
    const max = get<number>("policy.source.http.max_delay_seconds");
    if (max < min) {
      problems.push({
        field: "policy.source.http.max_delay_seconds",
        message: "must be >= policy.source.http.min_delay_seconds",
      });
    }
    const file = (f: string): string | undefined => {
      const v = values.get(f) as string | undefined;
      return v === undefined ? undefined : readSecretFile(v, f, baseDir, problems);
    };
    const token = file("policy.source.http.token_file")?.trim();
    const ca = file("policy.source.http.ca_file");
    const cert = file("policy.source.http.cert_file");
    const key = file("policy.source.http.key_file");
    if ((cert === undefined) !== (key === undefined)) {
      problems.push({
        field: cert === undefined ? "policy.source.http.cert_file" : "policy.source.http.key_file",
        message: "policy.source.http.cert_file and key_file go together",
      });
    }
    out.source = {
      kind: "http",
      url: http,
      ...(token ? { token: new Secret(token) } : {}),
      ...(ca || cert || key
        ? {
            tls: {
              ...(ca ? { ca } : {}),
              ...(cert ? { cert } : {}),
              ...(key ? { key: new Secret(key) } : {}),
            },
          }
        : {}),
      minDelaySeconds: min,
      maxDelaySeconds: max,
      longPollSeconds: get<number>("policy.source.http.long_polling_timeout_seconds"),
    };
  }

  if (bucket !== undefined) {
    if (!BUCKET.test(bucket)) {
      problems.push({
        field: "policy.source.object_store.bucket",
        message: 'only letters, digits, "-" and "_"',
      });
    }
    const creds = values.get("policy.source.object_store.creds_file") as string | undefined;
    const user = values.get("policy.source.object_store.user") as string | undefined;
    const password = values.get("policy.source.object_store.password") as string | undefined;
    let auth: Extract<ResolvedPolicySource, { kind: "object_store" }>["auth"] = { kind: "none" };
    if (creds !== undefined && user !== undefined) {
      problems.push({
        field: "policy.source.object_store.creds_file",
        message: "set creds_file or user/password, not both",
      });
    } else if (creds !== undefined) {
      const text = readSecretFile(creds, "policy.source.object_store.creds_file", baseDir, problems);
      if (text !== undefined) auth = { kind: "creds", creds: new Secret(text) };
    } else if (user !== undefined) {
      if (password === undefined) {
        problems.push({
          field: "policy.source.object_store.password",
          message: "required with policy.source.object_store.user",
        });
      } else auth = { kind: "user", user, password: new Secret(password) };
    } else if (password !== undefined) {
      problems.push({
        field: "policy.source.object_store.user",
        message: "required with policy.source.object_store.password",
      });
    }
    const servers = values.get("policy.source.object_store.servers") as string[] | undefined;
    out.source = {
      kind: "object_store",
      bucket,
      name: get<string>("policy.source.object_store.name"),
      ...(servers !== undefined ? { servers } : {}),
      auth,
    };
  }

  // The download target: it need not exist yet, but its directory must.
  if (out.source !== undefined && o.bundle !== undefined && !existsSync(o.bundle)) {
    const parent = dirname(o.bundle);
    if (!existsSync(parent) || !statSync(parent).isDirectory()) {
      problems.push({
        field: "policy.bundle",
        message: `${parent} (the directory for the downloaded bundle) not found`,
      });
    }
  }

  const keyFile = values.get("policy.signing.key_file") as string | undefined;
  if (keyFile !== undefined) {
    const key = readSecretFile(keyFile, "policy.signing.key_file", baseDir, problems);
    const scope = values.get("policy.signing.scope") as string | undefined;
    if (key !== undefined) {
      out.signing = {
        algorithm: get<string>("policy.signing.algorithm"),
        key: new Secret(key),
        keyId: get<string>("policy.signing.key_id"),
        ...(scope !== undefined ? { scope } : {}),
        excludeFiles: get<string[]>("policy.signing.exclude_files"),
      };
    }
    if (out.source === undefined) {
      problems.push({
        field: "policy.signing.key_file",
        message:
          "signatures are checked on downloaded bundles: set policy.source.http or policy.source.object_store",
      });
    }
  } else {
    for (const f of SIGNING_FIELDS)
      if (given(f)) problems.push({ field: f, message: "needs policy.signing.key_file" });
  }
  return out;
}
