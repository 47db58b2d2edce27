import { test } from "node:test";
import assert from "node:assert/strict";
import { CalloutMetrics, Counter, Histogram, LATENCY_BUCKETS, Registry } from "../../src/metrics.js";

/** Parse exposition text into name{labels} → value, checking every sample line's syntax. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("# HELP ")) continue;
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      assert.ok(name && type && ["counter", "gauge", "histogram"].includes(type), line);
      assert.ok(!types.has(name), `duplicate TYPE for ${name}`);
      types.set(name, type);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$/.exec(
      line,
    );
    assert.ok(m, `bad sample line: ${line}`);
    const v = m[3] === "+Inf" ? Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(v), line);
    out.set(`${m[1]}${m[2] ?? ""}`, v);
  }
  return out;
}

test("counter with labels renders and escapes label values", () => {
  const r = new Registry();
  const c = r.counter("x_total", "help with \\ and\nnewline", ["a"]);
  c.inc({ a: 'q"uo\\te' });
  c.inc({ a: 'q"uo\\te' }, 2);
  c.inc({ a: "b" });
  const text = r.render();
  assert.match(text, /# HELP x_total help with \\\\ and\\nnewline/);
  const p = parse(text);
  assert.equal(p.get('x_total{a="q\\"uo\\\\te"}'), 3);
  assert.equal(p.get('x_total{a="b"}'), 1);
  assert.throws(() => c.inc({ nope: "1" }), /unknown label/);
  assert.throws(() => new Counter("y", "h").inc(undefined, -1), /cannot decrease/);
});

test("histogram buckets are cumulative with +Inf = count, and sum adds up", () => {
  const h = new Histogram("lat_seconds", "h", [0.001, 0.01, 0.1], ["o"]);
  for (const v of [0.0005, 0.001, 0.005, 0.05, 5]) h.observe(v, { o: "allow" });
  const p = parse(["# TYPE lat_seconds histogram", ...h.render()].join("\n"));
  assert.equal(p.get('lat_seconds_bucket{o="allow",le="0.001"}'), 2, "le is inclusive");
  assert.equal(p.get('lat_seconds_bucket{o="allow",le="0.01"}'), 3);
  assert.equal(p.get('lat_seconds_bucket{o="allow",le="0.1"}'), 4);
  assert.equal(p.get('lat_seconds_bucket{o="allow",le="+Inf"}'), 5);
  assert.equal(p.get('lat_seconds_count{o="allow"}'), 5);
  assert.ok(Math.abs((p.get('lat_seconds_sum{o="allow"}') ?? 0) - 5.0565) < 1e-9);
  assert.throws(() => new Histogram("h2", "h", [1, 1]), /distinct/);
});

test("latency buckets span 100 µs to 2 s", () => {
  assert.equal(LATENCY_BUCKETS[0], 0.0001);
  assert.equal(LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1], 2);
});

test("CalloutMetrics: decisions, reloads, revision info, live state, valid exposition", () => {
  const m = new CalloutMetrics({ version: "1.2.3" });
  let connected = false;
  m.bindState({
    connected: () => connected,
    inFlight: () => 3,
    queueDepth: () => 4,
    wasmMemoryBytes: () => 655360,
  });
  m.observeDecision({
    outcome: "allow",
    code: "ok",
    total_us: 450,
    eval_us: 12,
    entrypoint: "nats/authz/decision",
  });
  m.observeDecision({
    outcome: "deny",
    code: "bad_credentials",
    total_us: 300,
    eval_us: 9,
    entrypoint: "nats/authz/decision",
  });
  m.observeDecision({ outcome: "deny", code: "bad_credentials", total_us: 3_000_000 });
  m.observeDecision({ outcome: "abort", code: "auth_aborted" });
  m.observeReload(true, "rev-a", new Date(1_700_000_000_000));
  m.observeReload(false, undefined, new Date(1_700_000_100_000));
  m.observeReload(true, "rev-b", new Date(1_700_000_200_000));
  m.observeDropped("expired");
  m.observeNatsEvent("disconnect");
  let p = parse(m.render());
  assert.equal(p.get('nats_opa_callout_requests_total{outcome="allow",code="ok"}'), 1);
  assert.equal(p.get('nats_opa_callout_requests_total{outcome="deny",code="bad_credentials"}'), 2);
  assert.equal(p.get('nats_opa_callout_requests_total{outcome="abort",code="auth_aborted"}'), 1);
  assert.equal(p.get('nats_opa_callout_request_duration_seconds_bucket{outcome="allow",le="0.0005"}'), 1);
  assert.equal(p.get('nats_opa_callout_request_duration_seconds_bucket{outcome="allow",le="0.00025"}'), 0);
  assert.equal(p.get('nats_opa_callout_request_duration_seconds_bucket{outcome="deny",le="2"}'), 1);
  assert.equal(p.get('nats_opa_callout_request_duration_seconds_count{outcome="deny"}'), 2);
  assert.equal(
    p.get('nats_opa_callout_policy_eval_duration_seconds_count{entrypoint="nats/authz/decision"}'),
    2,
  );
  assert.equal(p.get('nats_opa_callout_policy_reloads_total{result="success"}'), 2);
  assert.equal(p.get('nats_opa_callout_policy_reloads_total{result="failure"}'), 1);
  assert.equal(p.get('nats_opa_callout_policy_revision_info{revision="rev-b"}'), 1);
  assert.equal(
    p.get('nats_opa_callout_policy_revision_info{revision="rev-a"}'),
    undefined,
    "old revision gone",
  );
  assert.equal(p.get("nats_opa_callout_policy_last_reload_success_timestamp_seconds"), 1_700_000_200);
  assert.equal(p.get("nats_opa_callout_policy_last_reload_failure_timestamp_seconds"), 1_700_000_100);
  assert.equal(p.get("nats_opa_callout_nats_connected"), 0);
  assert.equal(p.get("nats_opa_callout_requests_in_flight"), 3);
  assert.equal(p.get("nats_opa_callout_queue_depth"), 4);
  assert.equal(p.get("nats_opa_callout_wasm_memory_bytes"), 655360);
  assert.equal(p.get('nats_opa_callout_requests_dropped_total{reason="expired"}'), 1);
  assert.equal(p.get('nats_opa_callout_nats_status_events_total{type="disconnect"}'), 1);
  assert.equal(p.get(`nats_opa_callout_build_info{version="1.2.3",node="${process.versions.node}"}`), 1);
  assert.ok((p.get("process_resident_memory_bytes") ?? 0) > 0);
  connected = true;
  p = parse(m.render());
  assert.equal(p.get("nats_opa_callout_nats_connected"), 1, "gauges are pulled at scrape time");
});

test("the code label stays bounded: malformed codes and codes past the cap count as other", () => {
  const m = new CalloutMetrics();
  m.observeDecision({ outcome: "deny", code: "user alice has a bad password" });
  m.observeDecision({ outcome: "deny", code: "x".repeat(65) });
  for (let i = 0; i < CalloutMetrics.MAX_CODES + 5; i++)
    m.observeDecision({ outcome: "deny", code: `reason_${i}` });
  const text = m.render();
  const codes = new Set(
    [...text.matchAll(/^nats_opa_callout_requests_total\{outcome="deny",code="([^"]*)"\}/gm)].map(
      (x) => x[1],
    ),
  );
  assert.equal(codes.size, CalloutMetrics.MAX_CODES + 1);
  assert.ok(codes.has("other"));
  assert.ok(codes.has("reason_0"));
  assert.ok(!codes.has(`reason_${CalloutMetrics.MAX_CODES + 4}`));
  assert.equal(parse(text).get('nats_opa_callout_requests_total{outcome="deny",code="other"}'), 7);
});
