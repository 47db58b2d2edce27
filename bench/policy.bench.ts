/**
 * The policy engine at scale:
 * - evaluation latency p50/p99 vs data size (example policy, 100 / 1k / 10k / 100k users): through the
 *   worker pool (the service's path) and in-process (the wasm engine alone, no thread round trip), plus
 *   `opa build -t wasm` compile time and load (build + instantiate + setData) per size;
 * - hot-reload latency: file write → the new revision is the one the store serves, for a Rego
 *   edit (recompile) and a data-only edit (module reused), with the default debounce.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { decide } from "../src/callout/decide.js";
import { buildInput, createPolicyEngine, PolicyEngine } from "../src/policy/index.js";
import { decodeRequest, Verifier } from "../src/callout/index.js";
import {
  newKeys,
  OPA_BIN,
  REPO,
  tempDir,
  benchUser,
  examplePolicyDir,
  TRIVIAL_POLICY,
  trivialPolicyDir,
  fakeServer,
  makeRequest,
} from "../test/support/index.js";
import { latenciesUs, latenciesUsAsync, median, q } from "./lib/timing.js";

export interface ScaleRow {
  users: number;
  data_bytes: number;
  opa_build_s: number;
  load_s: number;
  /** Through the worker pool, one at a time (thread round trip included). */
  eval_p50_us: number;
  eval_p99_us: number;
  /** The wasm engine in this thread (PolicyEngine.evaluate: input in, opa_eval, result out). */
  engine_p50_us: number;
  engine_p99_us: number;
  wasm_memory_mib: number;
}

export interface ReloadRow {
  kind: string;
  reloads: number;
  p50_ms: number;
  max_ms: number;
  /** Of which the watcher's own debounce + write-finish wait (ms). */
  debounce_ms: number;
}

export interface PolicyBenchResult {
  scale: ScaleRow[];
  reload: ReloadRow[];
}

