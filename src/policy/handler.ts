/**
 * The policy engine as a Handler (COMMON contract §1): one store snapshot per request, the v1 input,
 * one evaluation job on that snapshot's worker pool with time frozen at `ctx.now`, and the decision
 * mapped to a Grant (allow), AuthError (deny) or AbortAuth (abort). Facts for the decision log go
 * into the typed `ctx.facts` (callout/facts.ts): `revision`, `entrypoint`, `eval_us`, `input`, `result`, `decision`, `builtin_errors` when a
 * builtin failed without failing the evaluation, and `eval_error` ({code, message, file?, line?})
 * when the evaluation failed. With `alsoEvaluate` (the decision-log mask), those entrypoints run in
 * the same job and `evaluate` serves their results (a SnapshotEvaluator: same snapshot, same instant).
 *
 * Faults, fail closed: PolicyEvalError (conflicting outputs, out of memory, strict builtin errors:
 * → deny `policy_eval_error`), PolicyTimeoutError (the evaluation outlived policy.eval_timeout_ms or
 * the request's expiry: → deny `policy_timeout`), DecisionShapeError. Each fault is logged once with
 * its cause (never input or secrets).
 *
 * An allow whose client strings carry wildcard, dot, whitespace or control characters is re-checked on neutralised
 * probes evaluated on the same snapshot, instant and deadline (src/injection.ts): `subject_injection` when they
 * change the grant's structure; a probe that faults denies with its fault. Client strings the revision's Rego cannot
 * read (./input-reads.ts: e.g. `connect_opts.version` for a policy that never names it) need no probe: neutralised,
 * they would give the policy the very same input.
 */
import type { SnapshotEvaluator } from "../audit.js";
import { AbortAuth, AuthError, CalloutError, PolicyEvalError } from "../errors.js";
import { enforceNoInjection, markGuarded } from "../injection.js";
import type { Handler } from "../callout/facts.js";
import type { Logger } from "../log.js";
import type { AuthorizationRequest, Grant } from "../types.js";
import { toDecision } from "./decision.js";
import type { EngineOptions, EvalResult } from "./engine.js";
import { buildInput, type PolicyInput } from "./input.js";
import type { EntrypointOutcome, EvaluatorPool, PoolEvaluateOptions } from "./pool.js";
import { PolicyStore, type ReloadEvent } from "./store.js";
import { PolicyWatcher } from "./watcher.js";

export const DEFAULT_ENTRYPOINT = "nats/authz/decision";

export interface PolicyHandlerOptions {
  /** Evaluate this entrypoint instead of the store's decision entrypoint. */
  entrypoint?: string;
  /**
   * Entrypoints evaluated in the same job as the decision, on the same snapshot and instant (the
   * decision-log mask). `ctx.facts.evaluate` then serves their results. Off by default: the decision
   * path does no extra work.
   */
  alsoEvaluate?: readonly string[];
  /** Gets one warn line per evaluation fault (code, message, file:line; never input). */
  logger?: Logger;
  /**
   * The input document for a request (default buildInput, the v1 input). `check` passes a decision case's own
   * input document; injection probes use it too, so an override that ignores the request disables them.
   */
  input?: (req: AuthorizationRequest) => unknown;
}

/** Evaluate another entrypoint on one request's snapshot, instant and deadline. */
export type SnapshotEvaluate = (entrypoint: string, input: unknown) => Promise<EvalResult>;

/**
 * An evaluator bound to one snapshot (`policy`), frozen time and answer deadline: every evaluation a
 * request needs beyond the decision goes through one of these, so it cannot see a newer revision.
 */
export function bindEvaluate(policy: EvaluatorPool, opts: PoolEvaluateOptions): SnapshotEvaluate {
  return (entrypoint, input) => policy.evaluate(input, entrypoint, opts);
}

/**
 * The latest moment (ms on the local clock) an answer is still useful: the end of the request's `exp`
 * second, measured from the handler's clock. Undefined when that has passed by our clock (the clocks
 * disagree; the pipeline's skew check decides) — the pool's own timeout still bounds the evaluation.
 */
export function answerDeadline(req: AuthorizationRequest, now: Date): number | undefined {
  const remaining = (req.expires_at + 1) * 1000 - now.getTime();
  return remaining > 0 ? Date.now() + remaining : undefined;
}

/** The fault as decision-log facts. */
export function evalErrorInfo(err: unknown): { code: string; message: string; file?: string; line?: number } {
  const info: { code: string; message: string; file?: string; line?: number } = {
    code: err instanceof CalloutError ? err.code : "policy_eval_error",
    message: err instanceof Error ? err.message : String(err),
  };
  const loc = err as { file?: unknown; line?: unknown };
  if (typeof loc.file === "string") info.file = loc.file;
  if (typeof loc.line === "number") info.line = loc.line;
  return info;
}

