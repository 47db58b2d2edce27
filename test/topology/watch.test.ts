/**
 * topology-watch in-process: what the service logs about the topology from the requests it decides —
 * once per server, no credentials, never a throw. (The leafnode warning against real servers is in
 * leaf.test.ts.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AuthResult } from "../../src/callout/pipeline.js";
import { createLogger } from "../../src/log.js";
import { MAX_SERVERS, createTopologyWatch } from "../../src/topology-watch.js";
import type { AuthorizationRequest } from "../../src/types.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    level: "debug",
    destination: { write: (s: string) => void lines.push(JSON.parse(s)) },
  });
  return { lines, log };
}

function result(
  server: { name: string; id?: string; cluster?: string },
  kind: string,
  outcome: "allow" | "deny",
): AuthResult {
  const request = {
    server_id: {
      name: server.name,
      id: server.id ?? "NSERVERID",
      host: "127.0.0.1",
      version: "2.15.3",
      cluster: server.cluster,
    },
    user_nkey: "UKEY",
    client_info: { kind, user: "alice" },
    connect_opts: { user: "alice", pass: "s3cret-pass" },
  } as unknown as AuthorizationRequest;
  return {
    decisionId: "d",
    outcome:
      outcome === "allow"
        ? { kind: "allow", grant: { account: "APP" } }
        : { kind: "deny", reason: "bad_credentials", code: "auth_denied" },
    request,
    facts: {},
    timings: { decode_us: 0, handler_us: 0, sign_us: 0, total_us: 0 },
  };
}

const msgs = (lines: Record<string, unknown>[], level: string) =>
  lines.filter((l) => l.level === level).map((l) => String(l.msg));

test("an admitted leafnode connection warns once per server; a refused one is info; no credentials logged", () => {
  const { lines, log } = capture();
  const w = createTopologyWatch(log);
  w.observe(result({ name: "hub-1", cluster: "c" }, "Leafnode", "allow"));
  w.observe(result({ name: "hub-1", cluster: "c" }, "Leafnode", "allow"));
  w.observe(result({ name: "hub-2", cluster: "c" }, "Leafnode", "deny"));
  w.observe(result({ name: "hub-1", cluster: "c" }, "Client", "allow"));
  const warns = msgs(lines, "warn");
  assert.equal(warns.filter((m) => m.includes("leafnode connection was admitted")).length, 1);
  assert.equal(msgs(lines, "info").filter((m) => m.includes("was refused")).length, 1);
  const admitted = lines.find((l) => String(l.msg).includes("admitted"))!;
  assert.equal(admitted.server_name, "hub-1");
  assert.equal(admitted.account, "APP");
  const text = lines.map((l) => JSON.stringify(l)).join("\n");
  assert.ok(!text.includes("s3cret-pass") && !text.includes("alice"), "no credentials or user names");
});

test("servers: announced once each; a server without server_name warns; a second cluster is noted", () => {
  const { lines, log } = capture();
  const w = createTopologyWatch(log);
  w.observe(result({ name: "a1", cluster: "A" }, "Client", "allow"));
  w.observe(result({ name: "a1", cluster: "A" }, "Client", "allow"));
  w.observe(result({ name: "NABC", id: "NABC" }, "Client", "allow"));
  w.observe(result({ name: "b1", cluster: "B" }, "Client", "deny"));
  const info = msgs(lines, "info");
  assert.equal(info.filter((m) => m.startsWith("first authorization request")).length, 3);
  assert.equal(msgs(lines, "warn").filter((m) => m.includes("no server_name")).length, 1);
  const multi = lines.find((l) => String(l.msg).includes("more than one cluster"));
  assert.deepEqual(multi?.clusters, ["A", "B"]);
});

test("bounded memory, and a malformed result never throws", () => {
  const { lines, log } = capture();
  const w = createTopologyWatch(log);
  for (let i = 0; i < MAX_SERVERS + 10; i++) w.observe(result({ name: `s${i}` }, "Client", "allow"));
  assert.equal(msgs(lines, "info").length, MAX_SERVERS);
  w.observe({
    decisionId: "x",
    outcome: { kind: "abort", reason: "r", code: "c" },
    facts: {},
    timings: {},
  } as AuthResult);
  w.observe({ request: { server_id: null } } as unknown as AuthResult);
});
