/**
 * policies/lib/jetstream.rego against real JetStream with real clients. For each server of the matrix
 * (latest, 2.10) in config mode and operator mode (APP's account JWT signed with JetStream limits): the
 * service runs the fixture policy test/fixtures/policies/jetstream (built by the real opa), which grants one
 * library function per login. The admin seeds a KV bucket "prefs" (alice.* and bob.* keys), object buckets
 * "files-alice" and "files-bob", and a stream ORDERS (orders.alice.*, orders.bob.*), plus a pull consumer
 * "bob" on each of bob's scopes. Then, per library function:
 *   (a) alice's intended operations work with nats.js (@nats-io/kv, @nats-io/obj, @nats-io/jetstream);
 *   (b) every attack of test/support/jetstream-attacks.ts on bob's data is refused by the server, and
 *       nothing of bob's data comes back.
 * The admin runs the read attacks first as a control (they must reveal bob's data, so they are real).
 * nats.go (test/clients/go-jetstream, built with `go build`) runs the same table plus its own KV operations.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import {
  ATTACKS,
  attackSucceeds,
  attackProblem,
  kvClientAttacks,
  runRawOp,
  type OpResult,
  type RawOp,
  type Target,
  buildGoClient,
  libraryPolicyDir,
  startJetStreamStack,
  type JsMode,
  type JsStack,
  serverMatrix,
  type ServerBinary,
  REPO,
  skipWithoutOpa,
} from "../support/index.js";
import { join } from "node:path";

const BOB_SECRET = "bob-secret-7f3a";
const BOB_OBJECT = "bob-object-91c2";
const BOB_ORDER = "bob-order-55d0";

const TARGETS: Record<string, Target> = {
  kv: {
    kind: "kv",
    victimStream: "KV_prefs",
    victimSubject: "$KV.prefs.bob.secret",
    victimFilter: "$KV.prefs.bob.>",
    victimSeq: 0,
    victimConsumer: "bob",
    ownStream: "KV_prefs",
    ownSubject: "$KV.prefs.alice.note",
    ownFilter: "$KV.prefs.alice.>",
    injectSubject: "$KV.prefs.alice.inject",
    secret: BOB_SECRET,
  },
  obj: {
    kind: "obj",
    victimStream: "OBJ_files-bob",
    victimSubject: "", // the metadata subject of bob's object, filled in after seeding
    victimFilter: "$O.files-bob.>",
    victimSeq: 0,
    victimConsumer: "bob",
    ownStream: "OBJ_files-alice",
    ownSubject: "",
    ownFilter: "$O.files-alice.>",
    injectSubject: "$O.files-alice.C.inject", // a chunk subject no object refers to
    secret: BOB_OBJECT,
  },
  stream: {
    kind: "stream",
    victimStream: "ORDERS",
    victimSubject: "orders.bob.1",
    victimFilter: "orders.bob.>",
    victimSeq: 0,
    victimConsumer: "bob",
    ownStream: "ORDERS",
    ownSubject: "orders.alice.1",
    ownFilter: "orders.alice.>",
    injectSubject: "orders.alice.inject",
    secret: BOB_ORDER,
  },
};

interface Ctx {
  stack: JsStack;
  sb: ServerBinary;
  admin: NatsConnection;
  jsm: JetStreamManager;
  connectAs(helper: string, user?: string): Promise<NatsConnection>;
}

/** The intended operations of each library function (login password "grant=<name>"). */
const HELPERS: Record<
  string,
  {
    target: keyof typeof TARGETS;
    /** API prefixes the attack table runs through (default $JS.API). */
    apis?: string[];
    ops(nc: NatsConnection, c: Ctx): Promise<void>;
  }
