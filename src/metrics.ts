/**
 * Prometheus metrics: a small hand-written registry (counters, gauges, histograms with labels) rendered in the
 * text exposition format 0.0.4, and the service's own metric set on top of it.
 *
 * No dependency on prom-client: the service needs a dozen series, sub-millisecond histogram buckets and a
 * render function, nothing more. Label values are escaped; metric and label names are fixed in code.
 */

export type Labels = Record<string, string>;

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  render(): string[];
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function escapeLabelValue(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labelKey(names: readonly string[], labels: Labels | undefined): string {
  if (names.length === 0) return "";
  return names.map((n) => labels?.[n] ?? "").join("\u0000");
}

function fmtLabels(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i] ?? "")}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function fmtNum(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function checkLabels(metric: string, names: readonly string[], labels: Labels | undefined): void {
  const given = labels ? Object.keys(labels) : [];
  for (const k of given) {
    if (!names.includes(k)) throw new TypeError(`metric ${metric}: unknown label ${k}`);
  }
}

export class Counter implements Metric {
  readonly type = "counter" as const;
  private readonly values = new Map<string, { labels: string[]; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {}

  inc(labels?: Labels, by = 1): void {
    if (by < 0) throw new RangeError(`counter ${this.name} cannot decrease`);
    checkLabels(this.name, this.labelNames, labels);
    const key = labelKey(this.labelNames, labels);
    const cur = this.values.get(key);
    if (cur) cur.value += by;
    else this.values.set(key, { labels: this.labelNames.map((n) => labels?.[n] ?? ""), value: by });
  }

  get(labels?: Labels): number {
    return this.values.get(labelKey(this.labelNames, labels))?.value ?? 0;
  }

  render(): string[] {
    const out: string[] = [];
    if (this.labelNames.length === 0 && this.values.size === 0) out.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) {
      out.push(`${this.name}${fmtLabels(this.labelNames, labels)} ${fmtNum(value)}`);
    }
    return out;
  }
}

export class Gauge implements Metric {
  readonly type = "gauge" as const;
  private readonly values = new Map<string, { labels: string[]; value: number }>();
  /** Called before rendering; lets a gauge pull its value from live state. */
  collect?: (g: Gauge) => void;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {}

  set(value: number, labels?: Labels): void {
    checkLabels(this.name, this.labelNames, labels);
    const key = labelKey(this.labelNames, labels);
    const cur = this.values.get(key);
    if (cur) cur.value = value;
    else this.values.set(key, { labels: this.labelNames.map((n) => labels?.[n] ?? ""), value });
  }

  inc(labels?: Labels, by = 1): void {
    this.set(this.get(labels) + by, labels);
  }

  dec(labels?: Labels, by = 1): void {
    this.set(this.get(labels) - by, labels);
  }

  get(labels?: Labels): number {
    return this.values.get(labelKey(this.labelNames, labels))?.value ?? 0;
  }

  /** Drop every labelled series (used by info gauges whose label value changes, e.g. the revision). */
  reset(): void {
    this.values.clear();
  }

  render(): string[] {
    this.collect?.(this);
    const out: string[] = [];
    if (this.labelNames.length === 0 && this.values.size === 0) out.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) {
      out.push(`${this.name}${fmtLabels(this.labelNames, labels)} ${fmtNum(value)}`);
    }
    return out;
  }
}

export class Histogram implements Metric {
  readonly type = "histogram" as const;
  private readonly series = new Map<
    string,
    { labels: string[]; counts: number[]; sum: number; count: number }
  >();
  readonly buckets: readonly number[];
  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
    readonly labelNames: readonly string[] = [],
  ) {
    const sorted = [...buckets].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b, i) => i > 0 && b === sorted[i - 1])) {
      throw new RangeError(`histogram ${name}: buckets must be non-empty and distinct`);
    }
    this.buckets = sorted;
  }

  observe(value: number, labels?: Labels): void {
    if (!Number.isFinite(value)) return;
    checkLabels(this.name, this.labelNames, labels);
    const key = labelKey(this.labelNames, labels);
    let s = this.series.get(key);
    if (!s) {
      s = {
        labels: this.labelNames.map((n) => labels?.[n] ?? ""),
        counts: this.buckets.map(() => 0),
        sum: 0,
        count: 0,
      };
      this.series.set(key, s);
    }
    // Non-cumulative counts per bucket; cumulated at render time.
    const idx = this.buckets.findIndex((b) => value <= b);
    if (idx >= 0) s.counts[idx] = (s.counts[idx] ?? 0) + 1;
    s.sum += value;
    s.count += 1;
  }

  /** Total observations for a label set (for tests and status pages). */
  count(labels?: Labels): number {
    return this.series.get(labelKey(this.labelNames, labels))?.count ?? 0;
  }

  render(): string[] {
    const out: string[] = [];
    const all =
      this.series.size === 0 && this.labelNames.length === 0
        ? [{ labels: [] as string[], counts: this.buckets.map(() => 0), sum: 0, count: 0 }]
        : [...this.series.values()];
    for (const s of all) {
      let cum = 0;
      this.buckets.forEach((b, i) => {
        cum += s.counts[i] ?? 0;
        out.push(`${this.name}_bucket${fmtLabels(this.labelNames, s.labels, ["le", fmtNum(b)])} ${cum}`);
      });
      out.push(`${this.name}_bucket${fmtLabels(this.labelNames, s.labels, ["le", "+Inf"])} ${s.count}`);
      out.push(`${this.name}_sum${fmtLabels(this.labelNames, s.labels)} ${fmtNum(s.sum)}`);
      out.push(`${this.name}_count${fmtLabels(this.labelNames, s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class Registry {
  private readonly metrics = new Map<string, Metric>();

  register<M extends Metric>(m: M): M {
    if (this.metrics.has(m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.set(m.name, m);
    return m;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(new Gauge(name, help, labelNames));
  }

  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly string[] = [],
  ): Histogram {
    return this.register(new Histogram(name, help, buckets, labelNames));
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    const lines: string[] = [];
    for (const m of this.metrics.values()) {
      lines.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`, ...m.render());
    }
    return lines.join("\n") + "\n";
  }
}

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

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
}

