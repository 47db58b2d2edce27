/**
 * Live revocation against real nats-servers (both matrix versions; config mode, and operator mode with a SYS user
 * JWT as the kicker), the real opa and real nats.js
 * clients: a data edit re-decides the connections the service authorized; revoked ones are kicked through
 * `$SYS.REQ.SERVER.<id>.KICK` and reconnect through the callout (denied, or with the narrower grant); unchanged ones
 * never see a disconnect; in a two-server cluster the kick reaches the right server and nobody else; a credential
 * without the KICK right gives a clear error while logins keep being served.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { pino } from "pino";
import {
  serverMatrix,
  type NatsServer,
  skipWithoutOpa,
  nextAsyncError,
  until,
  KICKER,
  NO_KICK,
  startLiveStack,
  writeUsers,
  type LiveStack,
  type UserSpec,
} from "../support/index.js";
import { Kicker } from "../../src/live/kicker.js";

interface Client {
  name: string;
  nc: NatsConnection;
  /** Status event types seen (disconnect, reconnect, …). */
  events: string[];
  closedWith: Promise<Error | void>;
}

async function client(
  url: string,
  user: string,
  password: string,
  auth: Partial<NodeConnectionOptions> = { user, pass: password },
): Promise<Client> {
  const nc = await connect({
    servers: url,
    ...auth,
    name: user,
    reconnectTimeWait: 50,
    maxReconnectAttempts: 20,
  });
  const events: string[] = [];
  void (async () => {
    for await (const s of nc.status()) events.push(s.type);
  })();
  return { name: user, nc, events, closedWith: nc.closed() };
}

const spec = (password: string, pub: string[], sub: string[] = ["_INBOX.>"]): UserSpec => ({
  password,
  account: "APP",
  pub,
  sub,
});

const kicks = (s: LiveStack) => s.live.status();

/** `p`, or a failure naming what never happened (no test may hang on a kick that went elsewhere). */
async function within<T>(p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}

