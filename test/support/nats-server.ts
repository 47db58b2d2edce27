/**
 * A real nats-server for tests and benchmarks: random free loopback port, generated config file in a temp dir
 * (`-c file`), log captured to a file (`log()` reads it) plus stderr, stop/restart on the same port, async
 * dispose, and every server still running killed (its temp dir removed) when this process exits.
 * Plus config builders for config mode (optionally with xkey), operator mode, the benchmarks' plain users and
 * config-mode callout, and the binary matrix (latest from NATS_SERVER_BIN, 2.10 from NATS_SERVER_210_BIN,
 * falling back to <repo>/.tools/bin).
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createAccount, createCurve, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import {
  credsAuthenticator,
  usernamePasswordAuthenticator,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import { UNLIMITED_ACCOUNT_LIMITS } from "../../src/cli/init.js";
import type { ServiceConfig } from "../../src/config.js";
import { NATS_SERVER_210_BIN, NATS_SERVER_BIN } from "./paths.js";
import { freePort, isListening } from "./ports.js";

const dec = new TextDecoder();

// ---------------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------------

export interface ServerBinary {
  /** "latest" or "2.10". */
  label: string;
  bin: string;
  /** e.g. "2.15.3"; empty when the binary is missing. */
  version: string;
  missing: boolean;
}

function probe(label: string, bin: string): ServerBinary {
  if (!existsSync(bin)) return { label, bin, version: "", missing: true };
  try {
    const out = execFileSync(bin, ["--version"], { encoding: "utf8" });
    const m = /v(\d+\.\d+\.\d+\S*)/.exec(out);
    return { label, bin, version: m?.[1] ?? "", missing: false };
  } catch {
    return { label, bin, version: "", missing: true };
  }
}

/** The server matrix: [latest, 2.10]. A missing binary is reported (tests skip it with a message). */
export function serverMatrix(): ServerBinary[] {
  return [probe("latest", NATS_SERVER_BIN), probe("2.10", NATS_SERVER_210_BIN)];
}

/** Compares "2.10.27" style versions: <0, 0, >0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Seconds the server waits for a callout reply. 3 s by default; CALLOUT_AUTH_TIMEOUT overrides (slow CI: 5). */
export function authTimeoutSeconds(): number {
  const v = Number(process.env.CALLOUT_AUTH_TIMEOUT);
  return Number.isInteger(v) && v > 0 ? v : 3;
}

// ---------------------------------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------------------------------

export interface StartOptions {
  /** Binary; default: the "latest" entry of serverMatrix(). */
  bin?: string;
  /** Config body (everything except listen/websocket/http, which the helper writes). */
  config: string;
  /** Also listen for websocket clients (no TLS) on another free loopback port. */
  websocket?: boolean;
  /** Also serve the monitoring endpoints (/varz, /connz) on another free loopback port. */
  monitor?: boolean;
  /** Log at debug level (-D). */
  debug?: boolean;
  /** Directory for config and log; default a fresh temp dir, removed on stop() (or when this process exits). */
  dir?: string;
  /**
   * Raise the open-files limit of the server process to this (via util-linux `prlimit`, which execs the server
   * in place). Needs root to go past the hard limit; the caller checks that it can first.
   */
  nofile?: number;
}

export interface NatsServer {
  readonly port: number;
  /** nats://127.0.0.1:port */
  readonly url: string;
  readonly wsPort?: number;
  /** ws://127.0.0.1:wsPort */
  readonly wsUrl?: string;
  readonly monitorPort?: number;
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly bin: string;
  /** Pid of the current server process (changes after restart); throws while it is stopped. */
  pid(): number;
  /** The whole server log so far (all runs, appended). */
  log(): string;
  /** A mark (current log length) for logSince(). */
  logMark(): number;
  logSince(mark: number): string;
  /** Waits until the log (after `mark`) matches `re`; throws after `timeoutMs`. */
  waitForLog(re: RegExp, opts?: { mark?: number; timeoutMs?: number }): Promise<string>;
  /** Stops the process (SIGTERM, then SIGKILL); keeps the dir so it can be restarted. */
  kill(): Promise<void>;
  /** Starts it again on the same port(s) with the same config (stopping it first if it still runs). */
  restart(): Promise<void>;
  /** Stops the process and removes the temp dir. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Live server processes and own temp dirs: the processes are killed and the dirs removed when this process
 * exits however it exits (short of SIGKILL).
 */
const live = new Set<ChildProcess>();
const ownDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const c of live) c.kill("SIGKILL");
    for (const d of ownDirs) rmSync(d, { recursive: true, force: true });
  });
}
function track(p: ChildProcess): void {
  installExitHook();
  live.add(p);
  p.once("exit", () => live.delete(p));
}

