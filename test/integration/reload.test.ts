/**
 * Hot reload with the service running against a real nats-server, for file operations beyond a plain
 * edit (plain and broken edits: test/integration/cli.test.ts "live reload"): an atomic rename-replace of
 * data.json, renaming a .rego file, deleting a .rego file the decision needs (and restoring it),
 * deleting data.json, and removing the whole policy directory (and recreating it).
 *
 * Setup as in example-policy.test.ts: nats-server (latest) in config mode with accounts APP and OPS, the
 * service in-process (createPolicyEngine + startCallout with the allow-list [APP, OPS]), but on a copy of
 * policies/ in a temp dir with `watch: true`. Every case checks the store (revision, failure count) and
 * what a newly connecting client may do on the real server: allowed traffic must reach the orders-svc
 * subscriber, denied traffic must come back as a permissions violation, and the decision for that
 * connection must name the revision we expect to be serving. Reloads are awaited by polling the store
 * (bounded at RELOAD_WAIT_MS); nothing is asserted on timing.
 *
 * The cases run in order and each starts from the state the previous one left.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { PolicyEngineHandle, PolicyStatus, ReloadEvent } from "../../src/policy/index.js";
import type { ResultEvent } from "../../src/service.js";
import {
  until,
  EXAMPLE_POLICIES as POLICIES,
  startExampleStack,
  type ExampleStack,
  serverMatrix,
  type NatsServer,
  skipWithoutOpa,
} from "../support/index.js";
/** Upper bound for a reload (debounce 200 ms + write-finish 100 ms + opa build) to show up in the store. */
const RELOAD_WAIT_MS = 10_000;

const latest = serverMatrix()[0]!;

interface DataDoc {
  callout: { users: Record<string, { roles: string[] }> };
}

/** The example data.json with bob given the orders-writer role. */
function dataWithBobWriter(): string {
  const data = JSON.parse(readFileSync(join(POLICIES, "data.json"), "utf8")) as DataDoc;
  const bob = data.callout.users.bob;
  assert.ok(bob, "the example data has bob");
  assert.ok(!bob.roles.includes("orders-writer"), "bob starts without orders-writer");
  bob.roles.push("orders-writer");
  return JSON.stringify(data, null, 2) + "\n";
}

/** What a new connection achieved when publishing orders.create. */
type Attempt = "delivered" | "violation" | "login_denied";

