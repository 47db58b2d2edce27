/**
 * The service's lifecycle as operators drive it, on the real CLI (`serve`) against a real nats-server:
 *
 * - SIGTERM drains without loss: two replicas, a storm of logins at concurrency 50, one replica SIGTERM'd a third
 *   of the way in → no login fails, the victim exits 0 having dropped nothing, every login has one event
 *   (the full-size rounds are in test/reliability/drain.test.ts);
 * - SIGHUP reopens the decision-log file (log rotation: rename, SIGHUP, new events in a new file) and reloads the
 *   policy (a changed policy is activated, an unchanged one is left alone, a broken one keeps the last good),
 *   and never kills the process.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  atomicWrite,
  fileDir,
  policyStatus,
  readDecisions,
  revisionOf,
  sigtermMidStorm,
  startStack,
  tryConnect,
  TRIVIAL_POLICY,
  waitUntil,
  type Stack,
} from "../support/index.js";

/** The events of a decision log once it holds `n` (events are written once the reply's fate is known). */
const events = (path: string, n: number) =>
  waitUntil(
    `${n} events in ${path}`,
    async () => {
      const all = readDecisions(path);
      return all.length >= n ? all : undefined;
    },
    10_000,
  );

describe("SIGTERM mid-storm", () => {
  it("two replicas, one SIGTERM'd mid-storm: 0 of 300 logins lost", async (t) => {
    const dir = fileDir("lifecycle-sigterm");
    const r = await sigtermMidStorm({ dir, n: 300, concurrency: 50 });
    const [survivor, victim] = r.events;
    t.diagnostic(
      `SIGTERM after ${r.stoppedAfter}: ${r.storm.ok} ok, ${r.storm.failed} failed; ` +
        `events survivor ${survivor.length}, victim ${victim.length}`,
    );
    assert.equal(r.storm.failed, 0, `failed logins: ${JSON.stringify(r.storm.errors)}`);
    assert.equal(r.victimExit, 0, "the victim drained and exited 0");
    assert.deepEqual(r.victimDrops, [], "the victim dropped nothing");
    assert.ok(victim.length > 0, "the victim served before it stopped");
    assert.equal(survivor.length + victim.length, r.n, "one event per login");
    for (const e of [...survivor, ...victim]) assert.equal(e.outcome, "allow");
  });
});

const CLOSED_POLICY = `package nats.authz

import rego.v1

decision := {"allow": false, "reason": "closed_for_maintenance"}
`;

describe("SIGHUP", () => {
  let stack: Stack | undefined;
  after(async () => {
    await stack?.close();
  });

  it("reopens the decision log and reloads the policy; the process keeps serving", async () => {
    const dir = fileDir("lifecycle-sighup");
    stack = await startStack({ dir, replicas: 1, watch: false });
    const svc = stack.services[0]!;
    const log = stack.decisionLog(0);
    const hangup = async (expect: RegExp) => {
      const mark = svc.output().length;
      svc.proc.kill("SIGHUP");
      await svc.waitFor(/"msg":"policy reload on SIGHUP"/, 30_000, mark);
      const lines = svc.output().slice(mark);
      assert.match(lines, /"msg":"reopening log files and reloading the policy"/);
      assert.match(lines, expect);
      assert.ok(svc.alive(), "SIGHUP did not kill the process");
      return lines;
    };

    assert.equal(await tryConnect(stack.server.url, stack.creds(1)), undefined);
    await events(log, 1);
    const first = await policyStatus(stack.statusUrl(0));

    // Unchanged policy: SIGHUP reloads it anyway (a forced reload, so a tree that failed before is retried) and the
    // same revision keeps serving. Rotation: the events after SIGHUP go to a new file at the path.
    const rotated = `${log}.1`;
    renameSync(log, rotated);
    const unchanged = await hangup(new RegExp(`"result":"ok","revision":"${first.revision}"`));
    assert.match(unchanged, /"msg":"decision log reopened"/);
    assert.equal(await tryConnect(stack.server.url, stack.creds(2)), undefined);
    assert.equal(readDecisions(rotated).length, 1, "the rotated file keeps the event written before");
    const after1 = await events(log, 1);
    assert.equal(after1.length, 1, "the new file has the event written after SIGHUP");
    assert.equal(after1[0]!.outcome, "allow");
    assert.equal(after1[0]!.revision, first.revision);

    // A changed policy (watching is off): SIGHUP activates it.
    atomicWrite(join(stack.policyDir, "policy.rego"), CLOSED_POLICY);
    await hangup(/"result":"ok"/);
    const closed = revisionOf({ "policy.rego": CLOSED_POLICY });
    assert.equal((await policyStatus(stack.statusUrl(0))).revision, closed);
    assert.match((await tryConnect(stack.server.url, stack.creds(3))) ?? "", /Authorization Violation/);
    const denied = (await events(log, 2)).at(-1)!;
    assert.deepEqual(
      [denied.outcome, denied.reason, denied.revision],
      ["deny", "closed_for_maintenance", closed],
    );

    // A broken policy: SIGHUP reports the failure and the last good revision keeps serving.
    writeFileSync(join(stack.policyDir, "policy.rego"), "package nats.authz\n\ndecision := {\n");
    await hangup(/"result":"error"/);
    assert.equal((await policyStatus(stack.statusUrl(0))).revision, closed);

    // Back to the first policy: logins work again.
    atomicWrite(join(stack.policyDir, "policy.rego"), TRIVIAL_POLICY);
    await hangup(/"result":"ok"/);
    assert.equal(await tryConnect(stack.server.url, stack.creds(4)), undefined);
    await events(log, 3);

    // An unwritable new file: SIGHUP keeps writing to the previous one.
    renameSync(log, `${log}.2`);
    mkdirSync(log); // a directory where the file should be: cannot be opened for appending
    const failed = await hangup(/"msg":"policy reload on SIGHUP"/);
    assert.match(failed, /"msg":"cannot reopen the decision log; still writing to the previous file"/);
    assert.equal(await tryConnect(stack.server.url, stack.creds(5)), undefined);
    assert.equal((await events(`${log}.2`, 4)).at(-1)!.outcome, "allow");

    await svc.stop(30_000);
    assert.equal(await svc.exited, 0);
  });
});
