/**
 * Topologies for tests, from the configs `init` generates: free loopback ports for every member (client,
 * route, gateway, leafnode), `runInit` + `writeTopology`, and nats-server processes started from the
 * generated files unchanged. Each process runs a wrapper config that only includes the generated file and
 * adds a monitoring port, so tests can wait for routes, gateways, leaf links and interest instead of
 * sleeping. Never binds anything but 127.0.0.1.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { bcryptHash, runInit, type InitOptions, type InitResult } from "../../src/cli/init.js";
import {
  writeTopology,
  type LeafShape,
  type Member,
  type TopologyOptions,
  type TopologyResult,
} from "../../src/cli/init-topology.js";
import { freePort, isListening } from "./ports.js";
import { REPO } from "./paths.js";

/** A nats-server process on a config file. */
export interface ServerProc {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly monitor: string;
  readonly logFile: string;
  log(): string;
  /** GET a monitoring endpoint (e.g. "/routez") as JSON. */
  monitorJson<T = Record<string, unknown>>(path: string): Promise<T>;
  alive(): boolean;
  /** SIGKILL (or `signal`) and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM, SIGKILL after 5 s. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/** Thrown inside a waitFor condition to stop waiting at once. */
export class Fatal extends Error {}

/** Polls `fn` every 25 ms until it returns something other than undefined; throws with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      if (e instanceof Fatal) throw e;
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    }
    await sleep(25);
  }
}

/** Starts nats-server on `file` (unchanged, included by a wrapper that adds monitoring); waits until ready. */
export async function startServerFile(o: {
  bin: string;
  file: string;
  name: string;
  port: number;
  workDir: string;
}): Promise<ServerProc> {
  const monitorPort = await freePort();
  const wrapper = join(o.workDir, `run-${o.name}.conf`);
  const logFile = join(o.workDir, `${o.name}.log`);
  // nats-server resolves include paths from the including file's directory, never as absolute paths.
  writeFileSync(
    wrapper,
    `include ${JSON.stringify(relative(o.workDir, o.file))}\nhttp: "127.0.0.1:${monitorPort}"\n`,
  );
  writeFileSync(logFile, "");
  const p = spawn(o.bin, ["-c", wrapper, "-l", logFile], { stdio: ["ignore", "ignore", "pipe"] });
  live.add(p);
  let stderr = "";
  p.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  const exit = new Promise<void>((r) =>
    p.once("exit", () => {
      exited = true;
      live.delete(p);
      r();
    }),
  );
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  const monitor = `http://127.0.0.1:${monitorPort}`;
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (exited) return;
    p.kill(signal);
    await exit;
  };
  await waitFor(`${o.name} to be ready`, async () => {
    if (exited) throw new Fatal(`${o.name} exited: ${stderr}\n${log().slice(-2000)}`);
    return /Server is ready/.test(log()) && (await isListening(o.port)) ? true : undefined;
  });
  return {
    name: o.name,
    port: o.port,
    url: `nats://127.0.0.1:${o.port}`,
    monitor,
    logFile,
    log,
    async monitorJson<T>(path: string): Promise<T> {
      const r = await fetch(monitor + path);
      return (await r.json()) as T;
    },
    alive: () => !exited,
    kill,
    async stop() {
      if (exited) return;
      p.kill("SIGTERM");
      const t = setTimeout(() => p.kill("SIGKILL"), 5000);
      await exit;
      clearTimeout(t);
    },
  };
}

export interface GeneratedTopology {
  dir: string;
  init: InitResult;
  topo: TopologyResult;
  options: TopologyOptions;
}

/**
 * `init` for a topology on loopback with free ports: `clusters` = members per cluster (several clusters are
 * joined by gateways), optionally a leaf. Config mode unless `operator`.
 */
export async function generateTopology(o: {
  clusters: number[];
  leaf?: LeafShape;
  operator?: boolean;
  /** authorization.timeout in seconds. */
  timeout: number;
  xkey?: boolean;
  /** Policy directory written into service.yaml (default: the example policies). */
  policyDir?: string;
}): Promise<GeneratedTopology> {
  const dir = mkdtempSync(join(tmpdir(), "topology-"));
  const clusters: TopologyOptions["clusters"] = [];
  for (const [c, n] of o.clusters.entries()) {
    const name = o.clusters.length === 1 ? "callout" : `callout-${c + 1}`;
    const members: Member[] = [];
    for (let i = 0; i < n; i++) {
      members.push({
        name: `${name}-s${i + 1}`,
        cluster: name,
        host: "127.0.0.1",
        port: await freePort(),
        clusterPort: await freePort(),
        gatewayPort: await freePort(),
        leafnodePort: await freePort(),
        wsPort: await freePort(),
      });
    }
    clusters.push({ name, members });
  }
  const options: TopologyOptions = { clusters };
  if (o.leaf) options.leaf = { shape: o.leaf, host: "127.0.0.1", port: await freePort(), account: "APP" };
  const first = clusters[0]!.members[0]!;
  const initOpts: InitOptions = {
    dir,
    operator: o.operator ?? false,
    websocket: false,
    wsPort: first.wsPort,
    host: "127.0.0.1",
    port: first.port,
    accounts: ["APP"],
    xkey: o.xkey ?? true,
    policyDir: o.policyDir ?? join(REPO, "policies"),
    metricsListen: `127.0.0.1:${await freePort()}`,
    timeout: o.timeout,
    force: false,
    bcryptCost: 4,
  };
  const init = await runInit(initOpts);
  const topo = await writeTopology(options, init, initOpts, { runInit, bcryptHash });
  return { dir, init, topo, options };
}

