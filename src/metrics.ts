/**
 * Prometheus metrics on prom-client: the service's metric set (`CalloutMetrics`) in a registry of its own
 * (never prom-client's global one, so two services in one process keep apart), plus prom-client's default
 * process metrics (CPU, memory, heap, event-loop lag, GC).
 *
 * Label values the outside world could choose stay bounded: `code` takes well-formed codes up to a cap
 * (then `other`), `account` only names from the service's allow-list (anything else is ""). Metric and
 * label names are fixed in code.
 */
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
  type GaugeConfiguration,
} from "prom-client";

export { Counter, Gauge, Histogram, Registry };

export type Labels = Record<string, string>;

/** Prometheus text exposition format 0.0.4 (what `render()` produces). */
export const CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** Latency buckets in seconds: 100 µs … 2 s (the default NATS auth timeout). */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2,
] as const;

/** Policy evaluation buckets in seconds: 5 µs … 100 ms (wasm evaluation is typically 5–50 µs). */
export const EVAL_BUCKETS = [
  0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
] as const;

const P = "nats_opa_callout";

/** What the metrics need from one finished authorization (mapped from the service's result hook). */
export interface DecisionSample {
  outcome: "allow" | "deny" | "abort";
  /** Error or reason code (e.g. `bad_credentials`, `policy_eval_error`); `ok` for allows. */
  code: string;
  /** The target account the decision placed the user in (allows); labelled only if allow-listed. */
  account?: string;
  /** Total handling time in microseconds. */
  total_us?: number;
  /** Policy evaluation time in microseconds, when a policy ran. */
  eval_us?: number;
  entrypoint?: string;
}

/** Live state pulled at scrape time. */
export interface MetricsState {
  connected?: () => boolean;
  inFlight?: () => number;
  queueDepth?: () => number;
  wasmMemoryBytes?: () => number | undefined;
  /** The remote bundle source (policy.source), when one is configured. */
  policySource?: () => { kind: string; consecutive_failures: number; last_success?: string } | undefined;
}

export interface CalloutMetricsOptions {
  version?: string;
  /**
   * The allow-list of target account names: the only values the `account` label takes (others, and
   * decisions without an account, are ""). Omitted: the label is always "".
   */
  accounts?: readonly string[];
  /** Register prom-client's default process metrics (default true). */
  defaultMetrics?: boolean;
}

/** Creates metrics registered in one registry (the shape the metric set below is declared with). */
function metricFactory(registry: Registry) {
  const registers = [registry];
  return {
    counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
      return new Counter<L>({ name, help, labelNames, registers } as CounterConfiguration<L>);
    },
    gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
      return new Gauge<L>({ name, help, labelNames, registers } as GaugeConfiguration<L>);
    },
    histogram<L extends string>(
      name: string,
      help: string,
      buckets: readonly number[],
      labelNames: readonly L[] = [],
    ): Histogram<L> {
      return new Histogram<L>({ name, help, labelNames, buckets: [...buckets], registers });
    },
  };
}

