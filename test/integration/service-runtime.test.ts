/**
 * Service runtime behaviour against a real nats-server (latest binary, config mode, the service
 * authenticating with an nkey seed file): bounded queue drops, shedding of queued requests past the server's
 * auth timeout, graceful drain, handler faults,
 * hooks that throw, oversized requests. Each test runs its own service; only one at a time.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import {
  callout,
  startCallout,
  type CalloutService,
  type ResultEvent,
  type StartCalloutOptions,
} from "../../src/service.js";
import { resolveConfig, type ResolvedConfig, type ServiceConfig } from "../../src/config.js";
import type { Handler } from "../../src/callout/pipeline.js";
import { AuthError } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import { configModeSetup, serverMatrix, startNatsServer, type NatsServer } from "../support/index.js";

const latest = serverMatrix()[0]!;

/** A gate a handler can wait on, opened by the test. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

async function until(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Collects log records so tests can check what (and what not) was logged. */
function memoryLogger(records: Record<string, unknown>[]): Logger {
  const mk = (bindings: Record<string, unknown>): Logger => {
    const at =
      (level: string) =>
      (obj: object, msg?: string): void => {
        records.push({ level, msg, ...bindings, ...obj });
      };
    return {
      trace: at("trace"),
      debug: at("debug"),
      info: at("info"),
      warn: at("warn"),
      error: at("error"),
      fatal: at("fatal"),
      child: (b) => mk({ ...bindings, ...b }),
    };
  };
  return mk({});
}

