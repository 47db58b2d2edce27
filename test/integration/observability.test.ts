/**
 * The operator HTTP endpoint and the metrics over real HTTP: routes, methods, readiness codes, the
 * Prometheus content type, every scrape parsed as exposition text; two services in one process keep their
 * metrics apart; and two `serve` replicas started from the same config file on one host (port 0: each
 * reports its own port; a fixed port: the second fails clearly, and runs with its own --metrics-listen).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "@nats-io/transport-node";
import { parseListen, startHttpServer, type Readiness } from "../../src/http.js";
import { CalloutMetrics, CONTENT_TYPE } from "../../src/metrics.js";
import {
  configModeSetup,
  serverMatrix,
  startNatsServer,
  type NatsServer,
  FIXTURES,
  OPA_BIN,
  REPO,
  buildWasmFixture,
  freePort,
  key,
  parse,
} from "../support/index.js";

const P = "nats_opa_callout";

test("parseListen accepts host:port, [v6]:port and :port, and rejects the rest (and off)", () => {
  assert.deepEqual(parseListen("127.0.0.1:9464"), { host: "127.0.0.1", port: 9464 });
  assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
  assert.deepEqual(parseListen(":9090"), { host: "0.0.0.0", port: 9090 });
  assert.deepEqual(parseListen("localhost:80"), { host: "localhost", port: 80 });
  for (const bad of ["9090", "host:", "host:99999", "a:b:c", "[x]:1", "", "off"])
    assert.throws(() => parseListen(bad), TypeError, bad);
});

test("/healthz, /readyz (200/503 with reasons), /metrics parsed, /status, 404 and 405", async () => {
  const metrics = new CalloutMetrics({ version: "t", accounts: ["APP"] });
  let readiness: Readiness = { ready: false, reasons: ["nats: connecting", "policy: not loaded"] };
  const srv = await startHttpServer({
    listen: "127.0.0.1:0",
    metrics: () => metrics.render(),
    readiness: () => readiness,
    status: () => ({ phase: "test" }),
  });
  try {
    assert.match(srv.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(srv.address, `127.0.0.1:${srv.port}`);
    const base = `http://${srv.address}`;
    const h = await fetch(`${base}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: "ok" });
    let r = await fetch(`${base}/readyz`);
    assert.equal(r.status, 503);
    assert.deepEqual(((await r.json()) as Readiness).reasons, ["nats: connecting", "policy: not loaded"]);
    readiness = { ready: true, reasons: [], revision: "abc" };
    r = await fetch(`${base}/readyz`);
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as Readiness).revision, "abc");
    metrics.observeDecision({ outcome: "allow", code: "ok", account: "APP", total_us: 100 });
    metrics.observeDecision({ outcome: "deny", code: "bad_credentials", account: "EVIL" });
    const m = await fetch(`${base}/metrics`);
    assert.equal(m.status, 200);
    assert.equal(m.headers.get("content-type"), CONTENT_TYPE);
    const { samples, types } = parse(await m.text());
    assert.equal(
      samples.get(key(`${P}_requests_total`, { outcome: "allow", code: "ok", account: "APP" })),
      1,
    );
    assert.equal(
      samples.get(key(`${P}_requests_total`, { outcome: "deny", code: "bad_credentials", account: "" })),
      1,
    );
    assert.equal(samples.get(key(`${P}_request_duration_seconds_count`, { outcome: "allow" })), 1);
    assert.equal(types.get("nodejs_eventloop_lag_seconds"), "gauge");
    assert.equal(types.get("nodejs_gc_duration_seconds"), "histogram");
    assert.ok((samples.get("nodejs_heap_size_used_bytes") ?? 0) > 0);
    const s = (await (await fetch(`${base}/status`)).json()) as {
      phase: string;
      listen: string;
      readiness: Readiness;
    };
    assert.equal(s.phase, "test");
    assert.equal(s.listen, srv.address, "/status shows the bound address");
    assert.equal(s.readiness.ready, true);
    const head = await fetch(`${base}/metrics`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    const post = await fetch(`${base}/readyz`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
  } finally {
    await srv.close();
  }
});

test("two services in one process: each endpoint shows only its own decisions", async () => {
  const ma = new CalloutMetrics({ version: "a", accounts: ["APP"] });
  const mb = new CalloutMetrics({ version: "b", accounts: ["OPS"] });
  const ready = (): Readiness => ({ ready: true, reasons: [] });
  const a = await startHttpServer({ listen: "127.0.0.1:0", metrics: () => ma.render(), readiness: ready });
  const b = await startHttpServer({
    listen: { host: "127.0.0.1", port: 0 },
    metrics: () => mb.render(),
    readiness: ready,
  });
  try {
    assert.notEqual(a.port, b.port);
    for (let i = 0; i < 3; i++) ma.observeDecision({ outcome: "allow", code: "ok", account: "APP" });
    mb.observeDecision({ outcome: "allow", code: "ok", account: "OPS" });
    const sa = parse(await (await fetch(`http://${a.address}/metrics`)).text()).samples;
    const sb = parse(await (await fetch(`http://${b.address}/metrics`)).text()).samples;
    const allow = (account: string) => key(`${P}_requests_total`, { outcome: "allow", code: "ok", account });
    assert.equal(sa.get(allow("APP")), 3);
    assert.equal(sa.get(allow("OPS")), undefined);
    assert.equal(sb.get(allow("OPS")), 1);
    assert.equal(sb.get(allow("APP")), undefined);
    assert.ok(sb.has(key(`${P}_build_info`, { version: "b", node: process.versions.node })));
  } finally {
    await a.close();
    await b.close();
  }
});

// ---- two replicas of `serve` with the same config file on one host ----

const latest = serverMatrix()[0]!;
const skipReplicas = latest.missing
  ? `nats-server not found at ${latest.bin}`
  : OPA_BIN
    ? false
    : "opa not found (make tools)";

interface Replica {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then wait for the exit (SIGKILL after 15 s). */
  stop(): Promise<number | null>;
}