export async function startNatsServer(opts: StartOptions): Promise<NatsServer> {
  const bin = opts.bin ?? serverMatrix()[0]!.bin;
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "nats-test-"));
  if (ownDir) {
    installExitHook();
    ownDirs.add(dir);
  }
  const port = await freePort();
  const wsPort = opts.websocket ? await freePort() : undefined;
  const monitorPort = opts.monitor ? await freePort() : undefined;
  const configFile = join(dir, "server.conf");
  const logFile = join(dir, "server.log");
  const lines = [`listen: "127.0.0.1:${port}"`];
  if (wsPort !== undefined) lines.push(`websocket { listen: "127.0.0.1:${wsPort}", no_tls: true }`);
  if (monitorPort !== undefined) lines.push(`http: "127.0.0.1:${monitorPort}"`);
  lines.push(opts.config);
  writeFileSync(configFile, lines.join("\n") + "\n");
  writeFileSync(logFile, "");

  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = "";

  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  const logSince = (mark: number): string => log().slice(mark);
  // A character offset into log() (not a byte size: logSince slices the decoded text).
  const logMark = (): number => log().length;

  const waitForLog = async (re: RegExp, o: { mark?: number; timeoutMs?: number } = {}): Promise<string> => {
    const deadline = Date.now() + (o.timeoutMs ?? 10_000);
    for (;;) {
      const text = logSince(o.mark ?? 0);
      const m = re.exec(text);
      if (m) return m[0];
      if (Date.now() > deadline)
        throw new Error(`nats-server log never matched ${re}; tail:\n${text.slice(-2000)}`);
      await sleep(25);
    }
  };

  const launch = async (): Promise<void> => {
    const mark = logMark();
    const args = ["-c", configFile, "-l", logFile];
    if (opts.debug) args.push("-D");
    stderr = "";
    const [cmd, argv] =
      opts.nofile !== undefined
        ? ["prlimit", [`--nofile=${opts.nofile}:${opts.nofile}`, "--", bin, ...args]]
        : [bin, args];
    const p = spawn(cmd, argv, { stdio: ["ignore", "ignore", "pipe"] });
    proc = p;
    track(p);
    p.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    let exitedEarly = false;
    exited = new Promise<void>((resolve) => {
      p.once("exit", () => {
        exitedEarly = true;
        resolve();
      });
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (exitedEarly) {
        throw new Error(`nats-server exited during start: ${stderr}\n${logSince(mark).slice(-2000)}`);
      }
      if (/Server is ready/.test(logSince(mark)) && (await isListening(port))) return;
      if (Date.now() > deadline) {
        p.kill("SIGKILL");
        throw new Error(`nats-server did not become ready: ${stderr}\n${logSince(mark).slice(-2000)}`);
      }
      await sleep(20);
    }
  };

  const kill = async (): Promise<void> => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
    proc = undefined;
  };

  await launch();

  const server: NatsServer = {
    port,
    url: `nats://127.0.0.1:${port}`,
    dir,
    configFile,
    logFile,
    bin,
    pid() {
      if (proc?.pid === undefined) throw new Error("nats-server is not running");
      return proc.pid;
    },
    log,
    logMark,
    logSince,
    waitForLog,
    kill,
    async restart() {
      await kill();
      // The port may sit in TIME_WAIT briefly; nats-server sets SO_REUSEADDR, so retry a little.
      for (let i = 0; ; i++) {
        try {
          await launch();
          return;
        } catch (err) {
          if (i >= 20) throw err;
          await sleep(250);
        }
      }
    },
    async stop() {
      await kill();
      if (ownDir) {
        rmSync(dir, { recursive: true, force: true });
        ownDirs.delete(dir);
      }
    },
    async [Symbol.asyncDispose]() {
      await server.stop();
    },
  };
  if (wsPort !== undefined) Object.assign(server, { wsPort, wsUrl: `ws://127.0.0.1:${wsPort}` });
  if (monitorPort !== undefined) Object.assign(server, { monitorPort });
  return server;
}

