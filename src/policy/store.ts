/**
 * The active policy: one immutable snapshot { policy, revision, loadedAt, entrypoint } behind a single
 * reference. A request takes `current()` once at its start, so a reload can never mix revisions;
 * `swap()` replaces the reference atomically. Failed reloads keep the last good snapshot and are
 * recorded in `status()`; the next successful activation clears `lastError` (its reload event says
 * what it recovered from). Reload events go to "reload" listeners (logs, metrics).
 *
 * `policy` is the revision's evaluator pool (./pool.ts): every evaluation of a request goes to the
 * same pool, so a request is decided entirely by one revision.
 */
import { EventEmitter } from "node:events";
import { CalloutError, PolicyEvalError, PolicyLoadError } from "../errors.js";
import type { EvaluatorPool } from "./pool.js";

export interface ActivePolicy {
  readonly policy: EvaluatorPool;
  readonly revision: string;
  readonly loadedAt: Date;
  readonly entrypoint: string;
}

export interface PolicyErrorInfo {
  message: string;
  code: string;
  file?: string;
  line?: number;
}

export interface ReloadEvent {
  result: "ok" | "error";
  /** ok: the new revision; error: the revision that stays active (undefined if none). */
  revision: string | undefined;
  /** error: the revision that failed, when known. */
  attempted?: string;
  duration_ms: number;
  /** ok: false when only data changed and the compiled module was reused. */
  compiled?: boolean;
  error?: PolicyErrorInfo;
  /** ok: the failure this activation cleared (status().lastError before it). */
  recovered?: PolicyErrorInfo & { at: string };
}

export interface PolicyStatus {
  /** True once a policy is active. */
  ready: boolean;
  revision: string | undefined;
  entrypoint: string | undefined;
  loadedAt: string | undefined;
  lastSuccessAt: string | undefined;
  lastError: (PolicyErrorInfo & { at: string }) | undefined;
  reloads: { ok: number; failed: number };
  /** Wasm memory of the active revision's largest instance (one per evaluation worker), bytes. */
  memoryBytes: number | undefined;
}

export function errorInfo(err: unknown): PolicyErrorInfo {
  const info: PolicyErrorInfo = {
    message: err instanceof Error ? err.message : String(err),
    code: err instanceof CalloutError ? err.code : "policy_load_error",
  };
  if (err instanceof PolicyLoadError || err instanceof PolicyEvalError) {
    if (err.file !== undefined) info.file = err.file;
    if (err.line !== undefined) info.line = err.line;
  }
  return info;
}

export class PolicyStore extends EventEmitter<{ reload: [ReloadEvent] }> {
  private active: ActivePolicy | undefined;
  private lastSuccessAt: Date | undefined;
  private lastError: (PolicyErrorInfo & { at: string }) | undefined;
  private ok = 0;
  private failed = 0;

  /** The active snapshot; throws PolicyEvalError when no policy has been loaded yet. */
  current(): ActivePolicy {
    const a = this.active;
    if (!a) throw new PolicyEvalError("no policy loaded");
    return a;
  }

  /** The active snapshot, or undefined before the first successful load. */
  peek(): ActivePolicy | undefined {
    return this.active;
  }

  /**
   * Activate a verified policy (one reference swap) and report a successful reload. The caller retires
   * the previous snapshot's pool (requests that took it finish on it).
   */
  swap(
    next: { policy: EvaluatorPool; revision: string; entrypoint: string },
    info: { duration_ms?: number; compiled?: boolean } = {},
  ): ActivePolicy {
    const now = new Date();
    const snapshot: ActivePolicy = Object.freeze({ ...next, loadedAt: now });
    this.active = snapshot;
    this.lastSuccessAt = now;
    this.ok++;
    const event: ReloadEvent = { result: "ok", revision: next.revision, duration_ms: info.duration_ms ?? 0 };
    if (info.compiled !== undefined) event.compiled = info.compiled;
    if (this.lastError) event.recovered = this.lastError;
    this.lastError = undefined;
    this.notify(event);
    return snapshot;
  }

  /** Record a failed load/reload; the active snapshot (if any) stays. */
  recordFailure(err: unknown, info: { duration_ms?: number; attempted?: string } = {}): PolicyErrorInfo {
    const e = errorInfo(err);
    this.lastError = { ...e, at: new Date().toISOString() };
    this.failed++;
    const event: ReloadEvent = {
      result: "error",
      revision: this.active?.revision,
      duration_ms: info.duration_ms ?? 0,
      error: e,
    };
    if (info.attempted !== undefined) event.attempted = info.attempted;
    this.notify(event);
    return e;
  }

  /** A throwing listener (a logger, a metric) must not turn an activated policy into a failure. */
  private notify(event: ReloadEvent): void {
    for (const listener of this.rawListeners("reload") as ((e: ReloadEvent) => void)[]) {
      try {
        listener.call(this, event);
      } catch {
        // ignored: reload bookkeeping is already done
      }
    }
  }

  status(): PolicyStatus {
    const a = this.active;
    return {
      ready: a !== undefined,
      revision: a?.revision,
      entrypoint: a?.entrypoint,
      loadedAt: a?.loadedAt.toISOString(),
      lastSuccessAt: this.lastSuccessAt?.toISOString(),
      lastError: this.lastError,
      reloads: { ok: this.ok, failed: this.failed },
      memoryBytes: a?.policy.memoryBytes(),
    };
  }
}
