/**
 * Live-revocation metrics, registered in the service's prom-client registry (names under nats_opa_callout_).
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { KickFailure, KickOutcome } from "./kicker.js";

const P = "nats_opa_callout";

export class LiveMetrics {
  readonly liveGrants: Gauge;
  readonly evicted: Counter;
  readonly verdicts: Counter<"verdict" | "reason">;
  readonly kicks: Counter<"outcome">;
  readonly kickFailures: Counter<"reason">;
  readonly runs: Counter<"trigger">;
  readonly ready: Gauge;

  constructor(registry: Registry, size: () => number) {
    const registers = [registry];
    this.liveGrants = new Gauge({
      name: `${P}_live_grants`,
      help: "Live grants this replica remembers for re-evaluation (allowed logins whose JWT has not expired).",
      registers,
      collect() {
        this.set(size());
      },
    });
    this.evicted = new Counter({
      name: `${P}_live_grants_evicted_total`,
      help: "Live grants forgotten because revocation.max_live_grants was reached (oldest first); they keep their grant until their JWT expires.",
      registers,
    });
    this.verdicts = new Counter({
      name: `${P}_live_reevaluations_total`,
      help: "Live connections re-decided on a new revision: verdict keep, or kick with the reason (deny, pub, sub, account, expiry, limits, …).",
      labelNames: ["verdict", "reason"],
      registers,
    });
    this.kicks = new Counter({
      name: `${P}_revocation_kicks_total`,
      help: "KICK requests by outcome: kicked, gone (the client had already left), failed.",
      labelNames: ["outcome"],
      registers,
    });
    this.kickFailures = new Counter({
      name: `${P}_revocation_kick_failures_total`,
      help: "Failed KICKs by reason: permission_denied, timeout, bad_reply, closed.",
      labelNames: ["reason"],
      registers,
    });
    this.runs = new Counter({
      name: `${P}_revocation_runs_total`,
      help: "Re-evaluation runs by trigger: revision, periodic, late_login.",
      labelNames: ["trigger"],
      registers,
    });
    this.ready = new Gauge({
      name: `${P}_revocation_ready`,
      help: "1 when live revocation is enabled and its system-account credential proved the KICK right at start, else 0.",
      registers,
    });
  }

  observeKick(outcome: KickOutcome, failure?: KickFailure): void {
    this.kicks.inc({ outcome });
    if (failure !== undefined) this.kickFailures.inc({ reason: failure });
  }
}
