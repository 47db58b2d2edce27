/**
 * `init --jetstream` against real nats-server (both versions of the matrix), config and operator mode: the
 * generated nats-server.conf starts with JetStream; the account limits the knobs set are the ones the server
 * reports; the JetStream admin credential init documents creates a KV bucket and may do nothing else; and a
 * user the callout authorizes (the example policy's alice, through the generated service.yaml) uses her own keys
 * by direct get while bob's key is refused by the server.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { runInit } from "../../src/cli/init.js";
import { loadServeConfig } from "../../src/cli/serve.js";
import { createPolicyEngine } from "../../src/policy/index.js";
import { startCallout } from "../../src/service.js";
import {
  nextAsyncError,
  EXAMPLE_POLICIES,
  authTimeoutSeconds,
  serverMatrix,
  OPA_BIN,
  skipWithoutOpa,
  freePort,
  isListening,
} from "../support/index.js";

const MiB = 1024 * 1024;
const LIMITS = {
  maxMemory: 256 * MiB,
  maxFile: 1024 * MiB,
  accountMaxMemory: 8 * MiB,
  accountMaxFile: 64 * MiB,
  accountMaxStreams: 5,
  accountMaxConsumers: 50,
};

/** nats-server on the generated config; resolves once it listens. */
async function startGenerated(
  bin: string,
  conf: string,
  port: number,
): Promise<{ proc: ChildProcess; log: () => string }> {
  const proc = spawn(bin, ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  proc.stdout?.on("data", (d: Buffer) => (log += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const deadline = Date.now() + 15_000;
  while (!(await isListening(port))) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited: ${log}`);
    if (Date.now() > deadline) throw new Error(`nats-server did not listen: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, log: () => log };
}

for (const server of serverMatrix()) {
  for (const mode of ["config", "operator"] as const) {
    const skip = server.missing ? `nats-server ${server.label} missing (make tools)` : skipWithoutOpa;
    describe(
      `init --jetstream, ${mode} mode, nats-server ${server.version || server.label}`,
      { skip },
      () => {
        const cleanup: (() => Promise<void> | void)[] = [];
        after(async () => {
          for (const f of cleanup.reverse()) await f();
        });

        test("the config starts; the admin creates a bucket; alice uses her keys, bob's are refused", async () => {
          const dir = mkdtempSync(join(tmpdir(), `init-js-${mode}-`));
          cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
          const port = await freePort();
          const res = await runInit({
            dir,
            operator: mode === "operator",
            websocket: false,
            wsPort: 8080,
            host: "127.0.0.1",
            port,
            accounts: ["APP", "OPS"],
            xkey: true,
            policyDir: EXAMPLE_POLICIES,
            metricsListen: "127.0.0.1:0",
            timeout: authTimeoutSeconds(),
            force: false,
            bcryptCost: 4,
            jetstream: LIMITS,
          });
          const js = res.jetstream;
          assert.ok(js, "init reports the JetStream store and admins");
          assert.equal(js.storeDir, join(dir, "jetstream"));
          assert.deepEqual(
            js.admins.map((a) => [a.account, a.user]),
            [
              ["APP", "js-admin-APP"],
              ["OPS", "js-admin-OPS"],
            ],
          );
          const conf = readFileSync(join(dir, "nats-server.conf"), "utf8");
          assert.doesNotMatch(
            conf,
            new RegExp(res.secrets["js-admin-APP_password"] ?? "^$"),
            "no clear password",
          );

          const nats = await startGenerated(server.bin, join(dir, "nats-server.conf"), port);
          cleanup.push(async () => {
            nats.proc.kill("SIGTERM");
            await new Promise((r) => nats.proc.once("exit", r));
          });
          const url = `nats://127.0.0.1:${port}`;
          const conns: NatsConnection[] = [];
          cleanup.push(async () => {
            for (const nc of conns) await nc.close().catch(() => {});
          });

          // The admin credential, exactly as init documents it.
          const adminFile = js.admins[0]!.file;
          const admin = await connect(
            mode === "config"
              ? { servers: url, user: "js-admin-APP", pass: readFileSync(adminFile, "utf8").trim() }
              : { servers: url, authenticator: credsAuthenticator(readFileSync(adminFile)) },
          );
          conns.push(admin);
          const jsm = await jetstreamManager(admin);
          const ai = await jsm.getAccountInfo();
          assert.equal(ai.limits.max_memory, LIMITS.accountMaxMemory);
          assert.equal(ai.limits.max_storage, LIMITS.accountMaxFile);
          assert.equal(ai.limits.max_streams, LIMITS.accountMaxStreams);
          assert.equal(ai.limits.max_consumers, LIMITS.accountMaxConsumers);
          const adminKv = await new Kvm(admin).create("prefs", { allow_direct: true });
          await adminKv.put("bob.theme", "dark");
          assert.ok(
            existsSync(join(js.storeDir, "jetstream")),
            "the server keeps its streams in the store dir",
          );
          // The admin manages JetStream and nothing else.
          const adminErr = nextAsyncError(admin);
          admin.publish("orders.create", "x");
          assert.match((await adminErr).message, /Permissions Violation for Publish to "orders\.create"/);

          // The callout, wired from the generated service.yaml as serve does.
          const cfg = loadServeConfig({ config: join(dir, "service.yaml"), overrides: [] }, {});
          const engine = await createPolicyEngine({
            dir: EXAMPLE_POLICIES,
            opaBin: OPA_BIN ?? "opa",
            watch: false,
          });
          cleanup.push(() => engine.close());
          const svc = await startCallout({ config: cfg, handler: engine.handler });
          cleanup.push(() => svc.stop());

          const alice = await connect({
            servers: url,
            user: "alice",
            pass: "alice-pw",
            inboxPrefix: "_INBOX.alice",
            maxReconnectAttempts: 0,
            ...(mode === "operator"
              ? { authenticator: credsAuthenticator(readFileSync(join(dir, "sentinel.creds"))) }
              : {}),
          });
          conns.push(alice);
          const kv = await new Kvm(alice).open("prefs", { allow_direct: true });
          await kv.put("alice.theme", "light");
          assert.equal((await kv.get("alice.theme"))?.string(), "light");
          await assert.rejects(kv.get("bob.theme"), /permissions violation/i);
          await assert.rejects(kv.put("bob.theme", "pwned"), /permissions violation/i);
          assert.equal((await adminKv.get("bob.theme"))?.string(), "dark", "bob's key is untouched");
        });
      },
    );
  }
}
