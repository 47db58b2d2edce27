/**
 * The built CLI end to end: `init --revocation` writes a least-privilege SYS user (KICK only) into nats-server.conf
 * and `revocation.enabled` into service.yaml; `serve` proves the right at start, records logins and kicks a client
 * whose password a data edit removed (its reconnect is denied). With the KICK right taken out of the generated
 * nats-server.conf, serve logs one clear error naming it and keeps serving logins.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import {
  startNatsServer,
  serverMatrix,
  type NatsServer,
  skipWithoutOpa,
  OPA_BIN,
  freePort,
  until,
  POLICY,
  writeUsers,
  CLI_JS,
  ensureBuilt,
  startProcess,
  type Child,
} from "../support/index.js";

/** The built CLI's `serve`, output captured. */
function serve(config: string): Promise<Child> {
  return startProcess("serve", process.execPath, [CLI_JS, "serve", "--config", config], {
    env: { ...process.env, OPA_BIN: OPA_BIN ?? "opa" },
  });
}

const users = {
  alice: { password: "alice-pw", account: "APP", pub: ["x.>"], sub: ["_INBOX.>"] },
  carol: { password: "carol-pw", account: "APP", pub: ["z.>"], sub: ["_INBOX.>"] },
};

const bin = serverMatrix()[0]!;

async function setUp(withKickRight: boolean) {
  await ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), "live-cli-"));
  const policyDir = join(dir, "policy");
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, "policy.rego"), POLICY);
  writeUsers(policyDir, users);
  const port = await freePort();
  execFileSync(process.execPath, [
    CLI_JS,
    "init",
    "--dir",
    join(dir, "cfg"),
    "--revocation",
    "--port",
    String(port),
    "--policy-dir",
    policyDir,
    "--metrics-listen",
    "off",
    "--accounts",
    "APP",
    "--bcrypt-cost",
    "4",
  ]);
  const conf = readFileSync(join(dir, "cfg", "nats-server.conf"), "utf8");
  assert.match(conf, /publish: \{ allow: \["\$SYS\.REQ\.SERVER\.\*\.KICK"\] \}/);
  assert.match(conf, /auth_users: \[ callout, revocation \]/);
  // startNatsServer writes its own listen line: drop init's.
  let body = conf.replace(/^listen: .*$/m, "");
  if (!withKickRight) body = body.replace('"$SYS.REQ.SERVER.*.KICK"', '"$SYS.REQ.SERVER.PING"');
  const server = await startNatsServer({ bin: bin.bin, config: body });
  const yaml = readFileSync(join(dir, "cfg", "service.yaml"), "utf8").replace(
    /nats:\/\/127\.0\.0\.1:\d+/,
    server.url,
  );
  writeFileSync(join(dir, "cfg", "service.yaml"), yaml, { mode: 0o600 });
  assert.match(yaml, /revocation:\n {2}enabled: true\n {2}nats:\n {4}user: revocation\n/);
  const svc = await serve(join(dir, "cfg", "service.yaml"));
  return { dir, policyDir, server, svc };
}

describe(
  "live revocation through the CLI (init --revocation, serve)",
  { skip: bin.missing ? "nats-server missing" : skipWithoutOpa },
  () => {
    describe("with the KICK right", () => {
      let env: { dir: string; policyDir: string; server: NatsServer; svc: Child };
      before(async () => {
        env = await setUp(true);
      });
      after(async () => {
        await env?.svc.stop(60_000);
        await env?.server.stop();
        if (env) rmSync(env.dir, { recursive: true, force: true });
      });

      it("kicks the client whose password was removed; the other stays connected", async () => {
        await until(
          () => /live revocation on/.test(env.svc.output()),
          "serve to prove the KICK right",
          30_000,
        );
        await until(() => /serving auth callout/.test(env.svc.output()), "serve to subscribe", 30_000);
        const alice = await connect({
          servers: env.server.url,
          user: "alice",
          pass: "alice-pw",
          reconnectTimeWait: 50,
        });
        const carol = await connect({
          servers: env.server.url,
          user: "carol",
          pass: "carol-pw",
          reconnectTimeWait: 50,
        });
        const carolEvents: string[] = [];
        void (async () => {
          for await (const s of carol.status()) carolEvents.push(s.type);
        })();
        const aliceEnd = alice.closed();
        writeUsers(env.policyDir, { carol: users.carol });
        const end = await Promise.race([
          aliceEnd,
          new Promise((r) => setTimeout(() => r("still open"), 20_000)),
        ]);
        assert.match(String(end), /Authorization Violation/i);
        await until(() => /"event":"live_reevaluation"/.test(env.svc.output()), "the run's log line");
        assert.deepEqual(
          carolEvents.filter((e) => e === "disconnect"),
          [],
        );
        assert.ok(/"msg":"connection kicked"/.test(env.svc.output()));
        assert.ok(!env.svc.output().includes("alice-pw"), "no secret in serve's output");
        await carol.close();
      });
    });

    describe("without the KICK right", () => {
      let env: { dir: string; policyDir: string; server: NatsServer; svc: Child };
      before(async () => {
        env = await setUp(false);
      });
      after(async () => {
        await env?.svc.stop(60_000);
        await env?.server.stop();
        if (env) rmSync(env.dir, { recursive: true, force: true });
      });

      it("logs one error naming the missing right and keeps serving logins", async () => {
        await until(() => /serving auth callout/.test(env.svc.output()), "serve to subscribe", 30_000);
        const lines = env.svc
          .output()
          .split("\n")
          .filter((l) => l.includes('"code":"revocation_permission_denied"'));
        assert.equal(lines.length, 1, env.svc.output());
        assert.match(
          lines[0]!,
          /Permissions Violation: the revocation.nats user may not publish \$SYS\.REQ\.SERVER\.\*\.KICK/,
        );
        const alice = await connect({ servers: env.server.url, user: "alice", pass: "alice-pw" });
        assert.ok(!alice.isClosed());
        await alice.close();
      });
    });
  },
);
