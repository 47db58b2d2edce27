/**
 * Live revocation from a resolved config: the registry, the kicker (system-account connection, probed at start),
 * the re-evaluator over the service's handler, metrics, and the two hooks the runtime calls:
 *
 *   onResult(event)          after every request: an allow whose reply reached (or may have reached) the server
 *                            is recorded;
 *   onReload(ok, revision)   after every policy load: a successful one re-decides the live grants.
 *
 * `startLiveRevocation` returns undefined when `revocation.enabled` is off. When the credential cannot connect or
 * lacks the KICK right, it logs one error naming the missing right and returns a handle that records nothing
 * (`status().ready` false, metric nats_opa_callout_revocation_ready 0): logins keep being served.
 */
import type { Registry } from "prom-client";
import type { Handler } from "../callout/pipeline.js";
import type { ResolvedConfig } from "../config.js";
import { silentLogger, type Logger } from "../log.js";
import { connectionOptions, type ResultEvent } from "../service.js";
import { Kicker, RevocationError } from "./kicker.js";
import { LiveMetrics } from "./metrics.js";
import { LiveGrantRegistry } from "./registry.js";
import { reevaluatorFromHandler } from "./reevaluate.js";
import { LiveRevocation } from "./revocation.js";

export { covers, uncoveredReason, subjectCovers, subjectsIntersect, type GrantSummary } from "./coverage.js";
export { Kicker, KICK_PERMISSION, RevocationError, TokenBucket, type KickOutcome } from "./kicker.js";
export { LiveGrant, LiveGrantRegistry, type ConnectionKey } from "./registry.js";
export { reevaluatorFromHandler, summarizeGrant, summaryFromIssued, type Reevaluate } from "./reevaluate.js";
export { LiveRevocation, type AllowedLogin, type RunReport } from "./revocation.js";

export interface LiveRevocationStatus {
  ready: boolean;
  liveGrants: number;
  evicted: number;
  /** Why revocation is not running (a start-up probe failure), when it is not. */
  error?: string;
}

export interface LiveRevocationHandle {
  onResult(ev: ResultEvent): void;
  onReload(ok: boolean, revision: string | undefined): void;
  /** The engine (tests, library users); undefined when the kicker could not start. */
  readonly revocation: LiveRevocation | undefined;
  status(): LiveRevocationStatus;
  close(): Promise<void>;
}

export interface StartLiveRevocationOptions {
  handler: Handler;
  logger?: Logger;
  /** The service's prom-client registry (CalloutMetrics.registry). */
  registry?: Registry;
}

export async function startLiveRevocation(
  cfg: ResolvedConfig,
  o: StartLiveRevocationOptions,
): Promise<LiveRevocationHandle | undefined> {
  const rc = cfg.revocation;
  if (!rc) return undefined;
  const log = (o.logger ?? silentLogger).child({ component: "revocation" });
  const registry = new LiveGrantRegistry({
    maxEntries: rc.maxLiveGrants,
    onEvict: () => metrics?.evicted.inc(),
  });
  const metrics = o.registry ? new LiveMetrics(o.registry, () => registry.size) : undefined;
  let kicker: Kicker;
  try {
    kicker = await Kicker.start({
      connection: {
        ...connectionOptions({ ...cfg, nats: { ...cfg.nats, servers: rc.servers, auth: rc.auth } }),
        name: `${cfg.nats.name}-revocation`,
      },
      ratePerSecond: rc.ratePerSecond,
      logger: o.logger ?? silentLogger,
      ...(metrics ? { onKick: (out, f) => metrics.observeKick(out, f) } : {}),
    });
  } catch (e) {
    const message = e instanceof RevocationError ? e.message : String((e as Error)?.message ?? e);
    log.error(
      { code: e instanceof RevocationError ? `revocation_${e.reason}` : "revocation_error", error: message },
      "live revocation is OFF: the revocation.nats credential cannot kick; logins are still served",
    );
    metrics?.ready.set(0);
    return {
      onResult: () => {},
      onReload: () => {},
      revocation: undefined,
      status: () => ({ ready: false, liveGrants: 0, evicted: 0, error: message }),
      close: async () => {},
    };
  }
  metrics?.ready.set(1);
  const accounts =
    cfg.mode === "operator"
      ? Object.fromEntries(cfg.accounts.map((a) => [a.name, a.publicKey ?? ""]))
      : cfg.accounts.map((a) => a.name);
  const revocation = new LiveRevocation({
    registry,
    reevaluate: reevaluatorFromHandler(o.handler, {
      accounts,
      defaultExpirySeconds: cfg.expiry.defaultSeconds,
      maxExpirySeconds: cfg.expiry.maxSeconds,
    }),
    kick: (k) => kicker.kick(k),
    concurrency: rc.concurrency,
    logger: o.logger ?? silentLogger,
    ...(metrics
      ? {
          onRun: (r) => metrics.runs.inc({ trigger: r.trigger }),
          onVerdict: (v, reason) => metrics.verdicts.inc({ verdict: v, reason: reason ?? "" }),
        }
      : {}),
  });
  revocation.startPeriodic(rc.periodicSeconds);
  const sweeper = setInterval(() => registry.sweep(), 30_000);
  sweeper.unref();
  log.info(
    {
      rate_per_second: rc.ratePerSecond,
      periodic_seconds: rc.periodicSeconds,
      max_live_grants: rc.maxLiveGrants,
    },
    "live revocation on: the KICK right is proven",
  );
  return {
    onResult(ev) {
      const r = ev.result;
      // An allow whose reply reached the server, or may have (a late reply can still have been admitted after a
      // local stall): recording a connection that never opened costs one KICK answered "no such client".
      const mayHaveReached = ev.reply === "sent" || ev.reply === "late";
      if (mayHaveReached && r.outcome.kind === "allow" && r.request && r.issued) {
        const revision = r.facts.revision;
        revocation.record({ decisionId: ev.decisionId, request: r.request, issued: r.issued, revision });
      }
    },
    onReload(ok, revision) {
      if (ok) void revocation.onRevision(revision);
    },
    revocation,
    status: () => ({ ready: true, liveGrants: registry.size, evicted: registry.evicted }),
    async close() {
      clearInterval(sweeper);
      // Stop the kicker first: kicks still waiting for the rate limit return at once, so a SIGTERM during a
      // large revocation does not wait for the whole paced run.
      const stopped = revocation.close();
      await kicker.close();
      await stopped;
    },
  };
}
