/**
 * The policy engine as a Handler (COMMON contract §1): one store snapshot per request, the v1 input,
 * one evaluation with time frozen at `ctx.now`, and the decision mapped to a Grant (allow),
 * AuthError (deny) or AbortAuth (abort). Facts for the decision log go into `ctx.meta`:
 * `revision`, `entrypoint`, `eval_us`, `input`, `decision`, and `builtin_errors` when any builtin
 * failed. Evaluation faults throw PolicyEvalError / DecisionShapeError (→ deny with that code).
 */
import { AbortAuth, AuthError } from "../errors.js";
import type { Handler } from "../callout/pipeline.js";
import type { Logger } from "../log.js";
import type { Grant } from "../types.js";
import { toDecision } from "./decision.js";
import type { EngineOptions } from "./engine.js";
import { buildInput, type PolicyInput } from "./input.js";
import { PolicyStore, type ReloadEvent } from "./store.js";
import { PolicyWatcher } from "./watcher.js";

export const DEFAULT_ENTRYPOINT = "nats/authz/decision";

export interface PolicyHandlerOptions {
  /** Evaluate this entrypoint instead of the store's decision entrypoint. */
  entrypoint?: string;
}

export function policyHandler(store: PolicyStore, opts: PolicyHandlerOptions = {}): Handler {
  return (req, ctx): Grant => {
    const active = store.current();
    const entrypoint = opts.entrypoint ?? active.entrypoint;
    const input = buildInput(req);
    ctx.meta.revision = active.revision;
    ctx.meta.entrypoint = entrypoint;
    ctx.meta.input = input;
    const started = performance.now();
    let evaluated;
    try {
      evaluated = active.policy.evaluate(input, entrypoint, {
        nowNs: BigInt(ctx.now.getTime()) * 1_000_000n,
      });
    } finally {
      ctx.meta.eval_us = Math.round((performance.now() - started) * 1000);
    }
    if (evaluated.builtinErrors.length > 0) ctx.meta.builtin_errors = evaluated.builtinErrors;
    const decision = toDecision(evaluated.result, req.connect_opts);
    ctx.meta.decision = decision;
    switch (decision.kind) {
      case "allow":
        if (decision.reason !== undefined) ctx.meta.reason = decision.reason;
        return decision.grant;
      case "deny":
        throw new AuthError(decision.reason);
      case "abort":
        throw new AbortAuth(decision.reason);
    }
  };
}

export interface CreatePolicyEngineOptions {
  /** Directory of Rego policies and data files (compiled with opa). Exclusive with `bundle`. */
  dir?: string;
  /** Prebuilt bundle.tar.gz (`opa build -t wasm`). Exclusive with `dir`. */
  bundle?: string;
  /** Decision entrypoint (default "nats/authz/decision"). */
  entrypoint?: string;
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
    ...(opts.capabilities !== undefined ? { capabilities: opts.capabilities } : {}),
    ...(opts.opaBin !== undefined ? { opaBin: opts.opaBin } : {}),
    ...(opts.memory !== undefined ? { engine: { memory: opts.memory } } : {}),
    ...(opts.smokeInputs !== undefined ? { smokeInputs: opts.smokeInputs } : {}),
    ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
    watch: opts.watch ?? true,
  });
  await watcher.start();
  return {
    store,
    handler: policyHandler(store),
    watcher,
    close: () => watcher.close(),
  };
}