> = {
  kv_get: {
    target: "kv",
    async ops(nc) {
      const kv = await openPrefs(nc);
      assert.equal((await kv.get("alice.note"))?.string(), "alice-note");
      assert.equal(await kv.get("alice.missing"), null);
    },
  },
  kv_watch: {
    target: "kv",
    async ops(nc) {
      const kv = await openPrefs(nc);
      assert.deepEqual(await watchedKeys(kv), ["alice.note"]);
      const h = await kv.history({ key: "alice.note" });
      const revs: number[] = [];
      for await (const e of h) revs.push(e.revision);
      assert.ok(revs.length >= 1, "history of an own key");
    },
  },
  kv_list: {
    target: "kv",
    async ops(nc) {
      const kv = await openPrefs(nc);
      const keys: string[] = [];
      for await (const k of await kv.keys("alice.>")) keys.push(k);
      assert.ok(keys.includes("alice.note"), `own keys listed: ${keys.join(",")}`);
      assert.ok(!keys.some((k) => k.startsWith("bob.")));
    },
  },
  kv_read: {
    target: "kv",
    async ops(nc) {
      const kv = await openPrefs(nc);
      assert.equal((await kv.get("alice.note"))?.string(), "alice-note");
      assert.deepEqual(await watchedKeys(kv), ["alice.note"]);
      await assert.rejects(kv.put("alice.x", "no"), /Permissions Violation/, "read-only: no put");
    },
  },
  kv_write: {
    target: "kv",
    async ops(nc, c) {
      const kv = await openPrefs(nc);
      const r1 = await kv.put("alice.w", "1");
      const r2 = await kv.update("alice.w", "2", r1);
      await kv.create("alice.c", "c");
      await kv.delete("alice.c");
      await kv.purge("alice.w");
      assert.ok(r2 > r1);
      const akv = await openPrefs(c.admin);
      assert.equal(await akv.get("alice.w").then((e) => e?.operation), "PURGE");
      await assert.rejects(kv.get("alice.note"), /Permissions Violation/, "write-only: no get");
    },
  },
  kv_read_write: {
    target: "kv",
    async ops(nc) {
      await kvReadWrite(await openPrefs(nc));
    },
  },
  "kv_read_write+hub": {
    target: "kv",
    apis: ["$JS.hub.API", "$JS.API"],
    async ops(nc) {
      await kvReadWrite(
        await new Kvm(jetstream(nc, { domain: "hub" })).open("prefs", { allow_direct: true }),
      );
    },
  },
  obj_read: {
    target: "obj",
    async ops(nc) {
      const os = await new Objm(jetstream(nc, { checkAPI: false })).open("files-alice");
      assert.equal(
        await os.getBlob("doc").then((b) => new TextDecoder().decode(b ?? undefined)),
        "alice-doc",
      );
      assert.deepEqual(
        (await os.list()).map((i) => i.name),
        ["doc"],
      );
      await assert.rejects(os.putBlob({ name: "x" }, new TextEncoder().encode("x")), /Permissions Violation/);
    },
  },
  obj_read_write: {
    target: "obj",
    async ops(nc) {
      const os = await new Objm(jetstream(nc, { checkAPI: false })).open("files-alice");
      await os.putBlob({ name: "new" }, new TextEncoder().encode("v1"));
      await os.putBlob({ name: "new" }, new TextEncoder().encode("v2")); // replace: purges old chunks
      assert.equal(await os.getBlob("new").then((b) => new TextDecoder().decode(b ?? undefined)), "v2");
      await os.delete("new");
      assert.equal(await os.info("new").then((i) => i?.deleted), true);
    },
  },
  stream_publish: {
    target: "stream",
    async ops(nc) {
      const ack = await jetstream(nc).publish("orders.alice.new", "o");
      assert.equal(ack.stream, "ORDERS");
      await assert.rejects(jetstream(nc).publish("orders.bob.new", "o"), /Permissions Violation/);
    },
  },
  stream_get: {
    target: "stream",
    async ops(nc) {
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      const m = await jsm.direct.getMessage("ORDERS", { last_by_subj: "orders.alice.1" });
      assert.equal(m?.string(), "alice-order");
    },
  },
  stream_pull: {
    target: "stream",
    async ops(nc) {
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      const js = jetstream(nc);
      // durable
      await jsm.consumers.add("ORDERS", {
        durable_name: "alice",
        filter_subject: "orders.alice.>",
        ack_policy: AckPolicy.Explicit,
      });
      const c = await js.consumers.get("ORDERS", "alice");
      const msgs = await c.fetch({ max_messages: 1, expires: 2000 });
      const got: string[] = [];
      for await (const m of msgs) {
        got.push(m.string());
        await m.ackAck();
      }
      assert.deepEqual(got, ["alice-order"]);
      await jsm.consumers.delete("ORDERS", "alice");
      // ephemeral (name + inactive_threshold), same fixed name
      await jsm.consumers.add("ORDERS", {
        name: "alice",
        filter_subject: "orders.alice.>",
        ack_policy: AckPolicy.Explicit,
        inactive_threshold: 60_000_000_000,
      });
      const e = await js.consumers.get("ORDERS", "alice");
      const m = await e.next({ expires: 2000 });
      assert.equal(m?.string(), "alice-order");
      m?.ack();
      await jsm.consumers.delete("ORDERS", "alice");
    },
  },
  stream_ordered: {
    target: "stream",
    async ops(nc) {
      const js = jetstream(nc);
      const pc = await js.consumers.getPushConsumer("ORDERS", { filter_subjects: "orders.alice.>" });
      const it = await pc.consume();
      for await (const m of it) {
        assert.equal(m.string(), "alice-order");
        break;
      }
      await it.stop();
    },
  },
};

