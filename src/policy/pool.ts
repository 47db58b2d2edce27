/**
 * Bounded evaluation: one policy revision loaded into a small pool of worker threads (./worker.ts),
 * each with its own wasm instance (the compiled WebAssembly.Module is shared; the data document is
 * copied into every instance). Evaluation never runs on the caller's event loop.
 *
 * Hand-off: jobs are queued, and once the code that queued them has run to completion (a microtask
 * after it: every request of one socket read of a connect storm, every answer of one worker message)
 * the queue is shared out among the idle workers, one message of up to MAX_BATCH jobs each; a worker
 * answers a message with one message. Waking a sleeping thread and reading its answer cost more than
 * a small evaluation, so jobs that arrive together (or while the workers were busy) share the wake-ups.
 * (A setImmediate flush batched as well but cost ~10 % more CPU per login in the storm; a microtask
 * adds no event-loop turn to an idle service's latency.) A job handed over behind a slow one is
 * withdrawn (./progress.ts) once that slow job has run STEAL_AFTER_MS, and goes to the next idle
 * worker; the deadline (`timeoutMs`) counts from the moment the worker starts a job.
 *
 * Outcomes of `evaluate` / `evaluateAll`:
 * - the entrypoint's value (undefined = undefined decision), or a PolicyEvalError carrying OPA's
 *   text and file:line (conflicting outputs, out of memory, strict builtin errors), scrubbed of the
 *   input's credentials;
 * - PolicyTimeoutError (`policy_timeout`) when a job runs longer than `timeoutMs` on its worker: the
 *   worker is terminated and replaced (a warn line says so; never input; after a first replacement a
 *   loaded spare is kept, so later ones are immediate) — or when the caller's
 *   `deadlineAt` (the request's expiry) passes first, queued or running: the caller is answered, the
 *   worker keeps its own `timeoutMs` bound;
 * - PolicyEvalError when a worker dies under a job (terminated, crashed): the job fails, the worker is
 *   replaced;
 * - PolicyEvalError when the pool was closed (its revision was replaced long ago).
 *
 * A pool is started for one revision (`EvaluatorPool.start`, which throws PolicyLoadError when the
 * module or data does not load) and never changes revision: a reload starts a new pool, verifies it,
 * and the store swaps the reference. The old pool is `retire`d: it finishes what it has, keeps
 * answering for `graceMs` (a request that took the old snapshot may still evaluate on it), then stops.
 */
import { Worker } from "node:worker_threads";
import { PolicyEvalError, PolicyLoadError, PolicyTimeoutError } from "../errors.js";
import type { Logger } from "../log.js";
import { DEFAULT_MEMORY, type EvalResult, type MemoryLimits } from "./engine.js";
import { mib, scrubFault } from "./faults.js";
import type { InputPath } from "./input-reads.js";
import { POOL_DEFAULTS } from "./limits.js";
import type { WasmModule } from "./wasm.js";
import {
  monotonicMs,
  newProgress,
  nextSeq,
  runningJob,
  withdrawUnclaimed,
  type Progress,
} from "./progress.js";
import type { WireOutcome, WorkerInit, WorkerJob, WorkerMessage } from "./worker.js";

export { POOL_DEFAULTS };

export interface PoolOptions {
  /** Worker threads (default 2). */
  workers?: number;
  /** Longest run of one job on a worker before it is killed and replaced (default 500 ms). */
  timeoutMs?: number;
  memory?: MemoryLimits;
  /** Host-builtin failures fail the evaluation (default true, like OPA's --strict-builtin-errors). */
  strictBuiltinErrors?: boolean;
  /** Gets policy_timeout / worker_exit / worker_replace lines (never input). */
  logger?: Logger;
  /** For log lines and errors. */
  revision?: string;
  /**
   * The input paths the revision's Rego may read (./input-reads.ts); undefined (default): unknown, anything. The
   * injection guard leaves alone client strings outside them.
   */
  inputReads?: readonly InputPath[] | undefined;
}

export interface PoolEvaluateOptions {
  /** Frozen time for `time.now_ns()` (ns since the epoch); default: now. */
  nowNs?: bigint;
  /** Answer no later than this (ms since the epoch): the request's expiry. */
  deadlineAt?: number;
}