/** `serve` from the sources (tsx), as an operator starts it; env without NATS_* so the file decides. */
function startServe(args: string[]): Replica {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("NATS_")) delete env[k];
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO, "src", "cli.ts"), "serve", ...args], {
    cwd: REPO,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** The service log's JSON lines with this `msg`. */
function logLines(r: Replica, msg: string): Record<string, unknown>[] {
  return r
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((o) => o.msg === msg);
}

/** Polls `f` until it returns something other than undefined; throws after `timeoutMs` (or when `f` throws). */
async function eventually<T>(f: () => Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The address a replica logged for its metrics listener, once it has. */
async function listeningAddress(r: Replica): Promise<string> {
  return eventually(async () => {
    if (r.child.exitCode !== null) throw new Error(`serve exited:\n${r.stdout()}${r.stderr()}`);
    const line = logLines(r, "metrics and health listening")[0];
    return typeof line?.address === "string" ? line.address : undefined;
  }, "the metrics listener's log line");
}

async function untilReady(address: string): Promise<void> {
  await eventually(
    () =>
      fetch(`http://${address}/readyz`).then(
        (r) => (r.status === 200 ? true : undefined),
        () => undefined, // not listening yet
      ),
    `readiness of ${address}`,
  );
}

describe("replicas with the same config file on one host", { skip: skipReplicas }, () => {
  let server: NatsServer;
  let dir: string;
  let configText: (listen: string) => string;
  const replicas: Replica[] = [];

  before(async () => {
    const cm = configModeSetup();
    server = await startNatsServer({ bin: latest.bin, config: cm.config });
    dir = mkdtempSync(join(tmpdir(), "replicas-"));
    const basic = join(FIXTURES, "basic");
    const bundle = buildWasmFixture(
      {
        "authz.rego": readFileSync(join(basic, "authz.rego"), "utf8"),
        "data.json": readFileSync(join(basic, "data.json"), "utf8"),
      },
      ["nats/authz/decision"],
    ).bundlePath;
    // SYS in the allow-list: one config warning, which each replica must log exactly once.
    configText = (listen) =>
      [
        "nats:",
        `  servers: ${JSON.stringify(server.url)}`,
        `  user: ${cm.callout.user}`,
        `  password: ${JSON.stringify(cm.callout.password)}`,
        "issuer:",
        `  seed: ${cm.issuer.seed}`,
        "accounts: [APP, OPS, SYS]",
        "policy:",
        `  bundle: ${JSON.stringify(bundle)}`,
        "  watch: false",
        "decision_log:",
        "  destination: off",
        "log:",
        "  level: info",
        "metrics:",
        `  listen: ${JSON.stringify(listen)}`,
        "",
      ].join("\n");
  });

  after(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("port 0: both serve, each on its own port (logged and in /status); warnings logged once", async () => {
    const file = join(dir, "ephemeral.yaml");
    writeFileSync(file, configText("127.0.0.1:0"), { mode: 0o600 });
    const [r1, r2] = [startServe(["--config", file]), startServe(["--config", file])];
    replicas.push(r1, r2);
    const [a1, a2] = [await listeningAddress(r1), await listeningAddress(r2)];
    assert.notEqual(a1, a2);
    await untilReady(a1);
    await untilReady(a2);
    for (const [r, a] of [
      [r1, a1],
      [r2, a2],
    ] as const) {
      const status = (await (await fetch(`http://${a}/status`)).json()) as { listen: string };
      assert.equal(status.listen, a);
      const warnings = logLines(r, "config warning");
      assert.equal(warnings.length, 1, r.stdout());
      assert.match(String(warnings[0]!.warning), /system account SYS/);
    }

    // Logins go to either replica (queue group); the two scrapes add up to every one of them.
    const logins = 6;
    for (let i = 0; i < logins; i++) {
      const nc = await connect({ servers: server.url, user: "alice", pass: "alice-pw", reconnect: false });
      await nc.close();
    }
    const allowed = async (a: string) =>
      parse(await (await fetch(`http://${a}/metrics`)).text()).samples.get(
        key(`${P}_requests_total`, { outcome: "allow", code: "ok", account: "APP" }),
      ) ?? 0;
    const total = await eventually(async () => {
      const n = (await allowed(a1)) + (await allowed(a2));
      return n >= logins ? n : undefined;
    }, "both replicas' counts");
    assert.equal(total, logins);

    assert.equal(await r1.stop(), 0, r1.stderr());
    assert.equal(await r2.stop(), 0, r2.stderr());
  });

  test("a fixed port: the second replica fails naming metrics.listen; its own port or off runs", async () => {
    const port = await freePort();
    const file = join(dir, "fixed.yaml");
    writeFileSync(file, configText(`127.0.0.1:${port}`), { mode: 0o600 });
    const first = startServe(["--config", file]);
    replicas.push(first);
    assert.equal(await listeningAddress(first), `127.0.0.1:${port}`);

    const second = startServe(["--config", file]);
    replicas.push(second);
    assert.equal(await second.exited, 2, second.stderr());
    assert.match(
      second.stderr(),
      new RegExp(
        `metrics\\.listen: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\(another replica on this host\\? give each its own port with --metrics-listen, or use port 0\\)`,
      ),
    );

    const ownPort = startServe(["--config", file, "--metrics-listen", "127.0.0.1:0"]);
    const noMetrics = startServe(["--config", file, "--metrics-listen", "off"]);
    replicas.push(ownPort, noMetrics);
    const own = await listeningAddress(ownPort);
    assert.notEqual(own, `127.0.0.1:${port}`);
    await untilReady(own);
    await eventually(async () => {
      if (noMetrics.child.exitCode !== null) throw new Error(noMetrics.stderr());
      return logLines(noMetrics, "serving auth callout").length > 0 ? true : undefined;
    }, "the replica without metrics to serve");
    assert.equal(logLines(noMetrics, "metrics and health listening").length, 0);
    for (const r of [first, ownPort, noMetrics]) assert.equal(await r.stop(), 0, r.stderr());
  });
});