describe(
  `hot reload with the service running — nats-server ${latest.label} (${latest.version})`,
  { skip: latest.missing ? `nats-server not found at ${latest.bin}` : skipWithoutOpa },
  () => {
    let base: string;
    let dir: string;
    let stack: ExampleStack;
    let server: NatsServer;
    let engine: PolicyEngineHandle;
    let ordersSvc: NatsConnection;
    const results: ResultEvent[] = [];
    const reloads: ReloadEvent[] = [];
    const clients: NatsConnection[] = [];
    const created: string[] = [];
    let seq = 0;
    /** Revision of the untouched example set. */
    let original: string;

    const status = (): PolicyStatus => engine.store.status();
    const file = (...p: string[]): string => join(dir, ...p);

    /** Waits until the store has recorded `n` more successful reloads than `from`; returns the status. */
    const okReloads = async (from: PolicyStatus, n = 1): Promise<PolicyStatus> => {
      await until(
        () => status().reloads.ok >= from.reloads.ok + n,
        `a successful reload after ${JSON.stringify(from.reloads)}`,
        RELOAD_WAIT_MS,
      );
      return status();
    };
    /** Waits until the store has recorded another failed reload; returns the status. */
    const failedReload = async (from: PolicyStatus): Promise<PolicyStatus> => {
      await until(
        () => status().reloads.failed > from.reloads.failed,
        `a failed reload after ${JSON.stringify(from.reloads)}`,
        RELOAD_WAIT_MS,
      );
      return status();
    };

    /** The service's result for the connection named `name` (waits for it). */
    const resultOf = async (name: string): Promise<ResultEvent> => {
      const find = () => results.find((r) => r.result.request?.connect_opts.name === name);
      await until(() => find() !== undefined, `the decision for ${name}`);
      return find() as ResultEvent;
    };

    /** [kind, reason] of a decision that is not an allow. */
    const denial = (r: ResultEvent): [string, string] => {
      const o = r.result.outcome;
      return o.kind === "allow" ? ["allow", ""] : [o.kind, o.reason];
    };

    /**
     * A new connection as `user` publishes a unique payload to orders.create. Returns whether orders-svc
     * received it, the server refused it (permissions violation), or the login itself was refused; and
     * the decision the service took for that connection.
     */
    const attempt = async (user: string, pass: string): Promise<{ got: Attempt; decision: ResultEvent }> => {
      const name = `${user}-c${++seq}`;
      let nc: NatsConnection;
      try {
        nc = await connect({
          servers: server.url,
          name,
          user,
          pass,
          inboxPrefix: `_INBOX.${user}`,
          reconnect: false,
        });
      } catch (err) {
        assert.match((err as Error).message, /authorization violation/i);
        return { got: "login_denied", decision: await resultOf(name) };
      }
      clients.push(nc);
      const errors: Error[] = [];
      void (async () => {
        for await (const s of nc.status()) if (s.type === "error") errors.push(s.error);
      })();
      const marker = `order ${name}`;
      nc.publish("orders.create", marker);
      await nc.flush();
      await until(() => created.includes(marker) || errors.length > 0, `the fate of ${marker}`);
      const decision = await resultOf(name);
      await nc.close();
      if (created.includes(marker)) {
        assert.deepEqual(errors, []);
        return { got: "delivered", decision };
      }
      assert.match(errors[0]?.message ?? "", /permissions violation for publish to "orders\.create"/i);
      return { got: "violation", decision };
    };

    /** Asserts what a new `user` connection gets, and that the decision came from `revision`. */
    const expectAttempt = async (
      user: string,
      want: Attempt,
      revision: string | undefined,
    ): Promise<void> => {
      const { got, decision } = await attempt(user, `${user}-pw`);
      assert.equal(got, want, `${user} on revision ${revision}`);
      assert.equal(decision.result.facts.revision, revision, `${user}'s decision names the serving revision`);
      const kind = decision.result.outcome.kind;
      assert.equal(kind, want === "login_denied" ? "deny" : "allow");
    };

    before(async () => {
      base = mkdtempSync(join(tmpdir(), "reload-it-"));
      dir = join(base, "policies");
      cpSync(POLICIES, dir, { recursive: true });
      stack = await startExampleStack({
        bin: latest.bin,
        dir,
        watch: true,
        // pollMs: the content-hash poll that recovers what file events miss (case 5b), short for the test.
        pollMs: 500,
        onReload: (e) => reloads.push(e),
        onResult: (e) => results.push(e),
      });
      ({ server, engine } = stack);
      ordersSvc = await connect({
        servers: server.url,
        name: "orders-svc",
        token: "tok_5Vf8kQz2LmN7xR3c",
        inboxPrefix: "_INBOX.orders-svc",
        reconnect: false,
      });
      clients.push(ordersSvc);
      ordersSvc.subscribe("orders.create", {
        callback: (_e, m) => {
          created.push(m.string());
        },
      });
      await ordersSvc.flush();
      const s = status();
      assert.equal(s.ready, true);
      assert.deepEqual(s.reloads, { ok: 1, failed: 0 });
      original = s.revision as string;
      assert.match(original, /^[0-9a-f]{16}$/);
    });

    after(async () => {
      for (const nc of clients) await nc.close().catch(() => {});
      await stack?.stop();
      if (base) rmSync(base, { recursive: true, force: true });
    });

    it("starts on the example set: alice may create orders, bob may not", async () => {
      await expectAttempt("alice", "delivered", original);
      await expectAttempt("bob", "violation", original);
    });

    it("1. atomic rename-replace of data.json (bob gets orders-writer) → new revision, bob may create orders", async () => {
      const before = status();
      writeFileSync(file("data.json.tmp"), dataWithBobWriter());
      renameSync(file("data.json.tmp"), file("data.json"));
      const s = await okReloads(before);
      assert.notEqual(s.revision, before.revision);
      assert.equal(s.reloads.failed, before.reloads.failed);
      const last = reloads.at(-1);
      assert.equal(last?.result, "ok");
      assert.equal(last?.revision, s.revision);
      assert.equal(last?.compiled, false, "data only: the compiled module is reused");

      await expectAttempt("bob", "delivered", s.revision);
      await expectAttempt("alice", "delivered", s.revision);
    });

    it("2. renaming a .rego file (same content) → new revision (paths are hashed), same behaviour", async () => {
      const before = status();
      renameSync(file("authz", "grant.rego"), file("authz", "grant_rules.rego"));
      const s = await okReloads(before);
      assert.notEqual(s.revision, before.revision, "the path is part of the revision");
      assert.equal(s.reloads.failed, before.reloads.failed);
      assert.equal(reloads.at(-1)?.compiled, true, "rego changed: rebuilt");

      await expectAttempt("alice", "delivered", s.revision);
      await expectAttempt("bob", "delivered", s.revision); // data still makes bob a writer
    });

    it("3. deleting a .rego file the decision needs → reload fails, last good keeps serving; restoring it → new revision", async () => {
      const good = status();
      const rules = readFileSync(file("authz", "grant_rules.rego"));
      rmSync(file("authz", "grant_rules.rego"));
      const s = await failedReload(good);
      assert.equal(s.revision, good.revision, "the last good revision stays active");
      assert.equal(s.ready, true);
      assert.equal(s.reloads.ok, good.reloads.ok);
      const err = s.lastError;
      assert.ok(err, "the failure is recorded");
      assert.equal(err.code, "policy_load_error");
      // opa names where the missing rules are referenced, e.g. "authz/decision.rego:35: rego_type_error:
      // undefined function _source_in".
      assert.match(err.message, /undefined/);
      assert.match(err.file ?? "", /^authz\/.+\.rego$/);
      assert.ok(Number.isInteger(err.line) && (err.line as number) > 0, `line in ${JSON.stringify(err)}`);
      const ev = reloads.at(-1);
      assert.equal(ev?.result, "error");
      assert.equal(ev?.revision, good.revision);

      await expectAttempt("alice", "delivered", good.revision);
      await expectAttempt("bob", "delivered", good.revision);

      // Restored under its original name: a revision that differs from the active one (the path changed back).
      const failed = status();
      writeFileSync(file("authz", "grant.rego"), rules);
      const r = await okReloads(failed);
      assert.notEqual(r.revision, good.revision);
      assert.equal(r.reloads.failed, failed.reloads.failed);
      await expectAttempt("alice", "delivered", r.revision);
    });

    it("4. deleting data.json → a data-less revision under which every login is denied; restoring it → the original revision", async () => {
      // Observed behaviour: a missing data.json is not an error. The Rego alone compiles and passes the smoke
      // evaluation, so a new revision with empty data becomes active. That is fail-closed: without
      // data.callout there are no users, tokens or roles, so every login is denied — bob in particular can
      // no longer get the orders-writer rights the previous data gave him, and alice gets nothing either.
      // (Password logins fail as invalid_username: the name check needs data.callout.idp.name_prefix, which
      // is undefined, and an undefined check counts as failed; the token login fails as bad_credentials.)
      const before = status();
      const data = readFileSync(file("data.json"));
      rmSync(file("data.json"));
      const s = await okReloads(before);
      assert.notEqual(s.revision, before.revision);
      assert.equal(s.reloads.failed, before.reloads.failed);
      assert.equal(reloads.at(-1)?.compiled, false, "only data changed");

      for (const user of ["bob", "alice"]) {
        const { got, decision } = await attempt(user, `${user}-pw`);
        assert.equal(got, "login_denied", user);
        assert.equal(decision.result.facts.revision, s.revision);
        assert.deepEqual(denial(decision), ["deny", "invalid_username"]);
        assert.equal(decision.result.issued, undefined, "no user JWT issued");
      }
      // The token user too (its token hash lived in the data).
      const tokenName = `orders-svc-c${++seq}`;
      const tokenUser = await connect({
        servers: server.url,
        name: tokenName,
        token: "tok_5Vf8kQz2LmN7xR3c",
        reconnect: false,
      }).catch((e: Error) => e);
      assert.ok(tokenUser instanceof Error, "orders-svc cannot log in without data");
      assert.match(tokenUser.message, /authorization violation/i);
      const tokenDecision = await resultOf(tokenName);
      assert.equal(tokenDecision.result.facts.revision, s.revision);
      assert.deepEqual(denial(tokenDecision), ["deny", "bad_credentials"]);

      // Restore the example data (bob read-only again): the whole set is the example set again, so the
      // revision is the original one (content-addressed).
      const empty = status();
      writeFileSync(file("data.json.tmp"), readFileSync(join(POLICIES, "data.json")));
      renameSync(file("data.json.tmp"), file("data.json"));
      const r = await okReloads(empty);
      assert.equal(r.revision, original, "back to the example set's revision");
      assert.notDeepEqual(data, readFileSync(file("data.json")), "the deleted data (bob writer) is not back");
      await expectAttempt("alice", "delivered", original);
      await expectAttempt("bob", "violation", original);
    });

    it("5. removing the whole policy directory → a failure is recorded, the last good keeps serving", async () => {
      const good = status();
      assert.equal(good.revision, original);
      rmSync(dir, { recursive: true, force: true });
      const s = await failedReload(good);
      assert.equal(s.revision, original);
      assert.equal(s.ready, true);
      assert.equal(s.lastError?.code, "policy_load_error");
      assert.match(s.lastError?.message ?? "", /cannot read policy directory/);
      await expectAttempt("alice", "delivered", original);
      await expectAttempt("bob", "violation", original);
    });

    it("5b. recreating the policy directory → watching resumes (an edit after the recreate reloads)", async () => {
      // Recreated atomically (copy aside, rename into place) with the example files: identical content to
      // the active revision, so by itself that is (correctly) no new revision. An edit afterwards must be.
      const staging = join(base, "staging");
      cpSync(POLICIES, staging, { recursive: true });
      renameSync(staging, dir);
      const before = status();
      assert.equal(before.revision, original);
      await expectAttempt("alice", "delivered", original);

      writeFileSync(file("data.json.tmp"), dataWithBobWriter());
      renameSync(file("data.json.tmp"), file("data.json"));
      const s = await okReloads(before);
      assert.notEqual(s.revision, original);
      await expectAttempt("bob", "delivered", s.revision);
    });
  },
);
