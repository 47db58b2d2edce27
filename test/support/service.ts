/**
 * The service under test as its own process: the real CLI (`node dist/src/cli.js serve`, or src/cli.ts
 * through tsx so it is never stale), configured by a generated file, ready once /readyz answers 200; and
 * the build-if-stale of dist/ for tests that run the built CLI like an operator does.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { CLI_JS, OPA_BIN, REPO } from "./paths.js";
import { freePort } from "./ports.js";
import { sleep, startProcess, type Child } from "./process.js";

const execFileP = promisify(execFile);

/** How a callout service (ours or a benchmark peer) reaches nats-server in config mode. */
export interface PeerOptions {
  url: string;
  calloutUser: string;
  calloutPass: string;
  issuerSeed: string;
  account: string;
  queue?: string;
}

export interface OursOptions extends PeerOptions {
  /** Policy directory (compiled by the service with opa) or a prebuilt bundle. */
  policyDir?: string;
  bundle?: string;
  xkeySeed?: string;
  watch?: boolean;
  /** Decision log destination: a file path, "stdout" or "off". */
  decisionLog?: string;
  /** policy.mask_entrypoint (the decision-log mask rule, e.g. "nats/authz/mask"). */
  maskEntrypoint?: string;
  logLevel?: string;
  /** Extra top-level config (merged shallowly). */
  extra?: Record<string, unknown>;
  /** Where to write the config file. */
  workDir: string;
  /** Extra node flags. */
  nodeArgs?: string[];
  /** Run src/cli.ts through tsx instead of the built dist/src/cli.js (tests: never stale). */
  fromSource?: boolean;
  /** Port of the service's HTTP endpoint (/readyz, /status, /metrics); default: a free one. */
  metricsPort?: number;
  /** policy.eval_timeout_ms (default: the service's). */
  evalTimeoutMs?: number;
  /** policy.eval_workers (default: the service's). */
  evalWorkers?: number;
}

export interface OursChild extends Child {
  /** The service's HTTP endpoint, e.g. http://127.0.0.1:1234 */
  readonly http: string;
}

/** Write a service config (JSON is valid YAML) and start the real CLI. */
export async function startOurs(o: OursOptions): Promise<OursChild> {
  if (!o.fromSource && !existsSync(CLI_JS)) throw new Error(`${CLI_JS} is missing: run 'make build' first`);
  mkdirSync(o.workDir, { recursive: true });
  const metricsPort = o.metricsPort ?? (await freePort());
  const cfg: Record<string, unknown> = {
    nats: {
      servers: o.url,
      user: o.calloutUser,
      password: o.calloutPass,
      ...(o.queue ? { queue_group: o.queue } : {}),
    },
    mode: "config",
    issuer: { seed: o.issuerSeed },
    accounts: [o.account],
    ...(o.xkeySeed ? { xkey: { seed: o.xkeySeed } } : {}),
    policy: {
      ...(o.policyDir ? { dir: o.policyDir } : {}),
      ...(o.bundle ? { bundle: o.bundle } : {}),
      watch: o.watch ?? false,
      ...(o.maskEntrypoint ? { mask_entrypoint: o.maskEntrypoint } : {}),
      opa_binary: OPA_BIN ?? join(REPO, ".tools", "bin", "opa"),
      ...(o.evalTimeoutMs !== undefined ? { eval_timeout_ms: o.evalTimeoutMs } : {}),
      ...(o.evalWorkers !== undefined ? { eval_workers: o.evalWorkers } : {}),
    },
    log: { level: o.logLevel ?? "info", format: "json" },
    decision_log: { destination: o.decisionLog ?? "off" },
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    ...o.extra,
  };
  const path = join(o.workDir, `service-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.yaml`);
  writeFileSync(path, JSON.stringify(cfg, null, 2), { mode: 0o600 });
  const entry = o.fromSource ? ["--import", "tsx", join(REPO, "src", "cli.ts")] : [CLI_JS];
  const child = await startProcess(
    "ours",
    process.execPath,
    [...(o.nodeArgs ?? []), ...entry, "serve", "--config", path],
    {
      cwd: REPO,
    },
  );
  const http = `http://127.0.0.1:${metricsPort}`;
  await waitReady(child, `${http}/readyz`, 60_000);
  return Object.assign(child, { http });
}

/** Poll /readyz until it answers 200 (connected to NATS and a policy loaded). */
export async function waitReady(child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!child.alive())
      throw new Error(`${child.name} exited before it was ready: ${child.output().slice(-2000)}`);
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await child.kill();
      throw new Error(`${child.name} not ready within ${timeoutMs} ms: ${child.output().slice(-2000)}`);
    }
    await sleep(50);
  }
}

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((f) => newestMtime(join(path, f))));
}

/** Build dist/ (tsc -p tsconfig.build.json) unless dist/src/cli.js is newer than every file in src/. */
export async function ensureBuilt(): Promise<void> {
  if (existsSync(CLI_JS) && statSync(CLI_JS).mtimeMs >= newestMtime(join(REPO, "src"))) return;
  try {
    await execFileP(
      process.execPath,
      [join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
      { cwd: REPO, maxBuffer: 16 * 2 ** 20 },
    );
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`build failed:\n${e.stdout ?? ""}${e.stderr ?? String(err)}`);
  }
}
