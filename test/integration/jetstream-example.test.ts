/**
 * The example policy's KV role (policies/data.json role prefs-kv, built by policies/lib/jetstream.rego) end to
 * end: nats-server with JetStream (latest and 2.10, config and operator mode), the service on a copy of
 * policies/ to which only a seeding user is added (role kv-seeder = kv_admin of "prefs", in APP), and the demo
 * users alice and bob with nats.js exactly as docs/jetstream.md tells the browser page to connect
 * (inboxPrefix "_INBOX.<user>", Kvm.open("prefs", {allow_direct: true})). Each reads, writes, watches and lists
 * their own keys; alice's attack table on bob's keys is refused and bob's key survives.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import {
  ATTACKS,
  attackSucceeds,
  attackProblem,
  kvClientAttacks,
  runRawOp,
  type Target,
  startJetStreamStack,
  type JsMode,
  type JsStack,
  EXAMPLE_POLICIES,
  serverMatrix,
  skipWithoutOpa,
} from "../support/index.js";

const BOB_SECRET = "bob-secret-e2e-4b1d";
const SEEDER_PASSWORD = "seeder-" + randomBytes(8).toString("hex");

/** A copy of policies/ plus the seeding user (kv_admin of "prefs"); nothing else changes. */
function examplePolicyWithSeeder(): string {
  const dir = mkdtempSync(join(tmpdir(), "example-js-"));
  cpSync(EXAMPLE_POLICIES, dir, { recursive: true });
  const file = join(dir, "data.json");
  const data = JSON.parse(readFileSync(file, "utf8")) as {
    callout: { roles: Record<string, unknown>; users: Record<string, unknown> };
  };
  data.callout.roles["kv-seeder"] = {
    description: "test setup: creates the bucket",
    jetstream: [{ grant: "kv_admin", bucket: "prefs" }],
  };
  const salt = randomBytes(16).toString("hex");
  data.callout.users.seeder = {
    roles: ["kv-seeder"],
    password: { salt, hmac_sha256: createHmac("sha256", salt).update(SEEDER_PASSWORD).digest("hex") },
  };
  writeFileSync(file, JSON.stringify(data));
  return dir;
}

/** The example's prefs-kv grants (as data.json lists them): kv_read_write and kv_list. */
const EXAMPLE_FUNCTIONS = ["kv_read_write", "kv_list"];

async function ownKeys(kv: KV, user: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of await kv.keys(`${user}.>`)) keys.push(k);
  return keys.sort();
}