/**
 * The decision-log mask's SnapshotEvaluator: the results computed with the decision (same input object), so the
 * synchronous decision log never evaluates. Anything else throws (the log then leaves the input out).
 */
function precomputed(
  input: unknown,
  eps: readonly string[],
  outcomes: readonly EntrypointOutcome[],
): SnapshotEvaluator {
  return (entrypoint, asked) => {
    const i = eps.indexOf(entrypoint);
    const o = outcomes[i];
    if (i < 0 || !o || asked !== input) {
      throw new PolicyEvalError(`${entrypoint} was not evaluated with this decision`);
    }
    if (!o.ok) throw o.error;
    if (o.builtinErrors.length > 0) {
      // a half-evaluated mask must not be trusted
      throw new PolicyEvalError(
        `${entrypoint}: builtin ${o.builtinErrors.map((b) => b.builtin).join(", ")} failed during evaluation`,
      );
    }
    return o.result;
  };
}

export function policyHandler(store: PolicyStore, opts: PolicyHandlerOptions = {}): Handler {
  const also = opts.alsoEvaluate ?? [];
  const log = opts.logger;
  const inputOf = opts.input ?? buildInput;
  return markGuarded(async (req, ctx): Promise<Grant> => {
    const active = store.current();
    const entrypoint = opts.entrypoint ?? active.entrypoint;
    const input = inputOf(req);
    const nowNs = BigInt(ctx.now.getTime()) * 1_000_000n;
    ctx.facts.revision = active.revision;
    ctx.facts.entrypoint = entrypoint;
    ctx.facts.input = input;
    const evalOpts: PoolEvaluateOptions = { nowNs };
    const deadlineAt = answerDeadline(req, ctx.now);
    if (deadlineAt !== undefined) evalOpts.deadlineAt = deadlineAt;
    const fault = (err: unknown): never => {
      const info = evalErrorInfo(err);
      ctx.facts.eval_error = info;
      log?.warn(
        {
          event: "policy_eval_error",
          decision_id: ctx.decisionId,
          revision: active.revision,
          entrypoint,
          ...info,
        },
        "policy evaluation failed; denied",
      );
      throw err;
    };
    const eps = [entrypoint, ...also];
    const started = performance.now();
    let outcomes: EntrypointOutcome[];
    try {
      outcomes = await active.policy.evaluateAll(input, eps, evalOpts);
    } catch (err) {
      return fault(err);
    } finally {
      ctx.facts.eval_us = Math.round((performance.now() - started) * 1000);
    }
    if (also.length > 0) ctx.facts.evaluate = precomputed(input, eps, outcomes);
    const evaluated = outcomes[0];
    if (!evaluated) return fault(new PolicyEvalError("evaluation returned nothing"));
    if (!evaluated.ok) return fault(evaluated.error);
    ctx.facts.result = evaluated.result;
    if (evaluated.builtinErrors.length > 0) ctx.facts.builtin_errors = evaluated.builtinErrors;
    const decision = toDecision(evaluated.result, req.connect_opts);
    ctx.facts.decision = decision;
    switch (decision.kind) {
      case "allow":
        await enforceNoInjection(req, decision.grant, probe, ctx.facts, active.policy.inputReads);
        if (decision.reason !== undefined) ctx.facts.reason = decision.reason;
        return decision.grant;
      case "deny":
        throw new AuthError(decision.reason);
      case "abort":
        throw new AbortAuth(decision.reason);
    }

    /**
     * The same snapshot, instant and deadline on a neutralised copy of the request: its grant on allow, else
     * undefined. A fault is logged and rethrown like the decision's own (the login is denied with it).
     */
    async function probe(r: typeof req): Promise<unknown> {
      let res: EvalResult;
      try {
        res = await active.policy.evaluate(inputOf(r), entrypoint, evalOpts);
      } catch (err) {
        return fault(err);
      }
      const d = toDecision(res.result);
      return d.kind === "allow" ? d.grant : undefined;
    }
  });
}

