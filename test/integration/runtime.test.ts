/**
 * The composition root in-process (src/runtime.ts), as a library user starts it: a config object → resolveConfig →
 * startRuntime, against a real nats-server and the real opa. Real nats.js clients log in; /metrics, /status and the
 * decision-log file show what happened; reload() activates a changed policy; two runtimes share the queue group
 * and one is stopped in the middle of a stream of logins without losing any.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { connect } from "@nats-io/transport-node";
// The public entry (nats-opa-callout), as a library user imports it.
import { resolveConfig, startRuntime, type ResolvedConfig, type Runtime } from "../../src/index.js";
import {
  configModeSetup,
  serverMatrix,
  startNatsServer,
  type NatsServer,
  OPA_BIN,
  skipWithoutOpa,
} from "../support/index.js";

const latest = serverMatrix()[0]!;

const policy = (reason: string) => `package nats.authz

import rego.v1

default decision := {"allow": false, "reason": "bad_credentials"}

decision := {
	"allow": true,
	"account": "APP",
	"reason": "${reason}",
	"pub": {"allow": ["app.>", "_INBOX.>"]},
	"sub": {"allow": ["app.>", "_INBOX.>"]},
} if {
	input.connect_opts.pass == "pw"
}
`;

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function readEvents(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe(
  `runtime in-process (nats-server ${latest.version})`,
  { skip: latest.missing ? `nats-server not found at ${latest.bin}` : skipWithoutOpa },
  () => {
    let server: NatsServer;
    let dir: string;
    let policyDir: string;
    let raw: (name: string, extra?: Record<string, unknown>) => Record<string, unknown>;
    const runtimes: Runtime[] = [];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "runtime-"));
      policyDir = join(dir, "policy");
      mkdirSync(policyDir);
      writeFileSync(join(policyDir, "authz.rego"), policy("rev1"));
      // Generous timeouts: the machine may be busy, and this test is about wiring, not speed.
      const setup = configModeSetup({ calloutNkey: true, timeout: 10 });
      server = await startNatsServer({ bin: latest.bin, config: setup.config });
      const nkFile = join(dir, "callout.nk");
      writeFileSync(nkFile, setup.callout.nkey!.seed, { mode: 0o600 });
      raw = (name, extra = {}) => ({
        nats: { servers: server.url, nkey_seed_file: nkFile },
        issuer: { seed: setup.issuer.seed },
        accounts: ["APP"],
        policy: { dir: policyDir, watch: false, opa_binary: OPA_BIN, eval_timeout_ms: 5_000 },
        decision_log: { destination: join(dir, `${name}.decisions.log`) },
        log: { level: "info" },
        ...extra,
      });
    });

    after(async () => {
      for (const rt of runtimes) await rt.stop({ drainTimeoutMs: 5_000 }).catch(() => {});
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    const start = async (cfg: ResolvedConfig, name: string): Promise<Runtime> => {
      // The service log goes to a file (a library user's choice of destination), not the test's stdout.
      const destination = pino.destination({ dest: join(dir, `${name}.service.log`), sync: true });
      const rt = await startRuntime(cfg, { destination });
      runtimes.push(rt);
      return rt;
    };

    const login = async (user: string, pass: string) => {
      const nc = await connect({ servers: server.url, user, pass, reconnect: false, timeout: 20_000 });
      await nc.flush();
      await nc.close();
    };

    it("serves logins, exposes /metrics and /status, writes the decision log, reloads, stops", async () => {
      const cfg = resolveConfig(raw("a", { metrics: { listen: "127.0.0.1:0" } }));
      const rt = await start(cfg, "a");
      assert.equal(rt.status().phase, "serving");
      assert.ok(rt.httpAddress, "metrics.listen port 0 is bound and reported");
      const base = `http://${rt.httpAddress}`;

      await login("alice", "pw");
      await assert.rejects(() => login("mallory", "wrong"), /Authorization Violation/i);

      const revision1 = rt.status().policy?.revision;
      assert.match(String(revision1), /^[0-9a-f]{16}$/);

      // The decision log: one event per login, written once the reply's fate is known.
      const logPath = join(dir, "a.decisions.log");
      const events = await waitFor("two decision events", () => {
        const e = readEvents(logPath);
        return e.length >= 2 ? e : undefined;
      });
      const allow = events.find((e) => e.outcome === "allow");
      const deny = events.find((e) => e.outcome === "deny");
      assert.ok(allow && deny, JSON.stringify(events));
      assert.equal(allow.revision, revision1);
      assert.equal(allow.reason, "rev1");
      assert.equal(deny.reason, "bad_credentials");
      assert.ok(!readFileSync(logPath, "utf8").includes('"pw"'), "the password is masked");

      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /nats_opa_callout_requests_total\{[^}]*outcome="allow"[^}]*\} 1/);
      assert.match(metrics, /nats_opa_callout_requests_total\{[^}]*outcome="deny"[^}]*\} 1/);
      const status = (await (await fetch(`${base}/status`)).json()) as Record<string, unknown>;
      assert.equal(status.phase, "serving");
      assert.equal((status.policy as { revision?: string }).revision, revision1);
      assert.equal((await fetch(`${base}/readyz`)).status, 200);

      // reload(): an unchanged tree keeps the revision; a changed one is activated and decides the next login.
      writeFileSync(join(policyDir, "authz.rego"), policy("rev2"));
      const out = await rt.reload();
      assert.equal(out?.result, "ok");
      const revision2 = rt.status().policy?.revision;
      assert.notEqual(revision2, revision1);
      await login("bob", "pw");
      const after = await waitFor("the third event", () => {
        const e = readEvents(logPath);
        return e.length >= 3 ? e : undefined;
      });
      assert.equal(after[2]?.revision, revision2);
      assert.equal(after[2]?.reason, "rev2");

      // reopenLogs(): log rotation, new events in a new file at the path.
      renameSync(logPath, `${logPath}.1`);
      rt.reopenLogs();
      await login("carol", "pw");
      await waitFor("an event in the reopened file", () =>
        readEvents(logPath).length === 1 ? true : undefined,
      );

      await rt.stop();
      assert.equal(rt.status().phase, "stopped");
      assert.equal(await rt.closed(), "stopped");
      await assert.rejects(() => fetch(`${base}/healthz`), "HTTP is closed");

      // The service log (level info, events in a file): a summary of the denial; the allows are in the file only.
      const summaries = readEvents(join(dir, "a.service.log")).filter((l) => l.msg === "decision");
      assert.deepEqual(
        summaries.map((l) => [l.level, l.decision_id, l.outcome, l.code, l.reason]),
        [["info", deny.decision_id, "deny", "auth_denied", "bad_credentials"]],
      );
    });

    it("the per-request summary: allows at debug when events go to a file, at info when the decision log is off", async () => {
      const toFile = await start(resolveConfig(raw("s1", { log: { level: "debug" } })), "s1");
      await login("alice", "pw");
      await assert.rejects(() => login("mallory", "wrong"), /Authorization Violation/i);
      await waitFor("two events", () =>
        readEvents(join(dir, "s1.decisions.log")).length >= 2 ? true : undefined,
      );
      await toFile.stop();
      const off = await start(resolveConfig(raw("s2", { decision_log: { destination: "off" } })), "s2");
      await login("alice", "pw");
      await assert.rejects(() => login("mallory", "wrong"), /Authorization Violation/i);
      await off.stop();
      const levels = (name: string) =>
        readEvents(join(dir, `${name}.service.log`))
          .filter((l) => l.msg === "decision")
          .map((l) => `${String(l.outcome)}@${String(l.level)}`)
          .sort();
      assert.deepEqual(levels("s1"), ["allow@debug", "deny@info"]);
      assert.deepEqual(levels("s2"), ["allow@info", "deny@info"]);
    });

    it("two runtimes in one queue group: stopping one mid-stream loses no login", async () => {
      writeFileSync(join(policyDir, "authz.rego"), policy("storm"));
      const a = await start(resolveConfig(raw("storm-a")), "storm-a");
      const b = await start(resolveConfig(raw("storm-b")), "storm-b");
      const n = 120;
      const concurrency = 8;
      let next = 0;
      let done = 0;
      const failures: string[] = [];
      let stopped: Promise<void> | undefined;
      const worker = async () => {
        while (next < n) {
          const i = next++;
          try {
            await login(`user${i}`, "pw");
          } catch (e) {
            failures.push(`${i}: ${(e as Error).message}`);
          }
          done++;
          if (done === Math.floor(n / 3)) stopped = a.stop({ drainTimeoutMs: 10_000 });
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      await stopped;
      const evA0 = readEvents(join(dir, "storm-a.decisions.log"));
      const evB0 = readEvents(join(dir, "storm-b.decisions.log"));
      const notAllowed = [...evA0, ...evB0].filter((e) => e.outcome !== "allow");
      assert.deepEqual(failures, [], `every login succeeded; not allowed: ${JSON.stringify(notAllowed)}`);
      assert.equal(await a.closed(), "stopped");
      const evA = readEvents(join(dir, "storm-a.decisions.log"));
      const evB = await waitFor("every event", () => {
        const e = readEvents(join(dir, "storm-b.decisions.log"));
        return e.length + evA.length >= n ? e : undefined;
      });
      assert.ok(evA.length > 0, "the stopped runtime served before it stopped");
      assert.equal(evA.length + evB.length, n, "one event per login");
      for (const e of [...evA, ...evB]) assert.equal(e.outcome, "allow", JSON.stringify(e));
      for (const e of evA) assert.equal(e.dropped, undefined, "the stopped runtime dropped nothing");
      await b.stop();
    });
  },
);