for (const b of serverMatrix()) {
  describe(
    `live revocation (nats-server ${b.label} ${b.version})`,
    { skip: b.missing ? `${b.label} missing` : skipWithoutOpa },
    () => {
      describe("one server", () => {
        let stack: LiveStack;
        const users = {
          alice: spec("alice-pw", ["x.>"]),
          bob: spec("bob-pw", ["y.>", "_INBOX.>"]),
          carol: spec("carol-pw", ["z.>"]),
        };
        const lines: string[] = [];
        before(async () => {
          // Trace level: every line revocation writes is scanned for the clients' passwords below.
          const logger = pino({ level: "trace" }, { write: (l: string) => void lines.push(l) });
          stack = await startLiveStack({ bin: b.bin, users, logger });
        });
        after(async () => {
          await stack?.stop();
        });

        it("removed password → kicked, reconnect denied; narrowed → kicked, reconnects narrower; unchanged → untouched", async () => {
          const url = stack.servers[0]!.url;
          const alice = await client(url, "alice", "alice-pw");
          const bob = await client(url, "bob", "bob-pw");
          const carol = await client(url, "carol", "carol-pw");
          await until(() => kicks(stack).liveGrants === 3, "three live grants");
          bob.nc.publish("y.b", "before"); // allowed before the edit
          await bob.nc.flush();

          const reloadsBefore = stack.reloads.length;
          writeUsers(stack.dir, { bob: spec("bob-pw", ["y.a", "_INBOX.>"]), carol: users.carol });
          await until(() => stack.reloads.length > reloadsBefore, "the data edit to load", 30_000);
          assert.equal(stack.reloads.at(-1)!.result, "ok");

          // alice: kicked, and the reconnect is denied by the callout; nats.js gives up with an auth error.
          const aliceEnd = await within(alice.closedWith, "alice's connection to end");
          assert.ok(alice.events.includes("disconnect"), `alice events: ${alice.events}`);
          assert.match(String(aliceEnd), /Authorization Violation/i);
          const aliceDenied = stack.results.filter(
            (r) => r.result.request?.connect_opts.user === "alice" && r.result.outcome.kind === "deny",
          );
          assert.ok(aliceDenied.length >= 1, "alice's reconnect went through the callout and was denied");

          // bob: kicked, reconnected with the narrower grant (y.a yes, y.b a permissions violation).
          await until(() => bob.events.includes("reconnect"), "bob to reconnect");
          assert.ok(bob.events.includes("disconnect"));
          const violation = nextAsyncError(bob.nc);
          bob.nc.publish("y.b", "after");
          assert.match(
            String(await within(violation, "bob's permissions violation")),
            /Permissions Violation for Publish to "y\.b"/,
          );
          assert.ok(!bob.nc.isClosed());

          await stack.live.revocation!.idle();
          // carol: never disconnected.
          assert.deepEqual(
            carol.events.filter((e) => e === "disconnect" || e === "reconnect"),
            [],
            `carol events: ${carol.events}`,
          );
          assert.ok(!carol.nc.isClosed());
          // The registry now holds bob's new login and carol's confirmed one.
          assert.equal(kicks(stack).liveGrants, 2);
          // The run's log: two kicks (alice, bob), and never a password.
          const text = lines.join("");
          assert.match(text, /"event":"live_reevaluation"/);
          assert.equal(text.match(/"msg":"connection kicked"/g)?.length, 2, text);
          for (const u of Object.values(users))
            assert.ok(!text.includes(u.password), "a password reached the log");
          await bob.nc.close();
          await carol.nc.close();
        });

        it("the kicker: an unknown cid is gone; close() releases kicks still waiting for the rate limit", async () => {
          const k = await Kicker.start({
            connection: { servers: stack.servers[0]!.url, user: KICKER.user, pass: KICKER.password },
            ratePerSecond: 1,
          });
          const carol = await client(stack.servers[0]!.url, "carol", "carol-pw");
          const sid = carol.nc.info!.server_id;
          assert.equal(await k.kick({ serverId: sid, cid: 999_999 }), "gone");
          const waiting = [1, 2, 3].map((i) => k.kick({ serverId: sid, cid: 999_999 + i }));
          await k.close();
          assert.deepEqual(await within(Promise.all(waiting), "queued kicks to return"), [
            "failed",
            "failed",
            "failed",
          ]);
          await carol.nc.close();
        });
      });

      describe("two-server cluster", () => {
        let stack: LiveStack;
        const users: Record<string, UserSpec> = {};
        for (let i = 0; i < 6; i++) users[`u${i}`] = spec(`pw${i}`, [`u${i}.>`]);
        before(async () => {
          stack = await startLiveStack({ bin: b.bin, users, cluster: true });
        });
        after(async () => {
          await stack?.stop();
        });

        it("kicks the revoked client on the other server, and not the client with the same cid here", async () => {
          const [a, other] = stack.servers as [NatsServer, NatsServer];
          // Interest in the callout subject reaches the second server once the route is up: retry the first login.
          let first: Client | undefined;
          for (let i = 0; i < 50 && !first; i++) {
            first = await client(other.url, "u0", "pw0").catch(() => undefined);
            if (!first) await new Promise((r) => setTimeout(r, 200));
          }
          assert.ok(first, "login through the second server");
          const onA = [
            await client(a.url, "u3", "pw3"),
            await client(a.url, "u4", "pw4"),
            await client(a.url, "u5", "pw5"),
          ];
          await until(() => kicks(stack).liveGrants === 4, "four live grants");
          const reg = stack.live.revocation!.registry;
          const aId = onA[0]!.nc.info!.server_id;
          const cidsA = new Set(
            reg
              .snapshot()
              .filter((g) => g.serverId === aId)
              .map((g) => g.cid),
          );
          // Fill the second server with u0 logins until its next cid is one a client on the first server has, then
          // connect the target: a KICK addressed by cid alone would hit that client on the first server.
          const onB = [first];
          const lastCidB = () =>
            Math.max(
              ...reg
                .snapshot()
                .filter((g) => g.serverId !== aId)
                .map((g) => g.cid),
            );
          for (let i = 0; i < 40 && !cidsA.has(lastCidB() + 1); i++) {
            onB.push(await client(other.url, "u0", "pw0"));
            await until(() => kicks(stack).liveGrants === 4 + i + 1, "the login to be recorded");
          }
          const target = await client(other.url, "u1", "pw1");
          await until(() => reg.snapshot().some((g) => g.grant.name === "u1"), "the target's grant");
          const tg = reg.snapshot().find((g) => g.grant.name === "u1")!;
          assert.notEqual(tg.serverId, aId);
          assert.ok(cidsA.has(tg.cid), `target cid ${tg.cid} also used on the first server (${[...cidsA]})`);
          onB.push(await client(other.url, "u2", "pw2"));

          const n = stack.reloads.length;
          const { u1: _revoked, ...rest } = users;
          writeUsers(stack.dir, rest);
          await until(() => stack.reloads.length > n, "the data edit to load", 30_000);
          assert.match(
            String(await within(target.closedWith, "the target's connection to end")),
            /Authorization Violation/i,
          );
          assert.ok(target.events.includes("disconnect"));
          await stack.live.revocation!.idle();
          for (const c of [...onA, ...onB]) {
            assert.deepEqual(
              c.events.filter((e) => e === "disconnect"),
              [],
              `${c.name} was disconnected`,
            );
            assert.ok(!c.nc.isClosed(), `${c.name} closed`);
          }
          for (const c of [...onA, ...onB]) await c.nc.close();
        });
      });

      describe("operator mode (the kicker is a SYS user JWT)", () => {
        let stack: LiveStack;
        const users = { alice: spec("alice-pw", ["x.>"]), carol: spec("carol-pw", ["z.>"]) };
        before(async () => {
          stack = await startLiveStack({ bin: b.bin, users, operator: true });
        });
        after(async () => {
          await stack?.stop();
        });

        it("kicks the client whose password was removed; the other is untouched", async () => {
          assert.equal(stack.live.status().ready, true);
          const url = stack.servers[0]!.url;
          const alice = await client(url, "alice", "alice-pw", stack.clientAuth("alice", "alice-pw"));
          const carol = await client(url, "carol", "carol-pw", stack.clientAuth("carol", "carol-pw"));
          await until(() => kicks(stack).liveGrants === 2, "two live grants");
          const n = stack.reloads.length;
          writeUsers(stack.dir, { carol: users.carol });
          await until(() => stack.reloads.length > n, "the data edit to load", 30_000);
          assert.match(
            String(await within(alice.closedWith, "alice's connection to end")),
            /Authorization Violation/i,
          );
          await stack.live.revocation!.idle();
          assert.deepEqual(
            carol.events.filter((e) => e === "disconnect"),
            [],
          );
          await carol.nc.close();
        });
      });

      describe("a credential without the KICK right", () => {
        let stack: LiveStack;
        const lines: string[] = [];
        before(async () => {
          const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(s) });
          stack = await startLiveStack({
            bin: b.bin,
            users: { alice: spec("alice-pw", ["x.>"]) },
            kicker: NO_KICK,
            logger,
          });
        });
        after(async () => {
          await stack?.stop();
        });

        it("logs one clear error naming the missing right; logins are still served", async () => {
          const st = stack.live.status();
          assert.equal(st.ready, false);
          assert.match(st.error ?? "", /Permissions Violation.*\$SYS\.REQ\.SERVER\.\*\.KICK/);
          const errors = lines
            .map((l) => JSON.parse(l) as { level: number; msg: string; code?: string })
            .filter((l) => l.level >= 50);
          assert.equal(errors.length, 1, lines.join(""));
          assert.equal(errors[0]!.code, "revocation_permission_denied");
          assert.match(errors[0]!.msg, /live revocation is OFF/);
          const alice = await client(stack.servers[0]!.url, "alice", "alice-pw");
          assert.ok(!alice.nc.isClosed());
          await alice.nc.close();
          assert.ok(!lines.join("").includes("alice-pw") && !lines.join("").includes(NO_KICK.password));
        });
      });
    },
  );
}