/** One entrypoint's outcome from evaluateAll. */
export type EntrypointOutcome = ({ ok: true } & EvalResult) | { ok: false; error: PolicyEvalError };

interface Job {
  id: number;
  input: unknown;
  entrypoints: readonly string[];
  nowNs: bigint;
  settle: (v: EntrypointOutcome[] | Error) => void;
  done: boolean;
  answerTimer?: NodeJS.Timeout;
  /** How often a worker that ended handed it back unanswered. */
  handedBack?: number;
}

interface InFlight {
  seq: number;
  job: Job;
}

interface Slot {
  index: number;
  worker: Worker;
  ready: boolean;
  /** Jobs sent to this worker and not answered (nor withdrawn) yet, in stream order. */
  inFlight: InFlight[];
  /** The stream position the next job sent gets. */
  sent: number;
  /** Armed while jobs are in flight: the deadline of the running job, and withdrawal of jobs stuck behind it. */
  watchdog?: NodeJS.Timeout;
  /** When it fires (monotonicMs). */
  watchdogDue: number;
  memoryBytes: number;
  /** Set when the pool ended this worker on purpose (timeout, replace, close). */
  ending: boolean;
  /** The cells shared with the worker (WorkerInit.progress). */
  progress: Progress;
  lastError?: Error;
}

/** Most jobs handed to one worker at once (one message, one wake-up). */
export const MAX_BATCH = 16;
/**
 * A job that has run this long on a worker is "slow": the jobs queued behind it there are withdrawn and go to another
 * worker, and no new job is sent to it until it finishes (or its deadline kills it). Far above an ordinary evaluation
 * (tens of µs), far below any deadline.
 */
export const STEAL_AFTER_MS = 5;

/**
 * worker.js next to this module (dist/). Under tsx (dev, tests: this module is .ts) the worker is
 * worker.ts, and a worker thread does not run the parent's `--import tsx` hooks (Node 20): a small
 * bootstrap registers tsx in the thread first.
 */
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const WORKER_URL = new URL(FROM_SOURCE ? "./worker.ts" : "./worker.js", import.meta.url);

