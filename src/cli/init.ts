/**
 * `nats-opa-callout init`: generate keys, a matching nats-server config and the service config.
 *
 * Config mode (default): issuer account key (SA…), xkey (SX…), a random password for the callout user
 * (stored in the server config only as a bcrypt hash), nats-server.conf with a least-privilege callout user, an
 * unusable nkey user that makes nats-server issue nonces (so clients can prove their nkeys), and service.yaml. Operator mode (--operator): operator, SYS/AUTH/target account keys and JWTs, a MEMORY resolver
 * preload in nats-server.conf, the service's creds (an auth_user of the AUTH account) and a sentinel creds file
 * that clients present to reach the callout.
 *
 * Seeds, passwords and creds are written 0600 and never printed unless --print-secrets.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import bcrypt from "bcryptjs";
import { createAccount, createCurve, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { stringify } from "yaml";
import { EXIT, EXIT_CODES_HELP, UsageError, asUsage, intFlag, out } from "./common.js";
import { serviceConfigDoc, type InitLayout } from "./init-config.js";
import { initRevocation, REVOCATION_USER } from "./init-revocation.js";
import * as topology from "./init-topology.js";
import * as js from "./init-jetstream.js";
import { POLICY_HELP, initPolicyCommand } from "./init-policy.js";

export const INIT_HELP = `Usage: nats-opa-callout init [options]

Generate everything needed to run the callout next to a nats-server: keys, a nats-server config with
auth_callout enabled and a least-privilege callout user, and the service config (YAML). Config mode
also adds an nkey user nobody can log in as (its seed is discarded, it has no rights): it makes
nats-server send nonces, without which clients cannot prove their nkeys (policy input derived.nkey).

Options:
  --dir <path>           output directory (default: ./callout-config); created if missing
  --operator             operator/JWT mode: operator + account JWTs, MEMORY resolver preload,
                         service creds and a sentinel creds file for clients
  --websocket            add a websocket listener (no TLS, loopback) to the nats-server config
  --ws-port <n>          websocket port (default: 8080)
${js.JETSTREAM_HELP}
  --host <addr>          address nats-server listens on (default: 127.0.0.1)
  --port <n>             client port (default: 4222)
  --accounts <a,b>       target accounts users may be placed in (default: APP)
  --no-xkey              do not encrypt requests (default: xkey on)
  --policy-dir <path>    policy directory the service config points at (default: ./policies)
  --metrics-listen <a>   metrics/health HTTP address in the service config (default: 127.0.0.1:9464)
  --timeout <s>          nats-server authorization timeout in seconds (default: 2)
  --force                overwrite existing files
  --revocation           config mode: a system-account user that may only KICK clients, and
                         revocation.enabled in service.yaml (live revocation, docs/operations.md)
  --print-secrets        also print the generated seeds and password (default: never printed)
${POLICY_HELP}
  -h, --help             show this help

${topology.TOPOLOGY_HELP}

Files (config mode): issuer.nk, xkey.nk, service.yaml (0600: holds the callout user's password),
nats-server.conf (0600: the password's bcrypt hash). Operator mode adds operator.jwt, <ACCOUNT>.jwt/.nk, callout.creds, sentinel.creds.
--jetstream adds js-admin-<ACCOUNT>.password (config mode) or js-admin-<ACCOUNT>.creds (operator mode), 0600.

Examples:
  nats-opa-callout init --dir ./deploy --websocket
  nats-server -c ./deploy/nats-server.conf &
  nats-opa-callout serve --config ./deploy/service.yaml

  nats-opa-callout init --dir ./deploy-op --operator
  nats-opa-callout init --dir ./deploy-js --jetstream --js-account-max-file 1G
  nats-opa-callout init --policy ./my-policy && opa test ./my-policy

${EXIT_CODES_HELP}
`;

export interface InitOptions {
  dir: string;
  operator: boolean;
  websocket: boolean;
  wsPort: number;
  host: string;
  port: number;
  accounts: string[];
  xkey: boolean;
  policyDir: string;
  metricsListen: string;
  timeout: number;
  force: boolean;
  /** Config mode: a least-privilege SYS user for live revocation (src/cli/init-revocation.ts). */
  revocation?: boolean;
  /** bcrypt cost; default 11. */
  bcryptCost?: number;
  /** --jetstream and its knobs (src/cli/init-jetstream.ts). */
  jetstream?: js.JetStreamInitOptions;
}

