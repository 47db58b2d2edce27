/**
 * SIGTERM drains without loss: two replicas in one queue group, a connect storm at concurrency 50, one replica
 * SIGTERM'd a third of the way in. Every login must succeed: the draining replica decides every request the
 * server delivered to it before its unsubscribe took effect, and the survivor takes the rest. Several rounds,
 * each on a fresh stack; every login is recorded exactly once, as an allow, by one of the two replicas.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  RELIABILITY_FULL as FULL,
  RELIABILITY_SCALE_NAME as SCALE_NAME,
  fileDir,
  sigtermMidStorm,
} from "../support/index.js";

const N = FULL ? 3_000 : 1_000;
const ROUNDS = FULL ? 3 : 1;
const CONCURRENCY = 50;

test(`SIGTERM one of two replicas mid-storm loses no login (${SCALE_NAME}: ${ROUNDS} × ${N} logins)`, async (t) => {
  const dir = fileDir("drain");
  for (let round = 1; round <= ROUNDS; round++) {
    const roundDir = join(dir, `round-${round}`);
    mkdirSync(roundDir, { recursive: true });
    const r = await sigtermMidStorm({ dir: roundDir, n: N, concurrency: CONCURRENCY });
    const [survivor, victim] = r.events;
    t.diagnostic(
      `round ${round}: SIGTERM after ${r.stoppedAfter} of ${N}; ${r.storm.ok} ok, ${r.storm.failed} failed ` +
        `${JSON.stringify(r.storm.errors)}; victim exit ${r.victimExit}; events survivor ${survivor.length}, ` +
        `victim ${victim.length}`,
    );
    assert.equal(r.storm.failed, 0, `round ${round}: failed logins ${JSON.stringify(r.storm.errors)}`);
    assert.equal(r.victimExit, 0, `round ${round}: the victim drained and exited 0`);
    assert.deepEqual(r.victimDrops, [], `round ${round}: the victim dropped nothing`);
    assert.ok(victim.length > 0, `round ${round}: the victim served before it stopped`);
    const all = [...survivor, ...victim];
    assert.equal(all.length, N, `round ${round}: one decision event per login`);
    assert.deepEqual(
      all.filter((e) => e.outcome !== "allow" || e.reply !== "sent").map((e) => [e.outcome, e.code]),
      [],
      `round ${round}: every event is an allow whose reply was sent`,
    );
  }
});
