/**
 * The reliability suite's stack: scale, a real nats-server + the real service CLI (run from source through
 * tsx, so it is never a stale build), a sustained connect storm, and the record of every secret used and
 * every log/decision line written (scanned by zz-secrets.test.ts). Decision logs, policy-status polls and
 * atomic writes are shared with the topology suite and the integration tests.
 *
 * RELIABILITY_SCALE=full selects the full sizes; anything else the reduced ones (CI).
 */
import { createHash } from "node:crypto";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { newKeys, secret, type RunKeys } from "./keys.js";
import { calloutConf, startNatsServer, type NatsServer } from "./nats-server.js";
import { REPO } from "./paths.js";
import { TRIVIAL_POLICY } from "./policies.js";
import type { Child } from "./process.js";
import { startOurs, type OursChild } from "./service.js";
import { connectOnce, stormTs, type Creds, type StormResult } from "./storm.js";

export const RELIABILITY_FULL = process.env.RELIABILITY_SCALE === "full";
export const RELIABILITY_SCALE_NAME = RELIABILITY_FULL ? "full" : "reduced";

/** Root of the suite's artefacts (gitignored build/). Each test file owns one subdirectory. */
export const SUITE_DIR = join(REPO, "build", "reliability");

/** A fresh (emptied) directory for one test file's logs, decision logs and secrets list. */
export function fileDir(name: string): string {
  const d = join(SUITE_DIR, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  return d;
}

/** Record a secret that must never appear in any log line or decision event of the suite. */
export function registerSecret(dir: string, value: string): string {
  appendFileSync(join(dir, "secrets.txt"), value + "\n", { mode: 0o600 });
  return value;
}

/** Save a process's whole output next to the decision logs (for the suite-wide secrets scan). */
export function saveOutput(dir: string, label: string, child: Child): void {
  writeFileSync(join(dir, `${label}.log`), child.output());
}

export interface Hit {
  file: string;
  line: number;
  secretIndex: number;
}

/** Scan every *.log / *.jsonl under `root` for every secret in any secrets.txt under `root`. */
export function scanSuite(root: string = SUITE_DIR): {
  files: number;
  lines: number;
  secrets: number;
  hits: Hit[];
} {
  const secrets = new Set<string>();
  const logs: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === "secrets.txt") {
        for (const s of readFileSync(p, "utf8").split("\n")) if (s.length >= 8) secrets.add(s);
      } else if (e.name.endsWith(".log") || e.name.endsWith(".jsonl")) logs.push(p);
    }
  };
  walk(root);
  const list = [...secrets];
  const hits: Hit[] = [];
  let lines = 0;
  for (const f of logs) {
    const text = readFileSync(f, "utf8");
    const ls = text.split("\n");
    lines += ls.length;
    ls.forEach((l, i) => {
      list.forEach((s, k) => {
        if (l.includes(s)) hits.push({ file: f.slice(root.length + 1), line: i + 1, secretIndex: k });
      });
    });
  }
  return { files: logs.length, lines, secrets: list.length, hits };
}

export interface Stack {
  server: NatsServer;
  services: OursChild[];
  keys: RunKeys;
  dir: string;
  policyDir: string;
  /** Client credentials: any user with the run's client password (the trivial policy allows all). */
  creds: (i: number) => Creds;
  clientPass: string;
  /** Decision log file of replica k. */
  decisionLog: (k: number) => string;
  /** /status URL of replica k. */
  statusUrl: (k: number) => string;
  startService: (k: number) => Promise<OursChild>;
  close: () => Promise<void>;
}

export interface StackOptions {
  dir: string;
  replicas?: number;
  policy?: string;
  /** Use this existing policy directory as is (instead of writing `policy`). */
  policyDir?: string;
  /** Extra files in the policy dir (e.g. data.json). */
  files?: Record<string, string>;
  watch?: boolean;
  xkey?: boolean;
  /** authorization.timeout (s); undefined = the server default (2 s). */
  timeoutS?: number;
  logLevel?: string;
  /** policy.eval_timeout_ms of every replica (default: the service's). */
  evalTimeoutMs?: number;
  /** A second auth user that may publish raw bytes on $SYS.REQ.USER.AUTH (bad-input tests). */
  prober?: { user: string; pass: string };
}

