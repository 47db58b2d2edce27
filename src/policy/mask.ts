/**
 * The policy-controlled decision-log mask (`policy.mask_entrypoint`), like OPA's `system.log.mask`: a rule that,
 * given the same input document as the decision, yields the JSON pointers the decision log must blank out —
 * strings such as "/connect_opts/name" (or "/input/connect_opts/name") — or upsert ops
 * `{"op": "upsert", "path": "/client_info/host", "value": "…"}` (`{"op": "remove", "path": …}` is also accepted).
 * A set or an array; undefined means "nothing more to mask".
 *
 * It is evaluated by the policy handler in the same worker job as the decision (same snapshot, same instant) and
 * served from the handler's `ctx.facts.evaluate`, carried in the decision record as `evaluate`: a reload between
 * the decision and the log line cannot mix revisions, and the synchronous decision log never evaluates. Records
 * without one (requests no policy decided: drops) have no rule result: every part of their input the client
 * supplied is blanked (only version, server_id, user_nkey and request_issuer stay). A record naming a revision
 * that is no longer active, and anything unexpected, throws: the decision log leaves the input out (`mask_error`).
 */
import type { MaskFunction, MaskOp } from "../audit.js";
import { PolicyEvalError } from "../errors.js";
import type { PolicyStore } from "./store.js";

const OP_KEYS: ReadonlySet<string> = new Set(["op", "path", "value"]);

/** Validate a mask entrypoint's value into MaskOps; throws PolicyEvalError (never quoting values). */
export function toMaskOps(entrypoint: string, result: unknown): MaskOp[] | undefined {
  if (result === undefined) return undefined;
  if (!Array.isArray(result)) {
    throw new PolicyEvalError(`${entrypoint} must be a set or array of JSON pointers, got ${kindOf(result)}`);
  }
  const ops: MaskOp[] = [];
  for (const [i, v] of result.entries()) {
    if (typeof v === "string") {
      if (!v.startsWith("/")) throw new PolicyEvalError(`${entrypoint}[${i}]: not a JSON pointer`);
      ops.push(v);
      continue;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new PolicyEvalError(`${entrypoint}[${i}]: expected a string or an object, got ${kindOf(v)}`);
    }
    const o = v as Record<string, unknown>;
    const extra = Object.keys(o).filter((k) => !OP_KEYS.has(k));
    if (extra.length > 0) throw new PolicyEvalError(`${entrypoint}[${i}]: unknown field ${extra.join(", ")}`);
    if (o.op !== "remove" && o.op !== "upsert") {
      throw new PolicyEvalError(`${entrypoint}[${i}]: op must be "remove" or "upsert"`);
    }
    if (typeof o.path !== "string" || !o.path.startsWith("/")) {
      throw new PolicyEvalError(`${entrypoint}[${i}]: path must be a JSON pointer`);
    }
    if (o.op === "upsert") {
      if (!Object.hasOwn(o, "value")) throw new PolicyEvalError(`${entrypoint}[${i}]: upsert needs a value`);
      ops.push({ op: "upsert", path: o.path, value: o.value });
    } else {
      ops.push({ op: "remove", path: o.path });
    }
  }
  return ops;
}

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/**
 * The decision log's MaskFunction for `entrypoint`: its result for the UNMASKED input on the deciding snapshot
 * (computed with the decision), validated into ops (applied by src/audit.ts after the built-in masks).
 */
export function policyMask(store: PolicyStore, entrypoint: string): MaskFunction {
  return (_masked, { input, record }) => {
    if (!record.evaluate) {
      const active = store.peek();
      if (record.revision !== undefined && record.revision !== active?.revision) {
        throw new PolicyEvalError(`decided by revision ${record.revision}, which is no longer active`);
      }
      return blankClientParts(input);
    }
    return toMaskOps(entrypoint, record.evaluate(entrypoint, input));
  };
}

/** Input fields the server (not the client) sets: kept when the policy mask cannot run. */
const SERVER_FIELDS: ReadonlySet<string> = new Set(["version", "server_id", "user_nkey", "request_issuer"]);

/**
 * No policy evaluated this request (dropped before deciding), so its mask rule has no result: blank every part of
 * the input the client supplied rather than log what the rule might have hidden.
 */
function blankClientParts(input: unknown): MaskOp[] {
  if (typeof input !== "object" || input === null) return [];
  return Object.keys(input)
    .filter((k) => !SERVER_FIELDS.has(k))
    .map((k) => `/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`);
}
