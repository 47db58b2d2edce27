/**
 * Decide one verified request: the stage between decode (callout/decode.ts) and signing, shared by `serve` (via
 * callout/pipeline.ts), `eval`, `check` and the benchmarks, so none of them re-implements a step.
 *
 *   handler (the policy, or a plain function) → [caller's checkpoint] → reply-size lower bound → validateGrant
 *   → verbatim injection check (handlers that do not probe for injection themselves)
 *
 * It returns a Verdict (allow with the validated Grant, deny with the CalloutError that explains it, or abort) and
 * the typed DecisionFacts the handler left (revision, input, decision, timings, …), which travel to the decision
 * log and metrics (decision-record.ts) unchanged. Nothing here signs, logs or touches the network; fail closed: any
 * unexpected throw is a deny (`handler_error`), never an allow.
 */
import { performance } from "node:perf_hooks";
import { AbortAuth, CalloutError, DecisionShapeError } from "../errors.js";
import { validateGrant } from "../grant.js";
import { isGuarded, verbatimInjection } from "../injection.js";
import type { AuthorizationRequest, Grant } from "../types.js";
import type { DecisionFacts, Handler } from "./facts.js";

export type { DecisionFacts, Handler, HandlerContext } from "./facts.js";

/** The decided outcome, before signing. A deny/abort carries the error that explains it. */
export type Verdict =
  | { kind: "allow"; grant: Grant; reason?: string }
  | { kind: "deny"; error: CalloutError }
  | { kind: "abort"; error: CalloutError };

export interface Decided {
  verdict: Verdict;
  facts: DecisionFacts;
  /** Microseconds: the handler, and the checks after it (size bound, validation, injection). */
  timings: { handler_us: number; check_us: number };
}

export interface DecideDeps {
  handler: Handler;
  /**
   * Account names a grant may place users in. Undefined: the grant's own account (offline tools without a
   * service config: `eval`, `check`).
   */
  accounts?: readonly string[];
  /**
   * Called once the handler returned a grant, before any check: an error aborts (the pipeline's "the server
   * stopped waiting" check). Not called when the handler denied or aborted.
   */
  afterHandler?: () => CalloutError | undefined;
  /**
   * Largest signed reply the server accepts: a grant whose subject lists alone exceed it is denied
   * `grant_too_large` before validation. Undefined: no bound.
   */
  maxReplyBytes?: number;
}

const us = (fromMs: number, toMs: number): number => Math.max(0, Math.round((toMs - fromMs) * 1000));

/** The `grant_too_large` error (decide's lower bound and the pipeline's signed-size check). */
export const tooLarge = (what: string, max: number): CalloutError =>
  new CalloutError("grant_too_large", `${what} exceeds the server's max_payload ${max}`);

/**
 * A lower bound on the size of the signed reply a grant would produce: every subject of its pub/sub allow and
 * deny lists is written into the user JWT (quoted, comma-separated), and the JWT is base64url (4/3 larger) inside
 * the response JWT, base64url again. Non-string entries count nothing (validation refuses them anyway).
 */
export function replyBytesLowerBound(grant: unknown): number {
  let bytes = 0;
  try {
    for (const side of ["pub", "sub"] as const) {
      const perm = (grant as Record<string, unknown> | null)?.[side] as Record<string, unknown> | undefined;
      for (const list of ["allow", "deny"] as const) {
        const l = perm?.[list];
        if (!Array.isArray(l)) continue;
        for (const subject of l) if (typeof subject === "string") bytes += Buffer.byteLength(subject) + 3;
      }
    }
  } catch {
    return 0; // a hostile getter: leave it to validation
  }
  return Math.floor((bytes * 16) / 9);
}

/** Decide one verified request (see the module header). Never throws. */
export async function decide(
  req: AuthorizationRequest,
  ctx: { decisionId: string; now: Date },
  deps: DecideDeps,
): Promise<Decided> {
  const facts: DecisionFacts = {};
  const timings = { handler_us: 0, check_us: 0 };
  const t1 = performance.now();
  let grant: unknown;
  try {
    grant = await deps.handler(req, { decisionId: ctx.decisionId, now: ctx.now, facts });
  } catch (err) {
    timings.handler_us = us(t1, performance.now());
    if (err instanceof AbortAuth) return { verdict: { kind: "abort", error: err }, facts, timings };
    const error =
      err instanceof CalloutError ? err : new CalloutError("handler_error", "handler threw", { cause: err });
    return { verdict: { kind: "deny", error }, facts, timings };
  }
  const t2 = performance.now();
  timings.handler_us = us(t1, t2);
  const done = (verdict: Verdict): Decided => {
    timings.check_us = us(t2, performance.now());
    return { verdict, facts, timings };
  };

  const stop = deps.afterHandler?.();
  if (stop !== undefined) return done({ kind: "abort", error: stop });

  // A grant that can never fit in a reply is denied before the costly checks.
  const max = deps.maxReplyBytes;
  const atLeast = max === undefined ? 0 : replyBytesLowerBound(grant);
  if (max !== undefined && atLeast > max) {
    return done({ kind: "deny", error: tooLarge(`allow response of at least ${atLeast} bytes`, max) });
  }
  try {
    const accounts = deps.accounts ?? [String((grant as { account?: unknown } | null)?.account ?? "")];
    const valid = validateGrant(grant, req, { accounts });
    // Guarded handlers (policies, guardHandler) probed for injection already; others get the verbatim check.
    const injected = isGuarded(deps.handler) ? undefined : verbatimInjection(valid, req);
    if (injected !== undefined) throw injected;
    return done(
      typeof facts.reason === "string"
        ? { kind: "allow", grant: valid, reason: facts.reason }
        : { kind: "allow", grant: valid },
    );
  } catch (err) {
    const error =
      err instanceof CalloutError
        ? err
        : new DecisionShapeError("grant", "validation failed unexpectedly", "decision_shape_error");
    return done({ kind: "deny", error });
  }
}