export interface InitResult {
  dir: string;
  files: { path: string; secret: boolean }[];
  /** Secrets, returned for --print-secrets and tests; never printed otherwise. */
  secrets: Record<string, string>;
  layout: InitLayout;
  /** With --jetstream: the store directory and the admin credential of each target account. */
  jetstream?: { storeDir: string; admins: js.JetStreamAdmin[] };
}

const ACCOUNT_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

function seedOf(kp: KeyPair): string {
  return new TextDecoder().decode(kp.getSeed());
}

function hcl(s: string): string {
  return JSON.stringify(s);
}

/** Account JWT limits meaning "unlimited": an account JWT without limits allows 0 connections and subscriptions. */
export const UNLIMITED_ACCOUNT_LIMITS = Object.freeze({
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
});

/** bcrypt with the "$2a$" prefix nats-server documents (the "$2b$" variant is the same algorithm). */
export function bcryptHash(password: string, cost = 11): string {
  const salt = bcrypt.genSaltSync(cost).replace(/^\$2b\$/, "$2a$");
  return bcrypt.hashSync(password, salt);
}

/** Generate all files. Pure apart from writing into `opts.dir`. */
export async function runInit(opts: InitOptions): Promise<InitResult> {
  const dir = resolve(opts.dir);
  for (const a of opts.accounts) {
    if (!ACCOUNT_RE.test(a) || a === "SYS" || a === "AUTH" || a === "$G") {
      throw new UsageError(
        `--accounts: "${a}" is not a valid target account name (SYS and AUTH are reserved)`,
      );
    }
  }
  mkdirSync(dir, { recursive: true });
  const files: InitResult["files"] = [];
  const secrets: Record<string, string> = {};
  const write = (name: string, content: string | Uint8Array, secret: boolean) => {
    const p = join(dir, name);
    if (existsSync(p) && !opts.force) {
      throw new UsageError(`${p} exists; use --force to overwrite`);
    }
    writeFileSync(p, content, { mode: secret ? 0o600 : 0o644 });
    chmodSync(p, secret ? 0o600 : 0o644);
    files.push({ path: p, secret });
  };
  // Check for collisions before writing anything.
  const planned = opts.operator
    ? ["operator.jwt", "operator.nk", "SYS.jwt", "AUTH.jwt", "AUTH.nk", "callout.creds", "sentinel.creds"]
    : ["issuer.nk"];
  planned.push("nats-server.conf", "service.yaml");
  if (opts.xkey) planned.push("xkey.nk");
  if (opts.operator) for (const a of opts.accounts) planned.push(`${a}.jwt`, `${a}.nk`);
  if (opts.jetstream) planned.push(...js.jetStreamFiles(opts.accounts, opts.operator));
  if (!opts.force) {
    for (const f of planned) {
      if (existsSync(join(dir, f))) throw new UsageError(`${join(dir, f)} exists; use --force to overwrite`);
    }
  }

  const xkp = opts.xkey ? createCurve() : undefined;
  const xkeySeed = xkp ? seedOf(xkp) : undefined;
  if (xkp && xkeySeed) {
    write("xkey.nk", xkeySeed + "\n", true);
    secrets.xkey_seed = xkeySeed;
  }
  const wsBlock = opts.websocket
    ? `\n# Browser clients (nats.ws / wsconnect). Loopback, no TLS: put a TLS proxy in front or add a tls block.\nwebsocket {\n  listen: ${hcl(`${opts.host}:${opts.wsPort}`)}\n  no_tls: true\n}\n`
    : "";
  const natsUrl = `nats://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${opts.port}`;
  let layout: InitLayout;
  if (opts.revocation && opts.operator) {
    throw new UsageError(
      "--revocation: config mode only (operator mode: issue a SYS user JWT, see docs/operations.md)",
    );
  }
  const rev = opts.revocation ? initRevocation((p) => bcryptHash(p, opts.bcryptCost ?? 11)) : undefined;
  if (rev) secrets.revocation_password = rev.password;
  const jsStoreDir = opts.jetstream ? resolve(dir, opts.jetstream.storeDir ?? "jetstream") : "";
  const jsBlock = opts.jetstream ? js.serverJetStreamBlock(opts.jetstream, jsStoreDir) : "";
  const jsAdmins: js.JetStreamAdmin[] = [];

  if (!opts.operator) {
    const issuer = createAccount();
    const issuerSeed = seedOf(issuer);
    const password = randomBytes(24).toString("base64url");
    const hash = bcryptHash(password, opts.bcryptCost ?? 11);
    write("issuer.nk", issuerSeed + "\n", true);
    secrets.issuer_seed = issuerSeed;
    secrets.callout_password = password;
    // Its seed is never written anywhere: nobody can sign as this user.
    const nonceUser = createUser().getPublicKey();
    const jsAccountBody = (a: string): string => {
      if (!opts.jetstream) return "";
      const user = js.jetStreamAdminName(a);
      const pw = randomBytes(24).toString("base64url");
      write(`${user}.password`, pw + "\n", true);
      secrets[`${user}_password`] = pw;
      jsAdmins.push({ account: a, user, file: join(dir, `${user}.password`) });
      return js.configAccountBody(opts.jetstream, a, bcryptHash(pw, opts.bcryptCost ?? 11));
    };
    const accounts = opts.accounts.map((a) => `  ${a} {${jsAccountBody(a)}}`).join("\n");
    const conf = `# nats-server config generated by nats-opa-callout init (config mode).
# Every client login except the callout user${opts.jetstream ? " and the JetStream admins" : ""} is sent to the callout service.
listen: ${hcl(`${opts.host}:${opts.port}`)}
${wsBlock}${jsBlock}
system_account: SYS

accounts {
  # The callout service's own account. Its user may only receive authorization requests and answer them.
  AUTH {
    users: [
      {
        user: callout
        password: ${hcl(hash)}
        permissions: {
          subscribe: { allow: ["$SYS.REQ.USER.AUTH"] }
          publish: { deny: [">"] }
          allow_responses: true
        }
      }
      # Never logs in (its seed was discarded) and may do nothing. It exists because nats-server sends clients a
      # nonce only when at least one nkey user is configured, and without a nonce no client can prove its nkey to
      # the callout (policy input derived.nkey). Not in auth_users: a login with this key still goes to the
      # callout, which refuses a signature that does not verify.
      {
        nkey: ${hcl(nonceUser)}
        permissions: { publish: { deny: [">"] }, subscribe: { deny: [">"] } }
      }
    ]
  }
${accounts}
${rev?.sysAccount ?? "  SYS {}"}
}

authorization {
  # Seconds nats-server waits for the callout's answer (also the request JWT's lifetime).
  timeout: ${opts.timeout}
  auth_callout {
    issuer: ${hcl(issuer.getPublicKey())}
    account: AUTH
    auth_users: [ ${["callout", ...(rev ? [REVOCATION_USER] : []), ...jsAdmins.map((j) => j.user)].join(", ")} ]${xkp ? `\n    xkey: ${hcl(xkp.getPublicKey())}` : ""}
  }
}
`;
    write("nats-server.conf", conf, true);
    layout = {
      mode: "config",
      dir,
      natsUrl,
      user: "callout",
      password,
      issuerSeedFile: join(dir, "issuer.nk"),
      issuerPublicKey: issuer.getPublicKey(),
      xkeySeedFile: xkp ? join(dir, "xkey.nk") : undefined,
      accounts: opts.accounts,
      policyDir: resolve(opts.policyDir),
      metricsListen: opts.metricsListen,
      websocketUrl: opts.websocket ? `ws://${opts.host}:${opts.wsPort}` : undefined,
    };
  } else {
    const op = createOperator();
    const sys = createAccount();
    const auth = createAccount();
    const targets = opts.accounts.map((name) => ({ name, kp: createAccount() }));
    const calloutUser = createUser();
    const sentinel = createUser();
    const limits = UNLIMITED_ACCOUNT_LIMITS;
    const operatorJwt = await encodeOperator("nats-opa-callout", op, { system_account: sys.getPublicKey() });
    const sysJwt = await encodeAccount("SYS", sys, { limits }, { signer: op });
    const authJwt = await encodeAccount(
      "AUTH",
      auth,
      {
        limits,
        authorization: {
          auth_users: [calloutUser.getPublicKey()],
          allowed_accounts: targets.map((t) => t.kp.getPublicKey()),
          ...(xkp ? { xkey: xkp.getPublicKey() } : {}),
        },
      },
      { signer: op },
    );
    const targetLimits = opts.jetstream
      ? { ...limits, ...js.accountJwtJetStreamLimits(opts.jetstream) }
      : limits;
    const targetJwts = await Promise.all(
      targets.map((t) => encodeAccount(t.name, t.kp, { limits: targetLimits }, { signer: op })),
    );
    // The service's own user: may only receive authorization requests and answer them.
    const calloutJwt = await encodeUser("callout", calloutUser, auth, {
      sub: { allow: ["$SYS.REQ.USER.AUTH"] },
      pub: { deny: [">"] },
      resp: { max: 1, ttl: 0 },
    });
    // Sentinel: clients connect with these creds (plus user/password or token); the callout decides.
    const sentinelJwt = await encodeUser("sentinel", sentinel, auth, {
      sub: { deny: [">"] },
      pub: { deny: [">"] },
      bearer_token: true,
    });
    write("operator.jwt", operatorJwt + "\n", false);
    write("operator.nk", seedOf(op) + "\n", true);
    write("SYS.jwt", sysJwt + "\n", false);
    write("AUTH.jwt", authJwt + "\n", false);
    write("AUTH.nk", seedOf(auth) + "\n", true);
    targets.forEach((t, i) => {
      write(`${t.name}.jwt`, (targetJwts[i] as string) + "\n", false);
      write(`${t.name}.nk`, seedOf(t.kp) + "\n", true);
    });
    write("callout.creds", new TextDecoder().decode(fmtCreds(calloutJwt, calloutUser)), true);
    write("sentinel.creds", new TextDecoder().decode(fmtCreds(sentinelJwt, sentinel)), true);
    if (opts.jetstream) {
      for (const t of targets) {
        const user = js.jetStreamAdminName(t.name);
        write(`${user}.creds`, await js.adminCreds(t.name, t.kp), true);
        jsAdmins.push({ account: t.name, user, file: join(dir, `${user}.creds`) });
      }
    }
    secrets.operator_seed = seedOf(op);
    secrets.auth_account_seed = seedOf(auth);
    for (const t of targets) secrets[`${t.name}_account_seed`] = seedOf(t.kp);
    const preload = [
      `  ${hcl(sys.getPublicKey())}: ${hcl(sysJwt)}`,
      `  ${hcl(auth.getPublicKey())}: ${hcl(authJwt)}`,
      ...targets.map((t, i) => `  ${hcl(t.kp.getPublicKey())}: ${hcl(targetJwts[i] as string)}`),
    ].join("\n");
    const conf = `# nats-server config generated by nats-opa-callout init (operator mode).
# Accounts: SYS ${sys.getPublicKey()}
#           AUTH ${auth.getPublicKey()} (callout account: authorization.auth_users = the service's user)
${targets.map((t) => `#           ${t.name} ${t.kp.getPublicKey()}`).join("\n")}
# Clients connect with sentinel.creds plus their user/password or token; the callout places them.
listen: ${hcl(`${opts.host}:${opts.port}`)}
${wsBlock}${jsBlock}
# The operator JWT inline (also in operator.jwt): the config works on any host, from any directory.
operator: ${hcl(operatorJwt)}
system_account: ${hcl(sys.getPublicKey())}
resolver: MEMORY
resolver_preload: {
${preload}
}

authorization {
  timeout: ${opts.timeout}
}
`;
    write("nats-server.conf", conf, true);
    layout = {
      mode: "operator",
      dir,
      natsUrl,
      credsFile: join(dir, "callout.creds"),
      calloutAccountSeedFile: join(dir, "AUTH.nk"),
      calloutAccountPublicKey: auth.getPublicKey(),
      targetAccounts: targets.map((t) => ({
        name: t.name,
        publicKey: t.kp.getPublicKey(),
        seedFile: join(dir, `${t.name}.nk`),
      })),
      xkeySeedFile: xkp ? join(dir, "xkey.nk") : undefined,
      accounts: opts.accounts,
      policyDir: resolve(opts.policyDir),
      metricsListen: opts.metricsListen,
      websocketUrl: opts.websocket ? `ws://${opts.host}:${opts.wsPort}` : undefined,
      sentinelCredsFile: join(dir, "sentinel.creds"),
    };
  }
  const header =
    layout.mode === "config"
      ? "# nats-opa-callout service config (generated by init). Holds the callout user's password: keep it 0600.\n"
      : "# nats-opa-callout service config (generated by init, operator mode).\n";
  // Paths are relative to this file's directory. Reference: docs/configuration.md.
  write(
    "service.yaml",
    header +
      stringify(
        { ...serviceConfigDoc(layout), ...(rev ? { revocation: rev.serviceSection } : {}) },
        { lineWidth: 0 },
      ),
    layout.mode === "config",
  );
  const res: InitResult = { dir, files, secrets, layout };
  if (opts.jetstream) res.jetstream = { storeDir: jsStoreDir, admins: jsAdmins };
  return res;
}