/** Starts every hub member of a generated topology (in order) and waits until each sees all its peers. */
export async function startHub(bin: string, g: GeneratedTopology): Promise<ServerProc[]> {
  const servers: ServerProc[] = [];
  try {
    for (const { member, file } of g.topo.servers) {
      servers.push(
        await startServerFile({ bin, file, name: member.name, port: member.port, workDir: g.dir }),
      );
    }
    await waitForMesh(servers, g);
  } catch (err) {
    await Promise.all(servers.map((s) => s.kill()));
    throw err;
  }
  return servers;
}

/** Waits until every running member has routes to the other running members of its cluster and gateways to the other clusters. */
export async function waitForMesh(servers: ServerProc[], g: GeneratedTopology): Promise<void> {
  const running = new Set(servers.filter((s) => s.alive()).map((s) => s.name));
  for (const s of servers.filter((x) => x.alive())) {
    const m = g.topo.servers.find((x) => x.member.name === s.name)!.member;
    const peers = g.options.clusters
      .find((c) => c.name === m.cluster)!
      .members.filter((x) => x.name !== m.name && running.has(x.name))
      .map((x) => x.name);
    await waitFor(`${s.name} routes to ${peers.join(",")}`, async () => {
      const rz = await s.monitorJson<{ routes?: { remote_name?: string }[] }>("/routez");
      const names = new Set((rz.routes ?? []).map((r) => r.remote_name));
      return peers.every((p) => names.has(p)) ? true : undefined;
    });
    if (g.options.clusters.length > 1) {
      const others = g.options.clusters.filter((c) => c.name !== m.cluster).map((c) => c.name);
      await waitFor(`${s.name} gateways to ${others.join(",")}`, async () => {
        const gz = await s.monitorJson<{ outbound_gateways?: Record<string, unknown> }>("/gatewayz");
        return others.every((o) => gz.outbound_gateways?.[o] !== undefined) ? true : undefined;
      });
    }
  }
}

/** Local client subscriptions on `subject` in `account` at `server` (nats-server's /subsz lists local ones only). */
export async function localSubs(server: ServerProc, account: string, subject: string): Promise<number> {
  const z = await server.monitorJson<{ subscriptions_list?: { subject: string }[] }>(
    `/subsz?subs=1&acc=${encodeURIComponent(account)}&test=${encodeURIComponent(subject)}`,
  );
  return (z.subscriptions_list ?? []).length;
}

/** Names of route peers that told `server` about interest in `subject` in `account`. */
export async function routedInterest(
  server: ServerProc,
  account: string,
  subject: string,
): Promise<Set<string>> {
  const rz = await server.monitorJson<{
    routes?: { remote_name?: string; subscriptions_list_detail?: { subject: string; sid?: string }[] }[];
  }>("/routez?subs=detail");
  const names = new Set<string>();
  for (const r of rz.routes ?? []) {
    const hit = (r.subscriptions_list_detail ?? []).some(
      (d) => d.subject === subject && (d.sid ?? "").includes(` ${account} `),
    );
    if (hit && r.remote_name) names.add(r.remote_name);
  }
  return names;
}

/**
 * Waits until exactly `total` subscriptions on `subject` in `account` exist on the running `servers` of one
 * cluster, and every server has learned (over its routes) of every other server that holds some.
 */
export async function waitForReplicas(
  servers: ServerProc[],
  account: string,
  subject: string,
  total: number,
): Promise<void> {
  const up = servers.filter((s) => s.alive());
  await waitFor(
    `${total} subscribers on ${subject} known to ${up.map((s) => s.name).join(",")}`,
    async () => {
      const locals = await Promise.all(up.map((s) => localSubs(s, account, subject)));
      if (locals.reduce((a, b) => a + b, 0) !== total) return undefined;
      const holders = up.filter((_, i) => (locals[i] ?? 0) > 0).map((s) => s.name);
      for (const s of up) {
        const known = await routedInterest(s, account, subject);
        if (holders.some((h) => h !== s.name && !known.has(h))) return undefined;
      }
      return true;
    },
  );
}

/** The generated secret of `init` (e.g. "callout_password", "issuer_seed", "leaf_issuer_seed"). */
export function secretOf(g: GeneratedTopology, key: string): string {
  const v = g.init.secrets[key] ?? g.topo.secrets[key];
  if (v === undefined) throw new Error(`no generated secret ${key}`);
  return v;
}

/** Removes the generated directory (keeps it when KEEP_TOPOLOGY is set, for debugging). */
export function removeTopology(g: GeneratedTopology | undefined): void {
  if (g && !process.env.KEEP_TOPOLOGY) rmSync(g.dir, { recursive: true, force: true });
}
