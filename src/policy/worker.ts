/**
 * One evaluation worker (a worker_thread started by ./pool.ts): instantiates the revision's compiled
 * module with its own WebAssembly.Memory and data document (from `workerData`), says "ready" (or
 * "load_error" with the PolicyLoadError's text and location), then answers evaluation jobs: each
 * message carries a batch of jobs and gets one message with their answers. Each job is claimed through
 * the shared progress cells (./progress.ts) before it starts, and skipped when the pool withdrew it for
 * another worker. A job evaluates one or more entrypoints on the same input with time frozen at
 * `nowNs`; each entrypoint's outcome is reported separately, so a failing mask rule cannot hide the
 * decision.
 *
 * The pool owns every limit: it kills this thread when a job outlives its deadline. Nothing here
 * logs; fault texts go back to the pool, which scrubs them before they reach a log line.
 */
import { parentPort, workerData } from "node:worker_threads";
import { claim, finish, viewProgress } from "./progress.js";
import { CalloutError, PolicyEvalError, PolicyLoadError } from "../errors.js";
import { PolicyEngine, type MemoryLimits } from "./engine.js";
import { describeEvalFault, faultText } from "./faults.js";
import type { WasmModule } from "./wasm.js";

export interface WorkerInit {
  module: WasmModule;
  /** The data document as JSON bytes. */
  data: ArrayBuffer;
  memory: Required<MemoryLimits>;
  strictBuiltinErrors: boolean;
  /**
   * The cells shared with the pool (./progress.ts): which job runs since when, which it may claim, which it finished.
   * The pool's watchdog (a timer on the main thread, which may run late and ahead of the queued answers) reads them to
   * tell a job still running from one whose answer is on its way. Set per worker by spawn().
   */
  progress: SharedArrayBuffer;
}

export interface WorkerJob {
  id: number;
  /** This worker's stream position (./progress.ts): the job runs only if the worker can claim it. */
  seq: number;
  /** An object input arrives as its JSON bytes (an ArrayBuffer, see pool.ts wireInput), read as they are by opa-wasm. */
  input: unknown;
  entrypoints: readonly string[];
  nowNs: bigint;
}

/** One entrypoint's outcome, as it crosses the thread boundary. */
export type WireOutcome =
  | { ok: true; result: unknown; builtinErrors: { builtin: string; message: string }[] }
  | { ok: false; code: string; message: string; file?: string; line?: number; trusted: boolean };

export type WorkerMessage =
  | { type: "ready"; entrypoints: string[]; requiredBuiltins: string[]; memoryBytes: number }
  | { type: "load_error"; message: string; file?: string; line?: number }
  /** The answers to one message of jobs, in its order (withdrawn jobs left out). */
  | { type: "results"; results: JobResult[]; memoryBytes: number };

export interface JobResult {
  id: number;
  seq: number;
  outcomes: WireOutcome[];
}

function evalOutcome(err: unknown, maxPages: number): WireOutcome {
  if (err instanceof PolicyEvalError) {
    const out: WireOutcome = { ok: false, code: err.code, message: err.message, trusted: true };
    if (err.cause !== undefined) out.trusted = describeEvalFault(err.cause, maxPages).trusted;
    if (err.file !== undefined) out.file = err.file;
    if (err.line !== undefined) out.line = err.line;
    return out;
  }
  const code = err instanceof CalloutError ? err.code : "policy_eval_error";
  return { ok: false, code, message: faultText(err), trusted: false };
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error("policy worker: not started as a worker thread");
  const init = workerData as WorkerInit;
  const progress = viewProgress(init.progress);
  let engine: PolicyEngine;
  try {
    engine = await PolicyEngine.load(init.module, init.data, {
      memory: init.memory,
      strictBuiltinErrors: init.strictBuiltinErrors,
    });
  } catch (err) {
    const msg: WorkerMessage = { type: "load_error", message: faultText(err) };
    if (err instanceof PolicyLoadError) {
      if (err.file !== undefined) msg.file = err.file;
      if (err.line !== undefined) msg.line = err.line;
    }
    port.postMessage(msg);
    return;
  }
  port.on("message", (jobs: WorkerJob[]) => {
    const results: JobResult[] = [];
    for (const job of jobs) {
      if (!claim(progress, job.seq)) continue; // withdrawn: another worker has it
      const outcomes: WireOutcome[] = [];
      for (const ep of job.entrypoints) {
        try {
          const r = engine.evaluate(job.input, ep, { nowNs: job.nowNs });
          outcomes.push({ ok: true, result: r.result, builtinErrors: [...r.builtinErrors] });
        } catch (err) {
          outcomes.push(evalOutcome(err, init.memory.maximum));
        }
      }
      finish(progress, job.id);
      results.push({ id: job.id, seq: job.seq, outcomes });
    }
    if (results.length === 0) return;
    const msg: WorkerMessage = { type: "results", results, memoryBytes: engine.memoryBytes() };
    port.postMessage(msg);
  });
  const ready: WorkerMessage = {
    type: "ready",
    entrypoints: [...engine.entrypoints],
    requiredBuiltins: [...engine.requiredBuiltins],
    memoryBytes: engine.memoryBytes(),
  };
  port.postMessage(ready);
}

await main();
