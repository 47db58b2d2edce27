/**
 * Reconnect after a nats-server restart: N clients connected through the callout (several driver processes of
 * bench/reconnect-go, each under the per-process open-files limit), then nats-server is stopped and started
 * again on the same port. Measured per target: the time from the restarted server being ready until the last
 * client is authorized again, per-client reconnect latency, clients that never came back, and the failed
 * attempts (authorization timeouts and violations) the clients saw on the way — a login storm that every
 * client makes at once, which is what a rolling server upgrade does to a callout.
 *
 * Targets: ours (trivial policy), ours-example (example policy, 10k users) and go-callout (trivial Go peer).
 * nats-server must hold every client at once: its open-files limit is raised with `prlimit` (root); without
 * root the client count is capped below the hard limit and the result says so.
 *
 * Standalone (e.g. to compare back-pressure settings):
 *   node --import tsx bench/reconnect.bench.ts --clients 20000 --targets ours-example,go-callout \
 *     --limits '{"max_concurrency":128,"max_queue":8192,"shed_expired":true}'
 */
import { spawnSync } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  buildGo,
  newKeys,
  secret,
  calloutConf,
  startNatsServer,
  type NatsServer,
  startOurs,
  examplePolicyDir,
  trivialPolicyDir,
  sleep,
  startProcess,
  tempDir,
  type Child,
} from "../test/support/index.js";
import { startGoCallout } from "./lib/peers.js";

export type ReconnectTarget = "ours" | "ours-example" | "go-callout";

export interface ReconnectRun {
  target: ReconnectTarget;
  clients: number;
  connected: number;
  /** Seconds from the restarted server's "ready" to the last client authorized again. */
  all_authorized_s: number;
  /** Clients that were connected before the restart and did not come back within the wait. */
  missing: number;
  /** Per-client reconnect latency, from its own disconnect (ms). */
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  /** Failed reconnect attempts the clients saw, by message. */
  errors: Record<string, number>;
  failed_attempts: number;
  /** Ours: requests the service dropped without deciding them, by reason (its requests_dropped_total). */
  service_dropped?: Record<string, number>;
  /** Ours: what the clients got, by outcome/code (its requests_total), over the whole run. */
  service_outcomes?: Record<string, number>;
  /** Ours: the `limits` config it ran with (omitted = the shipped defaults). */
  limits?: Record<string, unknown>;
  /** 1-minute load average when the restart happened (the machine may be shared). */
  load1?: number;
}

export interface ReconnectBenchResult {
  clients: number;
  per_process: number;
  /** Why the client count is lower than asked (no root for prlimit), if it is. */
  capped?: string;
  runs: ReconnectRun[];
}

interface DriverLine {
  phase: string;
  ok?: number;
  failed?: number;
  errors?: Record<string, number>;
  up?: number;
  reconnected?: number;
  missing?: number;
  last_reconnect_unix_ms?: number;
  p50_ms?: number;
  p99_ms?: number;
  max_ms?: number;
  reconnect_errors?: Record<string, number>;
  reconnect_attempts?: number;
}

function lines(child: Child, phase: string): DriverLine | undefined {
  for (const l of child.output().split("\n")) {
    if (!l.startsWith("{")) continue;
    try {
      const d = JSON.parse(l) as DriverLine;
      if (d.phase === phase) return d;
    } catch {
      /* partial line */
    }
  }
  return undefined;
}

