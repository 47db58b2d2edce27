/**
 * One evaluation worker (a worker_thread started by ./pool.ts): instantiates the revision's compiled
 * module with its own WebAssembly.Memory and data document (from `workerData`), says "ready" (or
 * "load_error" with the PolicyLoadError's text and location), then answers evaluation jobs one at a
 * time. A job evaluates one or more entrypoints on the same input with time frozen at `nowNs`; each
 * entrypoint's outcome is reported separately, so a failing mask rule cannot hide the decision.
 *
 * The pool owns every limit: it kills this thread when a job outlives its deadline. Nothing here
 * logs; fault texts go back to the pool, which scrubs them before they reach a log line.
 */
import { parentPort, workerData } from "node:worker_threads";
import { finishedMark } from "./finished-mark.js";
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
   * One Int32 the worker sets to `finishedMark(job.id)` once a job's outcomes are complete, before posting them: the
   * pool's timeout (a timer on the main thread, which may run late and ahead of the queued result) reads it to tell a
   * job still running from one whose answer is already on its way. Set per worker by spawn().
   */
  finished?: SharedArrayBuffer;
}

export interface WorkerJob {
  id: number;
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
  | { type: "result"; id: number; outcomes: WireOutcome[]; memoryBytes: number };

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
  const finished = init.finished ? new Int32Array(init.finished) : undefined;
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
  port.on("message", (job: WorkerJob) => {
    const outcomes: WireOutcome[] = [];
    for (const ep of job.entrypoints) {
      try {
        const r = engine.evaluate(job.input, ep, { nowNs: job.nowNs });
        outcomes.push({ ok: true, result: r.result, builtinErrors: [...r.builtinErrors] });
      } catch (err) {
        outcomes.push(evalOutcome(err, init.memory.maximum));
      }
    }
    const msg: WorkerMessage = { type: "result", id: job.id, outcomes, memoryBytes: engine.memoryBytes() };
    if (finished) Atomics.store(finished, 0, finishedMark(job.id));
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
