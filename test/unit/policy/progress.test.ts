/**
 * The claim/withdraw hand-over between the pool (main thread) and a policy worker (src/policy/progress.ts): every job
 * sent is either run by the worker or withdrawn by the pool, never both and never neither — checked with a real second
 * thread racing the main thread over 200,000 jobs, and across the wrap of the 31-bit sequence numbers. The interleaving
 * differs from run to run; the property does not depend on it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import {
  claim,
  finish,
  FINISHED,
  finishedMark,
  IDLE,
  monotonicMs,
  newProgress,
  nextSeq,
  NEXT,
  runningJob,
  withdrawUnclaimed,
} from "../../../src/policy/progress.js";

test("claim and withdraw, one thread: a withdrawn job cannot be claimed; the stream goes on after it", () => {
  const p = newProgress();
  assert.equal(runningJob(p), undefined);
  assert.equal(claim(p, 0), true);
  const r = runningJob(p);
  assert.equal(r?.seq, 0);
  assert.ok(Math.abs((r?.startedAt ?? 0) - monotonicMs()) < 60_000);
  finish(p, 7);
  assert.equal(Atomics.load(p.cells, FINISHED), finishedMark(7));
  assert.equal(runningJob(p), undefined);
  // jobs 1, 2, 3 sent; withdraw them before the worker gets to them
  assert.equal(withdrawUnclaimed(p, 4), 1);
  assert.equal(claim(p, 1), false);
  assert.equal(claim(p, 2), false);
  assert.equal(claim(p, 3), false);
  assert.equal(withdrawUnclaimed(p, 4), 4, "nothing left to withdraw");
  assert.equal(claim(p, 4), true, "the next job sent runs");
  finish(p, 8);
  assert.equal(withdrawUnclaimed(p, 5), 5);
});

test("sequence numbers wrap at 2^31 without colliding with IDLE", () => {
  const p = newProgress();
  const top = 2 ** 31 - 1;
  assert.equal(nextSeq(top), 0);
  assert.notEqual(nextSeq(top), IDLE);
  Atomics.store(p.cells, NEXT, top);
  assert.equal(claim(p, top), true);
  assert.equal(runningJob(p)?.seq, top);
  finish(p, 1);
  assert.equal(Atomics.load(p.cells, NEXT), 0);
  assert.equal(withdrawUnclaimed(p, 3), 0);
  assert.equal(claim(p, 0), false);
  assert.equal(claim(p, 3), true);
});

/**
 * A worker that runs src/policy/progress.ts's own claim()/finish() on every job the main thread "sends" (bumps
 * `sent`), as the policy worker does per message. (A worker thread does not inherit --import tsx: register it first.)
 */
const RACER = `
const { workerData } = require("node:worker_threads");
import(workerData.tsx).then((m) => { m.register(); return import(workerData.progressUrl); }).then((P) => {
  const { ctl, claimedBuf, total, start } = workerData;
  const sent = new Int32Array(ctl);
  const p = P.viewProgress(workerData.progress);
  const claimed = new Uint8Array(claimedBuf);
  let s = start;
  for (let i = 0; i < total; i++, s = P.nextSeq(s)) {
    for (;;) {
      const n = Atomics.load(sent, 0);
      if (n > i) break;
      Atomics.wait(sent, 0, n, 50);
    }
    if (P.claim(p, s)) {
      claimed[i] = 1;
      P.finish(p, i);
    }
    Atomics.store(sent, 1, i + 1);
    Atomics.notify(sent, 1);
  }
}).catch((e) => process.nextTick(() => { throw e; }));
`;

async function race(start: number): Promise<void> {
  const total = 200_000;
  const p = newProgress();
  Atomics.store(p.cells, NEXT, start);
  const ctl = new SharedArrayBuffer(8); // [sent, jobs the worker has looked at]
  const sentCount = new Int32Array(ctl);
  const claimedBuf = new SharedArrayBuffer(total);
  const withdrawn = new Uint8Array(total);
  const w = new Worker(RACER, {
    eval: true,
    workerData: {
      ctl,
      claimedBuf,
      total,
      start,
      progress: p.buffer,
      tsx: import.meta.resolve("tsx/esm/api"),
      progressUrl: new URL("../../../src/policy/progress.ts", import.meta.url).href,
    },
  });
  const exited = new Promise<number>((resolve, reject) => {
    w.once("exit", resolve);
    w.once("error", reject);
  });
  const seqOf = (i: number): number => (start + i) & 0x7fffffff;
  let sent = 0;
  let withdrawals = 0;
  const withdraw = (): void => {
    const first = withdrawUnclaimed(p, seqOf(sent));
    if (first !== seqOf(sent)) withdrawals++;
    for (let i = (first - start) & 0x7fffffff; i < sent; i++) withdrawn[i] = 1;
  };
  const publish = (): void => {
    Atomics.store(sentCount, 0, sent);
    Atomics.notify(sentCount, 0);
  };
  for (let round = 0; sent < total; round++) {
    const k = Math.min(total - sent, 1 + Math.floor(Math.random() * 64));
    sent += k;
    if (round % 10 === 0) {
      // withdrawn before the worker can see them: certainly withdrawn
      withdraw();
      publish();
    } else if (round % 10 === 1) {
      // the worker sees every job and catches up: certainly run
      publish();
      while (Atomics.load(sentCount, 1) < sent) await new Promise((r) => setImmediate(r));
    } else {
      // a race: the worker claims while we withdraw
      publish();
      if (Math.random() < 0.5) withdraw();
      if (Math.random() < 0.05) await new Promise((r) => setImmediate(r));
    }
  }
  assert.equal(await exited, 0);
  const claimed = new Uint8Array(claimedBuf);
  let both = 0;
  let neither = 0;
  let ran = 0;
  for (let i = 0; i < total; i++) {
    if (claimed[i] && withdrawn[i]) both++;
    if (!claimed[i] && !withdrawn[i]) neither++;
    if (claimed[i]) ran++;
  }
  assert.equal(both, 0, "no job both run and withdrawn");
  assert.equal(neither, 0, "no job lost");
  assert.ok(ran > 0, "the worker ran jobs");
  assert.ok(withdrawals > 0, "the pool withdrew jobs");
}

test("a worker claiming and the pool withdrawing at the same time: every job exactly once (200,000 jobs)", async () => {
  await race(0);
});

test("the same across the wrap of the sequence numbers", async () => {
  await race(2 ** 31 - 100_000);
});