async function openPrefs(nc: NatsConnection): Promise<KV> {
  return new Kvm(nc).open("prefs", { allow_direct: true });
}

/** Keys the initial watch of alice.> delivers (until the first update marker). */
async function watchedKeys(kv: KV): Promise<string[]> {
  const w = await kv.watch({ key: "alice.>" });
  const keys: string[] = [];
  for await (const e of w) {
    keys.push(e.key);
    if (e.key === "alice.note") break;
  }
  w.stop();
  return keys;
}

async function kvReadWrite(kv: KV): Promise<void> {
  const key = `alice.rw${Math.floor(performance.now())}`;
  const w = await kv.watch({ key: "alice.>", include: "updates" as never });
  await kv.put(key, "v1");
  for await (const e of w) {
    if (e.key === key) break;
  }
  w.stop();
  assert.equal((await kv.get(key))?.string(), "v1");
  await kv.delete(key);
  assert.equal((await kv.get(key))?.operation, "DEL");
}

/** The admin's view: bob's data is all still there. */
async function assertVictimIntact(c: Ctx): Promise<void> {
  const akv = await openPrefs(c.admin);
  assert.equal((await akv.get("bob.secret"))?.string(), BOB_SECRET, "bob's KV key intact");
  const os = await new Objm(c.admin).open("files-bob");
  assert.equal(await os.getBlob("plan").then((b) => new TextDecoder().decode(b ?? undefined)), BOB_OBJECT);
  const m = await c.jsm.streams.getMessage("ORDERS", { last_by_subj: "orders.bob.1" });
  assert.equal(m?.string(), BOB_ORDER, "bob's order intact");
  for (const s of ["KV_prefs", "OBJ_files-bob", "ORDERS"]) {
    assert.equal((await c.jsm.consumers.info(s, "bob")).name, "bob", `bob's consumer on ${s} intact`);
  }
}

/**
 * Where a server accepted deliver_subject_injection (2.10), waits until its consumer "evil2" has delivered
 * (pushed alice's message to the JetStream API subject), so assertVictimIntact sees the effect if there is one.
 */
async function awaitInjectedDelivery(c: Ctx, stream: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ci = await c.jsm.consumers.info(stream, "evil2").catch(() => undefined);
    if (!ci) return; // refused (never created) or already gone
    if (ci.delivered.consumer_seq >= 1) break;
    if (Date.now() > deadline) throw new Error("consumer evil2 never delivered");
    await new Promise((r) => setTimeout(r, 20));
  }
  await c.jsm.consumers.delete(stream, "evil2");
}