describe(
  `service runtime (nats-server ${latest.version})`,
  { skip: latest.missing ? `nats-server not found at ${latest.bin}` : false },
  () => {
    let server: NatsServer;
    let dir: string;
    let base: ServiceConfig;
    const clients: NatsConnection[] = [];
    let gates: Map<string, Promise<void>>;
    /** How often the handler saw each user. */
    const calls = new Map<string, number>();

    const handler: Handler = async (req) => {
      const user = req.connect_opts.user ?? "";
      calls.set(user, (calls.get(user) ?? 0) + 1);
      if (user === "boom") throw new TypeError("kaboom with secret details");
      const g = gates.get(user);
      if (g) await g;
      if (req.connect_opts.pass !== "pw") throw new AuthError("bad_credentials");
      return { account: "APP", pub: { allow: ["app.>"] }, sub: { allow: ["_INBOX.>"] } };
    };

    const client = async (user: string, extra: Partial<NodeConnectionOptions> = {}) => {
      const nc = await connect({
        servers: server.url,
        user,
        pass: "pw",
        reconnect: false,
        timeout: 20_000,
        ...extra,
      });
      clients.push(nc);
      return nc;
    };

    const start = (
      over: Partial<StartCalloutOptions> & { cfg?: ServiceConfig | ResolvedConfig } = {},
    ): Promise<CalloutService> => {
      const { cfg, ...rest } = over;
      return startCallout({ config: cfg ?? base, handler, ...rest });
    };

    before(async () => {
      gates = new Map();
      dir = mkdtempSync(join(tmpdir(), "callout-rt-"));
      const setup = configModeSetup({ calloutNkey: true, timeout: 2 });
      server = await startNatsServer({ bin: latest.bin, config: setup.config });
      const nkFile = join(dir, "callout.nk");
      writeFileSync(nkFile, setup.callout.nkey!.seed, { mode: 0o600 });
      base = {
        nats: { servers: server.url, nkey_seed_file: nkFile },
        issuer: { seed: setup.issuer.seed },
        accounts: ["APP"],
      };
    });

    after(async () => {
      for (const nc of clients) await nc.close().catch(() => {});
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("connects with an nkey seed file; callout() resolves raw config and serves", async () => {
      const svc = await callout(handler, base);
      try {
        assert.equal(svc.status().connection, "connected");
        assert.equal(svc.config.nats.auth.kind, "nkey");
        const nc = await client("alice");
        await nc.flush();
        await until(() => svc.status().allowed === 1, "the allow");
      } finally {
        await svc.stop();
      }
      assert.equal(svc.status().connection, "closed");
    });

    it("queue full: the newest request is dropped and counted; the client times out", async () => {
      const results: ResultEvent[] = [];
      const hold = gate();
      gates.set("held", hold.wait);
      const svc = await start({
        cfg: { ...base, limits: { max_concurrency: 1, max_queue: 0 } },
        onResult: (e) => results.push(e),
      });
      try {
        const held = client("held");
        await until(() => svc.status().inFlight === 1, "the held request in flight");
        const dropped = client("alice");
        await until(() => results.length === 1, "the drop");
        assert.equal(results[0]?.dropped, "queue_full");
        assert.equal(results[0]?.replied, false);
        assert.deepEqual(results[0]?.result.outcome, {
          kind: "abort",
          code: "overloaded",
          reason: "queue full",
        });
        assert.equal(svc.status().dropped, 1);
        hold.open();
        await held; // the held one is served once released
        await assert.rejects(dropped, /Authorization Violation/);
        assert.equal(results.length, 2);
        assert.equal(results[1]?.result.outcome.kind, "allow");
        const s = svc.status();
        assert.equal(s.served, 2);
        assert.equal(s.aborted, 1);
        assert.equal(s.allowed, 1);
      } finally {
        gates.delete("held");
        await svc.stop();
      }
    });

    it("requests queued past the server's auth timeout are shed unevaluated, counted, and serving recovers", async () => {
      const results: ResultEvent[] = [];
      const records: Record<string, unknown>[] = [];
      const hold = gate();
      gates.set("slow", hold.wait);
      const svc = await start({
        cfg: { ...base, limits: { max_concurrency: 1, max_queue: 10 } },
        onResult: (e) => results.push(e),
        logger: memoryLogger(records),
      });
      try {
        const slow = client("slow");
        await until(() => svc.status().inFlight === 1, "the slow request in flight");
        const queued = [1, 2, 3].map(() => client("queued"));
        await until(() => svc.status().queued === 3, "three requests queued");
        // The server gives up on each after its auth timeout (2 s) ...
        await Promise.all([slow, ...queued].map((c) => assert.rejects(c, /Authorization Violation/)));
        // ... and at the latest one second after the request's exp (whole seconds): wait that out, then free the slot.
        await new Promise((r) => setTimeout(r, 1100));
        hold.open();
        await until(() => results.length === 4, "four results");
        const shed = results.filter((e) => e.dropped === "shed_expired");
        assert.equal(shed.length, 3);
        for (const e of shed) {
          assert.equal(e.replied, false);
          assert.equal(e.reply, "none");
          assert.deepEqual(e.outcome, {
            kind: "abort",
            code: "request_expired",
            reason: "shed from the queue: the server's auth timeout passed",
          });
          assert.ok(e.queue_us > 0, "the time it waited is reported");
        }
        assert.equal(calls.get("queued"), undefined, "shed requests never reach the handler");
        const s = svc.status();
        assert.equal(s.dropped, 3);
        assert.equal(s.allowed, 0);
        assert.equal(s.denied, 0);
        // One debug line per shed request, and a warning that shedding started.
        assert.equal(records.filter((r) => r.dropped === "shed_expired" && r.level === "debug").length, 3);
        assert.ok(records.some((r) => r.level === "warn" && r.shed_expired === 1));
        // Serving recovers: a new login is decided and allowed.
        const nc = await client("alice");
        await nc.flush();
        await until(() => svc.status().allowed === 1, "the allow");
      } finally {
        gates.delete("slow");
        await svc.stop();
      }
    });

    it("a waiting request runs when a slot frees (bounded queue, FIFO)", async () => {
      const order: string[] = [];
      const hold = gate();
      gates.set("first", hold.wait);
      const svc = await start({
        cfg: { ...base, limits: { max_concurrency: 1, max_queue: 4 } },
        onResult: (e) => order.push(e.result.issued?.name ?? "?"),
      });
      try {
        const first = client("first");
        await until(() => svc.status().inFlight === 1, "first in flight");
        const second = client("second");
        await until(() => svc.status().queued === 1, "second queued");
        hold.open();
        await Promise.all([first, second]);
        // Results are emitted once each reply is confirmed, which can be just after the client saw it.
        await until(() => order.length === 2, "both results");
        assert.deepEqual(order, ["first", "second"]);
        assert.equal(svc.status().dropped, 0);
      } finally {
        gates.delete("first");
        await svc.stop();
      }
    });

    it("stop() drains: an in-flight request is answered before the connection closes", async () => {
      const hold = gate();
      gates.set("late", hold.wait);
      const states: string[] = [];
      const svc = await start({ onStatus: (c) => states.push(c.state) });
      const late = client("late");
      await until(() => svc.status().inFlight === 1, "in flight");
      const stopped = svc.stop();
      await until(() => svc.status().connection === "draining", "draining");
      hold.open();
      const nc = await late; // answered although stop() began before
      await nc.flush();
      await stopped;
      assert.equal(svc.status().connection, "closed");
      assert.equal(svc.status().allowed, 1);
      assert.deepEqual(states, ["connected", "draining", "closed"]);
      gates.delete("late");
    });

    it("a handler fault denies with handler_error, logged once without the thrown message; a throwing onResult is contained", async () => {
      const records: Record<string, unknown>[] = [];
      const results: ResultEvent[] = [];
      const svc = await start({
        logger: memoryLogger(records),
        onResult: (e) => {
          results.push(e);
          throw new Error("hook bug");
        },
      });
      try {
        await assert.rejects(client("boom"), /Authorization Violation/);
        await until(() => results.length === 1, "the result");
        const r = results[0]!.result;
        assert.equal(r.outcome.kind, "deny");
        assert.equal(r.outcome.kind === "deny" && r.outcome.code, "handler_error");
        assert.equal(results[0]!.replied, true);
        const denials = records.filter((x) => x.msg === "authorization denied");
        assert.equal(denials.length, 1);
        assert.equal(denials[0]!.code, "handler_error");
        assert.equal(denials[0]!.decision_id, results[0]!.decisionId);
        assert.ok(!JSON.stringify(records).includes("kaboom"), "the handler's message is not logged");
        assert.ok(records.some((x) => x.msg === "onResult hook threw"));
        // still serving
        const nc = await client("alice");
        await nc.flush();
        await until(() => svc.status().allowed === 1, "the allow");
        // wrong password: a routine denial at info level
        await assert.rejects(client("alice", { pass: "nope" }), /Authorization Violation/);
        await until(() => results.length === 3, "the denial");
        const last = records.filter((x) => x.msg === "authorization denied").at(-1)!;
        assert.equal(last.level, "info");
        assert.equal(last.code, "auth_denied");
        assert.ok(!JSON.stringify(records).includes("nope"));
      } finally {
        await svc.stop();
      }
    });

    it("an oversized request is dropped before decoding (the client times out)", async () => {
      const results: ResultEvent[] = [];
      const svc = await start({
        cfg: { ...base, limits: { max_request_bytes: 1024 } },
        onResult: (e) => results.push(e),
      });
      try {
        await assert.rejects(client("alice", { pass: "p".repeat(2000) }), /Authorization Violation/);
        assert.equal(results.length, 1);
        assert.deepEqual(
          {
            kind: results[0]!.result.outcome.kind,
            code: (results[0]!.result.outcome as { code?: string }).code,
          },
          { kind: "abort", code: "request_decode_error" },
        );
        assert.equal(results[0]!.replied, false);
        assert.equal(results[0]!.result.request, undefined, "never decoded");
      } finally {
        await svc.stop();
      }
    });

    it("decision ids are unique and short; resolved config objects are accepted as is", async () => {
      const results: ResultEvent[] = [];
      const svc = await start({ cfg: resolveConfig(base), onResult: (e) => results.push(e) });
      try {
        for (let i = 0; i < 3; i++) await (await client("alice")).close();
        await until(() => results.length === 3, "three results");
        const ids = results.map((r) => r.decisionId);
        assert.equal(new Set(ids).size, 3);
        for (const id of ids) assert.ok(id.length <= 20, id);
        for (const r of results) assert.equal(r.result.decisionId, r.decisionId);
      } finally {
        await svc.stop();
      }
    });

    it("stop() while the server is down finishes within its timeout", async () => {
      const svc = await start({ reconnectTimeWaitMs: 100 });
      await server.kill();
      await until(() => svc.status().connection === "reconnecting", "reconnecting");
      await svc.stop({ timeoutMs: 500 });
      assert.equal(svc.status().connection, "closed");
      await server.restart();
    });
  },
);
