/**
 * The cells a policy worker and its pool share (one SharedArrayBuffer per worker), so that several jobs can be in
 * flight to one worker without giving up a per-job deadline or letting a slow job hold the jobs queued behind it.
 *
 * Every job sent to a worker gets the next sequence number of that worker's stream (31 bits, wrapping). The worker
 * *claims* a job before it starts it; the pool can *withdraw* the jobs not claimed yet (to give them to an idle
 * worker, or when it ends the worker). Both go through one claim cursor, so a job is either run by the worker or
 * withdrawn by the pool, never both and never lost:
 *
 * - `next`: the sequence number the worker may claim next. The worker claims job `s` with
 *   compareExchange(next, s, s + 1); the pool withdraws every job from `next` up to (not including) `sent` with
 *   compareExchange(next, n, sent). A job whose claim fails was withdrawn.
 * - `running`: the sequence number of the job the worker is evaluating now, or IDLE. Written after `startedAt`, so
 *   the pool never pairs a running job with an older job's start.
 * - `startedAt`: monotonicMs() when that job was claimed (a plain Float64; only the watchdog reads it).
 * - `finished`: finishedMark(job id) of the last job the worker finished (tests wait on it without the event loop).
 *
 * Why hand-written: the pool needs an exactly-once hand-over between two threads without a round trip, which is one
 * compare-and-swap on shared memory; no library offers that over worker_threads without its own scheduler.
 */

/** Int32 cell indexes. */
export const FINISHED = 0;
export const NEXT = 1;
export const RUNNING = 2;
/** `running` when no job is being evaluated (sequence numbers are never negative). */
export const IDLE = -1;
/** Byte offset of the Float64 `startedAt` cell. */
const STARTED_AT_BYTE = 16;
const BYTES = 24;

/** The value a worker stores in `finished` for job `id` (ids grow past Int32). */
export const finishedMark = (id: number): number => id % 2 ** 31;

/**
 * Milliseconds on the system's monotonic clock, the same in every thread of the process (a wall-clock step cannot
 * kill a job or spare one).
 */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** The next sequence number after `s` (0 … 2^31 - 1, wrapping). */
export const nextSeq = (s: number): number => (s + 1) & 0x7fffffff;

export interface Progress {
  readonly buffer: SharedArrayBuffer;
  readonly cells: Int32Array;
  readonly startedAt: Float64Array;
}

export function newProgress(): Progress {
  const buffer = new SharedArrayBuffer(BYTES);
  const p = viewProgress(buffer);
  Atomics.store(p.cells, FINISHED, -1);
  Atomics.store(p.cells, NEXT, 0);
  Atomics.store(p.cells, RUNNING, IDLE);
  return p;
}

export function viewProgress(buffer: SharedArrayBuffer): Progress {
  return {
    buffer,
    cells: new Int32Array(buffer, 0, 3),
    startedAt: new Float64Array(buffer, STARTED_AT_BYTE, 1),
  };
}

/** Worker side: claim job `seq` and mark it running. False: the pool withdrew it; skip it. */
export function claim(p: Progress, seq: number): boolean {
  if (Atomics.compareExchange(p.cells, NEXT, seq, nextSeq(seq)) !== seq) return false;
  p.startedAt[0] = monotonicMs();
  Atomics.store(p.cells, RUNNING, seq); // after startedAt: whoever sees this seq sees its start
  return true;
}

/** Worker side: job `id` is finished (its answer is about to be posted). */
export function finish(p: Progress, id: number): void {
  Atomics.store(p.cells, FINISHED, finishedMark(id));
  Atomics.store(p.cells, RUNNING, IDLE);
}

/**
 * Pool side: withdraw every job the worker has not claimed yet, given `sent` (the sequence number the next job sent
 * would get). Returns the first withdrawn sequence number; jobs from it up to `sent` will be skipped by the worker.
 * Returns `sent` when there was nothing to withdraw.
 */
export function withdrawUnclaimed(p: Progress, sent: number): number {
  for (;;) {
    const n = Atomics.load(p.cells, NEXT);
    if (n === sent) return sent;
    if (Atomics.compareExchange(p.cells, NEXT, n, sent) === n) return n;
  }
}

/** Pool side: the job being evaluated now and since when (monotonicMs), or undefined when none. */
export function runningJob(p: Progress): { seq: number; startedAt: number } | undefined {
  const seq = Atomics.load(p.cells, RUNNING);
  if (seq === IDLE) return undefined;
  return { seq, startedAt: p.startedAt[0] as number };
}