async function seed(c: Ctx): Promise<void> {
  const kv = await new Kvm(c.admin).create("prefs", { history: 5 });
  await kv.put("alice.note", "alice-note");
  TARGETS.kv!.victimSeq = await kv.put("bob.secret", BOB_SECRET);
  const objm = new Objm(c.admin);
  const enc = new TextEncoder();
  await (await objm.create("files-alice")).putBlob({ name: "doc" }, enc.encode("alice-doc"));
  const bobInfo = await (await objm.create("files-bob")).putBlob({ name: "plan" }, enc.encode(BOB_OBJECT));
  const meta = (b: string, name: string) =>
    `$O.${b}.M.${Buffer.from(name).toString("base64").replace(/\+/g, "-").replace(/\//g, "_")}`;
  Object.assign(TARGETS.obj!, {
    victimSubject: meta("files-bob", "plan"),
    victimSeq: bobInfo.revision,
    ownSubject: meta("files-alice", "doc"),
  });
  await c.jsm.streams.add({ name: "ORDERS", subjects: ["orders.>"], allow_direct: true });
  const js = jetstream(c.admin);
  await js.publish("orders.alice.1", "alice-order");
  TARGETS.stream!.victimSeq = (await js.publish("orders.bob.1", BOB_ORDER)).seq;
  for (const t of Object.values(TARGETS)) {
    // alice's own message that is a valid purge request for bob's subject (deliver_subject_injection)
    await js.publish(t.injectSubject, JSON.stringify({ filter: t.victimSubject }));
    await c.jsm.consumers.add(t.victimStream, {
      durable_name: "bob",
      filter_subject: t.victimFilter,
      ack_policy: AckPolicy.Explicit,
    });
  }
}

function runGoClient(
  bin: string,
  input: string,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, [], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.once("error", reject);
    p.once("close", (status) => resolve({ status, stdout, stderr }));
    p.stdin.end(input);
  });
}

const leaks = (r: OpResult, t: Target): boolean => r.detail.includes(t.secret);

const MODES: JsMode[] = ["config", "operator"];