function newWorker(init: WorkerInit): Worker {
  if (!FROM_SOURCE) return new Worker(WORKER_URL, { workerData: init });
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot =
    `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })` +
    `.catch((e) => { process.nextTick(() => { throw e; }); });`;
  return new Worker(boot, { eval: true, workerData: init });
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** What every worker of a pool starts with (each gets its own progress cells). */
type PoolInit = Omit<WorkerInit, "progress">;

/**
 * The input as it crosses to the worker: an object becomes its JSON text as bytes, transferred (not cloned), which the
 * worker hands to opa-wasm as they are (opa-wasm would JSON.stringify the object there anyway, once per entrypoint);
 * raw JSON bytes (an ArrayBuffer) are copied (the caller keeps its buffer); other values (primitives, null) go as they are, so that
 * opa-wasm treats them exactly as before. Throws on values JSON cannot encode (BigInt, cycles).
 */
function wireInput(input: unknown): unknown {
  if (input instanceof ArrayBuffer) return input.slice(0);
  if (typeof input !== "object" || input === null) return input;
  return utf8.encode(JSON.stringify(input)).buffer; // a fresh buffer of exactly these bytes
}

const utf8 = new TextEncoder();

function toArrayBuffer(data: Uint8Array | ArrayBuffer): ArrayBuffer {
  if (data instanceof ArrayBuffer) return data;
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
}

export class EvaluatorPool {
  readonly revision: string;
  /** The compiled module every worker instantiated. */
  readonly module: WasmModule;
  readonly entrypoints: readonly string[];
  readonly requiredBuiltins: readonly string[];
  readonly timeoutMs: number;
  /** PoolOptions.inputReads. */
  readonly inputReads: readonly InputPath[] | undefined;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly init: PoolInit;
  private readonly logger: Logger | undefined;
  private nextId = 1;
  private closed = false;
  /** A flush is scheduled (a microtask). */
  private scheduled = false;
  private retireTimer: NodeJS.Timeout | undefined;
  private retiring = false;
  private replaced = 0;
  private timeouts = 0;
  private withdrawn = 0;
  /** A loaded worker in reserve (kept once a worker has been replaced). */
  private spare: Spawned | undefined;
  private sparing: Promise<void> | undefined;

  private constructor(
    init: PoolInit,
    meta: { entrypoints: string[]; requiredBuiltins: string[] },
    opts: PoolOptions,
  ) {
    this.init = init;
    this.module = init.module;
    this.entrypoints = [...meta.entrypoints].sort();
    this.requiredBuiltins = meta.requiredBuiltins;
    this.timeoutMs = opts.timeoutMs ?? POOL_DEFAULTS.timeoutMs;
    this.logger = opts.logger;
    this.revision = opts.revision ?? "";
    this.inputReads = opts.inputReads;
  }

  /**
   * Start `workers` threads with `module` and `data` (JSON bytes) and wait until every one has loaded
   * them. Throws PolicyLoadError (missing builtins, data that does not fit the memory limit, …).
   */
  static async start(
    module: WasmModule,
    data: Uint8Array | ArrayBuffer,
    opts: PoolOptions = {},
  ): Promise<EvaluatorPool> {
    const size = opts.workers ?? POOL_DEFAULTS.workers;
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`workers must be an integer >= 1, got ${size}`);
    const init: PoolInit = {
      module,
      data: toArrayBuffer(data),
      memory: {
        initial: opts.memory?.initial ?? DEFAULT_MEMORY.initial,
        maximum: opts.memory?.maximum ?? DEFAULT_MEMORY.maximum,
      },
      strictBuiltinErrors: opts.strictBuiltinErrors ?? true,
    };
    const starts: Promise<Spawned>[] = [];
    for (let i = 0; i < size; i++) starts.push(spawn(init));
    const settled = await Promise.allSettled(starts);
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) {
      for (const s of settled) if (s.status === "fulfilled") void s.value.worker.terminate();
      throw failed.reason;
    }
    const ok = settled as PromiseFulfilledResult<Spawned>[];
    const first = (ok[0] as (typeof ok)[0]).value.ready;
    const pool = new EvaluatorPool(init, first, opts);
    for (const [index, s] of ok.entries()) pool.adopt(index, s.value);
    return pool;
  }

  hasEntrypoint(name: string): boolean {
    return this.entrypoints.includes(name);
  }

  /** The largest wasm memory among the workers' instances, bytes (it never shrinks). */
  memoryBytes(): number {
    return Math.max(0, ...this.slots.map((s) => s.memoryBytes));
  }

  isClosed(): boolean {
    return this.closed;
  }

  /**
   * The worker threads, whether each is evaluating now, and the id mark of the last job each finished (tests terminate
   * one to prove recovery, or wait for a job to finish without the event loop). @internal
   */
  workers(): readonly { worker: Worker; busy: boolean; running: boolean; finished: Int32Array }[] {
    return this.slots.map((s) => ({
      worker: s.worker,
      busy: s.inFlight.length > 0,
      running: runningJob(s.progress) !== undefined,
      finished: s.progress.cells,
    }));
  }

  stats(): {
    workers: number;
    ready: number;
    busy: number;
    queued: number;
    timeouts: number;
    replaced: number;
    /** Jobs taken back from a worker stuck on a slow job, for another worker. */
    withdrawn: number;
    /** A loaded worker is in reserve. */
    spare: boolean;
  } {
    return {
      workers: this.slots.length,
      ready: this.slots.filter((s) => s.ready).length,
      busy: this.slots.filter((s) => s.inFlight.length > 0).length,
      queued: this.queue.length,
      timeouts: this.timeouts,
      replaced: this.replaced,
      withdrawn: this.withdrawn,
      spare: this.spare !== undefined,
    };
  }

  /** Evaluate one entrypoint. Throws PolicyEvalError or PolicyTimeoutError. */
  async evaluate(input: unknown, entrypoint: string, opts: PoolEvaluateOptions = {}): Promise<EvalResult> {
    const [o] = await this.evaluateAll(input, [entrypoint], opts);
    if (!o) throw new PolicyEvalError("evaluation returned nothing");
    if (!o.ok) throw o.error;
    return { result: o.result, builtinErrors: o.builtinErrors };
  }

  /**
   * Evaluate several entrypoints with one input, one frozen time and one revision, in one round trip.
   * Each entrypoint's failure is reported in its own outcome; the promise rejects only with
   * PolicyTimeoutError or PolicyEvalError for the job as a whole (worker died, pool closed).
   */
  evaluateAll(
    input: unknown,
    entrypoints: readonly string[],
    opts: PoolEvaluateOptions = {},
  ): Promise<EntrypointOutcome[]> {
    if (this.closed) {
      return Promise.reject(new PolicyEvalError(`policy revision ${this.revision} is no longer loaded`));
    }
    const nowNs = opts.nowNs ?? BigInt(Date.now()) * 1_000_000n;
    return new Promise<EntrypointOutcome[]>((resolve, reject) => {
      const job: Job = {
        id: this.nextId++,
        input,
        entrypoints,
        nowNs,
        done: false,
        settle: (v) => {
          if (job.done) return;
          job.done = true;
          if (job.answerTimer) clearTimeout(job.answerTimer);
          if (v instanceof Error) reject(v);
          else resolve(v);
          this.maybeFinishRetire();
        },
      };
      // (setTimeout turns anything beyond 2^31-1 ms into 1 ms: a far deadline sets no timer)
      if (opts.deadlineAt !== undefined && opts.deadlineAt - Date.now() <= MAX_TIMER_MS) {
        const ms = Math.max(0, opts.deadlineAt - Date.now());
        job.answerTimer = setTimeout(() => {
          const queued = this.queue.indexOf(job);
          if (queued >= 0) this.queue.splice(queued, 1);
          job.settle(
            new PolicyTimeoutError(
              `no decision before the request expired (${queued >= 0 ? "waiting for a worker" : "still evaluating"})`,
            ),
          );
        }, ms);
      }
      this.queue.push(job);
      this.dispatch();
    });
  }

  /** Stop after `graceMs` once no job is pending (a replaced revision). */
  retire(graceMs: number = POOL_DEFAULTS.retireGraceMs): void {
    if (this.closed || this.retireTimer) return;
    this.retireTimer = setTimeout(() => {
      this.retiring = true;
      this.maybeFinishRetire();
    }, graceMs);
    this.retireTimer.unref();
  }

  /** Terminate every worker now; pending jobs fail with PolicyEvalError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retireTimer) clearTimeout(this.retireTimer);
    const gone = new PolicyEvalError(`policy revision ${this.revision} is no longer loaded`);
    for (const job of this.queue.splice(0)) job.settle(gone);
    const spare = this.spare;
    this.spare = undefined;
    if (spare) await spare.worker.terminate();
    await Promise.all(
      this.slots.map(async (s) => {
        s.ending = true;
        if (s.watchdog) clearTimeout(s.watchdog);
        for (const e of s.inFlight.splice(0)) e.job.settle(gone);
        await s.worker.terminate();
      }),
    );
  }

  // ---- internals ----

  private maybeFinishRetire(): void {
    if (!this.retiring || this.closed) return;
    if (this.queue.length > 0 || this.slots.some((s) => s.inFlight.some((e) => !e.job.done))) return;
    void this.close();
  }

  private adopt(index: number, s: Spawned): void {
    const slot: Slot = {
      index,
      worker: s.worker,
      ready: true,
      inFlight: [],
      sent: 0,
      watchdogDue: 0,
      memoryBytes: s.ready.memoryBytes,
      ending: false,
      progress: s.progress,
    };
    this.slots[index] = slot;
    this.listen(slot);
  }

  private listen(slot: Slot): void {
    const w = slot.worker;
    w.on("message", (msg: WorkerMessage) => {
      if (msg.type !== "results" || slot.worker !== w) return;
      slot.memoryBytes = msg.memoryBytes;
      for (const r of msg.results) {
        // Answers come in stream order, so this is nearly always the first entry.
        const i = slot.inFlight.findIndex((e) => e.seq === r.seq);
        const entry = slot.inFlight[i];
        if (!entry || entry.job.id !== r.id) continue;
        slot.inFlight.splice(i, 1);
        const job = entry.job;
        job.settle(r.outcomes.map((o) => this.outcome(o, job.input)));
      }
      if (slot.inFlight.length === 0) this.idle(slot);
      this.dispatch();
    });
    w.on("error", (err) => {
      slot.lastError = err;
    });
    w.on("exit", (code) => {
      if (slot.worker !== w || slot.ending || this.closed) return;
      // Not ended by us: terminated from outside, crashed, or out of heap.
      const why = slot.lastError ? `: ${slot.lastError.message.split("\n")[0]}` : "";
      this.logger?.error(
        {
          event: "policy_worker_exit",
          revision: this.revision,
          thread_id: w.threadId,
          exit_code: code,
          busy: slot.inFlight.length > 0,
        },
        `policy evaluation worker exited unexpectedly${why}; replacing it`,
      );
      // The job it was evaluating fails; the ones it had not started go to another worker (replace).
      const running = runningJob(slot.progress);
      const i = running ? slot.inFlight.findIndex((e) => e.seq === running.seq) : -1;
      const [entry] = i >= 0 ? slot.inFlight.splice(i, 1) : [];
      entry?.job.settle(new PolicyEvalError(`policy evaluation worker exited (exit code ${code})${why}`));
      this.replace(slot, entry === undefined);
    });
  }

  private outcome(o: WireOutcome, input: unknown): EntrypointOutcome {
    if (o.ok) return { ok: true, result: o.result, builtinErrors: o.builtinErrors };
    const message = scrubFault({ message: o.message, trusted: o.trusted }, input);
    const opts: { file?: string; line?: number } = {};
    if (o.file !== undefined) opts.file = o.file;
    if (o.line !== undefined) opts.line = o.line;
    return { ok: false, error: new PolicyEvalError(message, opts) };
  }

  /** Send the queued jobs once the current code has run to completion (see the module comment). */
  private dispatch(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.closed) return;
    let free = 0;
    for (const s of this.slots) if (s.ready && !s.ending && s.inFlight.length === 0) free++;
    for (const slot of this.slots) {
      if (this.queue.length === 0 || free === 0) return;
      if (!slot.ready || slot.ending || slot.inFlight.length > 0) continue;
      // an even share of what is queued, so that every idle worker gets work
      const share = Math.min(MAX_BATCH, Math.ceil(this.queue.length / free--));
      const b = { msgs: [] as WorkerJob[], transfer: [] as ArrayBuffer[] };
      while (this.queue.length > 0 && b.msgs.length < share) {
        const job = this.queue.shift() as Job;
        if (!job.done) this.add(slot, job, b);
      }
      this.post(slot, b.msgs, b.transfer);
    }
  };

  /** Put `job` in flight on `slot`, into the batch `b` posted at the end of the flush. */
  private add(slot: Slot, job: Job, b: { msgs: WorkerJob[]; transfer: ArrayBuffer[] }): void {
    let input: unknown;
    try {
      input = wireInput(job.input);
    } catch (err) {
      // input that cannot cross the thread boundary (not JSON-like): this job's fault, not the worker's
      job.settle(new PolicyEvalError(`input cannot be sent to the evaluator: ${(err as Error).message}`));
      return;
    }
    const seq = slot.sent;
    slot.sent = nextSeq(seq);
    slot.inFlight.push({ seq, job });
    if (slot.inFlight.length === 1) slot.worker.ref();
    b.msgs.push({ id: job.id, seq, input, entrypoints: job.entrypoints, nowNs: job.nowNs });
    if (input instanceof ArrayBuffer) b.transfer.push(input);
  }

  /** One message per worker per flush: the jobs share one wake-up of the worker thread. */
  private post(slot: Slot, msgs: WorkerJob[], transfer: ArrayBuffer[]): void {
    if (msgs.length === 0) return;
    try {
      slot.worker.postMessage(msgs, transfer);
    } catch (err) {
      // The stream now has a hole the worker would wait at forever: end it; these jobs fail, its others go elsewhere.
      const lost = new Set(msgs.map((m) => m.seq));
      for (const e of slot.inFlight.filter((e) => lost.has(e.seq))) {
        e.job.settle(new PolicyEvalError(`cannot hand the job to an evaluator: ${(err as Error).message}`));
      }
      slot.inFlight = slot.inFlight.filter((e) => !lost.has(e.seq));
      this.replace(slot);
      return;
    }
    this.armForLoad(slot);
  }

  /**
   * Arm the watchdog for what is in flight: one job needs its deadline watched; more, a look soon at whether they are
   * stuck behind the first.
   */
  private armForLoad(slot: Slot): void {
    this.arm(slot, slot.inFlight.length > 1 ? STEAL_AFTER_MS : this.timeoutMs);
  }

  /** (Re)arm the watchdog to fire in `ms`, unless it already fires sooner. */
  private arm(slot: Slot, ms: number): void {
    const due = monotonicMs() + Math.max(1, ms);
    if (slot.watchdog) {
      if (slot.watchdogDue <= due) return;
      clearTimeout(slot.watchdog);
    }
    slot.watchdogDue = due;
    slot.watchdog = setTimeout(() => this.watch(slot), Math.max(1, ms));
  }

  /** Nothing in flight on this worker any more. */
  private idle(slot: Slot): void {
    slot.worker.unref();
    if (slot.watchdog) clearTimeout(slot.watchdog);
    slot.watchdog = undefined;
  }

  /**
   * The watchdog of a worker with jobs in flight. The job it is running has outlived timeoutMs → kill. It has run
   * STEAL_AFTER_MS → withdraw the jobs behind it for another worker. The timer runs on the main thread and can fire
   * late, after a busy stretch there, behind answers already queued: it reads the worker's own progress cells, so a
   * finished job is never killed (its answer is on its way and settles it) and a job's time counts from its start.
   */
  private watch(slot: Slot): void {
    slot.watchdog = undefined;
    if (slot.ending || this.closed || slot.inFlight.length === 0) return;
    const now = monotonicMs();
    const running = runningJob(slot.progress);
    if (running) {
      const ran = now - running.startedAt;
      if (ran >= this.timeoutMs) {
        if (this.kill(slot, running.seq)) return;
        // (a running job the pool does not know cannot happen; should it, keep watching rather than stop)
        this.arm(slot, this.timeoutMs);
        return;
      }
      if (ran >= STEAL_AFTER_MS) this.withdraw(slot);
      const left = running.startedAt + this.timeoutMs - now;
      this.arm(slot, slot.inFlight.length > 1 ? Math.min(STEAL_AFTER_MS, left) : left);
      return;
    }
    this.armForLoad(slot);
  }

  /** Take back the jobs this worker has not started, to the front of the queue. */
  private withdraw(slot: Slot): void {
    const first = withdrawUnclaimed(slot.progress, slot.sent);
    if (first === slot.sent) return;
    const k = slot.inFlight.findIndex((e) => e.seq === first);
    if (k < 0) return;
    const back = slot.inFlight.splice(k).map((e) => e.job);
    this.withdrawn += back.length;
    this.queue.unshift(...back.filter((j) => !j.done));
    this.dispatch();
  }

  /**
   * The running job outlived timeoutMs: deny it, end the worker (its other jobs go elsewhere), start another. False
   * when `seq` is not in flight here.
   */
  private kill(slot: Slot, seq: number): boolean {
    const i = slot.inFlight.findIndex((e) => e.seq === seq);
    const entry = slot.inFlight[i];
    if (!entry) return false;
    slot.inFlight.splice(i, 1);
    const job = entry.job;
    this.timeouts++;
    this.logger?.warn(
      {
        event: "policy_timeout",
        revision: this.revision,
        entrypoint: job.entrypoints.join(","),
        timeout_ms: this.timeoutMs,
        thread_id: slot.worker.threadId,
      },
      "policy evaluation exceeded its deadline; worker terminated and replaced",
    );
    job.settle(
      new PolicyTimeoutError(`policy evaluation exceeded ${this.timeoutMs} ms (policy.eval_timeout_ms)`),
    );
    this.replace(slot);
    return true;
  }

  /**
   * End `slot`'s worker and put another in its place. Its unanswered jobs go back to the front of the queue.
   * `culpritUnknown`: it died while no job was running (RUNNING was idle), so any of them may be what ended it.
   */
  private replace(slot: Slot, culpritUnknown = false): void {
    if (this.closed) return;
    slot.ending = true;
    slot.ready = false;
    if (slot.watchdog) clearTimeout(slot.watchdog);
    slot.watchdog = undefined;
    void slot.worker.terminate();
    // Jobs it had not answered: to the front of the queue, for the other workers or the replacement. (One it finished
    // but whose answer was not read yet is evaluated again: evaluation has no side effects.) The job that was running
    // when a worker was killed or died has been answered already; the others are bystanders and go on. Only when no
    // job was running can one of them be what ended it: a job in that position twice is not tried a third time.
    const back = slot.inFlight.splice(0).map((e) => e.job);
    if (culpritUnknown) {
      for (const j of back) {
        j.handedBack = (j.handedBack ?? 0) + 1;
        if (j.handedBack >= 2)
          j.settle(new PolicyEvalError("policy evaluation workers ended twice under this job"));
      }
    }
    this.queue.unshift(...back.filter((j) => !j.done));
    this.dispatch();
    this.replaced++;
    const spare = this.spare;
    this.spare = undefined;
    if (spare) this.install(slot.index, spare, "the spare");
    else this.respawn(slot.index, 1);
    this.keepSpare();
  }

  private install(index: number, s: Spawned, from: string): void {
    this.adopt(index, s);
    this.logger?.info(
      { event: "policy_worker_replaced", revision: this.revision, thread_id: s.worker.threadId, from },
      "policy evaluation worker replaced",
    );
    this.dispatch();
  }

  private respawn(index: number, attempt: number): void {
    spawn(this.init).then(
      (s) => {
        if (this.closed) void s.worker.terminate();
        else this.install(index, s, "a new thread");
      },
      (err: unknown) => {
        this.logger?.error(
          {
            event: "policy_worker_replaced",
            revision: this.revision,
            attempt,
            error: (err as Error).message,
          },
          "cannot start a replacement policy worker; retrying",
        );
        const t = setTimeout(
          () => {
            if (!this.closed) this.respawn(index, attempt + 1);
          },
          Math.min(30_000, 250 * 2 ** attempt),
        );
        t.unref();
      },
    );
  }

  /**
   * Once a worker had to be replaced (a slow path, a crash), keep one loaded worker in reserve, so that the next
   * replacement is immediate instead of loading the data again while a client keeps selecting slow paths.
   */
  private keepSpare(): void {
    if (this.closed || this.spare || this.sparing) return;
    this.sparing = spawn(this.init).then(
      (s) => {
        this.sparing = undefined;
        if (this.closed) void s.worker.terminate();
        else this.spare = s;
      },
      () => {
        this.sparing = undefined; // the next replacement spawns directly (and logs why it fails)
      },
    );
  }
}

