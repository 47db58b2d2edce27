/**
 * Callout services under test, each started as its own process so that its CPU can be read from
 * /proc/<pid>/stat the same way for every one of them:
 *
 * - ours: `node dist/src/cli.js serve --config <file>` (the real CLI, built by `make build`): startOurs in
 *   test/support/service.ts
 * - go-callout: bench/peers/go-callout (stands in for synadia-io/callout.go)
 * - go-opa: bench/peers/go-opa-callout, a Go callout embedding OPA's Go SDK on the same policy directory
 * - py-callout: bench/peers/py-callout on the PyPI `nats-callout` library, in a venv under the cache
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { BENCH_CACHE, REPO, startProcess, type Child, type PeerOptions } from "../../test/support/index.js";

const execFileP = promisify(execFile);

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
