/**
 * Hot reload: chokidar watches the policy directory (or the bundle file's directory); bursts of
 * events are debounced, then the whole source is re-read and hashed. An unchanged hash does nothing.
 * A changed one is built aside (or, data only, re-instantiated from the compiled module) into a NEW
 * evaluator pool (./pool.ts: worker threads, so compiling, instantiating and loading data never block
 * the serving thread), verified — builtins and entrypoint (at load), then smoke-evaluated with canned
 * inputs through decision.ts — and only then swapped into the store; the previous pool is retired
 * (requests that took it finish on it). Meanwhile the last good revision keeps answering. Any failure
 * keeps the last good policy and is recorded once: the same content is not tried again until it
 * changes (or `reload(true)`, e.g. SIGHUP).
 *
 * Start-up is strict: `start()` throws the PolicyLoadError (with file and line when opa named them)
 * when there is no valid policy.
 *
 * File events are not the only trigger: every `pollMs` the source is re-hashed, and a content change
 * the events missed (a ConfigMap's `..data` symlink swap, network file systems without inotify, a policy
 * directory that was removed and created again — chokidar drops its watch on a deleted root) is
 * reloaded as if an event had arrived; a deleted and recreated root is also watched afresh. A tree
 * whose load already failed is not retried (by the poll or a file event) until its content changes.
 * File-watcher errors are logged and trigger a rescan; a watcher that never becomes ready within
 * `readyTimeoutMs` is logged and the poll carries on alone.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { watch, type FSWatcher } from "chokidar";
import { PolicyLoadError } from "../errors.js";
import type { Logger } from "../log.js";
import { PolicyLoader, type LoaderOptions, type PolicySource } from "./bundle.js";
import { toDecision } from "./decision.js";
import { SMOKE_INPUT, type PolicyInput } from "./input.js";
import { EvaluatorPool, type PoolOptions } from "./pool.js";
import type { PolicyStore } from "./store.js";

export interface PolicyWatcherOptions extends Omit<LoaderOptions, "entrypoints"> {
  /** The decision entrypoint, e.g. "nats/authz/decision". */
  entrypoint: string;
  /** Further entrypoints the bundle must export. */
  extraEntrypoints?: readonly string[];
  /** Canned inputs every new revision must decide cleanly (default: [SMOKE_INPUT]). */
  smokeInputs?: readonly PolicyInput[];
  /** Watch for changes (default true). */
  watch?: boolean;
  /** Quiet time after the last file event before reloading (default 200 ms). */
  debounceMs?: number;
  /** chokidar awaitWriteFinish stability threshold (default 100 ms). */
  writeFinishMs?: number;
  /** Re-hash the source this often and reload on a change the file events missed (default 10 s; 0 = off). */
  pollMs?: number;
  /** Evaluation pool of every revision: workers, timeout, memory (see ./pool.ts). */
  pool?: Omit<PoolOptions, "revision" | "logger">;
  /** Gets watcher errors and the pools' timeout / worker lines (never input or secrets). */
  logger?: Logger;
  /** Longest wait for the file watcher's initial scan (default 10 s); after it the poll carries on alone. */
  readyTimeoutMs?: number;
}

export interface ReloadOutcome {
  result: "ok" | "unchanged" | "error";
  revision: string | undefined;
  error?: unknown;
}

/**
 * Check a freshly loaded revision before activation; throws PolicyLoadError. Every extra entrypoint must be in the
 * module and evaluate without error on the smoke inputs (its value is not interpreted here).
 */
