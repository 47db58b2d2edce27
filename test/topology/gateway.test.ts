/**
 * A supercluster as `init --gateways 2` generates it: cluster 1 (two servers) and cluster 2 (one server)
 * joined by authenticated gateways, one replica in each cluster (in-process, recording which server each
 * request came from). Finds out, and pins, where logins are answered:
 *
 * - with a replica in every cluster, each cluster's logins are answered by its own replica, also from the
 *   cluster-1 server that has no replica of its own (queue subscribers of the local cluster win over the
 *   gateway);
 * - with no replica in cluster 2, its logins cross the gateway and are answered by cluster 1's replica.
 *
 * And the links' passwords: a server without them is refused as a route and as a gateway; with them it joins.
 *
 * Both server versions.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { startCallout } from "../../src/service.js";
import type { AuthorizationRequest, Grant } from "../../src/types.js";
import {
  generateTopology,
  removeTopology,
  secretOf,
  startHub,
  startServerFile,
  waitFor,
  waitForReplicas,
  type GeneratedTopology,
  type ServerProc,
  authTimeoutSeconds,
  serverMatrix,
  freePort,
  spreadStorm,
  CLIENT_PASS,
} from "../support/index.js";

const GRANT: Grant = { account: "APP", pub: { allow: ["app.>"] }, sub: { allow: ["app.>", "_INBOX.>"] } };
const LOGINS = 20;

async function replica(g: GeneratedTopology, url: string, seen: string[]) {
  return startCallout({
    config: {
      mode: "config",
      nats: { servers: url, user: "callout", password: secretOf(g, "callout_password") },
      issuer: { seed: secretOf(g, "issuer_seed") },
      xkey: { seed: secretOf(g, "xkey_seed") },
      accounts: ["APP"],
    },
    handler: (req: AuthorizationRequest) => {
      seen.push(req.server_id.name);
      if (req.connect_opts.pass !== CLIENT_PASS) throw new Error("bad password");
      return GRANT;
    },
  });
}

const count = (xs: string[]): Record<string, number> =>
  xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});

for (const server of serverMatrix()) {
  const skip = server.missing ? `nats-server ${server.label} missing` : false;
  describe(`two clusters joined by gateways (${server.label} ${server.version})`, { skip }, () => {
    let g: GeneratedTopology | undefined;
    let hub: ServerProc[] = [];
    const stops: (() => Promise<void>)[] = [];
    after(async () => {
      for (const s of stops) await s().catch(() => {});
      await Promise.all(hub.map((s) => s.kill()));
      removeTopology(g);
    });

    test("each cluster's logins are answered in that cluster; without a replica, across the gateway", async (t) => {
      g = await generateTopology({ clusters: [2, 1], timeout: authTimeoutSeconds() });
      hub = await startHub(server.bin, g);
      const [a1, a2, b1] = hub as [ServerProc, ServerProc, ServerProc];
      const seenA: string[] = [];
      const seenB: string[] = [];
      const ra = await replica(g, a1.url, seenA);
      stops.push(() => ra.stop());
      const rb = await replica(g, b1.url, seenB);
      stops.push(() => rb.stop());
      await waitForReplicas([a1, a2], "AUTH", "$SYS.REQ.USER.AUTH", 1);

      for (const s of hub) {
        const r = await spreadStorm({ urls: [s.url], n: LOGINS, concurrency: 2 });
        assert.equal(r.failed, 0, `logins on ${s.name}: ${JSON.stringify(r.errors)}`);
      }
      t.diagnostic(
        `replica in cluster 1 (on ${a1.name}) answered ${JSON.stringify(count(seenA))}; ` +
          `replica in cluster 2 (on ${b1.name}) answered ${JSON.stringify(count(seenB))}`,
      );
      assert.deepEqual(
        count(seenA),
        { [a1.name]: LOGINS, [a2.name]: LOGINS },
        "cluster 1's logins stay in cluster 1",
      );
      assert.deepEqual(count(seenB), { [b1.name]: LOGINS }, "cluster 2's logins stay in cluster 2");

      // Cluster 2 loses its replica: its logins cross the gateway to cluster 1's replica.
      await rb.stop();
      seenA.length = 0;
      const r = await spreadStorm({ urls: [b1.url], n: LOGINS, concurrency: 2 });
      t.diagnostic(
        `no replica in cluster 2: ${r.ok}/${LOGINS} logins on ${b1.name} succeeded, answered by cluster 1: ` +
          JSON.stringify(count(seenA)),
      );
      assert.equal(r.failed, 0, `logins on ${b1.name} without a local replica: ${JSON.stringify(r.errors)}`);
      assert.deepEqual(count(seenA), { [b1.name]: LOGINS });
    });

    test("a server without the generated passwords cannot join as a route or a gateway", async () => {
      const [a1] = hub as [ServerProc];
      const m = g!.options.clusters[0]!.members[0]!;
      const rogue = async (label: string, link: string, pw: string | undefined) => {
        const port = await freePort();
        const file = join(g!.dir, `rogue-${label}.conf`);
        const cred = pw === undefined ? "" : `${label === "route" ? "route" : "gateway"}:${pw}@`;
        const body =
          label === "route"
            ? `cluster { name: "callout-1", listen: "127.0.0.1:${await freePort()}", routes: [ "nats-route://${cred}127.0.0.1:${m.clusterPort}" ] }`
            : `gateway { name: "rogue", listen: "127.0.0.1:${await freePort()}", gateways: [ { name: "callout-1", urls: [ "nats://${cred}127.0.0.1:${m.gatewayPort}" ] } ] }`;
        writeFileSync(file, `server_name: "rogue-${label}-${link}"\nlisten: "127.0.0.1:${port}"\n${body}\n`);
        return startServerFile({
          bin: server.bin,
          file,
          name: `rogue-${label}-${link}`,
          port,
          workDir: g!.dir,
        });
      };
      const peers = async () => {
        const rz = await a1.monitorJson<{ routes?: { remote_name?: string }[] }>("/routez");
        const gz = await a1.monitorJson<{ inbound_gateways?: Record<string, unknown> }>("/gatewayz");
        return {
          routes: (rz.routes ?? []).map((r) => r.remote_name),
          gateways: Object.keys(gz.inbound_gateways ?? {}),
        };
      };
      for (const label of ["route", "gateway"]) {
        const without = await rogue(label, "nopass", undefined);
        await waitFor(`${label} without password refused`, () =>
          /authorization violation/i.test(without.log()) ? true : undefined,
        );
        const p = await peers();
        assert.ok(
          !p.routes.includes(without.name) && !p.gateways.includes("rogue"),
          `${label} joined: ${JSON.stringify(p)}`,
        );
        await without.kill();
        // Control: with the generated password the same server does join (so the refusal above is the password's).
        const withPw = await rogue(label, "pass", secretOf(g!, `${label}_password`));
        await waitFor(`${label} with the password joins`, async () => {
          const q = await peers();
          return q.routes.includes(withPw.name) || q.gateways.includes("rogue") ? true : undefined;
        });
        await withPw.kill();
      }
    });
  });
}