/** A nats-server in config-mode callout + N replicas of the real service in one queue group. */
export async function startStack(o: StackOptions): Promise<Stack> {
  const keys = newKeys();
  registerSecret(o.dir, keys.calloutPass);
  registerSecret(o.dir, keys.issuerSeed);
  registerSecret(o.dir, keys.xkeySeed);
  const clientPass = registerSecret(o.dir, secret("client-pass"));
  const policyDir = o.policyDir ?? join(o.dir, "policy");
  if (!o.policyDir) {
    mkdirSync(policyDir, { recursive: true });
    writeFileSync(join(policyDir, "policy.rego"), o.policy ?? TRIVIAL_POLICY);
    for (const [f, body] of Object.entries(o.files ?? {})) writeFileSync(join(policyDir, f), body);
  }

  const server = await startNatsServer({
    config: calloutConf({
      issuer: keys.issuerPub,
      calloutUser: "callout",
      calloutPass: keys.calloutPass,
      ...(o.xkey ? { xkey: keys.xkeyPub } : {}),
      ...(o.timeoutS !== undefined ? { timeoutS: o.timeoutS } : {}),
      ...(o.prober ? { prober: o.prober } : {}),
    }),
  });
  const replicas = o.replicas ?? 1;
  const services: OursChild[] = [];
  const startService = async (k: number): Promise<OursChild> => {
    const child = await startOurs({
      url: server.url,
      calloutUser: "callout",
      calloutPass: keys.calloutPass,
      issuerSeed: keys.issuerSeed,
      account: "APP",
      policyDir,
      watch: o.watch ?? false,
      ...(o.xkey ? { xkeySeed: keys.xkeySeed } : {}),
      decisionLog: join(o.dir, `decisions-${k}.jsonl`),
      logLevel: o.logLevel ?? "info",
      workDir: join(o.dir, `svc-${k}`),
      fromSource: true,
      ...(o.evalTimeoutMs !== undefined ? { evalTimeoutMs: o.evalTimeoutMs } : {}),
    });
    services[k] = child;
    return child;
  };
  try {
    for (let k = 0; k < replicas; k++) await startService(k);
  } catch (err) {
    for (const s of services) await s?.stop();
    await server.stop();
    throw err;
  }
  return {
    server,
    services,
    keys,
    dir: o.dir,
    policyDir,
    clientPass,
    creds: (i) => ({ user: `user${i % 1000}`, pass: clientPass }),
    decisionLog: (k) => join(o.dir, `decisions-${k}.jsonl`),
    statusUrl: (k) => `${services[k]?.http}/status`,
    startService,
    async close() {
      services.forEach((s, k) => s && saveOutput(o.dir, `service-${k}`, s));
      await Promise.all(services.map((s) => s?.stop()));
      services.forEach((s, k) => s && saveOutput(o.dir, `service-${k}`, s));
      await server.stop();
    },
  };
}

/** Parsed decision events of a JSONL file (missing file → []). */
export function readDecisions(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export async function getStatus(url: string): Promise<Record<string, unknown>> {
  const r = await fetch(url);
  return (await r.json()) as Record<string, unknown>;
}

/** One connection attempt (connect → authorized → close): undefined on success, else the error. */
export const tryConnect = connectOnce;

/** Revision of a policy dir holding exactly these files (same formula as src/policy/snapshot.ts). */
export function revisionOf(files: Record<string, string>): string {
  const lines = Object.keys(files)
    .sort()
    .map((rel) => `${sha256(files[rel] as string)}  ${rel}\n`)
    .join("");
  return sha256(lines).slice(0, 16);
}

function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

/** Write like editors and deploy tools do: temp file (ignored by the watcher) + rename. */
export function atomicWrite(path: string, body: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  writeFileSync(tmp, body);
  renameSync(tmp, path);
}

/** Poll `fn` every `everyMs` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface PolicyStatusView {
  revision?: string;
  reloads?: { ok: number; failed: number };
  lastError?: { code?: string; message?: string };
}

export async function policyStatus(url: string): Promise<PolicyStatusView> {
  const s = await getStatus(url);
  return (s.policy ?? {}) as PolicyStatusView;
}

export interface SigtermRound {
  n: number;
  storm: StormResult;
  /** Attempts finished when the victim got SIGTERM. */
  stoppedAfter: number;
  /** The victim's exit code (0 = drained cleanly). */
  victimExit: number | string;
  /** Decision events per replica: [survivor, victim]. */
  events: [Record<string, unknown>[], Record<string, unknown>[]];
  /** The victim's service-log lines that mention a dropped request. */
  victimDrops: string[];
}

/**
 * Two replicas in one queue group; a storm of `n` logins at `concurrency`; replica 1 gets SIGTERM after a third of
 * the attempts and drains while the storm goes on. The stack (fresh for the round) is closed before returning.
 */
export async function sigtermMidStorm(o: {
  dir: string;
  n: number;
  concurrency: number;
}): Promise<SigtermRound> {
  const stack = await startStack({ dir: o.dir, replicas: 2 });
  try {
    const victim = stack.services[1]!;
    let done = 0;
    let stoppedAfter = -1;
    let stopping: Promise<void> | undefined;
    const storm = await stormTs({
      url: stack.server.url,
      n: o.n,
      concurrency: o.concurrency,
      creds: stack.creds,
      onResult: () => {
        done++;
        if (done === Math.floor(o.n / 3) && !stopping) {
          stoppedAfter = done;
          stopping = victim.stop(60_000);
        }
      },
    });
    await stopping;
    const victimExit = await victim.exited;
    const victimDrops = victim
      .output()
      .split("\n")
      .filter((l) => l.includes('"dropped"'));
    await stack.close();
    return {
      n: o.n,
      storm,
      stoppedAfter,
      victimExit,
      events: [readDecisions(stack.decisionLog(0)), readDecisions(stack.decisionLog(1))],
      victimDrops,
    };
  } catch (err) {
    await stack.close();
    throw err;
  }
}
