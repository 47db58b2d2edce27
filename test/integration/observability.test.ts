/**
 * The operator HTTP endpoint in-process, on a random loopback port: routes, methods, readiness codes and
 * the Prometheus content type. (The end-to-end view through `serve` is in cli.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseListen, startHttpServer, type Readiness } from "../../src/http.js";
import { CalloutMetrics, CONTENT_TYPE } from "../../src/metrics.js";

test("parseListen accepts host:port, [v6]:port and :port, and rejects the rest", () => {
  assert.deepEqual(parseListen("127.0.0.1:9464"), { host: "127.0.0.1", port: 9464 });
  assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
  assert.deepEqual(parseListen(":9090"), { host: "0.0.0.0", port: 9090 });
  assert.deepEqual(parseListen("localhost:80"), { host: "localhost", port: 80 });
  for (const bad of ["9090", "host:", "host:99999", "a:b:c", ""])
    assert.throws(() => parseListen(bad), TypeError, bad);
});

test("/healthz, /readyz (200/503 with reasons), /metrics, /status, 404 and 405", async () => {
  const metrics = new CalloutMetrics({ version: "t" });
  let readiness: Readiness = { ready: false, reasons: ["nats: connecting", "policy: not loaded"] };
  const srv = await startHttpServer({
    listen: "127.0.0.1:0",
    metrics: () => metrics.render(),
    readiness: () => readiness,
    status: () => ({ phase: "test" }),
  });
  try {
    assert.match(srv.address, /^127\.0\.0\.1:\d+$/);
    const base = `http://${srv.address}`;
    const h = await fetch(`${base}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: "ok" });
    let r = await fetch(`${base}/readyz`);
    assert.equal(r.status, 503);
    assert.deepEqual(((await r.json()) as Readiness).reasons, ["nats: connecting", "policy: not loaded"]);
    readiness = { ready: true, reasons: [], revision: "abc" };
    r = await fetch(`${base}/readyz`);
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as Readiness).revision, "abc");
    metrics.observeDecision({ outcome: "allow", code: "ok", total_us: 100 });
    const m = await fetch(`${base}/metrics`);
    assert.equal(m.status, 200);
    assert.equal(m.headers.get("content-type"), CONTENT_TYPE);
    assert.match(await m.text(), /^nats_opa_callout_requests_total\{outcome="allow",code="ok"\} 1$/m);
    const s = (await (await fetch(`${base}/status`)).json()) as { phase: string; readiness: Readiness };
    assert.equal(s.phase, "test");
    assert.equal(s.readiness.ready, true);
    const head = await fetch(`${base}/metrics`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    const post = await fetch(`${base}/readyz`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
  } finally {
    await srv.close();
  }
});

test("a throwing status source gives a fixed 500 body, never the error text", async () => {
  const srv = await startHttpServer({
    listen: "127.0.0.1:0",
    readiness: () => {
      throw new Error("secret-ish detail");
    },
  });
  try {
    const r = await fetch(`http://${srv.address}/readyz`);
    assert.equal(r.status, 500);
    const text = await r.text();
    assert.ok(!text.includes("secret-ish"), text);
    assert.equal((await fetch(`http://${srv.address}/metrics`)).status, 404, "metrics disabled");
  } finally {
    await srv.close();
  }
});