// ---------------------------------------------------------------------------------------------------
// Config builders
// ---------------------------------------------------------------------------------------------------

const seedOf = (kp: KeyPair): string => dec.decode(kp.getSeed());

export interface KeyStrings {
  seed: string;
  pub: string;
}

function keyStrings(kp: KeyPair): KeyStrings {
  return { seed: seedOf(kp), pub: kp.getPublicKey() };
}

/** Config mode: AUTH (callout user), APP, OPS, SYS; auth_callout with issuer (and xkey). */
export interface ConfigModeSetup {
  mode: "config";
  /** Server config body for startNatsServer. */
  config: string;
  /** The auth_callout.issuer account key (service: issuer.seed). */
  issuer: KeyStrings;
  /** The auth_callout.xkey curve key (service: xkey.seed). */
  xkey?: KeyStrings;
  /** The least-privilege callout user (one of auth_users): user/password, or an nkey when asked for. */
  callout: { user: string; password: string; nkey?: KeyStrings };
  /** Accounts in the server config. */
  accounts: string[];
}

export interface ConfigModeOptions {
  xkey?: boolean;
  /** authorization.timeout, seconds (default authTimeoutSeconds()). */
  timeout?: number;
  /** Extra text inside `accounts { … }`. */
  extraAccounts?: string;
  /** Extra text inside `auth_callout { … }` (e.g. allowed_accounts on 2.11+). */
  extraCallout?: string;
  /** The callout user authenticates with an nkey instead of a password. */
  calloutNkey?: boolean;
}

export function configModeSetup(o: ConfigModeOptions = {}): ConfigModeSetup {
  const issuer = keyStrings(createAccount());
  const xkey = o.xkey ? keyStrings(createCurve()) : undefined;
  const nkey = o.calloutNkey ? keyStrings(createUser()) : undefined;
  const callout: ConfigModeSetup["callout"] = {
    user: "callout",
    password: "callout-" + Math.random().toString(36).slice(2),
  };
  if (nkey) callout.nkey = nkey;
  const perms = `permissions: { subscribe: { allow: ["$SYS.REQ.USER.AUTH"] }, publish: { deny: [">"] }, allow_responses: true }`;
  const calloutUser = nkey
    ? `{ nkey: "${nkey.pub}", ${perms} }`
    : `{ user: "${callout.user}", password: "${callout.password}", ${perms} }`;
  const config = `
server_name: callout_test
system_account: SYS
accounts {
  AUTH {
    users: [ ${calloutUser} ]
  }
  APP {}
  OPS {}
  SYS {}
  ${o.extraAccounts ?? ""}
}
authorization {
  timeout: ${o.timeout ?? authTimeoutSeconds()}
  auth_callout {
    issuer: "${issuer.pub}"
    account: AUTH
    auth_users: [ "${nkey ? nkey.pub : callout.user}" ]
    ${xkey ? `xkey: "${xkey.pub}"` : ""}
    ${o.extraCallout ?? ""}
  }
}
`;
  const out: ConfigModeSetup = {
    mode: "config",
    config,
    issuer,
    callout,
    accounts: ["AUTH", "APP", "OPS", "SYS"],
  };
  if (xkey) out.xkey = xkey;
  return out;
}

/** An account of the operator setup: its key, and the key that signs its users (a signing key or itself). */
export interface OperatorAccount {
  name: string;
  key: KeyStrings;
  signing: KeyStrings;
  jwt: string;
}

