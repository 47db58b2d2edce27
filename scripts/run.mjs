#!/usr/bin/env node
/**
 * `make run`: a local nats-server with auth callout, a websocket listener and JetStream, the service, using the
 * example policies in policies/, the KV bucket `prefs` (allow_direct, created by the JetStream admin that
 * `init --jetstream` generates) and the browser demo page (examples/browser/) over HTTP. Everything generated
 * goes to .run/ (gitignored); the JetStream store is a temp dir removed on exit. Ctrl-C stops everything this
 * script started. Edit a file in policies/ while it runs and the next login uses the new revision.
 *
 * Env: NATS_PORT (default 4222), WS_PORT (8080), METRICS_PORT (9464), HTTP_PORT (8000: the demo page) — a busy
 * port is replaced by a free one. RUN_DIR replaces .run/; RUN_READY_FILE: once everything is up, the URLs are
 * written there as JSON (test/integration/browser.test.ts waits for it).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { parseDocument } from "yaml";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { startDemoPage } from "../examples/browser/serve.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const RUN = process.env.RUN_DIR ?? join(ROOT, ".run");
const CLI = join(ROOT, "dist", "src", "cli.js");
const NATS_SERVER = process.env.NATS_SERVER_BIN ?? join(ROOT, ".tools", "bin", "nats-server");
const OPA = process.env.OPA_BIN ?? join(ROOT, ".tools", "bin", "opa");
const HOST = "127.0.0.1";

function die(msg) {
  console.error(`run: ${msg}`);
  process.exit(1);
}

/** The preferred port if it is free on loopback, else any free one. */
async function pickPort(preferred) {
  const tryListen = (port) =>
    new Promise((resolve) => {
      const srv = createServer();
      srv.once("error", () => resolve(undefined));
      srv.listen(port, HOST, () => {
        const p = srv.address().port;
        srv.close(() => resolve(p));
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0));
}

async function waitFor(check, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) die(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(true));
    s.listen(port, HOST, () => s.close(() => resolve(false)));
  });
}

if (!existsSync(CLI)) die(`${relative(ROOT, CLI)} is missing: run "make build" first (make run does it)`);
if (!existsSync(NATS_SERVER)) die(`nats-server not found at ${NATS_SERVER}: run "make tools"`);
if (!existsSync(OPA)) die(`opa not found at ${OPA}: run "make tools"`);

mkdirSync(RUN, { recursive: true });
const natsPort = await pickPort(Number(process.env.NATS_PORT ?? 4222));
const wsPort = await pickPort(Number(process.env.WS_PORT ?? 8080));
const metricsPort = await pickPort(Number(process.env.METRICS_PORT ?? 9464));
const httpPort = await pickPort(Number(process.env.HTTP_PORT ?? 8000));
// JetStream's store: scratch, removed on exit (also when this script dies of an error).
const jsStore = mkdtempSync(join(tmpdir(), "nats-opa-callout-run-js-"));
process.on("exit", () => rmSync(jsStore, { recursive: true, force: true }));

// 1. Fresh keys and configs every run (.run/ is scratch space).
const init = spawnSync(
  process.execPath,
  [
    CLI,
    "init",
    "--dir",
    RUN,
    "--force",
    "--websocket",
    "--jetstream",
    "--js-store-dir",
    jsStore,
    "--port",
    String(natsPort),
    "--ws-port",
    String(wsPort),
    "--accounts",
    "APP,OPS",
    "--policy-dir",
    join(ROOT, "policies"),
    "--metrics-listen",
    `${HOST}:${metricsPort}`,
    "--timeout",
    "3",
  ],
  { encoding: "utf8" },
);
if (init.status !== 0) die(`init failed:\n${init.stdout}${init.stderr}`);
// The demo also masks the decision log with the example policy's rule (policies/authz/mask.rego).
const serviceYaml = join(RUN, "service.yaml");
const svcDoc = parseDocument(readFileSync(serviceYaml, "utf8"));
svcDoc.setIn(["policy", "mask_entrypoint"], "nats/authz/mask");
writeFileSync(serviceYaml, String(svcDoc));

// 2. nats-server, logging to .run/nats-server.log.
const natsLog = join(RUN, "nats-server.log");
const natsOut = openSync(natsLog, "w");
// Children get their own process group (detached): Ctrl-C reaches only this script, which then stops the
// service first (it drains) and nats-server last.
const nats = spawn(NATS_SERVER, ["-c", join(RUN, "nats-server.conf")], {
  stdio: ["ignore", natsOut, natsOut],
  detached: true,
});
const children = [nats];
/** The demo page's HTTP server, once started. */
let page;
let stopping = false;
nats.on("exit", (code) => {
  if (!stopping) {
    console.error(`run: nats-server exited (${code}); see ${relative(ROOT, natsLog)}`);
    void shutdown(1);
  }
});
await waitFor(() => portOpen(natsPort), `nats-server on ${HOST}:${natsPort}`);

