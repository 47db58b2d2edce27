/**
 * Where the service's CPU goes under a connect storm: starts one nats-server and the real CLI
 * (`node --cpu-prof dist/src/cli.js serve`) with the example policy over 10,000 users and xkey, drives
 * a warm-up and a storm with bench/storm-go, stops the service (the profiles of the main thread and of
 * every evaluation worker are written on exit) and prints self time by function and by file.
 *
 *   node --import tsx bench/profile-storm.ts [--n 3000] [--warmup 3000] [--shipped [--without dlog|mask|info]]
 *     [--repeat K] [--workers N] [--top 40] [--no-prof] [--node-args="…"] [--inclusive "pattern,…"] [--heap]
 *
 * --shipped adds what `make run` ships: the decision log to a file, the policy mask and info-level logging (its
 * per-request summary line is at debug for allows, so --without info shows what info level itself costs). --inclusive prints, per pattern, the sampled time of every stack with a frame whose
 * "function file:line" label contains it (e.g. "record dist/src/audit.js" = the decision-log record with all it calls),
 * in ms and in µs per login over warm-up and storm together (what the profile covers). The profiles
 * stay in build/profile/ (open them in Chrome DevTools or speedscope for the call trees). --heap also samples the
 * service's allocations, collected objects included (bench/lib/heap-sample.mjs), and prints KB allocated per login on
 * the JS heap by function, self and inclusive (over warm-up and storm, start-up included).
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  REPO,
  buildGo,
  calloutConf,
  examplePolicyDir,
  newKeys,
  parse as parseMetrics,
  procCpuSeconds,
  procRssBytes,
  startNatsServer,
  startOurs,
  stormGo,
  tempDir,
} from "../test/support/index.js";

const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "3000" },
    /** Logins before the measured storm (the JIT and the heap settle first; the profile covers both). */
    warmup: { type: "string", default: "3000" },
    shipped: { type: "boolean", default: false },
    /** With --shipped: leave out one part, to see what it costs ("dlog", "mask" or "info"). */
    without: { type: "string" },
    /** Measured storms in a row (CPU per login and RSS after each; shows drift over a long run). */
    repeat: { type: "string", default: "1" },
    top: { type: "string", default: "40" },
    /** Extra node flags for the service, space-separated (e.g. "--max-semi-space-size=32"). */
    "node-args": { type: "string", default: "" },
    /** Only the per-thread CPU, no --cpu-prof (whose sampler threads cost CPU too). */
    "no-prof": { type: "boolean", default: false },
    /** policy.eval_workers of the service (default: the service's). */
    workers: { type: "string" },
    /** Comma-separated frame-label patterns: inclusive (self + callees) sampled time of each. */
    inclusive: { type: "string" },
    /** Sample the service's allocations (collected objects included) and print KB per login by function. */
    heap: { type: "boolean", default: false },
  },
});

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time (µs) per function and per file of one .cpuprofile. */
export function selfTimes(p: CpuProfile): {
  byFn: Map<string, number>;
  byFile: Map<string, number>;
  total: number;
} {
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    const n = nodes.get(p.samples[i] as number);
    if (!n) continue;
    if (n.callFrame.functionName === "(idle)") continue;
    const file = frameFile(n);
    const fn = frameLabel(n);
    total += dt;
    byFn.set(fn, (byFn.get(fn) ?? 0) + dt);
    byFile.set(file, (byFile.get(file) ?? 0) + dt);
  }
  return { byFn, byFile, total };
}

/** Sampled µs of the stacks that have a frame whose label contains `pattern` (each sample counted once). */
export function inclusiveTimes(p: CpuProfile, patterns: readonly string[]): Map<string, number> {
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = new Map(p.nodes.map((n) => [n.id, frameLabel(n)]));
  const out = new Map(patterns.map((x) => [x, 0]));
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    const hit = new Set<string>();
    for (let id: number | undefined = p.samples[i]; id !== undefined; id = parent.get(id)) {
      const l = label.get(id) ?? "";
      for (const x of patterns) if (l.includes(x)) hit.add(x);
    }
    for (const x of hit) out.set(x, (out.get(x) ?? 0) + dt);
  }
  return out;
}

