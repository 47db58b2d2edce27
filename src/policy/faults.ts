/**
 * What went wrong in an evaluation, as text an operator can act on. opa-wasm throws strings (OPA's
 * `opa_abort`: `file.rego:6:1: var assignment conflict`, `opa_malloc: failed`), `{ message }` objects
 * (missing builtin), RangeErrors (Memory.grow at the limit, stack overflow) and whatever its own JS
 * builtins throw (`yaml.unmarshal` on an alias bomb, `sprintf`). Each becomes one line of text, with
 * the Rego file and line when OPA gave them.
 *
 * Host builtins (./builtins.ts) are strict: their failure fails the evaluation with the reason, as
 * OPA's --strict-builtin-errors does. Not detectable: wasm-native builtins (division by zero,
 * `to_number("x")`, …) have no error channel in the compiled module (its only imports are
 * `opa_abort` and the host builtins), and opa-wasm's `yaml.unmarshal` / `yaml.is_valid` turn a YAML
 * syntax error into undefined; these make their expression undefined, exactly like OPA without
 * strict-builtin-errors, and the decision falls to the policy's default.
 *
 * Texts from OPA's aborts, our own builtins (./builtins.ts: never argument values) and our own
 * checks are fixed texts. Texts from opa-wasm's JS builtins and from JSON/YAML libraries may quote
 * the input: `scrubFault` cuts them to their first line and blanks every credential value of the
 * input before they reach a log line, a decision event or a reply.
 */
import { BuiltinError } from "./builtins/util.js";

export interface EvalFault {
  message: string;
  file?: string;
  line?: number;
  /** False when the text may quote input (it must be scrubbed before it is logged). */
  trusted: boolean;
}

/** Bytes as "12.3 MiB" (or KiB / bytes). */
export function mib(bytes: number): string {
  if (bytes >= 1024 * 1024)
    return `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

/** The text of anything opa-wasm throws. */
export function faultText(err: unknown): string {
  if (typeof err === "string") return err;
  if (err instanceof Error) return err.message;
  if (typeof err === "object" && err !== null && typeof (err as { message?: unknown }).message === "string") {
    return (err as { message: string }).message;
  }
  return String(err);
}

/** Wasm memory exhausted: the module's allocator gave up, or opa-wasm's Memory.grow hit the maximum. */
export function isOutOfMemory(err: unknown): boolean {
  const t = faultText(err);
  return (
    /opa_malloc: failed/.test(t) ||
    (err instanceof RangeError && /Memory\.grow|Maximum memory size|could not allocate memory/i.test(t))
  );
}

/** OPA abort location: `some/file.rego:12:3: message`. */
const ABORT_RE = /^((?:[\w.@+-]+\/)*[\w.@+-]+\.rego):(\d+):(\d+): (.+)$/s;

export function describeEvalFault(err: unknown, maxPages: number): EvalFault {
  if (isOutOfMemory(err)) {
    return {
      message: `out of wasm memory: the limit is ${mib(maxPages * 65536)} (${maxPages} pages; policy.max_memory_mb)`,
      trusted: true,
    };
  }
  if (typeof err === "string") {
    const m = ABORT_RE.exec(err);
    if (m) return { message: err, file: m[1] as string, line: Number(m[2]), trusted: true };
    return { message: err.split("\n")[0] as string, trusted: /^entrypoint .* is not valid/.test(err) };
  }
  if (err instanceof BuiltinError) return { message: `builtin ${err.message}`, trusted: true };
  const text = faultText(err);
  if (/^not implemented: built-in function/.test(text)) return { message: text, trusted: true };
  const name = err instanceof Error && err.name !== "Error" ? `${err.name}: ` : "";
  return { message: `${name}${text}`, trusted: false };
}

/** Credential values of a policy input document (connect_opts pass, auth_token, jwt, sig). */
function credentialValues(input: unknown): string[] {
  const co = (input as { connect_opts?: Record<string, unknown> } | null)?.connect_opts;
  if (!co || typeof co !== "object") return [];
  const out: string[] = [];
  for (const k of ["pass", "auth_token", "jwt", "sig"]) {
    const v = co[k];
    if (typeof v === "string" && v.length > 0) out.push(v);
  }
  return out.sort((a, b) => b.length - a.length);
}

const MAX_FAULT_CHARS = 300;

/** A fault's text, safe to log: untrusted texts keep their first line with every credential of `input` blanked. */
export function scrubFault(fault: EvalFault, input: unknown): string {
  if (fault.trusted) return fault.message;
  let text = fault.message.split("\n")[0] as string;
  for (const secret of credentialValues(input)) text = text.split(secret).join("[REDACTED]");
  // JWTs and nkey seeds never belong in an error line, whatever field they came from.
  text = text
    .replace(/eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g, "[REDACTED]")
    .replace(/S[OACUNXP][A-Z2-7]{20,}/g, "[REDACTED]");
  return text.length > MAX_FAULT_CHARS ? `${text.slice(0, MAX_FAULT_CHARS)}…` : text;
}
