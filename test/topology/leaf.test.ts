/**
 * A hub and a leaf node, in the two shapes `init --leaf` generates, plus the shape it must never generate:
 *
 * - callout: the leaf runs its own auth_callout (fresh keys) served by a replica connected AT the leaf.
 *   Leaf clients are decided by that replica: an allowed user's messages reach the hub's account, a denied
 *   user and an anonymous client are refused. The leaf's own link to the hub uses the generated leaf user
 *   and never reaches the hub's callout. A replica at the hub (holding the leaf's keys) cannot serve the leaf.
 * - callout account linked over a second leaf link (never generated): a hub replica then serves the leaf, and a
 *   plain subscriber at the leaf receives the hub's login requests.
 * - closed: the leaf admits no client at all (anonymous, user/password, any nkey), while its link to the
 *   hub is up.
 * - no auth (hand-written, never generated): any anonymous client of the leaf publishes into the hub's
 *   account without any callout deciding: the bypass docs/operations.md warns about.
 * - a leaf whose link to the hub goes through the hub's callout: the service warns once (topology-watch).
 *
 * The replicas run in-process through the library API (startCallout with a plain handler), so the test can
 * see every decision and the service's log lines. Both server versions.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createUser } from "@nats-io/nkeys";
import { AuthError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { startCallout, type CalloutService } from "../../src/service.js";
import type { AuthorizationRequest, Grant } from "../../src/types.js";
import {
  generateTopology,
  removeTopology,
  secretOf,
  startHub,
  startServerFile,
  waitFor,
  type GeneratedTopology,
  type ServerProc,
  authTimeoutSeconds,
  configModeSetup,
  serverMatrix,
  startNatsServer,
  freePort,
} from "../support/index.js";

const ALICE = { user: "alice", pass: "alice-pw" };
const GRANT: Grant = {
  account: "APP",
  pub: { allow: ["app.>", "_INBOX.>"] },
  sub: { allow: ["app.>", "_INBOX.>"] },
};

/** The policy of this suite: alice with her password, nobody else. Records who was asked. */
function policy(seen: AuthorizationRequest[]) {
  return (req: AuthorizationRequest): Grant => {
    seen.push(req);
    if (req.connect_opts.user === ALICE.user && req.connect_opts.pass === ALICE.pass) return GRANT;
    throw new AuthError("bad_credentials");
  };
}

/** An in-process replica with the generated keys of the hub ("") or the leaf ("leaf_"). */
async function replica(g: GeneratedTopology, url: string, prefix: string, seen: AuthorizationRequest[]) {
  return startCallout({
    config: {
      mode: "config",
      nats: { servers: url, user: "callout", password: secretOf(g, `${prefix}callout_password`) },
      issuer: { seed: secretOf(g, `${prefix}issuer_seed`) },
      xkey: { seed: secretOf(g, `${prefix}xkey_seed`) },
      accounts: ["APP"],
    },
    handler: policy(seen),
  });
}

/** Connect (no reconnect), or the error text. */
async function login(
  url: string,
  o: { user?: string; pass?: string } = {},
): Promise<NatsConnection | string> {
  try {
    return await connect({ servers: url, ...o, reconnect: false, maxReconnectAttempts: 0, timeout: 10_000 });
  } catch (e) {
    return (e as Error).message;
  }
}

async function mustLogin(url: string, o: { user?: string; pass?: string } = {}): Promise<NatsConnection> {
  const nc = await login(url, o);
  if (typeof nc === "string") throw new Error(`login at ${url} failed: ${nc}`);
  return nc;
}

/** Publishes from `from` until `to` (subscribed on `subject`) receives one message; resolves true when it did. */
async function delivered(from: NatsConnection, to: NatsConnection, subject: string): Promise<boolean> {
  let got = false;
  const sub = to.subscribe(subject, {
    callback: () => {
      got = true;
    },
  });
  await to.flush();
  await waitFor(`a message on ${subject} from the leaf to the hub`, async () => {
    from.publish(subject, "hi");
    await from.flush();
    await new Promise((r) => setTimeout(r, 50));
    return got ? true : undefined;
  });
  sub.unsubscribe();
  return got;
}

async function waitForLeafLink(hub: ServerProc): Promise<void> {
  await waitFor(`a leaf link at ${hub.name}`, async () => {
    const lz = await hub.monitorJson<{ leafnodes?: number }>("/leafz");
    return (lz.leafnodes ?? 0) >= 1 ? true : undefined;
  });
}