for (const sb of serverMatrix()) {
  for (const mode of ["config", "operator"] as JsMode[]) {
    describe(
      `example policy prefs-kv — nats-server ${sb.label} (${sb.version || "missing"}), ${mode} mode`,
      { skip: sb.missing ? `nats-server ${sb.label} binary missing` : skipWithoutOpa },
      () => {
        let stack: JsStack;
        let dir: string;
        const clients: NatsConnection[] = [];
        const login = async (user: string, pass: string): Promise<NatsConnection> => {
          const nc = await connect(stack.clientOptions(user, pass));
          clients.push(nc);
          return nc;
        };
        const open = (nc: NatsConnection) => new Kvm(nc).open("prefs", { allow_direct: true });
        let bobSeq = 0;
        let jsm: JetStreamManager;

        before(async () => {
          dir = examplePolicyWithSeeder();
          stack = await startJetStreamStack({ bin: sb.bin, mode, policyDir: dir });
          const seeder = await login("seeder", SEEDER_PASSWORD);
          await new Kvm(seeder).create("prefs", { history: 5 });
          // a consumer of bob's (for the consumer attacks), made by the bucket admin
          jsm = await jetstreamManager(seeder);
          await jsm.consumers.add("KV_prefs", {
            durable_name: "bob",
            filter_subject: "$KV.prefs.bob.>",
            ack_policy: AckPolicy.Explicit,
          });
        });

        after(async () => {
          for (const nc of clients) await nc.close().catch(() => {});
          await stack?.stop();
          if (dir) rmSync(dir, { recursive: true, force: true });
        });

        it("bob and alice put, get, update, delete, watch and list their own keys", async () => {
          const bob = await open(await login("bob", "bob-pw"));
          bobSeq = await bob.put("bob.secret", BOB_SECRET);
          assert.equal((await bob.get("bob.secret"))?.string(), BOB_SECRET);

          const alice = await open(await login("alice", "alice-pw"));
          const r1 = await alice.put("alice.theme", "dark");
          await alice.update("alice.theme", "light", r1);
          await alice.create("alice.lang", "de");
          const w = await alice.watch({ key: "alice.>" });
          const seen = new Set<string>();
          for await (const e of w) {
            seen.add(e.key);
            if (seen.has("alice.theme") && seen.has("alice.lang")) break;
          }
          w.stop();
          assert.equal((await alice.get("alice.theme"))?.string(), "light");
          assert.deepEqual(await ownKeys(alice, "alice"), ["alice.lang", "alice.theme"]);
          const hist: number[] = [];
          for await (const e of await alice.history({ key: "alice.theme" })) hist.push(e.revision);
          assert.equal(hist.length, 2, "history of an own key");
          await alice.delete("alice.lang");
          await alice.purge("alice.lang");
          assert.deepEqual(await ownKeys(alice, "alice"), ["alice.theme"]);
          assert.deepEqual(await ownKeys(bob, "bob"), ["bob.secret"]);
        });

        it("alice's attacks on bob's keys are all refused; bob's key survives", async () => {
          const t: Target = {
            kind: "kv",
            victimStream: "KV_prefs",
            victimSubject: "$KV.prefs.bob.secret",
            victimFilter: "$KV.prefs.bob.>",
            victimSeq: bobSeq,
            victimConsumer: "bob",
            ownStream: "KV_prefs",
            ownSubject: "$KV.prefs.alice.theme",
            ownFilter: "$KV.prefs.alice.>",
            injectSubject: "$KV.prefs.alice.inject",
            secret: BOB_SECRET,
          };
          assert.ok(bobSeq > 0, "the previous test stored bob's key");
          const nc = await login("alice", "alice-pw");
          // alice's own key holding a purge request for bob's key (for deliver_subject_injection)
          await (await open(nc)).put("alice.inject", JSON.stringify({ filter: t.victimSubject }));
          const wrong: string[] = [];
          for (const attack of ATTACKS) {
            const r = await runRawOp(nc, attack.op(t, "$JS.API"));
            const problem = attackProblem(r, t, attackSucceeds(attack.name, sb.version, EXAMPLE_FUNCTIONS));
            if (problem) wrong.push(problem);
          }
          wrong.push(...(await kvClientAttacks(await open(nc))));
          assert.deepEqual(wrong, [], "attacks not refused");
          // where the server accepted the injecting consumer (2.10), wait until it has delivered
          const deadline = Date.now() + 10_000;
          for (;;) {
            const ci = await jsm.consumers.info("KV_prefs", "evil2").catch(() => undefined);
            if (!ci || ci.delivered.consumer_seq >= 1) break;
            assert.ok(Date.now() < deadline, "consumer evil2 never delivered");
            await new Promise((r) => setTimeout(r, 20));
          }
          const bob = await open(await login("bob", "bob-pw"));
          assert.equal((await bob.get("bob.secret"))?.string(), BOB_SECRET);
        });

        it("the old leak is closed: STREAM.INFO with subjects_filter is a permissions violation", async () => {
          const nc = await login("alice", "alice-pw");
          await assert.rejects(
            nc.request("$JS.API.STREAM.INFO.KV_prefs", JSON.stringify({ subjects_filter: ">" })),
            /Permissions Violation/,
          );
        });
      },
    );
  }
}
