/**
 * The NATS Object Store bundle source against a real JetStream-enabled nats-server (both versions of the
 * matrix): the current object is delivered at start, each upload reaches every watching replica, a bad upload is
 * refused while the last good stays, a missing bucket is retried until it appears, and the watch survives a
 * nats-server restart.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { ObjectStoreBundleSource, uploadBundle } from "../../src/policy/sources/object-store.js";
import {
  cleanupBundleHelpers,
  opaBundle,
  tmpDir,
  serverMatrix,
  startNatsServer,
  OPA_BIN,
  skipWithoutOpa,
} from "../support/index.js";

after(cleanupBundleHelpers);

const dataFor = (n: number) => JSON.stringify({ revision_marker: n });

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const server of serverMatrix()) {
  describe(
    `object store bundle source, nats-server ${server.label} ${server.version}`,
    {
      skip: server.missing ? `nats-server ${server.label} not built (make tools)` : skipWithoutOpa,
    },
    () => {
      const bundles = OPA_BIN ? [1, 2, 3].map((n) => opaBundle({ data: dataFor(n), revision: `r${n}` })) : [];

      test("delivers the current object, then every upload to every replica; bad uploads keep the last good", async () => {
        const store = mkdtempSync(path.join(tmpdir(), "os-src-js-"));
        await using ns = await startNatsServer({
          bin: server.bin,
          config: `jetstream { store_dir: "${store}" }`,
        });
        const nc = await connect({ servers: ns.url });
        const replicas = [0, 1, 2].map(() => {
          const target = path.join(tmpDir("os-src-"), "bundle.tar.gz");
          return {
            target,
            src: new ObjectStoreBundleSource({
              nc,
              bucket: "policy",
              name: "authz",
              target,
              maxRetryMs: 200,
            }),
          };
        });
        try {
          await uploadBundle(nc, { bucket: "policy", name: "authz", bytes: bundles[0]! });
          for (const r of replicas) await r.src.start();
          for (const r of replicas) {
            assert.deepEqual(readFileSync(r.target), bundles[0]);
            assert.equal(r.src.status().revision, "r1");
            assert.equal(r.src.status().watching, true);
          }
          const t0 = performance.now();
          const all = Promise.all(replicas.map((r) => once(r.src, "delivered")));
          await uploadBundle(nc, { bucket: "policy", name: "authz", bytes: bundles[1]! });
          await all;
          const ms = performance.now() - t0;
          for (const r of replicas) assert.deepEqual(readFileSync(r.target), bundles[1]);
          console.log(`  upload → all 3 replicas' bundle files replaced: ${ms.toFixed(0)} ms`);

          // A truncated upload: refused, reported, the last good bundle stays.
          const failed = Promise.all(replicas.map((r) => once(r.src, "failed")));
          await uploadBundle(nc, { bucket: "policy", name: "authz", bytes: bundles[2]!.subarray(0, 100) });
          const [errs] = await failed;
          assert.match(String((errs as Error[])[0]?.message), /invalid bundle/);
          for (const r of replicas) {
            assert.deepEqual(readFileSync(r.target), bundles[1]);
            assert.ok(r.src.status().consecutive_failures > 0);
          }
          // Another object in the same bucket is not ours.
          await uploadBundle(nc, { bucket: "policy", name: "other", bytes: bundles[0]! });
          const good = Promise.all(replicas.map((r) => once(r.src, "delivered")));
          await uploadBundle(nc, { bucket: "policy", name: "authz", bytes: bundles[2]! });
          await good;
          for (const r of replicas) {
            assert.deepEqual(readFileSync(r.target), bundles[2]);
            assert.equal(r.src.status().consecutive_failures, 0);
          }
        } finally {
          for (const r of replicas) await r.src.stop();
          await nc.close();
        }
      });

      test("a missing bucket is retried until it exists; the watch survives a nats-server restart", async () => {
        const store = mkdtempSync(path.join(tmpdir(), "os-src-js-"));
        await using ns = await startNatsServer({
          bin: server.bin,
          config: `jetstream { store_dir: "${store}" }`,
        });
        const nc = await connect({ servers: ns.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
        const target = path.join(tmpDir("os-src-"), "bundle.tar.gz");
        writeFileSync(target, "last good");
        const src = new ObjectStoreBundleSource({
          nc,
          bucket: "late",
          name: "authz",
          target,
          maxRetryMs: 200,
        });
        try {
          await src.start();
          assert.equal(src.status().watching, false);
          assert.ok(src.status().last_error, "a missing bucket is reported");
          assert.equal(readFileSync(target, "utf8"), "last good");
          await uploadBundle(nc, { bucket: "late", name: "authz", bytes: bundles[0]! });
          await until(() => src.status().revision === "r1", "the late bucket's bundle");
          assert.deepEqual(readFileSync(target), bundles[0]);

          await ns.restart();
          const next = once(src, "delivered");
          // Uploading needs the client to be back; retry until the server accepts it.
          await until(() => !nc.isClosed() && nc.isDraining() === false, "client");
          for (;;) {
            try {
              await uploadBundle(nc, { bucket: "late", name: "authz", bytes: bundles[1]! });
              break;
            } catch {
              await new Promise((r) => setTimeout(r, 100));
            }
          }
          await next;
          assert.deepEqual(readFileSync(target), bundles[1]);
        } finally {
          await src.stop();
          await nc.close();
        }
      });
    },
  );
}
