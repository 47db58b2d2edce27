/**
 * Policy engine micro-benchmark (no NATS):
 * - µs per evaluation with a 10k-user data document (test/fixtures/policies/basic: a data lookup,
 *   crypto.sha256 and time.now_ns host builtins): the synchronous in-process engine (PolicyEngine, what
 *   the service ran before evaluation moved to worker threads), the worker pool one at a time (the
 *   thread round trip included) and 32 in flight (throughput), and the whole policy handler
 *   (snapshot, input, evaluate, decision);
 * - reload latency: file write → new revision serving, for a Rego edit (opa build) and a data edit
 *   (compiled module reused), with the watcher's default debounce (200 ms) and write-finish (100 ms).
 *
 *   node --import tsx bench/policy-eval.bench.ts [--users 10000] [--evals 20000] [--reloads 5]
 *
 * `make bench` (bench/policy.bench.ts, section 4) measures the example policy up to 100,000 users.
 */
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import {
  SMOKE_REQUEST,
  buildInput,
  createPolicyEngine,
  PolicyEngine,
  type PolicyEngineHandle,
} from "../src/policy/index.js";
import type { AuthorizationRequest } from "../src/types.js";
import { atomicWrite, OPA_BIN, REPO } from "../test/support/index.js";

const OPA = OPA_BIN ?? "opa";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

function policyDir(users: number): string {
  const dir = mkdtempSync(path.join(tmpdir(), "policy-eval-bench-"));
  cpSync(path.join(REPO, "test/fixtures/policies/basic/authz.rego"), path.join(dir, "authz.rego"));
  const data = {
    users: {} as Record<string, unknown>,
    blocked: ["mallory"],
    policy: { valid_until_ns: 4_102_444_800_000_000_000 },
  };
  for (let i = 0; i < users; i++) {
    data.users[`user${i}`] = {
      account: "APP",
      pass_sha256: sha256(`pw-${i}`),
      pub: [`app.user${i}.>`],
      sub: ["app.>", "_INBOX.>"],
    };
  }
  writeFileSync(path.join(dir, "data.json"), JSON.stringify(data));
  return dir;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function measure(
  n: number,
  fn: (i: number) => unknown,
): Promise<{ p50: number; p99: number; mean: number }> {
  for (let i = 0; i < Math.min(2000, n); i++) await fn(i); // warm-up
  const us: number[] = new Array(n);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await fn(i);
    us[i] = (performance.now() - s) * 1000;
  }
  const mean = ((performance.now() - t0) * 1000) / n;
  us.sort((a, b) => a - b);
  return { p50: quantile(us, 0.5), p99: quantile(us, 0.99), mean };
}

