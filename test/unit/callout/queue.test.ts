import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createQueue, shedReporter, type ShedReason } from "../../../src/callout/queue.js";
import { peekRequestTimes } from "../../../src/callout/decode.js";
import { observeResult } from "../../../src/decision-record.js";
import { CalloutMetrics } from "../../../src/metrics.js";
import type { ResultEvent } from "../../../src/service.js";
import { CalloutError } from "../../../src/errors.js";

interface Job {
  name: string;
  deadline?: number;
}

/** A queue over a fake clock whose jobs finish when the test says so. */
function harness(o: { maxConcurrency: number; maxQueue: number; deadlines?: boolean; maxMarginMs?: number }) {
  let clock = 0;
  const started: string[] = [];
  const shed: [string, ShedReason][] = [];
  const finish = new Map<string, () => void>();
  const q = createQueue<Job>({
    maxConcurrency: o.maxConcurrency,
    maxQueue: o.maxQueue,
    now: () => clock,
    ...(o.maxMarginMs !== undefined ? { maxMarginMs: o.maxMarginMs } : {}),
    run: (job) => {
      started.push(job.name);
      return new Promise<void>((r) => finish.set(job.name, r));
    },
    onShed: (job, reason) => shed.push([job.name, reason]),
    ...(o.deadlines === false ? {} : { deadline: (job: Job) => job.deadline }),
  });
  /** Finishes a running job and lets the queue react (promise callbacks). */
  const done = async (name: string): Promise<void> => {
    const f = finish.get(name);
    assert.ok(f, `${name} is running`);
    f();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return {
    q,
    started,
    shed,
    done,
    tick: (ms: number) => {
      clock += ms;
    },
  };
}

describe("back-pressure queue", () => {
  it("runs at once while slots are free, then queues in order", async () => {
    const h = harness({ maxConcurrency: 2, maxQueue: 10 });
    for (const name of ["a", "b", "c", "d"]) assert.equal(h.q.push({ name }), true);
    assert.deepEqual(h.started, ["a", "b"]);
    assert.equal(h.q.inFlight, 2);
    assert.equal(h.q.length, 2);
    await h.done("a");
    assert.deepEqual(h.started, ["a", "b", "c"]);
    await h.done("b");
    await h.done("c");
    await h.done("d");
    assert.equal(h.q.inFlight, 0);
    assert.equal(h.q.length, 0);
    assert.deepEqual(h.shed, []);
  });

  it("sheds a queued job whose deadline passed, without running it", async () => {
    const h = harness({ maxConcurrency: 1, maxQueue: 10 });
    h.q.push({ name: "held", deadline: 2000 });
    h.q.push({ name: "old", deadline: 2000 });
    h.q.push({ name: "unknown" }); // no deadline known: never shed as expired
    h.q.push({ name: "fresh", deadline: 9000 });
    h.tick(2500);
    await h.done("held");
    assert.deepEqual(h.shed, [["old", "shed_expired"]]);
    // Two waiting for one slot: newest first (see the adaptive LIFO test).
    assert.deepEqual(h.started, ["held", "fresh"]);
    await h.done("fresh");
    assert.deepEqual(h.started, ["held", "fresh", "unknown"]);
    await h.done("unknown");
    assert.equal(h.q.length, 0);
  });

  it("keeps a margin of the recent run time (capped) before the deadline", async () => {
    const h = harness({ maxConcurrency: 1, maxQueue: 10, maxMarginMs: 50 });
    // Jobs that take 1000 ms each: the average run time grows, the margin stops at 50 ms.
    for (let i = 0; i < 30; i++) {
      h.q.push({ name: `w${i}`, deadline: 1e12 });
      h.tick(1000);
      await h.done(`w${i}`);
    }
    assert.equal(h.q.marginMs, 50);
    const at = 1e6; // well past the warm-up clock
    h.tick(at - 30_000);
    h.q.push({ name: "running", deadline: 1e12 });
    h.q.push({ name: "tight", deadline: at + 40 }); // less than the margin left once its turn comes
    h.q.push({ name: "ok", deadline: at + 60 });
    await h.done("running");
    assert.deepEqual(h.shed, [["tight", "shed_expired"]]);
    assert.equal(h.started.at(-1), "ok");
    await h.done("ok");
  });

  it("a job that finds a free slot runs even when its deadline passed (no queue, no shedding)", async () => {
    const h = harness({ maxConcurrency: 1, maxQueue: 10 });
    h.tick(5000);
    h.q.push({ name: "late", deadline: 1 });
    assert.deepEqual(h.started, ["late"]);
    assert.deepEqual(h.shed, []);
    await h.done("late");
  });

  it("a full queue sheds its oldest job and keeps the newest", async () => {
    const h = harness({ maxConcurrency: 1, maxQueue: 2 });
    for (const name of ["run", "q1", "q2", "q3", "q4"]) assert.equal(h.q.push({ name }), true);
    assert.deepEqual(h.shed, [
      ["q1", "shed_overflow"],
      ["q2", "shed_overflow"],
    ]);
    assert.equal(h.q.length, 2);
    await h.done("run");
    await h.done("q4");
    assert.deepEqual(h.started, ["run", "q4", "q3"]);
    await h.done("q3");
  });

  it("a full queue first sheds what expired, then overflows", async () => {
    const h = harness({ maxConcurrency: 1, maxQueue: 2 });
    h.q.push({ name: "run" });
    h.q.push({ name: "dead", deadline: 100 });
    h.q.push({ name: "live", deadline: 10_000 });
    h.tick(200);
    h.q.push({ name: "new", deadline: 10_200 });
    assert.deepEqual(h.shed, [["dead", "shed_expired"]]);
    assert.equal(h.q.length, 2);
    await h.done("run");
    await h.done("new");
    await h.done("live");
    assert.deepEqual(h.started, ["run", "new", "live"]);
  });

  it("without deadlines nothing is shed as expired; maxQueue 0 refuses instead of shedding", async () => {
    const h = harness({ maxConcurrency: 1, maxQueue: 0, deadlines: false });
    assert.equal(h.q.push({ name: "run", deadline: 1 }), true);
    assert.equal(h.q.push({ name: "refused" }), false);
    assert.deepEqual(h.shed, []);
    await h.done("run");
    const g = harness({ maxConcurrency: 1, maxQueue: 5, deadlines: false });
    g.q.push({ name: "run" });
    g.q.push({ name: "old", deadline: 1 });
    g.tick(10_000);
    await g.done("run");
    assert.deepEqual(g.started, ["run", "old"]);
    await g.done("old");
  });

  it("a run that throws or rejects frees its slot", async () => {
    let calls = 0;
    const q = createQueue<number>({
      maxConcurrency: 1,
      maxQueue: 5,
      run: (n) => {
        calls++;
        if (n === 0) throw new Error("sync");
        return Promise.reject(new Error("async"));
      },
      onShed: () => assert.fail("nothing to shed"),
    });
    q.push(0);
    q.push(1);
    q.push(2);
    for (let i = 0; i < 20; i++) await Promise.resolve();
    assert.equal(calls, 3);
    assert.equal(q.inFlight, 0);
    assert.equal(q.length, 0);
  });

  it("clear() hands back the queued jobs without shedding them", () => {
    const h = harness({ maxConcurrency: 1, maxQueue: 5 });
    for (const name of ["run", "a", "b"]) h.q.push({ name });
    assert.deepEqual(
      h.q.clear().map((j) => j.name),
      ["a", "b"],
    );
    assert.equal(h.q.length, 0);
    assert.deepEqual(h.shed, []);
  });

  it("once more than maxConcurrency wait, the newest runs first; FIFO again when the backlog is short", async () => {
    const h = harness({ maxConcurrency: 2, maxQueue: 10 });
    for (const name of ["a", "b", "c", "d", "e"]) h.q.push({ name });
    await h.done("a"); // three waiting for two slots: e (newest) first
    await h.done("b"); // two waiting: FIFO
    await h.done("e");
    await h.done("c");
    await h.done("d");
    assert.deepEqual(h.started, ["a", "b", "e", "c", "d"]);
    assert.deepEqual(h.shed, []);
  });

  it("long runs of push/shift keep FIFO order across compaction", async () => {
    const h = harness({ maxConcurrency: 1500, maxQueue: 5000 });
    for (let i = 0; i < 3000; i++) h.q.push({ name: String(i) });
    for (let i = 0; i < 3000; i++) await h.done(String(i));
    assert.deepEqual(
      h.started.map(Number),
      Array.from({ length: 3000 }, (_, i) => i),
    );
  });
});

describe("shed reporter", () => {
  it("reports the first shed at once and sums the rest until flushed", () => {
    const lines: [Record<ShedReason, number>, boolean][] = [];
    const r = shedReporter((c, first) => lines.push([{ ...c }, first]), 60_000);
    r.shed("shed_expired");
    r.shed("shed_expired");
    r.shed("shed_overflow");
    r.shed("shed_expired");
    assert.deepEqual(lines, [[{ shed_expired: 1, shed_overflow: 0 }, true]]);
    r.flush();
    assert.deepEqual(lines[1], [{ shed_expired: 2, shed_overflow: 1 }, false]);
    r.flush(); // nothing new: no line
    assert.equal(lines.length, 2);
  });
});

describe("peekRequestTimes", () => {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const jwt = (claims: object) =>
    new TextEncoder().encode(
      `${b64({ typ: "JWT", alg: "ed25519-nkey" })}.${b64(claims)}.${Buffer.alloc(64).toString("base64url")}`,
    );
  it("reads iat/exp of a plaintext request, nothing from anything else", () => {
    assert.deepEqual(peekRequestTimes(jwt({ iat: 100, exp: 102 })), { issued_at: 100, expires_at: 102 });
    assert.equal(peekRequestTimes(jwt({ iat: 100 })), undefined);
    assert.equal(peekRequestTimes(jwt({ iat: "x", exp: 1 })), undefined);
    assert.equal(peekRequestTimes(new Uint8Array([1, 2, 3, 4])), undefined); // sealed
    assert.equal(peekRequestTimes(new TextEncoder().encode("eyJnot.a.jwt")), undefined);
  });
});

describe("shed requests in the metrics", () => {
  it("count as abort with their code and as dropped by reason, never as allow or deny", async () => {
    const m = new CalloutMetrics({ defaultMetrics: false });
    const shed = (reason: "shed_expired" | "shed_overflow", code: "request_expired" | "overloaded") => {
      const outcome = { kind: "abort" as const, code, reason: "shed" };
      const ev: ResultEvent = {
        decisionId: "d",
        receivedAt: new Date(),
        queue_us: 1500,
        result: {
          decisionId: "d",
          outcome,
          error: new CalloutError(code, "shed"),
          facts: {},
          timings: { decode_us: 0, handler_us: 0, sign_us: 0, total_us: 0 },
        },
        outcome,
        reply: "none",
        dropped: reason,
        replied: false,
      };
      observeResult(m, ev, "nats/authz/decision");
    };
    shed("shed_expired", "request_expired");
    shed("shed_expired", "request_expired");
    shed("shed_overflow", "overloaded");
    const text = await m.render();
    assert.match(text, /requests_dropped_total\{reason="shed_expired"\} 2$/m);
    assert.match(text, /requests_dropped_total\{reason="shed_overflow"\} 1$/m);
    assert.match(text, /requests_total\{outcome="abort",code="request_expired",account=""\} 2$/m);
    assert.match(text, /requests_total\{outcome="abort",code="overloaded",account=""\} 1$/m);
    assert.doesNotMatch(text, /requests_total\{outcome="(allow|deny)"/);
    // Not double-counted as "expired before handling".
    assert.doesNotMatch(text, /requests_dropped_total\{reason="expired"\}/);
  });
});
