/**
 * The policy engine as a Handler (COMMON contract §1): one store snapshot per request, the v1 input,
 * one evaluation with time frozen at `ctx.now`, and the decision mapped to a Grant (allow),
 * AuthError (deny) or AbortAuth (abort). Facts for the decision log go into `ctx.meta`:
 * `revision`, `entrypoint`, `eval_us`, `input`, `decision`, and `builtin_errors` when any builtin
 * failed; with `exposeEvaluate`, also `evaluate` (a SnapshotEvaluator bound to the request's snapshot and frozen
 * time, for the decision-log mask). Evaluation faults throw PolicyEvalError / DecisionShapeError (→ deny with that code).
 * An allow whose client strings carry wildcard, dot, whitespace or control characters is re-checked on neutralised
 * probes of the same snapshot and time (src/injection.ts): `subject_injection` when they change the grant's structure.
 */
import type { SnapshotEvaluator } from "../audit.js";
import { AbortAuth, AuthError, PolicyEvalError } from "../errors.js";
import { enforceNoInjection, markGuarded } from "../injection.js";
import type { Handler } from "../callout/pipeline.js";
import type { Logger } from "../log.js";
import type { Grant } from "../types.js";
import { toDecision } from "./decision.js";
import type { EngineOptions } from "./engine.js";
import { buildInput, type PolicyInput } from "./input.js";
import { PolicyStore, type ActivePolicy, type ReloadEvent } from "./store.js";
import { PolicyWatcher } from "./watcher.js";

export const DEFAULT_ENTRYPOINT = "nats/authz/decision";

export interface PolicyHandlerOptions {
  /** Evaluate this entrypoint instead of the store's decision entrypoint. */
  entrypoint?: string;
  /**
   * Put `ctx.meta.evaluate`: a SnapshotEvaluator on the very snapshot (and frozen time) this request was decided
   * with, so a later evaluation of another entrypoint (the decision-log mask) cannot see a newer revision.
   * Off by default: the decision path then does no extra work.
   */
  exposeEvaluate?: boolean;
}

/**
 * Bind `entrypoint`-agnostic evaluation to one snapshot and instant. Builtin failures count as errors here
 * (a half-evaluated mask must not be trusted).
 */
function snapshotEvaluator(policy: ActivePolicy["policy"], nowNs: bigint): SnapshotEvaluator {
  return (entrypoint, input) => {
    const r = policy.evaluate(input, entrypoint, { nowNs });
    if (r.builtinErrors.length > 0) {
      throw new PolicyEvalError(
        `${entrypoint}: builtin ${r.builtinErrors.map((b) => b.builtin).join(", ")} failed during evaluation`,
      );
    }
    return r.result;
  };
}

export function policyHandler(store: PolicyStore, opts: PolicyHandlerOptions = {}): Handler {
  const expose = opts.exposeEvaluate === true;
  return markGuarded(async (req, ctx): Promise<Grant> => {
    const active = store.current();
    const entrypoint = opts.entrypoint ?? active.entrypoint;
    const input = buildInput(req);
    const nowNs = BigInt(ctx.now.getTime()) * 1_000_000n;
    ctx.meta.revision = active.revision;
    ctx.meta.entrypoint = entrypoint;
    ctx.meta.input = input;
    if (expose) ctx.meta.evaluate = snapshotEvaluator(active.policy, nowNs);
    const started = performance.now();
    let evaluated;
    try {
      evaluated = active.policy.evaluate(input, entrypoint, { nowNs });
    } finally {
      ctx.meta.eval_us = Math.round((performance.now() - started) * 1000);
    }
    if (evaluated.builtinErrors.length > 0) ctx.meta.builtin_errors = evaluated.builtinErrors;
    const decision = toDecision(evaluated.result, req.connect_opts);
    ctx.meta.decision = decision;
    switch (decision.kind) {
      case "allow":
        await enforceNoInjection(req, decision.grant, probe, ctx.meta);
        if (decision.reason !== undefined) ctx.meta.reason = decision.reason;
        return decision.grant;
      case "deny":
        throw new AuthError(decision.reason);
      case "abort":
        throw new AbortAuth(decision.reason);
    }

    /** The same snapshot and instant on a neutralised copy of the request: its grant on allow, else undefined. */
    async function probe(r: typeof req): Promise<unknown> {
      const d = toDecision(active.policy.evaluate(buildInput(r), entrypoint, { nowNs }).result);
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
   * handler also exposes `ctx.meta.evaluate` (see PolicyHandlerOptions.exposeEvaluate).
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
  memory?: EngineOptions["memory"];
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
 * Load the policy (throws PolicyLoadError with file/line when there is none valid), start watching,
 * and return the store, the handler and close().
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
        logger.info(
          { event: "policy_reload", revision: e.revision, duration_ms: e.duration_ms, compiled: e.compiled },
          "policy loaded",
        );
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
          "policy reload failed; keeping the last good policy",
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
    ...(opts.memory !== undefined ? { engine: { memory: opts.memory } } : {}),
    ...(opts.smokeInputs !== undefined ? { smokeInputs: opts.smokeInputs } : {}),
    ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
    ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
    watch: opts.watch ?? true,
  });
  await watcher.start();
  return {
    store,
    handler: policyHandler(store, { exposeEvaluate: (opts.extraEntrypoints?.length ?? 0) > 0 }),
    watcher,
    close: () => watcher.close(),
  };
}
