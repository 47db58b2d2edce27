/**
 * One policy path must never stall other logins, end to end: a real nats-server in config mode, the service
 * in-process with the policy engine as `serve` wires it (createPolicyEngine with the default evaluation pool
 * and deadline), a policy with hostile paths selected by the user name (test/fixtures/policies/hostile), and
 * real nats.js clients. One client keeps logging in as "slow" (a quadratic comprehension that runs for
 * seconds) and "pad" (sprintf of a 300 MB string) while other clients keep logging in: every hostile login is
 * refused with policy_timeout (or policy_eval_error when the worker runs out of memory first), every other
 * login succeeds, 0 failures, and other logins are decided WHILE each slow evaluation runs (a service that evaluated
 * on its one thread would record none in that window). Nothing asserts speed: the slow path runs for many seconds,
 * far past the 3 s deadline set here, and the server's 20 s auth timeout leaves a loaded machine room for every
 * honest login (the deadline, not the auth timeout, is what bounds the hostile ones).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import type { PolicyEngineHandle } from "../../src/policy/index.js";
import type { ResultEvent } from "../../src/service.js";
import {
  until,
  serverMatrix,
  startExampleStack,
  type ExampleStack,
  type NatsServer,
  FIXTURES,
  skipWithoutOpa,
} from "../support/index.js";

const PASSWORD = "ok-password-1";

for (const sb of serverMatrix()) {
  describe(
    `bounded evaluation against nats-server ${sb.label} ${sb.version}`,
    { skip: sb.missing ? `nats-server ${sb.label} not found at ${sb.bin}` : skipWithoutOpa },
    () => {
      let dir: string;
      let server: NatsServer;
      let engine: PolicyEngineHandle;
      let stack: ExampleStack;
      const results: ResultEvent[] = [];

      before(async () => {
        dir = mkdtempSync(join(tmpdir(), "bounded-eval-"));
        cpSync(join(FIXTURES, "hostile"), dir, { recursive: true });
        writeFileSync(join(dir, "data.json"), JSON.stringify({ password: PASSWORD }));
        stack = await startExampleStack({
          bin: sb.bin,
          dir,
          accounts: ["APP"],
          authTimeoutS: 20,
          evalTimeoutMs: 3_000,
          log: { level: "silent" },
          onResult: (e) => results.push(e),
        });
        ({ server, engine } = stack);
      });
      after(async () => {
        await stack?.stop();
        rmSync(dir, { recursive: true, force: true });
      });

      const login = async (user: string, pass: string): Promise<"ok" | string> => {
        try {
          const nc = await connect({
            servers: server.url,
            name: `${user}-${results.length}`,
            user,
            pass,
            reconnect: false,
          });
          await nc.close();
          return "ok";
        } catch (err) {
          return (err as Error).message;
        }
      };

      it("one client on hostile paths, the others keep logging in with 0 failures", async () => {
        const hostile: string[] = [];
        /** results.length when each slow login was sent. */
        const slowSent: number[] = [];
        let attacking = true;
        const attacker = (async () => {
          try {
            for (const user of ["slow", "pad", "slow", "slow"]) {
              if (user === "slow") slowSent.push(results.length);
              hostile.push(await login(user, "x"));
            }
          } finally {
            attacking = false;
          }
        })();
        const others: string[] = [];
        // Two other clients, each logging in again and again while the attacker runs (at least 10 times each).
        await Promise.all(
          [0, 1].map(async (k) => {
            for (let i = 0; attacking || i < 10; i++) others.push(await login(`ok-${k}-${i}`, PASSWORD));
          }),
        );
        await attacker;
        const failed = others.filter((o) => o !== "ok");
        assert.deepEqual(failed, [], `every other login succeeds (${others.length} tried)`);
        assert.equal(hostile.length, 4);
        for (const h of hostile) assert.match(h, /authorization violation/i);

        await until(
          () =>
            results.filter((r) => r.result.request?.connect_opts.user !== undefined).length >=
            others.length + 4,
          "the service's result for every login",
        );
        const hostileCodes = results
          .filter((r) => ["slow", "pad"].includes(r.result.request?.connect_opts.user ?? ""))
          .map((r) => (r.result.outcome.kind === "allow" ? "allow" : r.result.outcome.code));
        assert.equal(hostileCodes.length, 4);
        for (const c of hostileCodes) assert.match(c, /^policy_(timeout|eval_error)$/);
        assert.ok(hostileCodes.filter((c) => c === "policy_timeout").length >= 3, hostileCodes.join(","));
        // Other logins were decided while each slow evaluation ran: between the slow login being sent and its result.
        const slowDone = results.flatMap((r, i) =>
          r.result.request?.connect_opts.user === "slow" ? [i] : [],
        );
        assert.equal(slowDone.length, 3);
        slowSent.forEach((sent, k) => {
          const during = results
            .slice(sent, slowDone[k])
            .filter((r) => r.result.request?.connect_opts.user?.startsWith("ok-")).length;
          assert.ok(during >= 3, `slow login ${k}: ${during} other logins decided while it was evaluated`);
        });
        const pool = engine.store.current().policy;
        await until(() => pool.stats().ready === pool.stats().workers, "the pool back at full strength");
        assert.equal(await login("ok-after", PASSWORD), "ok");
      });
    },
  );
}