export async function verifyPolicy(
  pool: EvaluatorPool,
  entrypoint: string,
  inputs: readonly PolicyInput[],
  extraEntrypoints: readonly string[] = [],
): Promise<void> {
  for (const ep of [entrypoint, ...extraEntrypoints]) {
    if (!pool.hasEntrypoint(ep)) {
      throw new PolicyLoadError(`entrypoint ${ep} is not in the policy module`);
    }
  }
  for (const [i, input] of inputs.entries()) {
    let outcomes;
    try {
      outcomes = await pool.evaluateAll(input, [entrypoint, ...extraEntrypoints]);
    } catch (err) {
      throw new PolicyLoadError(`smoke evaluation ${i + 1} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    for (const [k, o] of outcomes.entries()) {
      const ep = k === 0 ? "" : ` of ${extraEntrypoints[k - 1] as string}`;
      try {
        if (!o.ok) throw o.error;
        if (k === 0) toDecision(o.result, input.connect_opts);
      } catch (err) {
        const e = err as Error & { file?: string; line?: number };
        throw new PolicyLoadError(`smoke evaluation ${i + 1}${ep} failed: ${e.message}`, {
          cause: err,
          ...(e.file !== undefined ? { file: e.file } : {}),
          ...(e.line !== undefined ? { line: e.line } : {}),
        });
      }
    }
  }
}

export class PolicyWatcher {
  private readonly loader: PolicyLoader;
  private fsWatcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private pending = false;
  private closed = false;
  private pollTimer: NodeJS.Timeout | undefined;
  /** The watched root was deleted: chokidar no longer reports anything below it. */
  private rootGone = false;
  /** Content hash of the last tree whose load failed (not retried until the content changes). */
  private lastFailed: string | undefined;
  /** Pools replaced by a reload, still answering requests that took them. */
  private readonly retired = new Set<EvaluatorPool>();
  /** A poll re-watch under way (close() waits for it). */
  private rewatching: Promise<void> | undefined;

  constructor(
    private readonly store: PolicyStore,
    readonly source: PolicySource,
    private readonly opts: PolicyWatcherOptions,
  ) {
    const entrypoints = [opts.entrypoint, ...(opts.extraEntrypoints ?? [])];
    this.loader = new PolicyLoader(source, { ...opts, entrypoints });
    this.log = opts.logger;
  }

  private readonly log: Logger | undefined;

  /** Initial load (throws PolicyLoadError if there is no valid policy), then start watching. */
  async start(): Promise<void> {
    const outcome = await this.reload(true);
    if (outcome.result === "error") {
      const err = outcome.error;
      throw err instanceof PolicyLoadError
        ? err
        : new PolicyLoadError(`cannot load policy: ${(err as Error).message}`, { cause: err });
    }
    if (this.opts.watch ?? true) {
      await this.startWatching();
      const pollMs = this.opts.pollMs ?? 10_000;
      if (pollMs > 0) {
        this.pollTimer = setInterval(() => void this.poll(), pollMs);
        this.pollTimer.unref();
      }
    }
  }

  /**
   * Load, verify and activate the source now (serialised with watcher-triggered reloads).
   * `force` reloads even when the content hash is unchanged.
   */
  async reload(force = false): Promise<ReloadOutcome> {
    while (this.running) await this.running;
    let done!: () => void;
    this.running = new Promise<void>((r) => (done = r));
    try {
      return await this.reloadOnce(force);
    } finally {
      this.running = undefined;
      done();
    }
  }

  private async reloadOnce(force: boolean): Promise<ReloadOutcome> {
    const started = performance.now();
    const elapsed = (): number => Math.round((performance.now() - started) * 10) / 10;
    let attempted: string | undefined;
    let pool: EvaluatorPool | undefined;
    try {
      if (!force && this.lastFailed !== undefined) {
        const { revision } = await this.loader.currentRevision();
        if (revision === this.lastFailed)
          return { result: "unchanged", revision: this.store.peek()?.revision };
      }
      const loaded = await this.loader.load(force);
      if (!loaded) return { result: "unchanged", revision: this.store.peek()?.revision };
      attempted = loaded.revision;
      const poolOpts: PoolOptions = {
        ...this.opts.pool,
        revision: loaded.revision,
        inputReads: loaded.inputReads,
      };
      if (this.log) poolOpts.logger = this.log;
      pool = await EvaluatorPool.start(loaded.module, loaded.data, poolOpts);
      await verifyPolicy(
        pool,
        this.opts.entrypoint,
        this.opts.smokeInputs ?? [SMOKE_INPUT],
        this.opts.extraEntrypoints,
      );
      if (this.closed) throw new PolicyLoadError("policy watcher closed during the reload");
      const previous = this.store.peek()?.policy;
      this.store.swap(
        { policy: pool, revision: loaded.revision, entrypoint: this.opts.entrypoint },
        { duration_ms: elapsed(), compiled: loaded.compiled },
      );
      loaded.commit();
      this.lastFailed = undefined;
      if (previous && previous !== pool) this.retire(previous);
      return { result: "ok", revision: loaded.revision };
    } catch (err) {
      void pool?.close();
      this.lastFailed = this.loader.lastAttempted;
      const info: { duration_ms: number; attempted?: string } = { duration_ms: elapsed() };
      if (attempted !== undefined) info.attempted = attempted;
      this.store.recordFailure(err, info);
      return { result: "error", revision: this.store.peek()?.revision, error: err };
    }
  }

  /** The replaced pool answers what it has (and late requests for POOL_DEFAULTS.retireGraceMs), then stops. */
  private retire(pool: EvaluatorPool): void {
    this.retired.add(pool);
    pool.retire();
    // forget it once it has closed itself
    const sweep = setInterval(() => {
      if (pool.isClosed()) {
        this.retired.delete(pool);
        clearInterval(sweep);
      }
    }, 1000);
    sweep.unref();
  }

  private async startWatching(): Promise<void> {
    const target = this.source.dir ?? path.dirname(this.source.bundle as string);
    const bundleName = this.source.bundle !== undefined ? path.resolve(this.source.bundle) : undefined;
    const root = path.resolve(target);
    const w = watch(root, {
      ignoreInitial: true,
      persistent: true,
      awaitWriteFinish: { stabilityThreshold: this.opts.writeFinishMs ?? 100, pollInterval: 25 },
      ...(bundleName !== undefined ? { depth: 0 } : {}),
      ignored: (p: string) => {
        const abs = path.resolve(p);
        if (abs === root) return false;
        if (bundleName !== undefined) return abs !== bundleName;
        // hidden entries (editor swap files, .git) never matter
        return path
          .relative(root, abs)
          .split(path.sep)
          .some((seg) => seg.startsWith("."));
      },
    });
    // Owned from the first moment, so close() can end it even while its initial scan runs.
    this.fsWatcher = w;
    w.on("all", (event, p) => {
      if (event === "unlinkDir" && path.resolve(p) === root) this.rootGone = true;
      this.schedule();
    });
    w.on("error", (err: unknown) => {
      this.log?.warn(
        { event: "policy_watch_error", path: root, error: (err as Error)?.message ?? String(err) },
        "policy file watcher error; rescanning",
      );
      this.schedule();
    });
    const readyMs = this.opts.readyTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const ready = await Promise.race([
      new Promise<true>((resolve) => w.once("ready", () => resolve(true))),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), readyMs))),
    ]);
    clearTimeout(timer);
    if (!ready) {
      this.log?.warn(
        { event: "policy_watch_error", path: root, timeout_ms: readyMs },
        "policy file watcher not ready in time; changes are picked up by the poll until it is",
      );
    }
    if (this.closed && this.fsWatcher === w) {
      this.fsWatcher = undefined;
      await w.close();
    }
  }

  /** The periodic fallback (what the poll timer runs; see the module comment). Never throws. */
  async poll(): Promise<void> {
    if (this.closed || this.running || this.timer) return;
    const target = this.source.dir ?? (this.source.bundle as string);
    if (!existsSync(target)) {
      this.rootGone = this.source.dir !== undefined;
      return; // the event-triggered reload already recorded the failure; nothing to load
    }
    try {
      if (this.rootGone) {
        this.rootGone = false;
        const rewatch = (async () => {
          const old = this.fsWatcher;
          this.fsWatcher = undefined;
          await old?.close();
          if (!this.closed) await this.startWatching();
        })();
        this.rewatching = rewatch;
        try {
          await rewatch;
        } finally {
          this.rewatching = undefined;
        }
        if (this.closed) return;
      }
      const { revision } = await this.loader.currentRevision();
      if (revision === this.loader.activeRevision || revision === this.lastFailed) return;
      await this.reload(false);
    } catch {
      // unreadable mid-change: the next tick (or a file event) tries again
    }
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.trigger();
    }, this.opts.debounceMs ?? 200);
  }

  private async trigger(): Promise<void> {
    if (this.pending) return;
    if (this.running) {
      // a reload is under way: run one more after it, which sees every change made meanwhile
      this.pending = true;
      await this.running;
      this.pending = false;
    }
    if (!this.closed) await this.reload(false);
  }

  /** Stop watching, wait for a reload under way, and stop every evaluator pool (the active one too). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.rewatching) await this.rewatching.catch(() => undefined);
    await this.fsWatcher?.close();
    this.fsWatcher = undefined;
    while (this.running) await this.running;
    const pools = [...this.retired];
    this.retired.clear();
    const active = this.store.peek()?.policy;
    if (active) pools.push(active);
    await Promise.all(pools.map((p) => p.close()));
  }
}
