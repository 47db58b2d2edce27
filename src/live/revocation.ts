/**
 * Live revocation: when a new policy revision activates, every live grant this replica issued is re-decided on it
 * (bounded concurrency, yielding between evaluations so logins keep flowing), and each connection whose decision is
 * now deny, or whose grant is no longer covered by the new one (src/live/coverage.ts), is disconnected through the
 * kicker; it reconnects through the callout and gets what the policy now says. Unchanged grants are left alone.
 *
 * Guarantees:
 * - a connection is kicked at most once per revision: its entry leaves the registry before the kick is sent (a
 *   failed kick puts it back for the next revision or periodic run);
 * - revisions arriving during a run coalesce into one more run; entries already confirmed by the revision being
 *   run are skipped (a forced periodic run re-decides all);
 * - a login decided on an older revision but recorded after a run started is re-decided on its own;
 * - without a kicker (not configured, or its start-up probe failed) nothing is recorded and nothing runs.
 */
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { AuthorizationRequest } from "../types.js";
import type { IssuedSummary } from "../callout/pipeline.js";
import { silentLogger, type Logger } from "../log.js";
import { uncoveredReason } from "./coverage.js";
import type { KickOutcome } from "./kicker.js";
import { LiveGrant, type ConnectionKey, type LiveGrantRegistry } from "./registry.js";
import { summaryFromIssued, type Reevaluate } from "./reevaluate.js";

/** One finished run, for logs, metrics and tests. */
export interface RunReport {
  revision: string | undefined;
  trigger: "revision" | "periodic" | "late_login";
  evaluated: number;
  kept: number;
  /** Kick reasons: deny, or the coverage code (pub, sub, account, expiry, …). */
  revoked: Record<string, number>;
  kicks: Record<KickOutcome, number>;
  duration_ms: number;
}

export interface LiveRevocationOptions {
  registry: LiveGrantRegistry;
  reevaluate: Reevaluate;
  /** Disconnects one client (the Kicker's kick, paced). */
  kick: (k: ConnectionKey) => Promise<KickOutcome>;
  /** Re-evaluations running at once (default 8). */
  concurrency?: number;
  logger?: Logger;
  /** Called after every run (metrics). */
  onRun?: (r: RunReport) => void;
  /** Called per re-decided connection: keep, or the kick reason. */
  onVerdict?: (verdict: "keep" | "kick", reason?: string) => void;
}

/** What the service hands over after an allow reply was sent. */
export interface AllowedLogin {
  decisionId: string;
  request: AuthorizationRequest;
  issued: IssuedSummary;
  /** The revision that decided it (policy handler: `facts.revision`). */
  revision?: string | undefined;
}

