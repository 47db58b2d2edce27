/**
 * Hot reload: chokidar watches the policy directory (or the bundle file's directory); bursts of
 * events are debounced, then the whole source is re-read and hashed. An unchanged hash does nothing.
 * A changed one is built aside (or, data only, re-instantiated from the compiled module), verified —
 * builtins and entrypoint (at load), then smoke-evaluated with canned inputs through decision.ts —
 * and only then swapped into the store. Any failure keeps the last good policy and is recorded.
 *
 * Start-up is strict: `start()` throws the PolicyLoadError (with file and line when opa named them)
 * when there is no valid policy.
 *
 * File events are not the only trigger: every `pollMs` the source is re-hashed, and a content change
 * the events missed (a ConfigMap's `..data` symlink swap, network file systems without inotify, a policy
 * directory that was removed and created again — chokidar drops its watch on a deleted root) is
 * reloaded as if an event had arrived; a deleted and recreated root is also watched afresh. A tree
 * whose load already failed is not retried by the poll until its content changes again.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { watch, type FSWatcher } from "chokidar";
import { PolicyLoadError } from "../errors.js";
import { PolicyLoader, type LoaderOptions, type PolicySource } from "./bundle.js";
import { toDecision } from "./decision.js";
import type { PolicyEngine } from "./engine.js";
import { SMOKE_INPUT, type PolicyInput } from "./input.js";
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
}

export interface ReloadOutcome {
  result: "ok" | "unchanged" | "error";
  revision: string | undefined;
  error?: unknown;
}

/**
 * Check a freshly loaded engine before activation; throws PolicyLoadError. Every extra entrypoint must be in the
 * module and evaluate without error on the smoke inputs (its value is not interpreted here).
 */
export function verifyPolicy(
  engine: PolicyEngine,
  entrypoint: string,
  inputs: readonly PolicyInput[],
  extraEntrypoints: readonly string[] = [],
): void {
  for (const ep of [entrypoint, ...extraEntrypoints]) {
    if (!engine.hasEntrypoint(ep)) {
      throw new PolicyLoadError(`entrypoint ${ep} is not in the policy module`);
    }
  }
  for (const [i, input] of inputs.entries()) {
    try {
      const { result } = engine.evaluate(input, entrypoint);
      toDecision(result, input.connect_opts);
    } catch (err) {
      throw new PolicyLoadError(`smoke evaluation ${i + 1} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    for (const ep of extraEntrypoints) {
      try {
        engine.evaluate(input, ep);
      } catch (err) {
        throw new PolicyLoadError(`smoke evaluation ${i + 1} of ${ep} failed: ${(err as Error).message}`, {
          cause: err,
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
  /** Revision (content hash) of the last tree the poll tried and failed to load. */
  private lastFailedByPoll: string | undefined;

  constructor(
    private readonly store: PolicyStore,
    readonly source: PolicySource,
    private readonly opts: PolicyWatcherOptions,
  ) {
    const entrypoints = [opts.entrypoint, ...(opts.extraEntrypoints ?? [])];
    this.loader = new PolicyLoader(source, { ...opts, entrypoints });
  }

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
    try {
      const loaded = await this.loader.load(force);
      if (!loaded) return { result: "unchanged", revision: this.store.peek()?.revision };
      attempted = loaded.revision;
      verifyPolicy(
        loaded.engine,
        this.opts.entrypoint,
        this.opts.smokeInputs ?? [SMOKE_INPUT],
        this.opts.extraEntrypoints,
      );
      this.store.swap(
        { policy: loaded.engine, revision: loaded.revision, entrypoint: this.opts.entrypoint },
        { duration_ms: elapsed(), compiled: loaded.compiled },
      );
      loaded.commit();
      return { result: "ok", revision: loaded.revision };
    } catch (err) {
      const info: { duration_ms: number; attempted?: string } = { duration_ms: elapsed() };
      if (attempted !== undefined) info.attempted = attempted;
      this.store.recordFailure(err, info);
      return { result: "error", revision: this.store.peek()?.revision, error: err };
    }
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
    w.on("all", (event, p) => {
      if (event === "unlinkDir" && path.resolve(p) === root) this.rootGone = true;
      this.schedule();
    });
    w.on("error", () => this.schedule());
    await new Promise<void>((resolve) => w.once("ready", () => resolve()));
    this.fsWatcher = w;
  }

  /** The periodic fallback: see the module comment. Never throws. */
  private async poll(): Promise<void> {
    if (this.closed || this.running || this.timer) return;
    const target = this.source.dir ?? (this.source.bundle as string);
    if (!existsSync(target)) {
      this.rootGone = this.source.dir !== undefined;
      return; // the event-triggered reload already recorded the failure; nothing to load
    }
    try {
      if (this.rootGone) {
        this.rootGone = false;
        await this.fsWatcher?.close();
        this.fsWatcher = undefined;
        if (this.closed) return;
        await this.startWatching();
      }
      const { revision } = await this.loader.currentRevision();
      if (revision === this.loader.activeRevision || revision === this.lastFailedByPoll) return;
      const outcome = await this.reload(false);
      this.lastFailedByPoll = outcome.result === "error" ? revision : undefined;
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

  async close(): Promise<void> {
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.fsWatcher?.close();
    this.fsWatcher = undefined;
    while (this.running) await this.running;
  }
}
