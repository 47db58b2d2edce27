/**
 * `make bench`: runs every benchmark in one process and writes docs/benchmarks.md (and the raw
 * figures to build/bench/results.json). Nothing here asserts anything: figures are reported.
 *
 * Env: BENCH_SCALE (0 < s <= 1, default 1) shrinks storm sizes, iteration counts and data sizes;
 * BENCH_ROUNDS (default 3) storm rounds per target; BENCH_ONLY=stages,policy,storm,core,reconnect to run a
 * subset (the page then shows only those sections); BENCH_TARGETS=ours-example,go-callout to storm only those
 * targets (see bench/storm.bench.ts); BENCH_RECONNECT_CLIENTS to set the reconnect section's client count (default
 * 20,000 × BENCH_SCALE); BENCH_OUT to write the page elsewhere.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { runCoreBench, type CoreBenchResult } from "./core.bench.js";
import {
  buildGo,
  plainConf,
  startNatsServer,
  NATS_SERVER_210_BIN,
  NATS_SERVER_BIN,
  OPA_BIN,
  REPO,
  stormGo,
  type StormResult,
} from "../test/support/index.js";
import { machineInfo } from "./lib/machine.js";
import { renderReport, type BenchResults, type DriverCalibration } from "./lib/report.js";
import { policyBench } from "./policy.bench.js";
import { stageBench } from "./stages.bench.js";
import { reconnectBench } from "./reconnect.bench.js";
import { stormBench, type TargetName } from "./storm.bench.js";

const log = (m: string) => console.log(m);
const scale = Math.min(1, Math.max(0.01, Number(process.env.BENCH_SCALE ?? 1) || 1));
const rounds = Math.max(1, Math.floor(Number(process.env.BENCH_ROUNDS ?? 3) || 3));
const only = new Set(
  (process.env.BENCH_ONLY ?? "stages,policy,storm,core,reconnect").split(",").map((s) => s.trim()),
);
const out = process.env.BENCH_OUT ?? join(REPO, "docs", "benchmarks.md");
const t0 = Date.now();

const results: BenchResults = {
  machine: machineInfo({
    natsServer: NATS_SERVER_BIN,
    natsServer210: NATS_SERVER_210_BIN,
    opa: OPA_BIN ?? "opa",
    python: "python3",
  }),
  scale,
  rounds,
  git: gitRev(),
  load: { start: loadavg()[0] ?? NaN },
};
log(
  `bench: scale ${scale}, ${rounds} storm rounds; ${results.machine.nproc} CPUs, ${results.machine.cpuModel}`,
);

if (only.has("stages")) {
  log("stages: in-process cost per authorization, by stage");
  results.stages = await stageBench({ iterations: Math.max(200, Math.round(2000 * scale)), log });
}
if (only.has("core")) {
  log("core: bench/core.bench.ts (protocol core, trivial handler) as a cross-check");
  try {
    results.core = await runCoreBench(Math.max(500, Math.round(5000 * scale)));
  } catch (err) {
    log(`  core bench failed: ${(err as Error).message}`);
  }
}
if (only.has("policy")) {
  log("policy: evaluation vs data size, compile time, hot reload");
  const sizes = scale >= 0.5 ? [100, 1000, 10_000, 100_000] : [100, 1000, 10_000];
  results.policy = await policyBench({
    sizes,
    evals: Math.max(1000, Math.round(20_000 * scale)),
    reloads: Math.max(3, Math.round(10 * scale)),
    log,
  });
}
if (only.has("storm")) {
  const sizes = [2000, 10_000].map((n) => Math.max(100, Math.round(n * scale)));
  if (!process.env.BENCH_TARGETS) {
    log("storm: driver calibration (client CPU per connection, no callout)");
    results.calibration = await calibrateDrivers(sizes[0] ?? 2000);
  }
  log(`storm: sizes ${sizes.join(", ")} at concurrency 50`);
  results.storm = await stormBench({
    sizes,
    concurrency: 50,
    rounds,
    warmup: Math.max(50, Math.round(300 * scale)),
    ...(process.env.BENCH_TARGETS
      ? { targets: process.env.BENCH_TARGETS.split(",").map((t) => t.trim() as TargetName) }
      : {}),
    log,
  });
}
if (only.has("reconnect")) {
  const clients = Number(process.env.BENCH_RECONNECT_CLIENTS) || Math.max(500, Math.round(20_000 * scale));
  log(`reconnect: ${clients} connected clients, nats-server restarted under them`);
  try {
    results.reconnect = await reconnectBench({ clients, log });
  } catch (err) {
    log(`  reconnect bench failed: ${(err as Error).message}`);
  }
}
results.duration_s = (Date.now() - t0) / 1000;
if (results.load) results.load.end = loadavg()[0] ?? NaN;

mkdirSync(join(REPO, "build", "bench"), { recursive: true });
writeFileSync(join(REPO, "build", "bench", "results.json"), JSON.stringify(results, null, 2));
writeFileSync(out, renderReport(results));
log(`bench: wrote ${out} and build/bench/results.json in ${results.duration_s.toFixed(0)} s`);

function gitRev(): string {
  try {
    const rev = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO, encoding: "utf8" }).trim();
    const dirty =
      execFileSync("git", ["status", "--porcelain"], { cwd: REPO, encoding: "utf8" }).trim() !== "";
    return dirty ? `${rev} + uncommitted changes` : rev;
  } catch {
    return "unknown";
  }
}

/** The same no-callout storm with the Go and the TS driver; client CPU per connection for each. */
async function calibrateDrivers(n: number): Promise<DriverCalibration[]> {
  const pass = "calibration-pass";
  const server = await startNatsServer({ config: plainConf([{ user: "bench", pass }]) });
  const res: DriverCalibration[] = [];
  try {
    const goBin = await buildGo("bench/storm-go", "storm");
    const runTs = (): StormResult => {
      const stdout = execFileSync(
        process.execPath,
        [
          "--import",
          "tsx",
          join(REPO, "bench", "storm-ts.ts"),
          "--url",
          server.url,
          "--n",
          String(n),
          "--c",
          "50",
        ],
        { cwd: REPO, env: { ...process.env, STORM_PASS: pass }, encoding: "utf8" },
      );
      return JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as StormResult;
    };
    for (let round = 0; round < 2; round++) {
      const g = await stormGo(goBin, { url: server.url, n, concurrency: 50, user: "bench", pass });
      res.push({ driver: "go (nats.go)", ...g });
      const t = runTs();
      res.push({ driver: "ts (@nats-io/transport-node)", ...t });
    }
  } finally {
    await server.stop();
  }
  for (const r of res) {
    log(
      `  ${r.driver}: ${((r.driver_cpu_s / r.n) * 1e6).toFixed(0)} µs client CPU/connection, ${r.rate.toFixed(0)}/s`,
    );
  }
  return res;
}

export type { CoreBenchResult };
