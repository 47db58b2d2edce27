/**
 * Replica failure: two service replicas in one queue group; SIGKILL one mid-storm. Authorizations
 * must continue on the survivor. Only requests in flight on the dead replica may fail (they wait out
 * the server's auth timeout), so failures are bounded by the storm's concurrency; the count is reported.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import {
  stormTs,
  RELIABILITY_FULL as FULL,
  RELIABILITY_SCALE_NAME as SCALE_NAME,
  fileDir,
  readDecisions,
  startStack,
  type Stack,
} from "../support/index.js";

const N = FULL ? 10_000 : 2_000;
const CONCURRENCY = 50;

let stack: Stack | undefined;
after(async () => {
  await stack?.close();
});

test(`SIGKILL one of two replicas mid-storm (${SCALE_NAME}: ${N} connections)`, async (t) => {
  const dir = fileDir("replica");
  stack = await startStack({ dir, replicas: 2 });
  const [, victim] = stack.services;
  assert.ok(victim);

  let killedAt = -1; // index of the attempt count at the kill
  let done = 0;
  let okAfterKill = 0;
  let failedAfterKill = 0;
  const killAfter = Math.floor(N / 3);
  let killing: Promise<void> | undefined;
  const result = await stormTs({
    url: stack.server.url,
    n: N,
    concurrency: CONCURRENCY,
    creds: stack.creds,
    onResult: (_i, ok) => {
      done++;
      if (killedAt >= 0) {
        if (ok) okAfterKill++;
        else failedAfterKill++;
      }
      if (done === killAfter && !killing) {
        killedAt = done;
        killing = victim.kill();
      }
    },
  });
  await killing;
  const s = stack;
  await s.close();

  const survivorEvents = readDecisions(s.decisionLog(0)).length;
  const victimEvents = readDecisions(s.decisionLog(1)).length;
  t.diagnostic(
    `killed replica 1 after ${killedAt} of ${N} attempts: ${result.ok} ok, ${result.failed} failed ` +
      `${JSON.stringify(result.errors)}; after the kill ${okAfterKill} ok / ${failedAfterKill} failed; ` +
      `decision events survivor ${survivorEvents}, victim ${victimEvents}`,
  );
  assert.equal(victim.alive(), false, "the victim is dead");
  assert.ok(victimEvents > 0, "the victim served before it was killed (queue group shares the load)");
  assert.ok(okAfterKill >= N - killAfter - CONCURRENCY, "authorizations continued on the survivor");
  assert.ok(
    result.failed <= CONCURRENCY,
    `at most the requests in flight on the dead replica may fail (got ${result.failed})`,
  );
  for (const msg of Object.keys(result.errors)) {
    assert.match(msg, /authorization|timeout/i, `unexpected failure kind: ${msg}`);
  }
});
