/**
 * A routed cluster as `init --cluster 3` generates it (same callout config on every member, authenticated
 * routes), with two replicas of the real service on different servers, each given ONE server URL:
 *
 * 1. logins on every server succeed, whichever server the replicas sit on (the split is reported);
 * 2. the server under replica 1 is SIGKILLed mid-storm: replica 1 reconnects to a survivor (discovered
 *    URLs; the time is reported), logins continue, and only logins in flight through the dead server fail;
 * 3. replica 2 is SIGTERMed under a storm: it drains, 0 logins are lost;
 * 4. replica 2 (restarted) is SIGKILLed under a storm: the loss is bounded by what can be in flight on it
 *    (the storm's concurrency), and every loss is an authorization timeout.
 *
 * Runs on both server versions. TOPOLOGY_SCALE=full for larger storms.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  serverMatrix,
  authTimeoutSeconds,
  generateTopology,
  removeTopology,
  secretOf,
  startHub,
  waitForReplicas,
  type GeneratedTopology,
  type ServerProc,
  skipWithoutOpa,
  CLIENT_PASS,
  TOPOLOGY_FULL as FULL,
  TOPOLOGY_SCALE_NAME as SCALE_NAME,
  decisionsByServer,
  dropsOf,
  spreadStorm,
  startReplica,
  topologyPolicyDir,
  type Replica,
} from "../support/index.js";

const LOGINS_PER_SERVER = FULL ? 200 : 30;
const STORM = FULL ? 3000 : 400;
const CONCURRENCY = 20;
const AUTH = "$SYS.REQ.USER.AUTH";

/** Failures of a storm must all be authorization failures (the server's timeout), nothing else. */
function assertOnlyAuthFailures(errors: Record<string, number>): void {
  for (const m of Object.keys(errors)) assert.match(m, /authorization|timeout/i, `unexpected failure: ${m}`);
}