export class LiveRevocation {
  readonly registry: LiveGrantRegistry;
  readonly #reevaluate: Reevaluate;
  readonly #kick: LiveRevocationOptions["kick"];
  readonly #concurrency: number;
  readonly #log: Logger;
  readonly #onRun: LiveRevocationOptions["onRun"];
  readonly #onVerdict: LiveRevocationOptions["onVerdict"];
  /** The newest revision a run was asked for. */
  #latest: string | undefined;
  #running: Promise<void> | undefined;
  #pending: { revision: string | undefined; force: boolean } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(o: LiveRevocationOptions) {
    this.registry = o.registry;
    this.#reevaluate = o.reevaluate;
    this.#kick = o.kick;
    this.#concurrency = Math.max(1, o.concurrency ?? 8);
    this.#log = (o.logger ?? silentLogger).child({ component: "revocation" });
    this.#onRun = o.onRun;
    this.#onVerdict = o.onVerdict;
  }

  /** Hook: an allow reply was sent. Keeps what re-evaluation needs (requests without a client id are skipped). */
  record(login: AllowedLogin): void {
    if (this.#closed || typeof login.request.client_info.id !== "number") return;
    const g = this.registry.add(
      new LiveGrant({
        request: login.request,
        grant: summaryFromIssued(login.issued),
        decisionId: login.decisionId,
        revision: login.revision,
      }),
    );
    // Decided on an older revision than the newest one announced: re-decide it now, on its own.
    if (g !== undefined && this.#latest !== undefined && login.revision !== this.#latest) {
      this.#track(this.#runEntries([g], this.#latest, false, "late_login"));
    }
  }

  /** Hook: a new revision is active. Re-decides every live grant (coalesced with a run in progress). */
  onRevision(revision: string | undefined): Promise<void> {
    this.#latest = revision;
    return this.#schedule(revision, false);
  }

  /** Re-decide every live grant now, whatever revision confirmed it (time-dependent policies). */
  reevaluateAll(): Promise<void> {
    return this.#schedule(this.#latest, true);
  }

  /** Optional periodic re-evaluation (off unless called; seconds > 0). */
  startPeriodic(seconds: number): void {
    if (seconds <= 0 || this.#timer) return;
    this.#timer = setInterval(() => void this.reevaluateAll(), seconds * 1000);
    this.#timer.unref();
  }

  /** Resolves when no run and no late-login re-decision is in progress. */
  async idle(): Promise<void> {
    while (this.#running || this.#inFlight.size > 0) {
      await Promise.allSettled([this.#running, ...this.#inFlight]);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#pending = undefined;
    await this.idle();
    this.registry.clear();
  }

  #track(p: Promise<unknown>): void {
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  #schedule(revision: string | undefined, force: boolean): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#running) {
      this.#pending = { revision, force: force || (this.#pending?.force ?? false) };
      return this.#running;
    }
    const loop = async (): Promise<void> => {
      let job: { revision: string | undefined; force: boolean } | undefined = { revision, force };
      while (job && !this.#closed) {
        this.#pending = undefined;
        await this.#runEntries(
          this.registry.snapshot(),
          job.revision,
          job.force,
          job.force ? "periodic" : "revision",
        );
        job = this.#pending;
      }
    };
    this.#running = loop()
      .catch((e: unknown) => this.#log.error({ error_type: (e as Error)?.name }, "re-evaluation run failed"))
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  async #runEntries(
    entries: LiveGrant[],
    revision: string | undefined,
    force: boolean,
    trigger: RunReport["trigger"],
  ): Promise<void> {
    const t0 = performance.now();
    const report: RunReport = {
      revision,
      trigger,
      evaluated: 0,
      kept: 0,
      revoked: {},
      kicks: { kicked: 0, gone: 0, failed: 0 },
      duration_ms: 0,
    };
    const kicks: Promise<void>[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < entries.length && !this.#closed) {
        const g = entries[next++]!;
        // Replaced, removed or expired since the snapshot; or already confirmed by this revision.
        if (this.registry.get(g) !== g) continue;
        if (!force && revision !== undefined && g.revision === revision) continue;
        const d = await this.#reevaluate(g.request());
        report.evaluated++;
        const reason = d.kind === "deny" ? "deny" : uncoveredReason(d.grant, g.grant);
        if (reason === undefined) {
          g.revision = d.revision ?? revision;
          report.kept++;
          this.#onVerdict?.("keep");
        } else if (this.registry.remove(g)) {
          report.revoked[reason] = (report.revoked[reason] ?? 0) + 1;
          this.#onVerdict?.("kick", reason);
          kicks.push(this.#kickOne(g, reason, d.revision ?? revision, report));
        }
        await yieldToLoop(); // let logins in between re-decisions
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, entries.length) }, worker));
    await Promise.all(kicks);
    report.duration_ms = Math.round(performance.now() - t0);
    if (report.evaluated > 0 || trigger !== "late_login") {
      this.#log.info({ event: "live_reevaluation", ...report }, "live grants re-evaluated");
    }
    try {
      this.#onRun?.(report);
    } catch {
      // a metric must not break revocation
    }
  }

  async #kickOne(
    g: LiveGrant,
    reason: string,
    revision: string | undefined,
    report: RunReport,
  ): Promise<void> {
    const outcome = await this.#kick(g);
    report.kicks[outcome]++;
    const fields = {
      decision_id: g.decisionId,
      server_id: g.serverId,
      cid: g.cid,
      reason,
      revision,
      outcome,
    };
    if (outcome === "failed") {
      if (this.#closed) return; // shutting down: the kicker stopped sending
      // Try again on the next revision or periodic run (unless a newer login took the key).
      if (this.registry.get(g) === undefined) this.registry.add(g);
      this.#log.warn(fields, "live grant revoked but the kick failed");
    } else {
      this.#log.info(fields, outcome === "kicked" ? "connection kicked" : "revoked connection already gone");
    }
  }
}
