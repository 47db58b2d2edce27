/**
 * CalloutMetrics on prom-client, in-process: the service's series and labels, bounded label values (code
 * cap, account allow-list), live gauges pulled at scrape time, default process metrics, and registries kept
 * apart per instance. Every scrape is parsed line by line as Prometheus text format 0.0.4.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CalloutMetrics, CONTENT_TYPE, LATENCY_BUCKETS } from "../../src/metrics.js";
import { key, parse } from "../support/index.js";

const P = "nats_opa_callout";

test("decisions, reloads, revision info, live state: every series parses and adds up", async () => {
  const m = new CalloutMetrics({ version: "1.2.3", accounts: ["APP", "ORDERS"] });
  let connected = false;
  m.bindState({
    connected: () => connected,
    inFlight: () => 3,
    queueDepth: () => 4,
    wasmMemoryBytes: () => 655360,
  });
  const ep = "nats/authz/decision";
  m.observeDecision({
    outcome: "allow",
    code: "ok",
    account: "APP",
    total_us: 450,
    eval_us: 12,
    entrypoint: ep,
  });
  m.observeDecision({ outcome: "deny", code: "bad_credentials", total_us: 300, eval_us: 9, entrypoint: ep });
  m.observeDecision({ outcome: "deny", code: "bad_credentials", total_us: 3_000_000 });
  m.observeDecision({ outcome: "abort", code: "auth_aborted" });
  m.observeReload(true, "rev-a", new Date(1_700_000_000_000));
  m.observeReload(false, undefined, new Date(1_700_000_100_000));
  m.observeReload(true, "rev-b", new Date(1_700_000_200_000));
  m.observeDropped("expired");
  m.observeNatsEvent("disconnect");
  m.decisionLogDropped.inc({ reason: "write_error" });
  let { samples: s, types } = parse(await m.render());
  assert.equal(types.get(`${P}_requests_total`), "counter");
  assert.equal(types.get(`${P}_request_duration_seconds`), "histogram");
  const req = (outcome: string, code: string, account = "") =>
    s.get(key(`${P}_requests_total`, { outcome, code, account }));
  assert.equal(req("allow", "ok", "APP"), 1);
  assert.equal(req("deny", "bad_credentials"), 2);
  assert.equal(req("abort", "auth_aborted"), 1);
  const dur = `${P}_request_duration_seconds`;
  assert.equal(s.get(key(`${dur}_bucket`, { outcome: "allow", le: "0.0005" })), 1);
  assert.equal(s.get(key(`${dur}_bucket`, { outcome: "allow", le: "0.00025" })), 0);
  assert.equal(s.get(key(`${dur}_bucket`, { outcome: "deny", le: "2" })), 1, "3 s is above the last bucket");
  assert.equal(s.get(key(`${dur}_bucket`, { outcome: "deny", le: "+Inf" })), 2);
  assert.equal(s.get(key(`${dur}_count`, { outcome: "deny" })), 2);
  assert.ok(Math.abs((s.get(key(`${dur}_sum`, { outcome: "deny" })) ?? 0) - 3.0003) < 1e-9);
  assert.equal(s.get(key(`${P}_policy_eval_duration_seconds_count`, { entrypoint: ep })), 2);
  assert.equal(s.get(key(`${P}_policy_reloads_total`, { result: "success" })), 2);
  assert.equal(s.get(key(`${P}_policy_reloads_total`, { result: "failure" })), 1);
  assert.equal(s.get(key(`${P}_policy_revision_info`, { revision: "rev-b" })), 1);
  assert.equal(
    s.get(key(`${P}_policy_revision_info`, { revision: "rev-a" })),
    undefined,
    "old revision gone",
  );
  assert.equal(s.get(`${P}_policy_last_reload_success_timestamp_seconds`), 1_700_000_200);
  assert.equal(s.get(`${P}_policy_last_reload_failure_timestamp_seconds`), 1_700_000_100);
  assert.equal(s.get(`${P}_nats_connected`), 0);
  assert.equal(s.get(`${P}_requests_in_flight`), 3);
  assert.equal(s.get(`${P}_queue_depth`), 4);
  assert.equal(s.get(`${P}_wasm_memory_bytes`), 655360);
  assert.equal(s.get(key(`${P}_requests_dropped_total`, { reason: "expired" })), 1);
  assert.equal(s.get(key(`${P}_nats_status_events_total`, { type: "disconnect" })), 1);
  assert.equal(s.get(key(`${P}_decision_log_dropped_total`, { reason: "write_error" })), 1);
  assert.equal(s.get(key(`${P}_build_info`, { version: "1.2.3", node: process.versions.node })), 1);
  connected = true;
  ({ samples: s, types } = parse(await m.render()));
  assert.equal(s.get(`${P}_nats_connected`), 1, "gauges are pulled at scrape time");
});

test("before any event: the unlabelled series are 0 and no labelled series exists", async () => {
  const { samples: s } = parse(await new CalloutMetrics({ defaultMetrics: false }).render());
  for (const name of [
    "nats_connected",
    "requests_in_flight",
    "queue_depth",
    "wasm_memory_bytes",
    "policy_last_reload_success_timestamp_seconds",
    "policy_last_reload_failure_timestamp_seconds",
  ]) {
    assert.equal(s.get(`${P}_${name}`), 0, name);
  }
  assert.ok(![...s.keys()].some((k) => k.startsWith(`${P}_requests_total{`)));
  assert.ok(![...s.keys()].some((k) => k.startsWith("nodejs_")), "defaultMetrics: false");
});

test("the account label takes only allow-listed names; anything else is empty", async () => {
  const m = new CalloutMetrics({ accounts: ["APP", "SYS"], defaultMetrics: false });
  for (const account of ["APP", "SYS", "EVIL", 'x"}\n', "", undefined]) {
    m.observeDecision({ outcome: "allow", code: "ok", ...(account === undefined ? {} : { account }) });
  }
  const { samples: s } = parse(await m.render());
  const series = [...s.entries()].filter(([k]) => k.startsWith(`${P}_requests_total{`));
  assert.deepEqual(
    new Map(series),
    new Map([
      [key(`${P}_requests_total`, { outcome: "allow", code: "ok", account: "APP" }), 1],
      [key(`${P}_requests_total`, { outcome: "allow", code: "ok", account: "SYS" }), 1],
      [key(`${P}_requests_total`, { outcome: "allow", code: "ok", account: "" }), 4],
    ]),
  );
  const none = new CalloutMetrics({ defaultMetrics: false });
  none.observeDecision({ outcome: "allow", code: "ok", account: "APP" });
  assert.equal(
    parse(await none.render()).samples.get(
      key(`${P}_requests_total`, { outcome: "allow", code: "ok", account: "" }),
    ),
    1,
    "no allow-list: always empty",
  );
});

test("the code label stays bounded: malformed codes and codes past the cap count as other", async () => {
  const m = new CalloutMetrics({ defaultMetrics: false });
  m.observeDecision({ outcome: "deny", code: "user alice has a bad password" });
  m.observeDecision({ outcome: "deny", code: "x".repeat(65) });
  for (let i = 0; i < CalloutMetrics.MAX_CODES + 5; i++)
    m.observeDecision({ outcome: "deny", code: `reason_${i}` });
  const { samples } = parse(await m.render());
  const codes = new Set(
    [...samples.keys()].flatMap((k) =>
      k.startsWith(`${P}_requests_total{`) ? [/code="([^"]*)"/.exec(k)![1]] : [],
    ),
  );
  assert.equal(codes.size, CalloutMetrics.MAX_CODES + 1);
  assert.ok(codes.has("other") && codes.has("reason_0"));
  assert.ok(!codes.has(`reason_${CalloutMetrics.MAX_CODES + 4}`));
  assert.equal(samples.get(key(`${P}_requests_total`, { outcome: "deny", code: "other", account: "" })), 7);
});

test("default process metrics: CPU, memory, heap, event-loop lag, GC", async () => {
  const { samples: s, types } = parse(await new CalloutMetrics().render());
  for (const [name, type] of [
    ["process_cpu_seconds_total", "counter"],
    ["process_start_time_seconds", "gauge"],
    ["process_resident_memory_bytes", "gauge"],
    ["nodejs_heap_size_used_bytes", "gauge"],
    ["nodejs_eventloop_lag_seconds", "gauge"],
    ["nodejs_eventloop_lag_p99_seconds", "gauge"],
    ["nodejs_gc_duration_seconds", "histogram"],
  ]) {
    assert.equal(types.get(name!), type, name);
  }
  assert.ok((s.get("process_resident_memory_bytes") ?? 0) > 0);
  assert.ok((s.get("nodejs_heap_size_used_bytes") ?? 0) > 0);
  const start = s.get("process_start_time_seconds") ?? 0;
  // prom-client rounds the start time to whole seconds: right after start it may lie up to 0.5 s ahead of now.
  assert.ok(start > 1_600_000_000 && start <= Date.now() / 1000 + 1, String(start));
});

test("two instances in one process keep their own registries", async () => {
  const a = new CalloutMetrics({ version: "a" });
  const b = new CalloutMetrics({ version: "b" });
  a.observeDecision({ outcome: "allow", code: "ok" });
  const sa = parse(await a.render()).samples;
  const sb = parse(await b.render()).samples;
  assert.equal(sa.get(key(`${P}_requests_total`, { outcome: "allow", code: "ok", account: "" })), 1);
  assert.ok(![...sb.keys()].some((k) => k.startsWith(`${P}_requests_total{`)), "b saw none of a's decisions");
  assert.ok(sb.has(key(`${P}_build_info`, { version: "b", node: process.versions.node })));
  assert.ok(!sb.has(key(`${P}_build_info`, { version: "a", node: process.versions.node })));
});

test("content type and buckets", () => {
  assert.equal(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(LATENCY_BUCKETS[0], 0.0001);
  assert.equal(LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1], 2);
});