for (const sb of serverMatrix()) {
  for (const mode of MODES) {
    describe(
      `JetStream library — nats-server ${sb.label} (${sb.version || "missing"}), ${mode} mode`,
      {
        skip: sb.missing ? `nats-server ${sb.label} binary missing` : skipWithoutOpa,
      },
      () => {
        let c: Ctx;
        let policyDir: string;

        before(async () => {
          policyDir = libraryPolicyDir({
            "authz.rego": readFileSync(join(REPO, "test/fixtures/policies/jetstream/authz.rego"), "utf8"),
          });
          const stack = await startJetStreamStack({ bin: sb.bin, mode, policyDir });
          const connectAs = (helper: string, user = "alice") =>
            connect(stack.clientOptions(user, `grant=${helper}`));
          const admin = await connectAs("admin", "admin");
          const jsm = await jetstreamManager(admin);
          c = { stack, sb, admin, jsm, connectAs };
          await seed(c);
        });

        after(async () => {
          await c?.admin.close();
          await c?.stack.stop();
          if (policyDir) rmSync(policyDir, { recursive: true, force: true });
        });

        it("control: the admin's read attacks reveal bob's data (so the attacks are real)", async () => {
          for (const t of Object.values(TARGETS)) {
            for (const name of ["direct_get_last_by_subject", "direct_get_by_sequence", "stream_msg_get"]) {
              const attack = ATTACKS.find((a) => a.name === name)!;
              const r = await runRawOp(c.admin, attack.op(t, "$JS.API"));
              assert.equal(r.outcome, "ok", `${t.kind} ${name}: ${r.detail}`);
            }
            const info = await runRawOp(
              c.admin,
              ATTACKS.find((a) => a.name === "stream_info_subjects_filter")!.op(t, "$JS.API"),
            );
            assert.ok(
              info.detail.includes(t.victimSubject),
              `${t.kind}: subjects_filter lists bob's subject`,
            );
          }
          const r = await runRawOp(
            c.admin,
            ATTACKS.find((a) => a.name === "direct_get_last_by_subject")!.op(TARGETS.kv!, "$JS.API"),
          );
          assert.ok(leaks(r, TARGETS.kv!), "the admin's direct get returns bob's secret");
        });

        for (const [helper, h] of Object.entries(HELPERS)) {
          it(`${helper}: alice's intended operations work (nats.js)`, async () => {
            const nc = await c.connectAs(helper);
            try {
              await h.ops(nc, c);
            } finally {
              await nc.close();
            }
          });

          it(`${helper}: every attack on bob's data is refused (nats.js)`, async () => {
            const t = TARGETS[h.target]!;
            const nc = await c.connectAs(helper);
            const wrong: string[] = [];
            try {
              for (const api of h.apis ?? ["$JS.API"]) {
                for (const attack of ATTACKS) {
                  const op = attack.op(t, api);
                  const mark = c.stack.server.logMark();
                  let r = await runRawOp(nc, op, api === "$JS.API" ? 5000 : 1000);
                  if (r.outcome === "timeout" && api !== "$JS.API") {
                    // The domain's own server maps $JS.<domain>.API.> to $JS.API.> and refuses the mapped
                    // subject silently (no -ERR to the client): the refusal is in the server log.
                    const mapped = op.subject.replace(api, "$JS.API");
                    const violation = new RegExp(`Publish Violation.*"${mapped.replace(/[$.*>]/g, "\\$&")}"`);
                    await c.stack.server.waitForLog(violation, { mark, timeoutMs: 5000 });
                    r = { ...r, outcome: "permission", detail: `server log: violation for ${mapped}` };
                  }
                  const granted = [helper.replace(/\+hub$/, "")];
                  const problem = attackProblem(r, t, attackSucceeds(attack.name, c.sb.version, granted));
                  if (problem) wrong.push(`${api} ${problem}`);
                }
              }
              if (t.kind === "kv") wrong.push(...(await kvClientAttacks(await openPrefs(nc))));
            } finally {
              await nc.close();
            }
            assert.deepEqual(wrong, [], "attacks not refused");
            await awaitInjectedDelivery(c, t.ownStream);
            await assertVictimIntact(c);
          });
        }

        it("kv_write: documented limit: Nats-Rollup: all from a writer erases the bucket unless allow_rollup_hdrs is off", async () => {
          const nc = await c.connectAs("kv_write");
          try {
            const js = jetstream(nc);
            const h = headers();
            h.set("Nats-Rollup", "all");
            await js.publish("$KV.prefs.alice.rollup", "x", { headers: h });
            const akv = await openPrefs(c.admin);
            assert.equal(
              await akv.get("bob.secret"),
              null,
              "rollup all erased bob's key: the documented limit",
            );
            // Restore bob's key for the other tests, then switch rollups off and try again.
            TARGETS.kv!.victimSeq = await akv.put("bob.secret", BOB_SECRET);
            const si = await c.jsm.streams.info("KV_prefs");
            await c.jsm.streams.update("KV_prefs", { ...si.config, allow_rollup_hdrs: false });
            await assert.rejects(js.publish("$KV.prefs.alice.rollup", "x", { headers: h }), /rollup/i);
            assert.equal((await akv.get("bob.secret"))?.string(), BOB_SECRET);
            const kvA = await openPrefs(nc);
            await kvA.put("alice.k2", "still writable");
            await kvA.delete("alice.k2");
            await assert.rejects(kvA.purge("alice.k2"), /rollup/i, "kv.purge() needs rollups");
            await c.jsm.streams.update("KV_prefs", { ...si.config, allow_rollup_hdrs: true });
          } finally {
            await nc.close();
          }
        });

        it("domain: on the domain's own server the mapped $JS.API subject is checked too (domain-only grant fails)", async () => {
          const nc = await c.connectAs("kv_read_write@hub");
          try {
            const mark = c.stack.server.logMark();
            // The server maps $JS.hub.API.> to $JS.API.> and drops the request there: no reply, no -ERR.
            await assert.rejects(
              nc.request("$JS.hub.API.DIRECT.GET.KV_prefs.$KV.prefs.alice.note", "", { timeout: 2000 }),
            );
            await c.stack.server.waitForLog(
              /Publish Violation.*"\$JS\.API\.DIRECT\.GET\.KV_prefs\.\$KV\.prefs\.alice\.note"/,
              { mark },
            );
          } finally {
            await nc.close();
          }
        });

        it("hostile user names get no grant (the library's arguments are checked tokens)", async () => {
          for (const user of ["*", ">", "bob.x", "a b"]) {
            const opts = {
              ...c.stack.clientOptions(user, "grant=kv_read_write"),
              inboxPrefix: "_INBOX.hostile",
            };
            await assert.rejects(connect(opts), /Authorization Violation/, user);
          }
        });

        const go = buildGoClient();
        it(
          "nats.go: kv_read_write own operations work and the attack table is refused",
          {
            skip: "skip" in go ? go.skip : false,
          },
          async () => {
            if (!("bin" in go)) return;
            const t = TARGETS.kv!;
            const own: RawOp[] = [
              { name: "put", kind: "publish", subject: "$KV.prefs.alice.go", body: "from-go" },
              { name: "get", kind: "request", subject: "$JS.API.DIRECT.GET.KV_prefs.$KV.prefs.alice.go" },
              { name: "watch", kind: "watch", subject: "$KV.prefs.alice.go", stream: "KV_prefs" },
            ];
            const attacks = ATTACKS.map((a) => a.op(t, "$JS.API"));
            attacks.push({
              name: "watch_victim",
              kind: "watch",
              subject: t.victimFilter,
              stream: "KV_prefs",
            });
            const input = {
              url: c.stack.server.url,
              user: "alice",
              pass: "grant=kv_read_write",
              inbox: "_INBOX.alice",
              creds: c.stack.sentinelCredsFile ?? "",
              ops: [...own, ...attacks],
            };
            // Asynchronously: the callout service runs in this process and must answer the Go client's login.
            const p = await runGoClient(go.bin, JSON.stringify(input));
            assert.equal(p.status, 0, `go client failed: ${p.stderr}`);
            const results = JSON.parse(p.stdout) as OpResult[];
            const by = new Map(results.map((r) => [r.name, r]));
            assert.equal(by.get("put")?.outcome, "ok", JSON.stringify(by.get("put")));
            assert.equal(by.get("get")?.outcome, "ok");
            assert.ok(by.get("get")?.detail.includes("from-go"));
            assert.equal(by.get("watch")?.outcome, "ok", JSON.stringify(by.get("watch")));
            assert.equal(by.get("watch")?.detail, "from-go");
            const wrong = attacks
              .map((a) => {
                const r = by.get(a.name);
                if (!r) return `${a.name}: no result`;
                return attackProblem(r, t, attackSucceeds(a.name, c.sb.version, ["kv_read_write"]));
              })
              .filter((x) => x !== undefined);
            assert.deepEqual(wrong, [], "attacks not refused (nats.go)");
            await awaitInjectedDelivery(c, t.ownStream);
            await assertVictimIntact(c);
          },
        );

        it(
          "nats.go: the attack table is refused for every library function",
          { skip: "skip" in go ? go.skip : false },
          async () => {
            if (!("bin" in go)) return;
            const wrong: string[] = [];
            for (const [helper, h] of Object.entries(HELPERS)) {
              const t = TARGETS[h.target]!;
              const input = {
                url: c.stack.server.url,
                user: "alice",
                pass: `grant=${helper}`,
                inbox: "_INBOX.alice",
                creds: c.stack.sentinelCredsFile ?? "",
                ops: ATTACKS.map((a) => a.op(t, "$JS.API")),
              };
              const p = await runGoClient(go.bin, JSON.stringify(input));
              assert.equal(p.status, 0, `go client failed for ${helper}: ${p.stderr}`);
              const granted = [helper.replace(/\+hub$/, "")];
              for (const r of JSON.parse(p.stdout) as OpResult[]) {
                const problem = attackProblem(r, t, attackSucceeds(r.name, c.sb.version, granted));
                if (problem) wrong.push(`${helper} ${problem}`);
              }
            }
            assert.deepEqual(wrong, [], "attacks not refused (nats.go)");
            for (const t of Object.values(TARGETS)) await awaitInjectedDelivery(c, t.ownStream);
            await assertVictimIntact(c);
          },
        );
      },
    );
  }
}
