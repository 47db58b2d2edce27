/**
 * The OPA bundle-service source against a real HTTP(S) server in this process (test/support/bundles.ts):
 * first download, ETag/304, long polling that delivers a change at once, plain polling against a server without
 * long polling, bearer tokens, mutual TLS, and every failure keeping the last good bundle file untouched with an
 * honest status: wrong token, server errors, a truncated archive, a tampered signed bundle, a server that is down
 * and comes back.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import type { ResolvedNats, ResolvedPolicy } from "../../../src/config/types.js";
import { createLogger } from "../../../src/log.js";
import { HttpBundleSource } from "../../../src/policy/sources/http.js";
import { startPolicySource } from "../../../src/policy/sources/index.js";
import { readTarGz } from "../../../src/policy/tar.js";
import {
  cleanupBundleHelpers,
  opaBundle,
  pemPair,
  startBundleServer,
  testPki,
  tmpDir,
  OPA_BIN,
  skipWithoutOpa,
} from "../../support/index.js";

after(cleanupBundleHelpers);

const HOUR = 3_600_000;
const dataFor = (n: number) => JSON.stringify({ revision_marker: n });

/** Resolves once the source reported `count` deliveries (or rejects with its last error after `ms`). */
async function deliveries(src: HttpBundleSource, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await once(src, "delivered");
}