async function waitPhase(drivers: Child[], phase: string, timeoutMs: number): Promise<DriverLine[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = drivers.map((d) => lines(d, phase));
    if (got.every((g) => g !== undefined)) return got as DriverLine[];
    for (const d of drivers) {
      if (!d.alive() && lines(d, phase) === undefined)
        throw new Error(`reconnect driver exited before "${phase}": ${d.output().slice(-500)}`);
    }
    if (Date.now() > deadline) throw new Error(`reconnect drivers: no "${phase}" within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * True when a child's open-files limit can be raised to `n` (root with CAP_SYS_RESOURCE and prlimit: tried, as
 * containers often refuse it even to root).
 */
export function canRaiseNofile(n: number): boolean {
  return spawnSync("prlimit", [`--nofile=${n}:${n}`, "true"]).status === 0;
}

/** This process's hard open-files limit (what children can have without raising it). */
function hardNofile(): number {
  const out = spawnSync("sh", ["-c", "ulimit -Hn"], { encoding: "utf8" }).stdout.trim();
  return out === "unlimited" ? Number.POSITIVE_INFINITY : Number(out) || 1024;
}

export async function reconnectBench(opts: {
  clients: number;
  perProcess?: number;
  targets?: ReconnectTarget[];
  /** `limits` for ours (config keys, e.g. max_concurrency); omitted = shipped defaults. */
  limits?: Record<string, unknown>;
  log: (msg: string) => void;
}): Promise<ReconnectBenchResult> {
  const { log } = opts;
  const perProcess = opts.perProcess ?? 5000;
  let clients = opts.clients;
  let capped: string | undefined;
  const need = clients + 10_000;
  const raise = canRaiseNofile(need);
  // nats-server needs a descriptor per client plus a few of its own (listener, service, monitoring).
  const fit = hardNofile() - 500;
  if (!raise && clients > fit) {
    capped = `the open-files limit cannot be raised here (prlimit refused ${need}): nats-server keeps its hard limit, so ${clients} clients were capped at ${fit}`;
    clients = fit;
  }
  const driverBin = await buildGo("bench/reconnect-go", "reconnect");
  const keys = newKeys();
  const work = tempDir("noc-reconnect-");
  const trivial = trivialPolicyDir(join(work, "policy-trivial"));
  const clientPass = secret("client");
  const runs: ReconnectRun[] = [];

  for (const target of opts.targets ?? ["ours", "ours-example", "go-callout"]) {
    let server: NatsServer | undefined;
    let service: Child | undefined;
    const drivers: Child[] = [];
    try {
      server = await startNatsServer({
        config: calloutConf({
          issuer: keys.issuerPub,
          calloutUser: "callout",
          calloutPass: keys.calloutPass,
        }),
        ...(raise ? { nofile: need } : {}),
      });
      const common = {
        url: server.url,
        calloutUser: "callout",
        calloutPass: keys.calloutPass,
        issuerSeed: keys.issuerSeed,
        account: "APP",
      };
      let creds = { user: "bench", pass: clientPass, users: 0 };
      if (target === "go-callout") {
        service = await startGoCallout(await buildGo("bench/peers/go-callout", "go-callout"), common);
      } else {
        const example = target === "ours-example";
        if (example) creds = { user: "bench-u", pass: "bench-pw-{i}", users: 10_000 };
        service = await startOurs({
          ...common,
          policyDir: example ? examplePolicyDir(join(work, "policy-example"), 10_000).dir : trivial,
          workDir: join(work, target),
          logLevel: process.env.RECONNECT_TRACE ? "info" : "warn",
          ...(opts.limits ? { extra: { limits: opts.limits } } : {}),
        });
      }
      for (let start = 0; start < clients; start += perProcess) {
        const n = Math.min(perProcess, clients - start);
        drivers.push(
          await startProcess(
            `reconnect-${drivers.length}`,
            driverBin,
            [
              "-url",
              server.url,
              "-n",
              String(n),
              "-c",
              "25",
              "-user",
              creds.user,
              "-users",
              String(creds.users),
            ],
            { env: { ...process.env, STORM_PASS: creds.pass } },
          ),
        );
      }
      const up = await waitPhase(drivers, "connected", 30 * 60_000);
      const connected = up.reduce((a, d) => a + (d.ok ?? 0), 0);
      log(`  ${target}: ${connected}/${clients} connected; restarting nats-server`);
      const load1 = loadavg()[0] ?? NaN;
      await server.kill();
      await server.restart();
      const readyAt = Date.now();
      if (process.env.RECONNECT_TRACE) log(`    server ready at ${new Date(readyAt).toISOString()}`);
      const back = await waitPhase(drivers, "reconnected", 10 * 60_000);
      const errors: Record<string, number> = {};
      for (const d of back) {
        for (const [k, v] of Object.entries(d.reconnect_errors ?? {})) errors[k] = (errors[k] ?? 0) + v;
      }
      const last = Math.max(...back.map((d) => d.last_reconnect_unix_ms ?? 0));
      const run: ReconnectRun = {
        target,
        clients,
        connected,
        all_authorized_s: Math.max(0, last - readyAt) / 1000,
        missing: back.reduce((a, d) => a + (d.missing ?? 0), 0),
        // Quantiles are per driver; report the worst driver's (each driver is a uniform slice of the clients).
        p50_ms: Math.max(...back.map((d) => d.p50_ms ?? 0)),
        p99_ms: Math.max(...back.map((d) => d.p99_ms ?? 0)),
        max_ms: Math.max(...back.map((d) => d.max_ms ?? 0)),
        errors,
        failed_attempts: back.reduce((a, d) => a + (d.reconnect_attempts ?? 0), 0),
        load1,
        ...(target !== "go-callout" && opts.limits ? { limits: opts.limits } : {}),
      };
      if ("http" in service) {
        run.service_dropped = await counterByLabels(service.http as string, "requests_dropped_total", [
          "reason",
        ]);
        run.service_outcomes = await counterByLabels(service.http as string, "requests_total", [
          "outcome",
          "code",
        ]);
      }
      runs.push(run);
      log(
        `  ${target}: all ${run.connected - run.missing}/${run.connected} authorized again ` +
          `${run.all_authorized_s.toFixed(1)} s after the restart; failed attempts ${run.failed_attempts} ` +
          JSON.stringify(errors) +
          (run.service_dropped ? `; service dropped ${JSON.stringify(run.service_dropped)}` : "") +
          (run.service_outcomes ? `; outcomes ${JSON.stringify(run.service_outcomes)}` : "") +
          ` (load ${load1.toFixed(1)})`,
      );
    } finally {
      for (const d of drivers) await d.stop();
      await service?.stop();
      await server?.stop();
      if (service && target !== "go-callout") {
        // What the service warned about during the run (policy timeouts, worker replacements, shedding), by message.
        const output = service.output().split("\n");
        const lines: Record<string, number> = {};
        for (const l of output) {
          const msg = /"msg":"([^"]+)"/.exec(l)?.[1];
          if (msg) lines[msg] = (lines[msg] ?? 0) + 1;
        }
        log(`  ${target}: service log lines ${JSON.stringify(lines)}`);
        if (process.env.RECONNECT_TRACE) {
          for (const l of output)
            if (/connection state|shed|late|timeout|"error"/.test(l)) log(`    ${l.slice(0, 300)}`);
        }
      }
    }
  }
  return { clients, per_process: perProcess, ...(capped ? { capped } : {}), runs };
}

/** One of the service's counters, from its metrics endpoint, keyed by the values of `labels` ("allow/ok"). */
async function counterByLabels(
  http: string,
  name: string,
  labels: string[],
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    const text = await (await fetch(`${http}/metrics`)).text();
    for (const m of text.matchAll(new RegExp(`^nats_opa_callout_${name}\\{([^}]*)\\} (\\S+)$`, "gm"))) {
      const got = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      const key = labels.map((l) => got[l] ?? "").join("/");
      out[key] = (out[key] ?? 0) + Number(m[2]);
    }
  } catch {
    /* metrics unavailable: report none */
  }
  return out;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const res = await reconnectBench({
    clients: Number(arg("clients") ?? 20_000),
    ...(arg("per-process") ? { perProcess: Number(arg("per-process")) } : {}),
    ...(arg("targets") ? { targets: arg("targets")!.split(",") as ReconnectTarget[] } : {}),
    ...(arg("limits") ? { limits: JSON.parse(arg("limits")!) as Record<string, unknown> } : {}),
    log: (m) => console.log(m),
  });
  console.log(JSON.stringify(res));
}