/** The service's metric set. */
export class CalloutMetrics {
  readonly registry = new Registry();
  readonly requests: Counter;
  readonly requestDuration: Histogram;
  readonly evalDuration: Histogram;
  readonly reloads: Counter;
  readonly revisionInfo: Gauge;
  readonly lastReloadSuccess: Gauge;
  readonly lastReloadFailure: Gauge;
  readonly inFlight: Gauge;
  readonly queueDepth: Gauge;
  readonly dropped: Counter;
  readonly natsConnected: Gauge;
  readonly natsEvents: Counter;
  readonly wasmMemory: Gauge;
  readonly decisionLogDropped: Counter;
  readonly buildInfo: Gauge;
  readonly startTime: Gauge;
  readonly residentMemory: Gauge;
  readonly heapUsed: Gauge;

  constructor(opts: { version?: string } = {}) {
    const r = this.registry;
    this.requests = r.counter(
      `${P}_requests_total`,
      "Authorization requests handled, by outcome (allow|deny|abort) and code (ok for allows, else the reason or error code).",
      ["outcome", "code"],
    );
    this.requestDuration = r.histogram(
      `${P}_request_duration_seconds`,
      "Time from receiving an authorization request to replying (or deciding not to), in seconds.",
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
      "Requests dropped without a reply (expired before handling, queue full, shutting down), by reason.",
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
    this.buildInfo.set(1, { version: opts.version ?? "unknown", node: process.versions.node });
    this.startTime = r.gauge(
      "process_start_time_seconds",
      "Start time of the process since unix epoch in seconds.",
    );
    this.startTime.set(Math.round(Date.now() / 1000 - process.uptime()));
    this.residentMemory = r.gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
    this.residentMemory.collect = (g) => g.set(process.memoryUsage.rss());
    this.heapUsed = r.gauge("nodejs_heap_used_bytes", "V8 heap used in bytes.");
    this.heapUsed.collect = (g) => g.set(process.memoryUsage().heapUsed);
  }

  /** Pull live values (connection state, queue, wasm memory) at scrape time. */
  bindState(state: MetricsState): void {
    if (state.connected) {
      const f = state.connected;
      this.natsConnected.collect = (g) => g.set(f() ? 1 : 0);
    }
    if (state.inFlight) {
      const f = state.inFlight;
      this.inFlight.collect = (g) => g.set(f());
    }
    if (state.queueDepth) {
      const f = state.queueDepth;
      this.queueDepth.collect = (g) => g.set(f());
    }
    if (state.wasmMemoryBytes) {
      const f = state.wasmMemoryBytes;
      this.wasmMemory.collect = (g) => {
        const v = f();
        if (v !== undefined) g.set(v);
      };
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

  observeDecision(s: DecisionSample): void {
    this.requests.inc({ outcome: s.outcome, code: this.codeLabel(s.code) });
    if (s.total_us !== undefined) this.requestDuration.observe(s.total_us / 1e6, { outcome: s.outcome });
    if (s.eval_us !== undefined) {
      this.evalDuration.observe(s.eval_us / 1e6, { entrypoint: s.entrypoint ?? "" });
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
    this.revisionInfo.set(1, { revision });
  }

  observeDropped(reason: string): void {
    this.dropped.inc({ reason });
  }

  observeNatsEvent(type: string): void {
    this.natsEvents.inc({ type });
  }

  render(): string {
    return this.registry.render();
  }
}