export interface CreatePolicyEngineOptions {
  /** Directory of Rego policies and data files (compiled with opa). Exclusive with `bundle`. */
  dir?: string;
  /** Prebuilt bundle.tar.gz (`opa build -t wasm`). Exclusive with `dir`. */
  bundle?: string;
  /** Decision entrypoint (default "nats/authz/decision"). */
  entrypoint?: string;
  /**
   * Further entrypoints every revision must export (e.g. the decision-log mask): built with `opa build -e` like
   * the decision, required in a bundle's manifest, checked and smoke-evaluated before activation. When set, the
   * handler evaluates them with every decision and exposes `ctx.facts.evaluate` (PolicyHandlerOptions.alsoEvaluate).
   */
  extraEntrypoints?: readonly string[];
  /** Capabilities file for opa build (default: the packaged policies/capabilities.json). */
  capabilities?: string;
  /** opa binary (default "opa" on PATH). */
  opaBin?: string;
  /** Reload on changes (default true). */
  watch?: boolean;
  /** Logs each reload: info on success, error on failure (never any input or secret). */
  logger?: Logger;
  /** Wasm memory per instance, in 64 KiB pages (default maximum 4096 = 256 MiB; policy.max_memory_mb). */
  memory?: EngineOptions["memory"];
  /** Evaluation worker threads (default 2; policy.eval_workers). */
  workers?: number;
  /** Longest evaluation before its worker is replaced and the request denied (default 500 ms; policy.eval_timeout_ms). */
  evalTimeoutMs?: number;
  /** Largest data document in JSON bytes (default 8 MiB; policy.max_data_bytes). */
  maxDataBytes?: number;
  smokeInputs?: readonly PolicyInput[];
  debounceMs?: number;
  /** Content-hash poll interval while watching (default 10 000 ms; 0 = file events only). */
  pollMs?: number;
}

export interface PolicyEngineHandle {
  store: PolicyStore;
  handler: Handler;
  watcher: PolicyWatcher;
  close(): Promise<void>;
}

/**
 * Load the policy (throws PolicyLoadError with file/line when there is none valid) into its evaluation
 * workers, start watching, and return the store, the handler and close() (stops watching and the workers).
 */
export async function createPolicyEngine(opts: CreatePolicyEngineOptions): Promise<PolicyEngineHandle> {
  if ((opts.dir === undefined) === (opts.bundle === undefined)) {
    throw new TypeError("createPolicyEngine: set exactly one of dir or bundle");
  }
  const store = new PolicyStore();
  const logger = opts.logger;
  if (logger) {
    store.on("reload", (e: ReloadEvent) => {
      if (e.result === "ok") {
        const fields = {
          event: "policy_reload",
          revision: e.revision,
          duration_ms: e.duration_ms,
          compiled: e.compiled,
        };
        if (e.recovered) {
          logger.info(
            { ...fields, recovered: { code: e.recovered.code, at: e.recovered.at } },
            "policy loaded; recovered from the failed reload",
          );
        } else {
          logger.info(fields, "policy loaded");
        }
      } else {
        logger.error(
          {
            event: "policy_reload",
            revision: e.revision,
            attempted: e.attempted,
            duration_ms: e.duration_ms,
            code: e.error?.code,
            file: e.error?.file,
            line: e.error?.line,
            error: e.error?.message,
          },
          e.revision === undefined
            ? "policy load failed; no policy is active"
            : `policy reload failed; keeping the last good policy (revision ${e.revision})`,
        );
      }
    });
  }
  const source = opts.dir !== undefined ? { dir: opts.dir } : { bundle: opts.bundle as string };
  const watcher = new PolicyWatcher(store, source, {
    entrypoint: opts.entrypoint ?? DEFAULT_ENTRYPOINT,
    ...(opts.extraEntrypoints?.length ? { extraEntrypoints: opts.extraEntrypoints } : {}),
    ...(opts.capabilities !== undefined ? { capabilities: opts.capabilities } : {}),
    ...(opts.opaBin !== undefined ? { opaBin: opts.opaBin } : {}),
    pool: {
      ...(opts.memory !== undefined ? { memory: opts.memory } : {}),
      ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
      ...(opts.evalTimeoutMs !== undefined ? { timeoutMs: opts.evalTimeoutMs } : {}),
    },
    ...(opts.maxDataBytes !== undefined ? { maxDataBytes: opts.maxDataBytes } : {}),
    ...(logger ? { logger } : {}),
    ...(opts.smokeInputs !== undefined ? { smokeInputs: opts.smokeInputs } : {}),
    ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
    ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
    watch: opts.watch ?? true,
  });
  await watcher.start();
  return {
    store,
    handler: policyHandler(store, {
      ...(opts.extraEntrypoints?.length ? { alsoEvaluate: opts.extraEntrypoints } : {}),
      ...(logger ? { logger } : {}),
    }),
    watcher,
    close: () => watcher.close(),
  };
}