describe("HTTP bundle source (OPA bundle service protocol)", { skip: skipWithoutOpa }, () => {
  const v1 = OPA_BIN ? opaBundle({ data: dataFor(1), revision: "r1" }) : Buffer.alloc(0);
  const v2 = OPA_BIN ? opaBundle({ data: dataFor(2), revision: "r2" }) : Buffer.alloc(0);

  test("downloads once, then 304s leave the file alone; polling picks up a new bundle", async () => {
    const server = await startBundleServer();
    server.publish(v1);
    const target = path.join(tmpDir("http-src-"), "bundle.tar.gz");
    const src = new HttpBundleSource({ url: server.url, target, minDelayMs: 20, maxDelayMs: 40 });
    try {
      await src.start();
      assert.deepEqual(readFileSync(target), v1);
      assert.equal(src.status().revision, "r1");
      const mtime = statSync(target).mtimeMs;
      // Wait for at least two conditional requests answered 304.
      while (server.requests.filter((h) => h["if-none-match"] !== undefined).length < 2) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(statSync(target).mtimeMs, mtime, "a 304 must not rewrite the bundle");
      assert.equal(src.status().consecutive_failures, 0);
      server.publish(v2);
      await deliveries(src, 1);
      assert.deepEqual(readFileSync(target), v2);
      assert.equal(src.status().revision, "r2");
      assert.equal(src.status().long_polling, false);
    } finally {
      await src.stop();
      await server.stop();
    }
  });

  test("long polling: a held request delivers the change without any poll delay", async () => {
    const server = await startBundleServer({ longPoll: true });
    server.publish(v1);
    const target = path.join(tmpDir("http-src-"), "bundle.tar.gz");
    // A one-hour poll delay: only long polling can bring v2 in during this test.
    const src = new HttpBundleSource({
      url: server.url,
      target,
      minDelayMs: HOUR,
      maxDelayMs: HOUR,
      longPollSeconds: 30,
    });
    try {
      await src.start();
      assert.equal(src.status().long_polling, true);
      while (!server.requests.some((h) => h.prefer === "wait=30" && h["if-none-match"] !== undefined)) {
        await new Promise((r) => setTimeout(r, 10));
      }
      server.publish(v2);
      await deliveries(src, 1);
      assert.deepEqual(readFileSync(target), v2);
    } finally {
      await src.stop();
      await server.stop();
    }
  });

  test("bearer token: sent when configured; a wrong one fails without touching the file or leaking the token", async () => {
    const server = await startBundleServer({ token: "s3cret-bundle-token" });
    server.publish(v1);
    const target = path.join(tmpDir("http-src-"), "bundle.tar.gz");
    writeFileSync(target, "last good");
    const bad = new HttpBundleSource({
      url: server.url,
      target,
      token: "wrong-token-value",
      minDelayMs: HOUR,
      maxDelayMs: HOUR,
    });
    await bad.start();
    await bad.stop();
    const st = bad.status();
    assert.equal(st.consecutive_failures, 1);
    assert.match(st.last_error ?? "", /HTTP 401/);
    assert.doesNotMatch(JSON.stringify(st), /wrong-token-value|s3cret/);
    assert.equal(readFileSync(target, "utf8"), "last good");

    const good = new HttpBundleSource({
      url: server.url,
      target,
      token: "s3cret-bundle-token",
      minDelayMs: HOUR,
      maxDelayMs: HOUR,
    });
    await good.start();
    await good.stop();
    assert.deepEqual(readFileSync(target), v1);
    await server.stop();
  });

  test("failures keep the last good bundle and are reported; the source recovers by itself", async () => {
    const server = await startBundleServer();
    server.publish(v1);
    const target = path.join(tmpDir("http-src-"), "bundle.tar.gz");
    const src = new HttpBundleSource({ url: server.url, target, minDelayMs: 10, maxDelayMs: 30 });
    const failures: string[] = [];
    src.on("failed", (e) => failures.push(e.message));
    try {
      await src.start();
      assert.deepEqual(readFileSync(target), v1);
      server.failWith(503);
      while (failures.length < 2) await new Promise((r) => setTimeout(r, 5));
      assert.match(failures[0]!, /HTTP 503/);
      assert.ok(src.status().consecutive_failures >= 2);
      assert.deepEqual(readFileSync(target), v1, "a failing server leaves the last good bundle");
      // A truncated archive is refused before it reaches the file.
      server.failWith(undefined);
      server.publish(v2.subarray(0, Math.floor(v2.length / 2)));
      while (!failures.some((f) => /invalid bundle/.test(f))) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(readFileSync(target), v1);
      server.publish(v2);
      await deliveries(src, 1);
      assert.deepEqual(readFileSync(target), v2);
      assert.equal(src.status().consecutive_failures, 0);
      assert.ok(src.status().last_error, "the last error stays visible after recovery");
    } finally {
      await src.stop();
      await server.stop();
    }
  });

  test("a run of failures ended by 304s is logged once as failing and once as recovered", async () => {
    const server = await startBundleServer();
    server.publish(v1);
    const target = path.join(tmpDir("http-src-"), "bundle.tar.gz");
    const lines: { event?: string; msg?: string }[] = [];
    const logger = createLogger({
      level: "info",
      destination: { write: (l: string) => void lines.push(JSON.parse(l) as { event?: string }) },
    });
    const policy = {
      bundle: target,
      source: {
        kind: "http",
        url: server.url,
        minDelaySeconds: 0.01,
        maxDelaySeconds: 0.02,
        longPollSeconds: 0,
      },
      entrypoint: "nats/authz/decision",
      watch: false,
      pollSeconds: 0,
      opaBinary: OPA_BIN ?? "opa",
    } satisfies ResolvedPolicy;
    const handle = await startPolicySource(
      policy,
      { servers: [], name: "t" } as unknown as ResolvedNats,
      logger,
    );
    assert.ok(handle);
    const events = () => lines.map((l) => l.event).filter((e) => e?.startsWith("bundle_"));
    try {
      assert.deepEqual(events(), ["bundle_downloaded"]);
      server.failWith(503);
      while (handle.status().consecutive_failures < 3) await new Promise((r) => setTimeout(r, 5));
      // Same bundle again: the server answers 304 (no new bundle, so no "delivered" event) and that ends the run.
      const conditional = server.requests.length;
      server.failWith(undefined);
      while (!events().includes("bundle_source_recovered")) await new Promise((r) => setTimeout(r, 5));
      assert.ok(server.requests.length > conditional);
      assert.deepEqual(events(), ["bundle_downloaded", "bundle_source_failed", "bundle_source_recovered"]);
      assert.deepEqual(readFileSync(target), v1);
    } finally {
      await handle.stop();
      await server.stop();
    }
  });

  test("signing configured: a tampered bundle is refused by name, a signed one delivered", async () => {
    const key = pemPair("rsa");
    const signed = opaBundle({ data: dataFor(3), signing: { alg: "RS256", key: key.privPath } });
    const files = readTarGz(signed);
    const server = await startBundleServer();
    const target = path.join(tmpDir("http-src-"), "bundle.tar.gz");
    writeFileSync(target, "last good");
    const signing = { keys: { default: { algorithm: "RS256" as const, key: key.pub } } };
    const src = new HttpBundleSource({
      url: server.url,
      target,
      signing,
      minDelayMs: HOUR,
      maxDelayMs: HOUR,
    });
    // Re-pack with a changed data.json but the original signature.
    const { tarGz } = await import("../../support/index.js");
    const tampered = tarGz(
      Object.fromEntries([...files].map(([k, v]) => [k, k === "/data.json" ? Buffer.from(dataFor(4)) : v])),
    );
    server.publish(tampered);
    await src.start();
    assert.match(src.status().last_error ?? "", /data\.json: digest mismatch/);
    assert.equal(readFileSync(target, "utf8"), "last good");
    await src.stop();
    server.publish(signed);
    const again = new HttpBundleSource({
      url: server.url,
      target,
      signing,
      minDelayMs: HOUR,
      maxDelayMs: HOUR,
    });
    await again.start();
    await again.stop();
    assert.deepEqual(readFileSync(target), signed);
    await server.stop();
  });

  test("mutual TLS: a client certificate is required and used", async () => {
    const pki = testPki();
    const server = await startBundleServer({ tls: pki });
    server.publish(v1);
    const target = path.join(tmpDir("http-src-"), "bundle.tar.gz");
    const noCert = new HttpBundleSource({
      url: server.url,
      target,
      tls: { ca: pki.ca },
      minDelayMs: HOUR,
      maxDelayMs: HOUR,
    });
    await noCert.start();
    await noCert.stop();
    assert.ok(noCert.status().last_error, "without a client certificate the server refuses");
    const withCert = new HttpBundleSource({
      url: server.url,
      target,
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      minDelayMs: HOUR,
      maxDelayMs: HOUR,
    });
    await withCert.start();
    await withCert.stop();
    assert.equal(withCert.status().consecutive_failures, 0);
    assert.deepEqual(readFileSync(target), v1);
    await server.stop();
  });

  test("a server that is down is retried with backoff and picked up when it comes back", async () => {
    const first = await startBundleServer();
    const url = first.url;
    await first.stop();
    const target = path.join(tmpDir("http-src-"), "bundle.tar.gz");
    const src = new HttpBundleSource({ url, target, minDelayMs: 10, maxDelayMs: 200 });
    try {
      await src.start();
      assert.equal(src.status().consecutive_failures, 1);
      assert.match(src.status().last_error ?? "", /ECONNREFUSED/);
      const back = await startBundleServer({ port: Number(new URL(url).port) });
      back.publish(v1);
      try {
        await deliveries(src, 1);
        assert.deepEqual(readFileSync(target), v1);
        assert.equal(src.status().consecutive_failures, 0);
      } finally {
        await back.stop();
      }
    } finally {
      await src.stop();
    }
  });
});
