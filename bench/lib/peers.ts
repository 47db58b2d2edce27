/**
 * Callout services under test, each started as its own process so that its CPU can be read from
 * /proc/<pid>/stat the same way for every one of them:
 *
 * - ours: `node dist/src/cli.js serve --config <file>` (the real CLI, built by `make build`)
 * - go-callout: bench/peers/go-callout (stands in for synadia-io/callout.go)
 * - go-opa: bench/peers/go-opa-callout, a Go callout embedding OPA's Go SDK on the same policy directory
 * - py-callout: bench/peers/py-callout on the PyPI `nats-callout` library, in a venv under the cache
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { BENCH_CACHE, CLI_JS, REPO } from "./paths.js";
import { freePort, sleep, startProcess, type Child } from "./process.js";

const execFileP = promisify(execFile);

export interface PeerOptions {
  url: string;
  calloutUser: string;
  calloutPass: string;
  issuerSeed: string;
  account: string;
  queue?: string;
}

/** Secrets for the Go peers travel in the environment, never argv. */
function goPeerEnv(o: PeerOptions & { xkeySeed?: string }): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GO_CALLOUT_PASS: o.calloutPass,
    GO_CALLOUT_ISSUER_SEED: o.issuerSeed,
    ...(o.xkeySeed ? { GO_CALLOUT_XKEY_SEED: o.xkeySeed } : {}),
  };
}

export async function startGoCallout(bin: string, o: PeerOptions & { xkeySeed?: string }): Promise<Child> {
  const env = goPeerEnv(o);
  return startProcess(
    "go-callout",
    bin,
    ["--url", o.url, "--user", o.calloutUser, "--account", o.account, "--queue", o.queue ?? "auth-callout"],
    { env, ready: /^ready$/m, readyTimeoutMs: 15_000 },
  );
}

/** The Go + OPA SDK peer, evaluating `policyDir` (the same Rego and data as ours). */
export async function startGoOpaCallout(
  bin: string,
  o: PeerOptions & { policyDir: string; xkeySeed?: string },
): Promise<Child> {
  const env = goPeerEnv(o);
  return startProcess(
    "go-opa-callout",
    bin,
    [
      "--url",
      o.url,
      "--user",
      o.calloutUser,
      "--accounts",
      o.account,
      "--queue",
      o.queue ?? "auth-callout",
      "--policy-dir",
      o.policyDir,
    ],
    { env, ready: /^ready$/m, readyTimeoutMs: 60_000 },
  );
}

export type PyVenv = { ok: true; python: string; versions: string } | { ok: false; why: string };

/** Create (once) a venv under the cache with bench/peers/py-callout/requirements.txt installed. */
export async function ensurePyVenv(): Promise<PyVenv> {
  const venv = join(BENCH_CACHE, "py-callout-venv");
  const python = join(venv, "bin", "python");
  const reqs = join(REPO, "bench", "peers", "py-callout", "requirements.txt");
  try {
    mkdirSync(BENCH_CACHE, { recursive: true });
    if (!existsSync(python)) await execFileP("python3", ["-m", "venv", venv]);
    // Reinstall only when requirements.txt changed since the last successful install.
    const stamp = join(venv, ".requirements.installed");
    const wanted = readFileSync(reqs, "utf8");
    if (!existsSync(stamp) || readFileSync(stamp, "utf8") !== wanted) {
      await execFileP(python, ["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", reqs], {
        maxBuffer: 16 * 2 ** 20,
      });
      writeFileSync(stamp, wanted);
    }
    const { stdout } = await execFileP(python, [
      "-m",
      "pip",
      "list",
      "--format=freeze",
      "--disable-pip-version-check",
    ]);
    const versions = stdout
      .split("\n")
      .filter((l) => /^(nats-callout|nats-py|nkeys|PyNaCl|PyJWT|adaptix)==/i.test(l))
      .join(", ");
    return { ok: true, python, versions };
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    return {
      ok: false,
      why: (e.stderr || e.message || String(err)).trim().split("\n").slice(-5).join(" | "),
    };
  }
}

export async function startPyCallout(python: string, o: PeerOptions): Promise<Child> {
  return startProcess(
    "py-callout",
    python,
    [
      join(REPO, "bench", "peers", "py-callout", "callout.py"),
      "--url",
      o.url,
      "--user",
      o.calloutUser,
      "--account",
      o.account,
      "--queue",
      o.queue ?? "auth-callout",
    ],
    {
      env: { ...process.env, PY_CALLOUT_PASS: o.calloutPass, PY_CALLOUT_ISSUER_SEED: o.issuerSeed },
      ready: /^ready$/m,
      readyTimeoutMs: 30_000,
    },
  );
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
      ...(process.env.OPA_BIN
        ? { opa_binary: process.env.OPA_BIN }
        : { opa_binary: join(REPO, ".tools", "bin", "opa") }),
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