async function reloadLatency(h: PolicyEngineHandle, edit: (k: number) => void, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const before = h.store.current().revision;
    const served = new Promise<void>((resolve, reject) => {
      const on = (e: { result: string }): void => {
        if (e.result === "error") reject(new Error("reload failed"));
        else if (h.store.current().revision !== before) resolve();
        else return;
        h.store.off("reload", on);
      };
      h.store.on("reload", on);
    });
    const t0 = performance.now();
    edit(k);
    await served;
    out.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 100));
  }
  return out.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const users = arg("users", 10_000);
  const evals = arg("evals", 20_000);
  const reloads = arg("reloads", 5);
  const dir = policyDir(users);
  const dataBytes = readFileSync(path.join(dir, "data.json")).length;
  console.log(
    `node ${process.version}, ${cpus().length} CPU (${cpus()[0]?.model ?? "?"}), ${users} users, data ${(dataBytes / 1024).toFixed(0)} KiB`,
  );
  const t0 = performance.now();
  // Large --users exceed the default policy.max_data_bytes (8 MiB): raise it, as an operator would.
  const h = await createPolicyEngine({ dir, opaBin: OPA, watch: true, maxDataBytes: 256 * 2 ** 20 });
  console.log(
    `start-up (snapshot, opa build, instantiate, setData, smoke): ${(performance.now() - t0).toFixed(0)} ms`,
  );
  try {
    const active = h.store.current();
    const reqs: AuthorizationRequest[] = Array.from({ length: 256 }, (_, i) => {
      const u = (i * 7919) % users;
      const pass = i % 4 === 0 ? "wrong" : `pw-${u}`;
      return {
        ...SMOKE_REQUEST,
        connect_opts: { user: `user${u}`, pass },
        client_info: { ...SMOKE_REQUEST.client_info, user: `user${u}` },
      };
    });
    const built = reqs.map((r) => buildInput(r));
    const nowNs = BigInt(Date.now()) * 1_000_000n;
    const benchData = JSON.parse(readFileSync(path.join(dir, "data.json"), "utf8")) as unknown;
    const inProcess = await PolicyEngine.load(active.policy.module, benchData);
    const sync = await measure(evals, (i) =>
      inProcess.evaluate(built[i % built.length], active.entrypoint, { nowNs }),
    );
    console.log(
      `in-process PolicyEngine.evaluate: p50 ${sync.p50.toFixed(1)} µs, p99 ${sync.p99.toFixed(1)} µs, mean ${sync.mean.toFixed(1)} µs`,
    );
    const ev = await measure(evals, (i) =>
      active.policy.evaluate(built[i % built.length], active.entrypoint, { nowNs }),
    );
    console.log(
      `pool evaluate, one at a time (${active.policy.stats().workers} workers): p50 ${ev.p50.toFixed(1)} µs, p99 ${ev.p99.toFixed(1)} µs, mean ${ev.mean.toFixed(1)} µs`,
    );
    const inFlight = 32;
    const elu0 = performance.eventLoopUtilization();
    const t1 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < evals) {
          const i = next++;
          await active.policy.evaluate(built[i % built.length], active.entrypoint, { nowNs });
        }
      }),
    );
    const perEval = ((performance.now() - t1) * 1000) / evals;
    const busy = performance.eventLoopUtilization(elu0).active;
    console.log(
      `pool evaluate, ${inFlight} in flight: ${perEval.toFixed(1)} µs per evaluation (${Math.round(1e6 / perEval)} evaluations/s), ` +
        `serving thread busy ${((busy * 1000) / evals).toFixed(1)} µs per evaluation (the rest runs in the workers)`,
    );
    const now = new Date();
    let allowed = 0;
    const hd = await measure(evals, async (i) => {
      const req = reqs[i % reqs.length] as AuthorizationRequest;
      try {
        await h.handler(
          { ...req, expires_at: Math.floor(Date.now() / 1000) + 60 },
          { decisionId: "b", now, facts: {} },
        );
        allowed++;
      } catch {
        // deny (wrong password) is part of the mix
      }
    });
    console.log(
      `policy handler (input + evaluate + decision): p50 ${hd.p50.toFixed(1)} µs, p99 ${hd.p99.toFixed(1)} µs, mean ${hd.mean.toFixed(1)} µs (${((allowed / (evals + Math.min(2000, evals))) * 100).toFixed(0)}% allow)`,
    );
    console.log(`wasm memory: ${(active.policy.memoryBytes() / 2 ** 20).toFixed(1)} MiB`);

    const rego = path.join(dir, "authz.rego");
    const base = readFileSync(rego, "utf8");
    const r1 = await reloadLatency(h, (k) => atomicWrite(rego, `${base}\n# edit ${k}\n`), reloads);
    console.log(
      `reload, Rego edit (opa build): p50 ${quantile(r1, 0.5).toFixed(0)} ms, max ${r1.at(-1)?.toFixed(0)} ms (n=${r1.length})`,
    );
    const dataFile = path.join(dir, "data.json");
    const data = JSON.parse(readFileSync(dataFile, "utf8")) as { blocked: string[] };
    const r2 = await reloadLatency(
      h,
      (k) => atomicWrite(dataFile, JSON.stringify({ ...data, blocked: ["mallory", `x${k}`] })),
      reloads,
    );
    console.log(
      `reload, data edit (module reused): p50 ${quantile(r2, 0.5).toFixed(0)} ms, max ${r2.at(-1)?.toFixed(0)} ms (n=${r2.length})`,
    );
    console.log("(reload figures include the watcher's 200 ms debounce + 100 ms write-finish wait)");
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