export interface OperatorModeSetup {
  mode: "operator";
  config: string;
  operator: KeyStrings;
  sys: OperatorAccount;
  /** The callout account (authorization.auth_users); its `signing` key signs responses. */
  auth: OperatorAccount;
  /** Target accounts APP (with a separate signing key) and OPS. */
  app: OperatorAccount;
  ops: OperatorAccount;
  xkey?: KeyStrings;
  /** Creds of the callout service user (in AUTH). */
  calloutCreds: string;
  /** Creds of the sentinel user (in AUTH, no permissions) that clients present to reach the callout. */
  sentinelCreds: string;
}

/**
 * The service's config for an operator-mode setup: the callout user's creds from `credsFile` (write
 * `op.calloutCreds` there), responses signed by the callout account's signing key, APP and OPS users signed by theirs.
 */
export function operatorServiceConfig(op: OperatorModeSetup, url: string, credsFile: string): ServiceConfig {
  return {
    mode: "operator",
    nats: { servers: url, creds_file: credsFile },
    callout_account: { public_key: op.auth.key.pub, seed: op.auth.signing.seed },
    accounts: {
      APP: { public_key: op.app.key.pub, signing_key_seed: op.app.signing.seed },
      OPS: { public_key: op.ops.key.pub, signing_key_seed: op.ops.signing.seed },
    },
  };
}

/** Connect options of a client in operator mode: the sentinel's creds, plus the user/password the callout sees. */
export function operatorClientAuth(
  op: OperatorModeSetup,
): (user: string, password: string) => Partial<NodeConnectionOptions> {
  const sentinel = new TextEncoder().encode(op.sentinelCreds);
  return (user, password) => ({
    authenticator: [credsAuthenticator(sentinel), usernamePasswordAuthenticator(user, password)],
  });
}

export interface OperatorModeOptions {
  xkey?: boolean;
  timeout?: number;
  /** Sign APP users with a separate signing key (default true); the callout account too. */
  signingKeys?: boolean;
}