/** The frame's file, relative to the repository (or "(native)" and the like for frames without one). */
function frameFile(n: Pick<ProfileNode, "callFrame">): string {
  const f = n.callFrame;
  return f.url ? f.url.replace(/^file:\/\//, "").replace(REPO + "/", "") : `(${f.functionName || "native"})`;
}

/** "function file:line" of a frame: what by-function totals and --inclusive patterns match. */
function frameLabel(n: Pick<ProfileNode, "callFrame">): string {
  const f = n.callFrame;
  return `${f.functionName || "(anonymous)"} ${frameFile(n)}:${f.lineNumber + 1}`;
}

function top(m: Map<string, number>, total: number, k: number): string {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(
      ([name, us]) =>
        `  ${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`,
    )
    .join("\n");
}

/** utime+stime (s), stime alone, and name of every thread of `pid`, from /proc/<pid>/task. */
function threadCpu(pid: number): Map<string, { comm: string; cpu: number; sys: number }> {
  const out = new Map<string, { comm: string; cpu: number; sys: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(tid, { comm, cpu: (Number(rest[11]) + Number(rest[12])) / 100, sys: Number(rest[12]) / 100 });
    } catch {
      /* thread gone */
    }
  }
  return out;
}

/** Count and total seconds of the service's GC pauses by kind, from its /metrics. */
async function gcStats(http: string): Promise<Map<string, { count: number; seconds: number }>> {
  const { samples } = parseMetrics(await (await fetch(`${http}/metrics`)).text());
  const out = new Map<string, { count: number; seconds: number }>();
  for (const [k, v] of samples) {
    const m = /^nodejs_gc_duration_seconds_(count|sum)\{kind="(\w+)"\}$/.exec(k);
    if (!m) continue;
    const e = out.get(m[2]!) ?? { count: 0, seconds: 0 };
    if (m[1] === "count") e.count = v;
    else e.seconds = v;
    out.set(m[2]!, e);
  }
  return out;
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children?: HeapNode[];
}

/** KB allocated per login by function (self, and inclusive of callees: recursion counted once). */
function printHeap(file: string, logins: number, k: number): void {
  const head = (JSON.parse(readFileSync(file, "utf8")) as { head: HeapNode }).head;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode, open: Set<string>): number => {
    const label = frameLabel(node);
    total += node.selfSize;
    self.set(label, (self.get(label) ?? 0) + node.selfSize);
    const outer = !open.has(label);
    if (outer) open.add(label);
    let sum = node.selfSize;
    for (const c of node.children ?? []) sum += walk(c, open);
    if (outer) {
      open.delete(label);
      incl.set(label, (incl.get(label) ?? 0) + sum);
    }
    return sum;
  };
  walk(head, new Set());
  const kb = (b: number) => `${(b / logins / 1024).toFixed(2).padStart(7)} KB`;
  const list = (m: Map<string, number>) =>
    [...m]
      .filter(([l]) => !l.startsWith("("))
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([l, v]) => `${kb(v)}  ${l}`)
      .join("\n");
  console.log(`\nJS heap allocated per login (over ${logins} logins, start-up included): ${kb(total)}`);
  console.log(`self:\n${list(self)}\ninclusive:\n${list(incl)}`);
}

