/**
 * The `nats` section: server URLs, the one authentication method, TLS files, subject and queue group.
 */
import { resolve as resolvePath } from "node:path";
import { parseSeed } from "./keys.js";
import { checkFile, readSecretFile } from "./paths.js";
import { maskUrlCredentials } from "./url.js";
import { Secret, type FieldReader, type NatsAuth, type Problems, type ResolvedNats } from "./types.js";

const SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;
const QUEUE = /^[^\s]+$/;

export function checkServerUrl(s: string, field: string, problems: Problems): string | undefined {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `nats://${s}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    problems.push({ field, message: `not a server URL: ${JSON.stringify(maskUrlCredentials(s))}` });
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

/**
 * The one authentication method under `p` (`nats`, or `revocation.nats`): user + password, token, nkey seed file or
 * creds file; none when nothing is given. Problems go to `r.problems`.
 */
export function resolveNatsAuth(r: FieldReader, p: string): NatsAuth {
  const { get, given, baseDir, problems } = r;
  let auth: NatsAuth = { kind: "none" };
  const methods = [
    given(`${p}.user`) || given(`${p}.password`) ? `${p}.user` : undefined,
    given(`${p}.token`) ? `${p}.token` : undefined,
    given(`${p}.nkey_seed_file`) ? `${p}.nkey_seed_file` : undefined,
    given(`${p}.creds_file`) ? `${p}.creds_file` : undefined,
  ].filter((m): m is string => m !== undefined);
  if (methods.length > 1) {
    problems.push({
      field: p,
      message: `choose one authentication method, got ${methods.join(", ")}`,
    });
  } else if (methods[0] === `${p}.user`) {
    if (!given(`${p}.user`)) problems.push({ field: `${p}.user`, message: `required with ${p}.password` });
    else if (!given(`${p}.password`))
      problems.push({ field: `${p}.password`, message: `required with ${p}.user` });
    else
      auth = {
        kind: "user",
        user: get<string>(`${p}.user`),
        password: new Secret(get<string>(`${p}.password`)),
      };
  } else if (methods[0] === `${p}.token`) {
    auth = { kind: "token", token: new Secret(get<string>(`${p}.token`)) };
  } else if (methods[0] === `${p}.nkey_seed_file`) {
    const file = get<string>(`${p}.nkey_seed_file`);
    const text = readSecretFile(file, `${p}.nkey_seed_file`, baseDir, problems);
    const key = text === undefined ? undefined : parseSeed(text, "SU", `${p}.nkey_seed_file`, problems);
    if (key)
      auth = { kind: "nkey", seed: key.seed, publicKey: key.publicKey, file: resolvePath(baseDir, file) };
  } else if (methods[0] === `${p}.creds_file`) {
    const file = get<string>(`${p}.creds_file`);
    const text = readSecretFile(file, `${p}.creds_file`, baseDir, problems);
    if (text !== undefined) {
      if (!/-----BEGIN NATS USER JWT-----/.test(text) || !/-----BEGIN USER NKEY SEED-----/.test(text)) {
        problems.push({
          field: `${p}.creds_file`,
          message: "not a creds file (needs a user JWT and a user seed)",
        });
      } else {
        auth = { kind: "creds", creds: new Secret(text), file: resolvePath(baseDir, file) };
      }
    }
  }

  return auth;
}

/** Resolves `nats.*`; problems go to `r.problems`. */
export function resolveNats(r: FieldReader): ResolvedNats {
  const { get, given, baseDir, problems } = r;
  const rawServers = get<string | string[]>("nats.servers");
  const servers = (typeof rawServers === "string" ? [rawServers] : rawServers)
    .map((s, i) =>
      checkServerUrl(s.trim(), given("nats.servers") ? `nats.servers[${i}]` : "nats.servers", problems),
    )
    .filter((s): s is string => s !== undefined);

  const auth = resolveNatsAuth(r, "nats");

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

  const nats: ResolvedNats = {
    servers,
    auth,
    name: get<string>("nats.name"),
    queueGroup,
    subject,
    connectTimeoutMs: get<number>("nats.connect_timeout_ms"),
  };
  if (tls) nats.tls = tls;
  return nats;
}
