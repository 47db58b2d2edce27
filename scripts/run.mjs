#!/usr/bin/env node
/**
 * `make run`: a local nats-server with auth callout (plus a websocket listener) and the service, using the
 * example policies in policies/. Everything generated goes to .run/ (gitignored). Ctrl-C stops everything
 * this script started. Edit a file in policies/ while it runs and the next login uses the new revision.
 *
 * Env: NATS_PORT (default 4222), WS_PORT (8080), METRICS_PORT (9464) — a busy port is replaced by a free one.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { parseDocument } from "yaml";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const RUN = join(ROOT, ".run");
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

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
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