for (const server of serverMatrix()) {
  const skip = server.missing ? `nats-server ${server.label} missing` : skipWithoutOpa;
  describe(
    `routed cluster of 3, two replicas (${server.label} ${server.version}, ${SCALE_NAME})`,
    { skip },
    () => {
      let g: GeneratedTopology | undefined;
      let hub: ServerProc[] = [];
      const replicas: Replica[] = [];
      let policyDir = "";
      before(async () => {
        g = await generateTopology({ clusters: [3], timeout: authTimeoutSeconds() });
        hub = await startHub(server.bin, g);
        policyDir = topologyPolicyDir(g.dir);
        replicas.push(await startReplica(g, "r1", hub[0]!.url, policyDir));
        replicas.push(await startReplica(g, "r2", hub[1]!.url, policyDir));
        await waitForReplicas(hub, "AUTH", AUTH, 2);
      });
      after(async () => {
        await Promise.all(replicas.map((r) => r.child.stop(2000)));
        await Promise.all(hub.map((s) => s.kill()));
        removeTopology(g);
      });

      test("logins succeed on every server; the split between replicas is reported", async (t) => {
        const [r1, r2] = replicas as [Replica, Replica];
        for (const s of hub) {
          const r = await spreadStorm({ urls: [s.url], n: LOGINS_PER_SERVER, concurrency: 4 });
          assert.equal(r.failed, 0, `logins on ${s.name}: ${JSON.stringify(r.errors)}`);
        }
        t.diagnostic(
          `split of ${LOGINS_PER_SERVER} logins per server: r1 (on s1) ${JSON.stringify(decisionsByServer(r1))}, ` +
            `r2 (on s2) ${JSON.stringify(decisionsByServer(r2))}`,
        );
      });

      test("the server under replica 1 dies mid-storm: r1 fails over (one URL given), logins continue", async (t) => {
        const [s1, s2, s3] = hub as [ServerProc, ServerProc, ServerProc];
        const r1 = replicas[0]!;
        const mark = r1.child.output().length;
        let killedAt = 0;
        let done = 0;
        let killing: Promise<void> | undefined;
        const storm = spreadStorm({
          urls: [s2.url, s3.url],
          n: STORM,
          concurrency: CONCURRENCY,
          onResult: () => {
            if (++done === Math.floor(STORM / 3) && !killing) {
              killedAt = performance.now();
              killing = s1.kill("SIGKILL");
            }
          },
        });
        // r1 was given only s1's URL: it reconnects through the URLs the cluster advertised.
        await r1.child.waitFor(/"state":"connected"/, 30_000, mark);
        const failoverMs = performance.now() - killedAt;
        const r = await storm;
        await killing;
        t.diagnostic(
          `s1 SIGKILLed after ${Math.floor(STORM / 3)} of ${STORM} logins on s2+s3 (concurrency ${CONCURRENCY}): ` +
            `r1 reconnected ${failoverMs.toFixed(0)} ms later; ${r.ok} ok, ${r.failed} failed ${JSON.stringify(r.errors)}`,
        );
        assert.ok(
          r.failed <= CONCURRENCY,
          `only logins in flight through s1 may fail (≤ ${CONCURRENCY}), got ${r.failed}`,
        );
        assertOnlyAuthFailures(r.errors);
        await waitForReplicas(hub, "AUTH", AUTH, 2);
        const afterKill = await spreadStorm({ urls: [s2.url, s3.url], n: 60, concurrency: 4 });
        assert.equal(afterKill.failed, 0, `logins after the failover: ${JSON.stringify(afterKill.errors)}`);
        assert.ok(decisionsByServer(r1)["callout-s1"] !== undefined, "r1 served before the failover");
      });

      test("replica 2 SIGTERMed under a storm: it drains, 0 logins lost", async (t) => {
        const [s2, s3] = [hub[1]!, hub[2]!];
        const r2 = replicas[1]!;
        let n = 0;
        let stopping: Promise<void> | undefined;
        const res = await spreadStorm({
          urls: [s2.url, s3.url],
          n: STORM,
          concurrency: CONCURRENCY,
          onResult: () => {
            if (++n === Math.floor(STORM / 3)) stopping = r2.child.stop(15_000);
          },
        });
        await stopping;
        t.diagnostic(
          `r2 SIGTERMed under a storm of ${STORM}: ${res.ok} ok, ${res.failed} failed ${JSON.stringify(res.errors)}; ` +
            `r2 exit ${String(await r2.child.exited)}, requests r2 dropped unanswered ${JSON.stringify(dropsOf(r2))}`,
        );
        assert.equal(res.failed, 0, `a SIGTERMed replica must lose nothing: ${JSON.stringify(res.errors)}`);
      });

      test("a replica SIGKILLed under a storm loses at most the logins in flight on it", async (t) => {
        const [s2, s3] = [hub[1]!, hub[2]!];
        if (replicas[1]!.child.alive()) await replicas[1]!.child.stop(15_000);
        const r2b = await startReplica(g!, "r2b", s3.url, policyDir);
        replicas.push(r2b);
        await waitForReplicas(hub, "AUTH", AUTH, 2);
        let n = 0;
        let killing: Promise<void> | undefined;
        const res = await spreadStorm({
          urls: [s2.url, s3.url],
          n: STORM,
          concurrency: CONCURRENCY,
          onResult: () => {
            if (++n === Math.floor(STORM / 3)) killing = r2b.child.kill();
          },
        });
        await killing;
        t.diagnostic(
          `r2 SIGKILLed after ${Math.floor(STORM / 3)} of ${STORM} logins at concurrency ${CONCURRENCY}: ` +
            `${res.ok} ok, ${res.failed} lost ${JSON.stringify(res.errors)}; r2 had decided ${Object.values(decisionsByServer(r2b)).reduce((a, b) => a + b, 0)}`,
        );
        assert.equal(res.ok + res.failed, STORM);
        assert.ok(
          res.failed <= CONCURRENCY,
          `loss must be bounded by the logins in flight (≤ ${CONCURRENCY})`,
        );
        assertOnlyAuthFailures(res.errors);
        assert.equal(r2b.child.alive(), false);
      });

      test("no replica log line or decision event carries a secret", () => {
        const keys = ["callout_password", "issuer_seed", "xkey_seed", "route_password"];
        const secrets = [CLIENT_PASS, ...keys.map((k) => secretOf(g!, k))];
        for (const r of replicas) {
          const text =
            r.child.output() + (existsSync(r.decisionLog) ? readFileSync(r.decisionLog, "utf8") : "");
          assert.ok(text.length > 0, `${r.label} wrote something`);
          secrets.forEach((sec, i) =>
            assert.ok(!text.includes(sec), `${r.label}: secret #${i} in its output`),
          );
        }
      });
    },
  );
}