// 3. The service, in the foreground of this terminal (pretty logs); decision events go to .run/decisions.log.
const decisions = join(RUN, "decisions.log");
const svc = spawn(
  process.execPath,
  [
    CLI,
    "serve",
    "--config",
    join(RUN, "service.yaml"),
    "--log-format",
    "pretty",
    "--decision-log",
    decisions,
  ],
  {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, OPA_BIN: OPA, PATH: `${dirname(OPA)}:${process.env.PATH}` },
    detached: true,
  },
);
children.push(svc);
svc.on("exit", (code) => {
  if (!stopping) {
    console.error(`run: the service exited (${code})`);
    void shutdown(code === 0 ? 1 : (code ?? 1));
  }
});

async function ready() {
  try {
    const r = await fetch(`http://${HOST}:${metricsPort}/readyz`);
    return r.status === 200;
  } catch {
    return false;
  }
}
await waitFor(ready, "the service to become ready (policy compiled, NATS connected)", 60_000);

// 4. The demo's KV bucket, created by APP's JetStream admin (init --jetstream wrote its password).
const BUCKET = "prefs";
try {
  const admin = await connect({
    servers: `nats://${HOST}:${natsPort}`,
    user: "js-admin-APP",
    pass: readFileSync(join(RUN, "js-admin-APP.password"), "utf8").trim(),
  });
  // allow_direct: users read their keys with DIRECT.GET on their own subjects (no STREAM.MSG.GET, no STREAM.INFO).
  await new Kvm(admin).create(BUCKET, { allow_direct: true, history: 5 });
  await admin.close();
} catch (e) {
  die(`creating the KV bucket "${BUCKET}" failed: ${e instanceof Error ? e.message : e}`);
}

// 5. The browser demo page (examples/browser/), talking to nats-server over websocket.
page = await startDemoPage({ host: HOST, port: httpPort, wsUrl: `ws://${HOST}:${wsPort}` });

const rel = (p) => relative(process.cwd(), p) || ".";
const nodeWs = Number(process.versions.node.split(".")[0]) < 22 ? "node --experimental-websocket" : "node";
console.log(`
────────────────────────────────────────────────────────────────────────────────
 nats-opa-callout is running
   NATS        nats://${HOST}:${natsPort}     websocket ws://${HOST}:${wsPort}
   metrics     http://${HOST}:${metricsPort}/metrics   ready: /readyz   status: /status
   policies    ${rel(join(ROOT, "policies"))}/  (edit and save: the next login uses the new revision)
   decisions   ${rel(decisions)}   server log ${rel(natsLog)}
               (masked: built-in secrets + policies/authz/mask.rego via policy.mask_entrypoint)

 Browser demo  ${page.url}   (log in as alice / alice-pw: own KV keys alice.> in bucket "${BUCKET}")
 JetStream     store ${jsStore} (removed on exit); admin of APP: user js-admin-APP,
               password in ${rel(join(RUN, "js-admin-APP.password"))} (skips the callout; JetStream API only)

 Demo users (example policy data, see docs/policy-contract.md):
   alice / alice-pw        APP: orders clerk (orders.create, orders.query.>, own KV keys)
   bob / bob-pw            APP: read-only (orders.query.>, orders.events.>)
   dave / dave-pw          APP: orders reader over TCP; dashboard.dave.> over websocket only
   carol / carol-pw        APP: support desk, Mon–Fri 08:00–18:00 Europe/Berlin only
   admin / admin-pw        OPS: everything, from loopback/admin networks only
   token tok_5Vf8kQz2LmN7xR3c  APP: the orders backend (serves orders.*, publishes orders.events.>)
   nkey audit-svc          APP: read-only like bob; seed policies/testdata/audit-svc.TEST-ONLY.nk (proven key only)
   eve / eve-pw            locked: the callout aborts (no reply), the client times out

 Try it:
   node examples/demo-client.mjs --server nats://${HOST}:${natsPort}
   ${nodeWs} examples/demo-client.mjs --server nats://${HOST}:${natsPort} --ws ws://${HOST}:${wsPort}
   node dist/src/cli.js eval --config ${rel(join(RUN, "service.yaml"))} --event <(tail -n1 ${rel(decisions)})
   curl -s http://${HOST}:${metricsPort}/metrics | grep nats_opa_callout_requests_total

 Ctrl-C stops the service and nats-server.
────────────────────────────────────────────────────────────────────────────────
`);

if (process.env.RUN_READY_FILE) {
  writeFileSync(
    process.env.RUN_READY_FILE,
    JSON.stringify({
      page: page.url,
      nats: `nats://${HOST}:${natsPort}`,
      ws: `ws://${HOST}:${wsPort}`,
      metrics: `http://${HOST}:${metricsPort}`,
      dir: RUN,
      jsStore,
    }),
  );
}

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  await page?.close();
  for (const c of [...children].reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill("SIGTERM");
      await Promise.race([new Promise((r) => c.once("exit", r)), sleep(12_000)]);
      if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    }
  }
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));
// Keep the event loop alive while the children run.
setInterval(() => {}, 1 << 30);
// If this script dies anyway, do not leave the children behind.
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