/** The service's metric set, in its own registry. */
export class CalloutMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"outcome" | "code" | "account">;
  readonly requestDuration: Histogram<"outcome">;
  readonly evalDuration: Histogram<"entrypoint">;
  readonly reloads: Counter<"result">;
  readonly revisionInfo: Gauge<"revision">;
  readonly lastReloadSuccess: Gauge;
  readonly lastReloadFailure: Gauge;
  readonly inFlight: Gauge;
  readonly queueDepth: Gauge;
  readonly dropped: Counter<"reason">;
  readonly natsConnected: Gauge;
  readonly natsEvents: Counter<"type">;
  readonly wasmMemory: Gauge;
  readonly decisionLogDropped: Counter<"reason">;
  readonly buildInfo: Gauge<"version" | "node">;
  readonly sourceFailures: Gauge<"source">;
  readonly sourceLastSuccess: Gauge<"source">;

  private state: MetricsState = {};
  private readonly accounts: ReadonlySet<string>;

  constructor(opts: CalloutMetricsOptions = {}) {
    this.accounts = new Set(opts.accounts ?? []);
    const r = metricFactory(this.registry);
    this.requests = r.counter(
      `${P}_requests_total`,
      "Authorization requests handled, by outcome (allow|deny|abort), code (ok for allows, else the reason or error code) and target account (allow-listed names only; empty when none).",
      ["outcome", "code", "account"],
    );
    this.requestDuration = r.histogram(
      `${P}_request_duration_seconds`,
      "Time from receiving an authorization request to the reply confirmed by the server (or deciding not to reply), in seconds.",
      LATENCY_BUCKETS,
      ["outcome"],
    );
    this.evalDuration = r.histogram(
      `${P}_policy_eval_duration_seconds`,
      "Time spent evaluating the policy entrypoint (wasm), in seconds.",
      EVAL_BUCKETS,
      ["entrypoint"],
    );
    this.reloads = r.counter(
      `${P}_policy_reloads_total`,
      "Policy load attempts by result (success|failure). Failures keep the previous revision active.",
      ["result"],
    );
    this.revisionInfo = r.gauge(
      `${P}_policy_revision_info`,
      "Always 1; the label carries the active policy revision.",
      ["revision"],
    );
    this.lastReloadSuccess = r.gauge(
      `${P}_policy_last_reload_success_timestamp_seconds`,
      "Unix time of the last successful policy load (0 = never).",
    );
    this.lastReloadFailure = r.gauge(
      `${P}_policy_last_reload_failure_timestamp_seconds`,
      "Unix time of the last failed policy load (0 = never).",
    );
    this.inFlight = r.gauge(`${P}_requests_in_flight`, "Authorization requests being handled right now.");
    this.queueDepth = r.gauge(`${P}_queue_depth`, "Authorization requests waiting to be handled.");
    this.dropped = r.counter(
      `${P}_requests_dropped_total`,
      "Requests dropped without a reply, by reason: shed_expired (queued past the server's auth timeout), shed_overflow (oldest shed from a full queue), queue_full, expired (before handling), stopping, no_reply_subject.",
      ["reason"],
    );
    this.natsConnected = r.gauge(`${P}_nats_connected`, "1 when connected to NATS, else 0.");
    this.natsEvents = r.counter(
      `${P}_nats_status_events_total`,
      "NATS connection status events (disconnect, reconnect, error, …), by type.",
      ["type"],
    );
    this.wasmMemory = r.gauge(
      `${P}_wasm_memory_bytes`,
      "Size of the active policy's WebAssembly memory in bytes (wasm memory never shrinks).",
    );
    this.decisionLogDropped = r.counter(
      `${P}_decision_log_dropped_total`,
      "Decision-log events not written (or written without input), by reason.",
      ["reason"],
    );
    this.buildInfo = r.gauge(`${P}_build_info`, "Always 1; labels carry the service and Node.js versions.", [
      "version",
      "node",
    ]);
    this.buildInfo.set({ version: opts.version ?? "unknown", node: process.versions.node }, 1);
    this.sourceFailures = r.gauge(
      `${P}_policy_source_consecutive_failures`,
      "Failed downloads in a row from the remote bundle source (policy.source; 0 = healthy). The last good bundle keeps serving meanwhile.",
      ["source"],
    );
    this.sourceLastSuccess = r.gauge(
      `${P}_policy_source_last_success_timestamp_seconds`,
      "Unix time the remote bundle source last answered successfully (0 = never).",
      ["source"],
    );

    // Unlabelled series exist from the start (0), so a dashboard sees them before the first event.
    for (const g of [this.lastReloadSuccess, this.lastReloadFailure, this.inFlight, this.queueDepth])
      g.set(0);
    this.natsConnected.set(0);
    this.wasmMemory.set(0);
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Pull live values (connection state, queue, wasm memory) at scrape time. */
  bindState(state: MetricsState): void {
    this.state = { ...this.state, ...state };
  }

  /** Refresh the gauges that mirror live state (called before every render). */
  private pullState(): void {
    const s = this.state;
    if (s.connected) this.natsConnected.set(s.connected() ? 1 : 0);
    if (s.inFlight) this.inFlight.set(s.inFlight());
    if (s.queueDepth) this.queueDepth.set(s.queueDepth());
    const mem = s.wasmMemoryBytes?.();
    if (mem !== undefined) this.wasmMemory.set(mem);
    const src = s.policySource?.();
    if (src !== undefined) {
      this.sourceFailures.set({ source: src.kind }, src.consecutive_failures);
      const at = src.last_success !== undefined ? Date.parse(src.last_success) / 1000 : 0;
      this.sourceLastSuccess.set({ source: src.kind }, at);
    }
  }

  /** Distinct `code` label values seen; beyond MAX_CODES new ones are counted as "other". */
  private readonly codes = new Set<string>();
  static readonly MAX_CODES = 200;

  /** A bounded, well-formed label value for a reason/error code (policies choose reasons freely). */
  codeLabel(code: string): string {
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(code)) return "other";
    if (this.codes.has(code)) return code;
    if (this.codes.size >= CalloutMetrics.MAX_CODES) return "other";
    this.codes.add(code);
    return code;
  }

  /** The `account` label: an allow-listed account name, else "" (never a value the client chose). */
  accountLabel(account: string | undefined): string {
    return account !== undefined && this.accounts.has(account) ? account : "";
  }

  observeDecision(s: DecisionSample): void {
    this.requests.inc({
      outcome: s.outcome,
      code: this.codeLabel(s.code),
      account: this.accountLabel(s.account),
    });
    if (s.total_us !== undefined && Number.isFinite(s.total_us)) {
      this.requestDuration.observe({ outcome: s.outcome }, s.total_us / 1e6);
    }
    if (s.eval_us !== undefined && Number.isFinite(s.eval_us)) {
      this.evalDuration.observe({ entrypoint: s.entrypoint ?? "" }, s.eval_us / 1e6);
    }
  }

  observeReload(ok: boolean, revision?: string, at: Date = new Date()): void {
    this.reloads.inc({ result: ok ? "success" : "failure" });
    if (ok) {
      this.lastReloadSuccess.set(at.getTime() / 1000);
      if (revision !== undefined) this.setRevision(revision);
    } else {
      this.lastReloadFailure.set(at.getTime() / 1000);
    }
  }

  setRevision(revision: string): void {
    this.revisionInfo.reset();
    this.revisionInfo.set({ revision }, 1);
  }

  observeDropped(reason: string): void {
    this.dropped.inc({ reason });
  }

  observeNatsEvent(type: string): void {
    this.natsEvents.inc({ type });
  }

  /** Prometheus text exposition format 0.0.4 (CONTENT_TYPE), live gauges pulled first. */
  async render(): Promise<string> {
    this.pullState();
    return await this.registry.metrics();
  }
}