function opaBuildSeconds(dir: string, out: string): number {
  const t0 = process.hrtime.bigint();
  execFileSync(
    OPA_BIN ?? "opa",
    [
      "build",
      "-t",
      "wasm",
      "-e",
      "nats/authz/decision",
      "--capabilities",
      join(REPO, "policies", "capabilities.json"),
      "-o",
      out,
      dir,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function policyBench(opts: {
  sizes: number[];
  evals: number;
  reloads: number;
  log: (m: string) => void;
}): Promise<PolicyBenchResult> {
  const root = tempDir("noc-policy-");
  const keys = newKeys();
  const server = fakeServer();
  const verifier = new Verifier();
  const scale: ScaleRow[] = [];

  for (const users of opts.sizes) {
    const { dir, dataBytes } = examplePolicyDir(join(root, `example-${users}`), users);
    // opa build copies every .json in the dir as data: build a copy holding only what the service loads.
    const buildS = opaBuildSeconds(dir, join(root, `bundle-${users}.tar.gz`));
    const t0 = process.hrtime.bigint();
    // 100k users are 17 MiB of JSON: above the default policy.max_data_bytes (8 MiB), as an operator would raise it.
    const engine = await createPolicyEngine({
      dir,
      watch: false,
      opaBin: OPA_BIN,
      maxDataBytes: 64 * 2 ** 20,
    });
    const loadS = Number(process.hrtime.bigint() - t0) / 1e9;
    try {
      const active = engine.store.current();
      const pool = 512;
      const reqs = Array.from({ length: pool }, (_, i) => {
        const u = benchUser(Math.floor((i * 7919) % users));
        const { data } = makeRequest({ server, issuer: keys.issuerPub, ...u, ttlS: 3600 });
        return decodeRequest(data, undefined, { verifier });
      });
      const inputs = reqs.map((r) => buildInput(r));
      const nowNs = BigInt(Date.now()) * 1_000_000n;
      // The generated users must be allowed by the service's own decide stage (grant checks included).
      const first = (
        await decide(reqs[0]!, { decisionId: "bench", now: new Date() }, { handler: engine.handler })
      ).verdict;
      if (first.kind !== "allow")
        throw new Error(`example policy with ${users} users did not allow a generated user`);
      // One evaluation at a time through the worker pool (the service's path: includes the thread round trip).
      const lat = await latenciesUsAsync(
        (i) => active.policy.evaluate(inputs[i % pool], active.entrypoint, { nowNs }),
        opts.evals,
      );
      // The same module and data in this thread: what the evaluation itself costs, without the thread hop.
      const raw = readFileSync(join(dir, "data.json"));
      const inProcess = await PolicyEngine.load(
        active.policy.module,
        raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength),
      );
      const engineLat = latenciesUs(
        (i) => inProcess.evaluate(inputs[i % pool], active.entrypoint, { nowNs }),
        opts.evals,
      );
      const row: ScaleRow = {
        users,
        data_bytes: dataBytes,
        opa_build_s: buildS,
        load_s: loadS,
        eval_p50_us: q(lat, 0.5),
        eval_p99_us: q(lat, 0.99),
        engine_p50_us: q(engineLat, 0.5),
        engine_p99_us: q(engineLat, 0.99),
        wasm_memory_mib: active.policy.memoryBytes() / 2 ** 20,
      };
      opts.log(
        `  ${users} users: data ${(dataBytes / 1024).toFixed(0)} KiB, opa build ${buildS.toFixed(2)} s, load ${loadS.toFixed(2)} s, ` +
          `eval p50 ${row.eval_p50_us.toFixed(1)} µs p99 ${row.eval_p99_us.toFixed(1)} µs ` +
          `(in-process engine p50 ${row.engine_p50_us.toFixed(1)} µs p99 ${row.engine_p99_us.toFixed(1)} µs), wasm ${row.wasm_memory_mib.toFixed(0)} MiB`,
      );
      scale.push(row);
    } finally {
      await engine.close();
    }
  }

  // Hot reload: write → served.
  const reload: ReloadRow[] = [];
  const debounce = 200 + 100; // watcher defaults: debounce 200 ms + awaitWriteFinish 100 ms
  const cases: { kind: string; dir: string; edit: (k: number) => void }[] = [];
  {
    const dir = trivialPolicyDir(join(root, "reload-trivial"));
    cases.push({
      kind: "trivial policy, Rego edit (recompile)",
      dir,
      edit: (k) => atomicWrite(join(dir, "policy.rego"), TRIVIAL_POLICY + `\n# edit ${k}\n`),
    });
  }
  {
    const { dir } = examplePolicyDir(join(root, "reload-example"), 10_000);
    const authn = join(dir, "authz", "authn.rego");
    const base = readFileSync(authn, "utf8");
    cases.push({
      kind: "example policy + 10k users, Rego edit (recompile)",
      dir,
      edit: (k) => atomicWrite(authn, base + `\n# edit ${k}\n`),
    });
    const dataPath = join(dir, "data.json");
    cases.push({
      kind: "example policy + 10k users, data edit (module reused)",
      dir,
      edit: (k) => {
        const d = JSON.parse(readFileSync(dataPath, "utf8")) as {
          callout: { settings: Record<string, unknown> };
        };
        d.callout.settings.expires_in = 3599 - (k % 100);
        atomicWrite(dataPath, JSON.stringify(d));
      },
    });
  }
  for (const c of cases) {
    const engine = await createPolicyEngine({ dir: c.dir, watch: true, opaBin: OPA_BIN });
    try {
      const times: number[] = [];
      for (let k = 0; k < opts.reloads; k++) {
        const before = engine.store.current().revision;
        const t0 = performance.now();
        const served = new Promise<void>((resolve, reject) => {
          const onReload = (e: { result: string; revision?: string }) => {
            if (e.result === "ok" && engine.store.current().revision !== before) {
              engine.store.off("reload", onReload);
              resolve();
            } else if (e.result === "error") {
              engine.store.off("reload", onReload);
              reject(new Error(`reload failed during benchmark (${c.kind})`));
            }
          };
          engine.store.on("reload", onReload);
          setTimeout(() => reject(new Error(`no reload within 30 s (${c.kind})`)), 30_000).unref();
        });
        c.edit(k);
        await served;
        times.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 50));
      }
      times.sort((a, b) => a - b);
      const row = {
        kind: c.kind,
        reloads: times.length,
        p50_ms: median(times),
        max_ms: times.at(-1) ?? NaN,
        debounce_ms: debounce,
      };
      opts.log(
        `  reload ${c.kind}: p50 ${row.p50_ms.toFixed(0)} ms, max ${row.max_ms.toFixed(0)} ms over ${row.reloads}`,
      );
      reload.push(row);
    } finally {
      await engine.close();
    }
  }
  return { scale, reload };
}

/** Write a file the way editors and deploy tools do: temp file + rename. */
function atomicWrite(path: string, body: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, body);
  renameSync(tmp, path);
}