for (const server of serverMatrix()) {
  const skip = server.missing ? `nats-server ${server.label} missing` : false;
  describe(`hub and leaf (${server.label} ${server.version})`, { skip }, () => {
    const cleanup: (() => Promise<unknown>)[] = [];
    after(async () => {
      for (const f of cleanup.reverse()) await f().catch(() => {});
    });

    test("init --leaf callout: leaf clients are decided by the replica at the leaf", async () => {
      const g = await generateTopology({ clusters: [1], leaf: "callout", timeout: authTimeoutSeconds() });
      cleanup.push(async () => removeTopology(g));
      const [hub] = await startHub(server.bin, g);
      cleanup.push(() => hub!.kill());
      const leafPort = g.options.leaf!.port;
      const leaf = await startServerFile({
        bin: server.bin,
        file: g.topo.leaf!.configFile,
        name: "leaf",
        port: leafPort,
        workDir: g.dir,
      });
      cleanup.push(() => leaf.kill());
      await waitForLeafLink(hub!);
      const hubSeen: AuthorizationRequest[] = [];
      const leafSeen: AuthorizationRequest[] = [];
      const hubSvc = await replica(g, hub!.url, "", hubSeen);
      cleanup.push(() => hubSvc.stop());
      const leafSvc = await replica(g, leaf.url, "leaf_", leafSeen);
      cleanup.push(() => leafSvc.stop());

      const atHub = await mustLogin(hub!.url, ALICE);
      const atLeaf = await mustLogin(leaf.url, ALICE);
      cleanup.push(
        () => atHub.close(),
        () => atLeaf.close(),
      );
      assert.ok(
        await delivered(atLeaf, atHub, "app.leaf-to-hub"),
        "an allowed leaf client reaches the hub's APP",
      );
      assert.ok(
        leafSeen.some((r) => r.connect_opts.user === "alice" && r.server_id.name === "leaf"),
        "the replica at the leaf decided the leaf client",
      );

      const denied = await login(leaf.url, { user: "mallory", pass: "guess" });
      assert.equal(typeof denied, "string", "a denied user is refused at the leaf");
      assert.match(denied as string, /authorization/i);
      assert.ok(
        leafSeen.some((r) => r.connect_opts.user === "mallory"),
        "the leaf's policy saw mallory",
      );
      const anon = await login(leaf.url);
      assert.equal(typeof anon, "string", "an anonymous client is refused at the leaf");

      assert.ok(
        hubSeen.every((r) => r.client_info.kind !== "Leafnode" && r.server_id.name !== "leaf"),
        "the leaf's link used the generated leaf user, not the hub's callout; leaf clients never reach the hub's callout",
      );

      // A replica at the HUB holding the leaf's keys cannot serve the leaf: the leaf's callout account has no link.
      await leafSvc.stop();
      const misplacedSeen: AuthorizationRequest[] = [];
      const misplaced = await startCallout({
        config: {
          mode: "config",
          nats: { servers: hub!.url, user: "callout", password: secretOf(g, "callout_password") },
          issuer: { seed: secretOf(g, "leaf_issuer_seed") },
          xkey: { seed: secretOf(g, "leaf_xkey_seed") },
          accounts: ["APP"],
        },
        handler: policy(misplacedSeen),
      });
      cleanup.push(() => misplaced.stop());
      const refused = await login(leaf.url, ALICE);
      assert.equal(typeof refused, "string", "no replica at the leaf: its clients cannot log in");
      assert.equal(misplacedSeen.length, 0, "the replica at the hub never saw the leaf's requests");
    });

    test("linking the leaf's callout account to the hub (never generated) exposes the hub's login requests", async () => {
      // The shape where a replica at the hub does serve the leaf: a second leaf link binds the leaf's AUTH to the
      // hub's AUTH. It works, and it hands the hub's callout account to whoever holds that link's credentials.
      const g = await generateTopology({ clusters: [1], timeout: authTimeoutSeconds() });
      cleanup.push(async () => removeTopology(g));
      const [hubPort, leafnodePort, leafPort] = [await freePort(), await freePort(), await freePort()];
      const shared = readFileSync(join(g.dir, "nats-server.conf"), "utf8");
      const hubConf = join(g.dir, "linked-hub.conf");
      writeFileSync(
        hubConf,
        `include "nats-server.conf"\nserver_name: "hub"\nlisten: "127.0.0.1:${hubPort}"\n` +
          `leafnodes { listen: "127.0.0.1:${leafnodePort}", authorization { users: [ ` +
          `{ user: "l-app", password: "p-app", account: APP }, { user: "l-auth", password: "p-auth", account: AUTH } ] } }\n`,
      );
      const hub = await startServerFile({
        bin: server.bin,
        file: hubConf,
        name: "linked-hub",
        port: hubPort,
        workDir: g.dir,
      });
      cleanup.push(() => hub.kill());
      // The leaf: the same callout setup (keys included) and two links, APP→APP and AUTH→AUTH.
      const leafConf = join(g.dir, "linked-leaf.conf");
      writeFileSync(
        leafConf,
        shared.replace(/^listen:.*$/m, `listen: "127.0.0.1:${leafPort}"`) +
          `\nserver_name: "leaf"\nleafnodes { remotes: [ ` +
          `{ urls: ["nats-leaf://l-app:p-app@127.0.0.1:${leafnodePort}"], account: APP }, ` +
          `{ urls: ["nats-leaf://l-auth:p-auth@127.0.0.1:${leafnodePort}"], account: AUTH } ] }\n`,
      );
      const leaf = await startServerFile({
        bin: server.bin,
        file: leafConf,
        name: "linked-leaf",
        port: leafPort,
        workDir: g.dir,
      });
      cleanup.push(() => leaf.kill());
      await waitFor("two leaf links", async () => {
        const lz = await hub.monitorJson<{ leafnodes?: number }>("/leafz");
        return (lz.leafnodes ?? 0) >= 2 ? true : undefined;
      });
      const seen: AuthorizationRequest[] = [];
      const svc = await replica(g, hub.url, "", seen);
      cleanup.push(() => svc.stop());
      const atLeaf = await waitFor("a leaf login served from the hub", async () => {
        const nc = await login(leaf.url, ALICE);
        return typeof nc === "string" ? undefined : nc;
      });
      await atLeaf.close();
      assert.ok(
        seen.some((r) => r.server_id.name === "leaf"),
        "the hub's replica decided the leaf's login",
      );

      // The cost: a plain subscriber in the leaf's AUTH receives the hub's authorization requests.
      const spy = await mustLogin(leaf.url, { user: "callout", pass: secretOf(g, "callout_password") });
      cleanup.push(() => spy.close());
      let copies = 0;
      spy.subscribe("$SYS.REQ.USER.AUTH", {
        callback: () => {
          copies++;
        },
      });
      await spy.flush();
      await waitFor("a copy of a hub login's request at the leaf", async () => {
        const nc = await login(hub.url, ALICE);
        if (typeof nc !== "string") await nc.close();
        return copies > 0 ? true : undefined;
      });
    });

    let closed: GeneratedTopology | undefined;
    let closedHub: ServerProc | undefined;

    test("init --leaf closed: the leaf admits no client, its link to the hub is up", async () => {
      closed = await generateTopology({ clusters: [1], leaf: "closed", timeout: authTimeoutSeconds() });
      const g = closed;
      cleanup.push(async () => removeTopology(g));
      [closedHub] = await startHub(server.bin, g);
      cleanup.push(() => closedHub!.kill());
      const leaf = await startServerFile({
        bin: server.bin,
        file: g.topo.leaf!.configFile,
        name: "leaf",
        port: g.options.leaf!.port,
        workDir: g.dir,
      });
      cleanup.push(() => leaf.kill());
      await waitForLeafLink(closedHub!);
      for (const o of [{}, ALICE, { user: "leaf", pass: secretOf(g, "leaf_password") }]) {
        const r = await login(leaf.url, o);
        if (typeof r !== "string") await r.close();
        assert.equal(typeof r, "string", `the closed leaf admitted ${JSON.stringify(Object.keys(o))}`);
      }
      const nk = createUser();
      const r = await connect({
        servers: leaf.url,
        reconnect: false,
        authenticator: () => ({ nkey: nk.getPublicKey(), sig: "" }),
      }).catch((e: Error) => e.message);
      assert.equal(typeof r, "string", "the closed leaf admitted an unknown nkey");
    });

    test("a leaf without auth (never generated) lets any client skip the callout", async () => {
      const g = closed!;
      assert.ok(closedHub, "needs the closed-leaf hub");
      const hubSeen: AuthorizationRequest[] = [];
      const hubSvc = await replica(g, closedHub.url, "", hubSeen);
      cleanup.push(() => hubSvc.stop());
      const port = await freePort();
      const member = g.options.clusters[0]!.members[0]!;
      const conf = join(g.dir, "open-leaf.conf");
      // The anti-pattern: no authorization at all; the link uses the generated leaf user.
      writeFileSync(
        conf,
        `server_name: "open-leaf"\nlisten: "127.0.0.1:${port}"\nleafnodes { remotes: [ { urls: [ ` +
          `"nats-leaf://leaf:${secretOf(g, "leaf_password")}@127.0.0.1:${member.leafnodePort}" ] } ] }\n`,
      );
      const open = await startServerFile({
        bin: server.bin,
        file: conf,
        name: "open-leaf",
        port,
        workDir: g.dir,
      });
      cleanup.push(() => open.kill());
      await waitFor("two leaf links at the hub", async () => {
        const lz = await closedHub!.monitorJson<{ leafnodes?: number }>("/leafz");
        return (lz.leafnodes ?? 0) >= 2 ? true : undefined;
      });
      const atHub = await mustLogin(closedHub.url, ALICE);
      const anon = await mustLogin(open.url); // no credentials at all
      cleanup.push(
        () => atHub.close(),
        () => anon.close(),
      );
      assert.ok(
        await delivered(anon, atHub, "app.bypass"),
        "the anonymous leaf client published into the hub's APP",
      );
      assert.ok(
        hubSeen.every((r) => r.connect_opts.user !== undefined),
        "no callout decided the anonymous client (the hub's callout only saw alice)",
      );
    });

    test("a leaf link admitted through the hub's callout makes the service warn once, without secrets", async () => {
      const cm = configModeSetup({ xkey: true });
      const leafPort = await freePort();
      const hub = await startNatsServer({
        bin: server.bin,
        config: cm.config + `\nleafnodes { listen: "127.0.0.1:${leafPort}" }\n`,
      });
      cleanup.push(() => hub.stop());
      const lines: string[] = [];
      const logger = createLogger({
        level: "info",
        destination: { write: (s: string) => void lines.push(s) },
      });
      const seen: AuthorizationRequest[] = [];
      let leafDecisions = 0;
      const svc: CalloutService = await startCallout({
        config: {
          mode: "config",
          nats: { servers: hub.url, user: cm.callout.user, password: cm.callout.password },
          issuer: { seed: cm.issuer.seed },
          xkey: { seed: cm.xkey!.seed },
          accounts: ["APP"],
        },
        handler: policy(seen),
        logger,
        // The service logs topology lines before onResult: counting here means those lines are written.
        onResult: (e) => {
          if (e.result.request?.client_info.kind === "Leafnode") leafDecisions++;
        },
      });
      cleanup.push(() => svc.stop());
      const leaf = await startNatsServer({
        bin: server.bin,
        config:
          `server_name: "edge"\naccounts { APP { users: [ { nkey: "${createUser().getPublicKey()}" } ] } }\n` +
          `leafnodes { remotes: [ { urls: [ "nats-leaf://${ALICE.user}:${ALICE.pass}@127.0.0.1:${leafPort}" ], account: APP } ] }\n`,
      });
      cleanup.push(() => leaf.stop());
      await waitFor("a leafnode request at the hub's callout", () =>
        seen.some((r) => r.client_info.kind === "Leafnode") ? true : undefined,
      );
      const warn = await waitFor("the leafnode warning", () =>
        lines.find((l) => l.includes('"level":"warn"') && l.includes("leafnode connection was admitted")),
      );
      assert.match(warn, /"account":"APP"/);
      // Force a second leaf login: the warning is not repeated for the same server.
      await leaf.restart();
      await waitFor("a second leafnode decision", () => (leafDecisions >= 2 ? true : undefined));
      assert.equal(lines.filter((l) => l.includes("leafnode connection was admitted")).length, 1);
      for (const l of lines)
        assert.ok(!l.includes(ALICE.pass) && !l.includes(cm.callout.password), `secret in ${l}`);
    });
  });
}