type Spawned = { worker: Worker; ready: Extract<WorkerMessage, { type: "ready" }>; progress: Progress };

/** Start one worker and wait for its "ready"; rejects with PolicyLoadError. */
function spawn(init: PoolInit): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    let worker: Worker;
    const progress = newProgress();
    try {
      worker = newWorker({ ...init, progress: progress.buffer });
    } catch (err) {
      reject(new PolicyLoadError(`cannot start a policy worker: ${(err as Error).message}`, { cause: err }));
      return;
    }
    let lastError: Error | undefined;
    const onMessage = (msg: WorkerMessage): void => {
      if (msg.type === "ready") {
        cleanup();
        // An idle worker must not keep the process alive; a busy one does (see add).
        worker.unref();
        resolve({ worker, ready: msg, progress });
      } else if (msg.type === "load_error") {
        cleanup();
        void worker.terminate();
        const opts: { file?: string; line?: number } = {};
        if (msg.file !== undefined) opts.file = msg.file;
        if (msg.line !== undefined) opts.line = msg.line;
        reject(new PolicyLoadError(msg.message, opts));
      }
    };
    const onError = (err: Error): void => {
      lastError = err;
    };
    const onExit = (code: number): void => {
      cleanup();
      const why = lastError ? `: ${lastError.message.split("\n")[0]}` : "";
      reject(
        new PolicyLoadError(`policy worker exited while loading (exit code ${code})${why}`, {
          cause: lastError,
        }),
      );
    };
    const cleanup = (): void => {
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    };
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
  });
}

/** Refuse a data document above the ceiling before any worker copies it. Throws PolicyLoadError. */
export function checkDataSize(bytes: number, maxBytes: number, what: string): void {
  if (bytes > maxBytes) {
    throw new PolicyLoadError(`${what} is ${mib(bytes)}; policy.max_data_bytes is ${mib(maxBytes)}`);
  }
}