export async function initCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        dir: { type: "string" },
        operator: { type: "boolean" },
        websocket: { type: "boolean" },
        "ws-port": { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        accounts: { type: "string" },
        "no-xkey": { type: "boolean" },
        "policy-dir": { type: "string" },
        "metrics-listen": { type: "string" },
        timeout: { type: "string" },
        force: { type: "boolean" },
        "print-secrets": { type: "boolean" },
        revocation: { type: "boolean" },
        "bcrypt-cost": { type: "string" },
        help: { type: "boolean", short: "h" },
        ...topology.TOPOLOGY_FLAGS,
        ...js.JETSTREAM_FLAGS,
        policy: { type: "string" },
      },
    }));
  } catch (e) {
    asUsage(e);
  }
  if (values.help) {
    out(INIT_HELP);
    return EXIT.OK;
  }
  if (values.policy !== undefined) return initPolicyCommand(values);
  const opts: InitOptions = {
    dir: (values.dir as string | undefined) ?? "callout-config",
    operator: values.operator === true,
    websocket: values.websocket === true,
    wsPort: intFlag("ws-port", values["ws-port"] as string | undefined, 8080, 1),
    host: (values.host as string | undefined) ?? "127.0.0.1",
    port: intFlag("port", values.port as string | undefined, 4222, 1),
    accounts: ((values.accounts as string | undefined) ?? "APP")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    xkey: values["no-xkey"] !== true,
    policyDir: (values["policy-dir"] as string | undefined) ?? "policies",
    metricsListen: (values["metrics-listen"] as string | undefined) ?? "127.0.0.1:9464",
    timeout: intFlag("timeout", values.timeout as string | undefined, 2, 1, 60),
    force: values.force === true,
    revocation: values.revocation === true,
    bcryptCost: intFlag("bcrypt-cost", values["bcrypt-cost"] as string | undefined, 11, 4, 16),
  };
  const jetstream = js.jetStreamOptions(values);
  if (jetstream) opts.jetstream = jetstream;
  if (opts.accounts.length === 0) throw new UsageError("--accounts: at least one target account is required");
  const topo = topology.topologyFromFlags(values, opts);
  if (topo) topology.checkTopologyTargets(topo, resolve(opts.dir), opts.force);
  const res = await runInit(opts);
  const topoRes = topo && (await topology.writeTopology(topo, res, opts, { runInit, bcryptHash }));
  if (topoRes) res.files.push(...topoRes.files);
  if (topoRes) Object.assign(res.secrets, topoRes.secrets);
  const rel = (p: string) => {
    const r = relative(process.cwd(), p) || ".";
    return r.startsWith("..") ? p : r;
  };
  out(`Wrote ${res.layout.mode}-mode configuration to ${rel(res.dir)}/:`);
  for (const f of res.files) out(`  ${rel(f.path)}${f.secret ? "   (secret, 0600)" : ""}`);
  out("");
  out("Next:");
  if (topoRes) topology.topologyNextSteps(topoRes, rel).forEach((l) => out(l));
  else out(`  nats-server -c ${rel(join(res.dir, "nats-server.conf"))}`);
  out(`  nats-opa-callout check --policy-dir ${rel(res.layout.policyDir)}`);
  if (!topoRes) out(`  nats-opa-callout serve --config ${rel(join(res.dir, "service.yaml"))}`);
  if (res.layout.mode === "operator") {
    out(`Clients connect with ${rel(join(res.dir, "sentinel.creds"))} plus their user/password or token.`);
  }
  if (res.jetstream) {
    out(`JetStream store: ${rel(res.jetstream.storeDir)}`);
    out("JetStream admins (create buckets and streams; skip the callout; keep their files secret):");
    for (const a of res.jetstream.admins) {
      out(
        res.layout.mode === "config"
          ? `  ${a.account}: user ${a.user}, password in ${rel(a.file)}`
          : `  ${a.account}: creds ${rel(a.file)}`,
      );
    }
  }
  if (values["print-secrets"]) {
    out("");
    out("Secrets (--print-secrets):");
    for (const [k, v] of Object.entries(res.secrets)) out(`  ${k}: ${v}`);
  } else {
    out("Secrets are in the 0600 files above and were not printed (--print-secrets to show them).");
  }
  return EXIT.OK;
}