async function main(): Promise<void> {
  const n = Number(args.n);
  const k = Number(args.top);
  const profDir = join(REPO, "build", "profile");
  rmSync(profDir, { recursive: true, force: true });
  const keys = newKeys();
  const work = tempDir("noc-prof-");
  const heapFile = join(work, "service.heapprofile");
  if (args.heap) process.env.NOC_HEAP_SAMPLE = heapFile; // read by the preloaded sampler in the service
  const policy = examplePolicyDir(join(work, "policy"), 10_000).dir;
  const stormBin = await buildGo("bench/storm-go", "storm");
  const server = await startNatsServer({
    config: calloutConf({
      issuer: keys.issuerPub,
      calloutUser: "callout",
      calloutPass: keys.calloutPass,
      xkey: keys.xkeyPub,
    }),
  });
  const svc = await startOurs({
    url: server.url,
    calloutUser: "callout",
    calloutPass: keys.calloutPass,
    issuerSeed: keys.issuerSeed,
    account: "APP",
    xkeySeed: keys.xkeySeed,
    policyDir: policy,
    workDir: join(work, "svc"),
    logLevel: args.shipped && args.without !== "info" ? "info" : "warn",
    decisionLog: args.shipped && args.without !== "dlog" ? join(work, "decisions.jsonl") : "off",
    ...(args.shipped && args.without !== "mask" ? { maskEntrypoint: "nats/authz/mask" } : {}),
    ...(args.workers ? { evalWorkers: Number(args.workers) } : {}),
    nodeArgs: [
      ...(args["no-prof"] ? [] : ["--cpu-prof", "--cpu-prof-dir", profDir]),
      ...(args.heap ? ["--import", join(REPO, "bench", "lib", "heap-sample.mjs")] : []),
      ...(args["node-args"] ? args["node-args"].split(" ") : []),
    ],
  }).catch(async (err: unknown) => {
    await server.stop();
    throw err;
  });
  const storm = (count: number) =>
    stormGo(stormBin, {
      url: server.url,
      n: count,
      concurrency: 50,
      user: "bench-u",
      pass: "bench-pw-{i}",
      users: 10_000,
    });
  try {
    await storm(Number(args.warmup));
    for (let rep = 1; rep < Number(args.repeat); rep++) {
      const c = procCpuSeconds(svc.pid);
      const r = await storm(n);
      const rss = procRssBytes(svc.pid) / 2 ** 20;
      console.log(
        `storm ${rep}: ${r.ok}/${r.n} ok, ${r.rate.toFixed(0)}/s, service CPU ${(((procCpuSeconds(svc.pid) - c) / r.ok) * 1000).toFixed(2)} s per 1000 logins, RSS ${rss.toFixed(0)} MiB`,
      );
    }
    const gc0 = await gcStats(svc.http);
    const c0 = procCpuSeconds(svc.pid);
    const t0 = threadCpu(svc.pid);
    const r = await storm(n);
    const cpu = procCpuSeconds(svc.pid) - c0;
    const t1 = threadCpu(svc.pid);
    const gc1 = await gcStats(svc.http);
    console.log(
      `storm: ${r.ok}/${r.n} ok, ${r.rate.toFixed(0)}/s, service CPU ${((cpu / r.ok) * 1000).toFixed(2)} s per 1000 logins`,
    );
    // GC pauses on the main thread during the storm, by kind (prom-client's nodejs_gc_duration_seconds).
    console.log(
      `  gc: ${[...gc1]
        .map(([kind, v]) => {
          const b = gc0.get(kind) ?? { count: 0, seconds: 0 };
          return `${kind} ${v.count - b.count}× ${((v.seconds - b.seconds) * 1000).toFixed(0)} ms`;
        })
        .join(", ")}`,
    );
    // Real CPU per thread (the profiles sample wall time: a thread preempted on a busy machine keeps its stack).
    for (const [tid, v] of t1) {
      const d = v.cpu - (t0.get(tid)?.cpu ?? 0);
      const sys = v.sys - (t0.get(tid)?.sys ?? 0);
      if (d >= 0.01)
        console.log(
          `  thread ${tid} ${v.comm}: ${((d / r.ok) * 1000).toFixed(3)} CPU-s per 1000 logins (system ${((sys / r.ok) * 1000).toFixed(3)})`,
        );
    }
  } finally {
    await svc.stop();
    await server.stop();
  }
  if (args.heap) printHeap(heapFile, Number(args.warmup) + n, k);
  if (args["no-prof"]) return;
  const patterns = (args.inclusive ?? "").split(",").filter((x) => x !== "");
  for (const f of readdirSync(profDir).filter((x) => x.endsWith(".cpuprofile"))) {
    const prof = JSON.parse(readFileSync(join(profDir, f), "utf8")) as CpuProfile;
    const s = selfTimes(prof);
    console.log(
      `\n${f}: ${(s.total / 1000).toFixed(0)} ms sampled (not idle)\nby file:\n${top(s.byFile, s.total, 15)}`,
    );
    console.log(`by function:\n${top(s.byFn, s.total, k)}`);
    if (patterns.length > 0) {
      const logins = Number(args.warmup) + n * Number(args.repeat);
      const inc = inclusiveTimes(prof, patterns);
      console.log("inclusive (self + callees):");
      for (const [x, us] of inc)
        console.log(
          `  ${((us / s.total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${(us / logins).toFixed(1).padStart(6)} µs/login  ${x}`,
        );
    }
  }
}

await main();
