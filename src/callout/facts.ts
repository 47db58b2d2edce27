/**
 * The typed facts one decision establishes, and the Handler contract that fills them (COMMON contract §1). A leaf:
 * types only, imported by the decide stage (./decide.ts), the pipeline, the policy handler, the injection guard and
 * the decision log mapping (decision-record.ts), so none of them imports another for a type.
 */
import type { EvalErrorInfo, SnapshotEvaluator } from "../audit.js";
import type { Decision } from "../policy/decision.js";
import type { BuiltinFailure } from "../policy/builtins.js";
import type { AuthorizationRequest, Grant } from "../types.js";

/**
 * What deciding one request established, typed. The policy handler fills the policy fields; a plain handler may
 * set `reason` (an allow's reason for the decision log) and nothing else is required of it.
 */
export interface DecisionFacts {
  /** Policy revision (content hash) that decided. */
  revision?: string;
  /** Decision entrypoint evaluated. */
  entrypoint?: string;
  /** The policy input document, unmasked (the decision log masks it). */
  input?: unknown;
  /** The raw value the decision entrypoint returned (before toDecision). */
  result?: unknown;
  /** The policy's decision as mapped by toDecision. */
  decision?: Decision;
  /** Microseconds the policy evaluation took (decision and mask entrypoints, one worker job). */
  eval_us?: number;
  /** Why the policy evaluation failed (code, OPA's text, file:line). */
  eval_error?: EvalErrorInfo;
  /** Builtins that failed without failing the evaluation. */
  builtin_errors?: readonly BuiltinFailure[];
  /**
   * The decision-log mask: evaluates the mask entrypoints on the deciding snapshot and instant (results computed
   * with the decision). Set only when a mask entrypoint is configured; never serialised.
   */
  evaluate?: SnapshotEvaluator;
  /** The injection probe check: request fields that needed probes and the probe count (src/injection.ts). */
  injection?: { fields: string[]; probes: number };
  /** An allow's reason for the decision log. */
  reason?: string;
}

/** Per-request context handed to a Handler (COMMON contract §1). */
export interface HandlerContext {
  decisionId: string;
  now: Date;
  /** Typed facts for the decision log; a plain handler may set `facts.reason` on allow. */
  facts: DecisionFacts;
}

/**
 * Decides one verified request. Return a Grant to allow (it is validated by validateGrant); throw
 * AuthError(reason) to deny, AbortAuth(reason) to send no reply; any other throw denies (handler_error).
 * An allow may carry a reason for the decision log as `ctx.facts.reason`.
 */
export type Handler = (req: AuthorizationRequest, ctx: HandlerContext) => Grant | Promise<Grant>;
