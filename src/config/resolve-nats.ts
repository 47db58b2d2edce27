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

function checkServerUrl(s: string, field: string, problems: Problems): string | undefined {
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

/** Resolves `nats.*`; problems go to `r.problems`. */
export function resolveNats(r: FieldReader): ResolvedNats {
  const { get, given, baseDir, problems } = r;
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

  const nats: ResolvedNats = {
    servers,
    auth,
    name: get<string>("nats.name"),
    queueGroup,
    subject,
  };
  if (tls) nats.tls = tls;
  return nats;
}
