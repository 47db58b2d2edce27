/**
 * The service's back-pressure queue: at most `maxConcurrency` jobs run, at most `maxQueue` wait (FIFO).
 *
 * Shedding, for requests that can no longer be answered in time (the server has given up on them and the
 * client retries anyway, so deciding them is wasted CPU while live requests wait behind them):
 * - expired: a queued job whose deadline (the server's auth timeout for that request) is closer than the
 *   recent handling time is removed without running (`shed_expired`), when it reaches the head of the queue
 *   and whenever a full queue is offered a new job;
 * - overflow: a full queue sheds its OLDEST job (the one closest to its deadline) and keeps the new one
 *   (`shed_overflow`). With `maxQueue` 0 there is nothing to shed: a job finding every slot busy is refused.
 *
 * Order: FIFO while the backlog is short; once more than `maxConcurrency` jobs wait, the NEWEST runs first
 * (adaptive LIFO). In a FIFO backed up past the deadline every job reaches a slot with almost no time left and
 * is answered late; newest-first spends the slots on jobs that still have their whole timeout ahead, and the old
 * ones, which the server is about to give up on anyway, expire at the head and are shed.
 *
 * A job that finds a free slot runs at once and is never shed. Each shed job is handed to `onShed` exactly
 * once and never to `run`. No timers: everything happens in push() and when a running job settles.
 */

export type ShedReason = "shed_expired" | "shed_overflow";

export interface QueueOptions<T> {
  maxConcurrency: number;
  maxQueue: number;
  /** Runs one job; it counts as in flight until the promise settles (rejections are ignored: handle them). */
  run: (job: T) => Promise<void>;
  /** Called synchronously, once, for every job shed from the queue. */
  onShed: (job: T, reason: ShedReason) => void;
  /**
   * The job's deadline, in `now()` milliseconds, past which an answer is useless; undefined = unknown (the job
   * is never shed as expired). Asked at most once per shedding check. Omitted: nothing is shed as expired.
   */
  deadline?: (job: T) => number | undefined;
  /** Upper bound of the safety margin (ms) taken from the recent handling time. Default 250. */
  maxMarginMs?: number;
  /** Clock in milliseconds (default performance.now()). */
  now?: () => number;
}

export interface Queue<T> {
  /** Runs the job now, queues it (shedding the oldest when full), or returns false when it is refused. */
  push(job: T): boolean;
  /** Removes and returns every queued job (not shed: the caller says what became of them). */
  clear(): T[];
  readonly inFlight: number;
  readonly length: number;
  /** The current safety margin (ms): a queued job with less time than this left is shed as expired. */
  readonly marginMs: number;
  /** Called after every job settles (e.g. to notice the queue went idle). */
  onSettled?: () => void;
}

/** A FIFO of jobs with O(1) shift (a head index into an array, compacted when half is consumed). */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(x: T): void {
    this.items.push(x);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  pop(): T | undefined {
    return this.items.length > this.head ? this.items.pop() : undefined;
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
  clear(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}

/** Weight of the newest handling time in the moving average behind the margin. */
const EWMA_WEIGHT = 0.1;

export function createQueue<T>(o: QueueOptions<T>): Queue<T> {
  const now = o.now ?? (() => performance.now());
  const maxMargin = o.maxMarginMs ?? 250;
  const fifo = new Fifo<T>();
  let inFlight = 0;
  /** Moving average of how long a job runs (ms): the time a dequeued job still needs. */
  let avgRunMs = 0;
  const margin = (): number => Math.min(avgRunMs, maxMargin);

  const expired = (job: T, at: number): boolean => {
    const d = o.deadline?.(job);
    return d !== undefined && at + margin() >= d;
  };

  const start = (job: T): void => {
    inFlight++;
    const t = now();
    let p: Promise<void>;
    try {
      p = o.run(job);
    } catch (err) {
      p = Promise.reject(err);
    }
    void p
      .catch(() => {})
      .finally(() => {
        inFlight--;
        avgRunMs += (now() - t - avgRunMs) * EWMA_WEIGHT;
        pump();
        q.onSettled?.();
      });
  };

  /** Sheds expired jobs at the head (FIFO order ≈ deadline order, so the head expires first). */
  const shedExpiredHead = (): void => {
    if (!o.deadline) return;
    const at = now();
    for (let job = fifo.peek(); job !== undefined && expired(job, at); job = fifo.peek()) {
      fifo.shift();
      o.onShed(job, "shed_expired");
    }
  };

  const pump = (): void => {
    while (inFlight < o.maxConcurrency && fifo.length > 0) {
      shedExpiredHead();
      const job = fifo.length > o.maxConcurrency ? fifo.pop() : fifo.shift();
      if (job === undefined) return;
      start(job);
    }
  };

  const q: Queue<T> = {
    push(job: T): boolean {
      if (inFlight < o.maxConcurrency && fifo.length === 0) {
        start(job);
        return true;
      }
      if (o.maxQueue <= 0) return false;
      if (fifo.length >= o.maxQueue) shedExpiredHead();
      if (fifo.length >= o.maxQueue) o.onShed(fifo.shift()!, "shed_overflow");
      fifo.push(job);
      pump();
      return true;
    },
    clear: () => fifo.clear(),
    get inFlight() {
      return inFlight;
    },
    get length() {
      return fifo.length;
    },
    get marginMs() {
      return margin();
    },
  };
  return q;
}

/**
 * Counts shed jobs for a rate-limited log: the first shed of a quiet period is reported at once, later ones
 * are summed and reported at most once per `intervalMs` (the metrics count every one).
 */
export function shedReporter(
  report: (counts: Record<ShedReason, number>, first: boolean) => void,
  intervalMs = 5000,
): { shed(reason: ShedReason): void; flush(): void } {
  let counts: Record<ShedReason, number> = { shed_expired: 0, shed_overflow: 0 };
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (counts.shed_expired + counts.shed_overflow > 0) report(counts, false);
    counts = { shed_expired: 0, shed_overflow: 0 };
  };
  return {
    shed(reason) {
      if (timer === undefined) {
        report({ shed_expired: 0, shed_overflow: 0, [reason]: 1 }, true);
        timer = setTimeout(flush, intervalMs);
        timer.unref();
        return;
      }
      counts[reason]++;
    },
    flush,
  };
}