export async function operatorModeSetup(o: OperatorModeOptions = {}): Promise<OperatorModeSetup> {
  const useSk = o.signingKeys ?? true;
  const okp = createOperator();
  const operator = keyStrings(okp);

  const sysKp = createAccount();
  const authKp = createAccount();
  const authSk = useSk ? createAccount() : authKp;
  const appKp = createAccount();
  const appSk = useSk ? createAccount() : appKp;
  const opsKp = createAccount();
  const xkey = o.xkey ? keyStrings(createCurve()) : undefined;
  const calloutUser = createUser();
  const sentinelUser = createUser();

  const limits = UNLIMITED_ACCOUNT_LIMITS;
  const opJwt = await encodeOperator("OP", okp, { system_account: sysKp.getPublicKey() });
  const sysJwt = await encodeAccount("SYS", sysKp, { limits }, { signer: okp });
  const authorization: { auth_users: string[]; allowed_accounts: string[]; xkey?: string } = {
    auth_users: [calloutUser.getPublicKey()],
    allowed_accounts: [appKp.getPublicKey(), opsKp.getPublicKey()],
  };
  if (xkey) authorization.xkey = xkey.pub;
  const authJwt = await encodeAccount(
    "AUTH",
    authKp,
    { limits, authorization, ...(useSk ? { signing_keys: [authSk.getPublicKey()] } : {}) },
    { signer: okp },
  );
  const appJwt = await encodeAccount(
    "APP",
    appKp,
    useSk ? { limits, signing_keys: [appSk.getPublicKey()] } : { limits },
    {
      signer: okp,
    },
  );
  const opsJwt = await encodeAccount("OPS", opsKp, { limits }, { signer: okp });

  const calloutJwt = await encodeUser(
    "callout",
    calloutUser,
    authKp,
    { sub: { allow: ["$SYS.REQ.USER.AUTH"] }, pub: { deny: [">"] }, resp: { max: 1, ttl: 0 } },
    {},
  );
  const sentinelJwt = await encodeUser("sentinel", sentinelUser, authKp, {
    sub: { deny: [">"] },
    pub: { deny: [">"] },
  });

  const acct = (name: string, kp: KeyPair, sk: KeyPair, jwt: string): OperatorAccount => ({
    name,
    key: keyStrings(kp),
    signing: keyStrings(sk),
    jwt,
  });
  const sys = acct("SYS", sysKp, sysKp, sysJwt);
  const auth = acct("AUTH", authKp, authSk, authJwt);
  const app = acct("APP", appKp, appSk, appJwt);
  const ops = acct("OPS", opsKp, opsKp, opsJwt);

  const config = `
server_name: callout_test
operator: "${opJwt}"
system_account: "${sys.key.pub}"
resolver: MEMORY
resolver_preload: {
  ${[sys, auth, app, ops].map((a) => `"${a.key.pub}": "${a.jwt}"`).join("\n  ")}
}
authorization { timeout: ${o.timeout ?? authTimeoutSeconds()} }
`;
  const out: OperatorModeSetup = {
    mode: "operator",
    config,
    operator,
    sys,
    auth,
    app,
    ops,
    calloutCreds: dec.decode(fmtCreds(calloutJwt, calloutUser)),
    sentinelCreds: dec.decode(fmtCreds(sentinelJwt, sentinelUser)),
  };
  if (xkey) out.xkey = xkey;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Config bodies of the benchmarks and the reliability suite (many connections, no monitoring)
// ---------------------------------------------------------------------------------------------------

/** Quote a value for the nats-server config format. */
function q(s: string): string {
  return JSON.stringify(s);
}

/** Plain config users in account APP (no callout at all). */
export function plainConf(users: { user: string; pass: string }[]): string {
  const list = users.map((u) => `{ user: ${q(u.user)}, password: ${q(u.pass)} }`).join(",\n      ");
  return `max_connections: 1000000
system_account: SYS
accounts {
  APP { users: [
      ${list}
  ] }
  SYS {}
}
`;
}

export interface CalloutServerOptions {
  /** Public key (A…) of the issuer account whose seed the callout service holds. */
  issuer: string;
  calloutUser: string;
  calloutPass: string;
  /** Public xkey (X…) to make the server seal requests. */
  xkey?: string;
  /** authorization.timeout in seconds (server default 2). Omitted = server default. */
  timeoutS?: number;
  /** Extra config appended at the end. */
  extra?: string;
  /**
   * A second auth user (skips the callout) allowed to PUBLISH on $SYS.REQ.USER.AUTH, to inject raw
   * bytes into the service's subscription (bad-input tests). Never used by benchmarks.
   */
  prober?: { user: string; pass: string };
}

/** Config-mode auth callout (account AUTH → APP): every client except the callout user goes to the callout. */
export function calloutConf(o: CalloutServerOptions): string {
  return `max_connections: 1000000
system_account: SYS
accounts {
  AUTH { users: [ { user: ${q(o.calloutUser)}, password: ${q(o.calloutPass)},
                    permissions: { subscribe: { allow: ["$SYS.REQ.USER.AUTH"] },
                                   publish: { deny: [">"] },
                                   allow_responses: true } }${
                                     o.prober
                                       ? `,
                  { user: ${q(o.prober.user)}, password: ${q(o.prober.pass)},
                    permissions: { publish: { allow: ["$SYS.REQ.USER.AUTH"] }, subscribe: { allow: ["_INBOX.>"] } } }`
                                       : ""
                                   } ] }
  APP {}
  SYS {}
}
authorization {
  ${o.timeoutS !== undefined ? `timeout: ${o.timeoutS}` : "# timeout: server default (2 s)"}
  auth_callout {
    issuer: ${q(o.issuer)}
    account: AUTH
    auth_users: [ ${q(o.calloutUser)}${o.prober ? `, ${q(o.prober.user)}` : ""} ]
    ${o.xkey ? `xkey: ${q(o.xkey)}` : ""}
  }
}
${o.extra ?? ""}
`;
}
