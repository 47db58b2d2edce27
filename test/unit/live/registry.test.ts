/**
 * The live-grant registry and the re-evaluation engine, in process (the NATS and OPA boundaries are covered by
 * test/integration/live-revocation.test.ts): secrets never show, bounds and expiry, coalescing, one kick per
 * connection per revision, and a failed kick kept for the next run.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { pino } from "pino";
import { LiveGrant, LiveGrantRegistry } from "../../../src/live/registry.js";
import { LiveRevocation } from "../../../src/live/revocation.js";
import type { GrantSummary } from "../../../src/live/coverage.js";
import type { ReDecision } from "../../../src/live/reevaluate.js";
import type { AuthorizationRequest } from "../../../src/types.js";

const PASSWORD = "s3cret-Pa55word-xyz";
const TOKEN = "tok-abcdef-123456";

function request(cid: number, server = "NSERVER1", user = "alice"): AuthorizationRequest {
  return {
    server_id: { name: "s", host: "127.0.0.1", id: server, version: "2.15.3" },
    user_nkey: `UNKEY${cid}`,
    client_info: { host: "127.0.0.1", id: cid, user, kind: "Client", type: "nats" },
    connect_opts: { user, pass: PASSWORD, auth_token: TOKEN },
    request_issuer: "AISSUER",
    issued_at: 0,
    expires_at: 0,
    encrypted: false,
  };
}

const summary = (over: Partial<GrantSummary> = {}): GrantSummary => ({
  account: "APP",
  name: "alice",
  pub: { allow: ["a.>"] },
  sub: { allow: ["a.>"] },
  exp: 4_000_000_000,
  subs: -1,
  data: -1,
  payload: -1,
  ...over,
});

const entry = (cid: number, over: Partial<GrantSummary> = {}, server?: string) =>
  new LiveGrant({
    request: request(cid, server),
    grant: summary(over),
    decisionId: `d${cid}`,
    revision: "r1",
  });

describe("LiveGrant", () => {
  it("never shows the request's secrets: JSON, inspect, String, template, pino", () => {
    const g = entry(7);
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (s: string) => void lines.push(s) });
    log.info({ g, list: [g] }, "x");
    for (const text of [
      JSON.stringify(g),
      inspect(g, { depth: 10, showHidden: true }),
      String(g),
      `${g}`,
      ...lines,
    ]) {
      assert.ok(!text.includes(PASSWORD) && !text.includes(TOKEN), text);
    }
    assert.equal(JSON.parse(JSON.stringify(g)).cid, 7);
    assert.equal(g.request().connect_opts.pass, PASSWORD);
  });

  it("pairs the server id with the cid, and refuses a request without a cid", () => {
    const g = entry(3, {}, "NOTHER");
    assert.equal(g.key, "NOTHER/3");
    const r = request(1);
    delete r.client_info.id;
    assert.throws(() => new LiveGrant({ request: r, grant: summary(), decisionId: "x" }), TypeError);
  });
});

describe("LiveGrantRegistry", () => {
  it("evicts the oldest beyond maxEntries and counts it", () => {
    const evicted: number[] = [];
    const reg = new LiveGrantRegistry({ maxEntries: 3, onEvict: (g) => evicted.push(g.cid) });
    for (let i = 1; i <= 5; i++) reg.add(entry(i));
    assert.equal(reg.size, 3);
    assert.deepEqual(evicted, [1, 2]);
    assert.equal(reg.evicted, 2);
    assert.deepEqual(
      reg.snapshot().map((g) => g.cid),
      [3, 4, 5],
    );
  });

  it("the same cid on two servers is two entries", () => {
    const reg = new LiveGrantRegistry();
    reg.add(entry(1, {}, "NA"));
    reg.add(entry(1, {}, "NB"));
    assert.equal(reg.size, 2);
  });

  it("drops entries at JWT expiry (on read and on sweep)", () => {
    let now = 1_000_000;
    const reg = new LiveGrantRegistry({ now: () => now });
    assert.equal(reg.add(entry(1, { exp: 999 })), undefined, "already expired: not kept");
    reg.add(entry(2, { exp: 1001 }));
    reg.add(entry(3, { exp: 2000 }));
    now = 1_001_000;
    assert.equal(reg.get({ serverId: "NSERVER1", cid: 2 }), undefined);
    now = 2_000_000;
    assert.equal(reg.sweep(), 1);
    assert.equal(reg.size, 0);
  });
});

describe("LiveRevocation", () => {
  /** A reevaluate driven by a per-user table; counts calls. */
  function setup(
    decide: (r: AuthorizationRequest) => ReDecision,
    kickOutcome: "kicked" | "failed" = "kicked",
  ) {
    const registry = new LiveGrantRegistry();
    const kicked: string[] = [];
    let evaluations = 0;
    const rev = new LiveRevocation({
      registry,
      reevaluate: async (r) => {
        evaluations++;
        await new Promise((res) => setImmediate(res));
        return decide(r);
      },
      kick: async (k) => {
        kicked.push(`${k.serverId}/${k.cid}`);
        return kickOutcome;
      },
      concurrency: 3,
    });
    return { registry, rev, kicked, evaluations: () => evaluations };
  }

  it("keeps covered grants, kicks denied and narrowed ones, each once, and coalesces revisions", async () => {
    const { registry, rev, kicked, evaluations } = setup((r) => {
      const cid = r.client_info.id!;
      if (cid % 10 === 1) return { kind: "deny", reason: "deny", revision: "r2" };
      if (cid % 10 === 2)
        return { kind: "allow", grant: summary({ pub: { allow: ["a.b"] } }), revision: "r2" };
      return { kind: "allow", grant: summary(), revision: "r2" };
    });
    for (let i = 1; i <= 30; i++)
      rev.record({
        decisionId: `d${i}`,
        request: request(i),
        issued: { ...summary(), issuer: "A", user_nkey: "U" },
        revision: "r1",
      });
    const a = rev.onRevision("r2");
    const b = rev.onRevision("r2"); // arrives during the run: one more pass, which skips what r2 confirmed
    await Promise.all([a, b]);
    await rev.idle();
    assert.equal(kicked.length, 6);
    assert.equal(new Set(kicked).size, 6, "no connection kicked twice");
    assert.equal(registry.size, 24);
    assert.equal(evaluations(), 30, "the coalesced second pass re-evaluated nothing");
  });

  it("a failed kick keeps the entry for the next run; a late login on an old revision is re-decided", async () => {
    const { registry, rev, kicked } = setup(
      () => ({ kind: "deny", reason: "deny", revision: "r2" }),
      "failed",
    );
    rev.record({
      decisionId: "d1",
      request: request(1),
      issued: { ...summary(), issuer: "A", user_nkey: "U" },
      revision: "r1",
    });
    await rev.onRevision("r2");
    assert.deepEqual(kicked, ["NSERVER1/1"]);
    assert.equal(registry.size, 1, "kept after the failed kick");
    rev.record({
      decisionId: "d2",
      request: request(2),
      issued: { ...summary(), issuer: "A", user_nkey: "U" },
      revision: "r1",
    });
    await rev.idle();
    assert.deepEqual(kicked, ["NSERVER1/1", "NSERVER1/2"]);
    await rev.close();
  });

  it("reevaluateAll re-decides entries the active revision already confirmed (time-dependent policies)", async () => {
    let allow = true;
    const { rev, kicked, evaluations } = setup(() =>
      allow
        ? { kind: "allow", grant: summary(), revision: "r1" }
        : { kind: "deny", reason: "deny", revision: "r1" },
    );
    rev.record({
      decisionId: "d1",
      request: request(1),
      issued: { ...summary(), issuer: "A", user_nkey: "U" },
      revision: "r1",
    });
    await rev.onRevision("r1");
    assert.equal(evaluations(), 0, "already confirmed by r1");
    allow = false; // e.g. office hours ended
    await rev.reevaluateAll();
    assert.equal(evaluations(), 1);
    assert.deepEqual(kicked, ["NSERVER1/1"]);
    await rev.close();
  });
});
