/**
 * Connect storms. Two drivers with the same contract — N connections at concurrency C, each
 * connect (user/password, no reconnect) → authorized → close — and the same result shape:
 *
 * - `stormTs`: in this process, with @nats-io/transport-node. The reliability tests use it because
 *   they need per-connection outcomes and a sustained storm they can stop.
 * - `stormGo`: bench/storm-go (nats.go) as a child process. The benchmark runner uses the driver
 *   whose client-side CPU per connection is lower (measured and reported in docs/benchmarks.md).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";

const execFileP = promisify(execFile);

export interface StormResult {
  n: number;
  ok: number;
  failed: number;
  /** Failure messages → count. */
  errors: Record<string, number>;
  elapsed_s: number;
  /** Successful connections per second. */
  rate: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  /** CPU seconds the driver itself used (Go driver: whole process; TS driver: not measured, -1). */
  driver_cpu_s: number;
}

export interface Creds {
  user: string;
  pass: string;
}

export interface StormOptions {
  url: string;
  n: number;
  concurrency: number;
  creds: (i: number) => Creds;
  /** Per-connect timeout (ms); default 10 s (longer than the server's auth timeout). */
  timeoutMs?: number;
  /** Called after each attempt (for tests that track outcomes over time). */
  onResult?: (i: number, ok: boolean, error: string | undefined, latencyMs: number) => void;
  /** Stop issuing new connections once aborted (in-flight ones finish). */
  signal?: AbortSignal;
}

export function quantile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.floor(p * (sorted.length - 1))] ?? 0;
}

/** Error text without anything that could be a secret (nats.js messages carry none, but be safe). */
function errorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.slice(0, 120);
}

/** One attempt: connect, then close. Returns undefined on success or the error text. */
export async function connectOnce(
  url: string,
  creds: Creds,
  timeoutMs = 10_000,
): Promise<string | undefined> {
  try {
    const nc = await connect({
      servers: url,
      user: creds.user,
      pass: creds.pass,
      maxReconnectAttempts: 0,
      reconnect: false,
      timeout: timeoutMs,
      name: "storm",
    });
    await nc.close();
    return undefined;
  } catch (err) {
    return errorText(err);
  }
}

/** The storm in this process (transport-node). Stops early if `signal` aborts. */
export async function stormTs(o: StormOptions): Promise<StormResult> {
  const lat: number[] = [];
  const errors: Record<string, number> = {};
  let next = 0;
  let ok = 0;
  let failed = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      if (o.signal?.aborted) return;
      const i = next++;
      if (i >= o.n) return;
      const s = performance.now();
      const err = await connectOnce(o.url, o.creds(i), o.timeoutMs);
      const ms = performance.now() - s;
      if (err === undefined) {
        ok++;
        lat.push(ms);
      } else {
        failed++;
        errors[err] = (errors[err] ?? 0) + 1;
      }
      o.onResult?.(i, err === undefined, err, ms);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return {
    n: ok + failed,
    ok,
    failed,
    errors,
    elapsed_s: elapsed,
    rate: ok / elapsed,
    p50_ms: quantile(lat, 0.5),
    p90_ms: quantile(lat, 0.9),
    p99_ms: quantile(lat, 0.99),
    max_ms: quantile(lat, 1),
    driver_cpu_s: -1,
  };
}

/**
 * The Go driver as a child process. One user/password for all connections (`user`, `pass`), or
 * with `users` > 0, user `${user}${i % users}` and `{i}` in `pass` replaced by the same number.
 */
export async function stormGo(
  bin: string,
  o: {
    url: string;
    n: number;
    concurrency: number;
    user: string;
    pass: string;
    users?: number;
    timeoutMs?: number;
  },
): Promise<StormResult> {
  const args = [
    "--url",
    o.url,
    "--n",
    String(o.n),
    "--c",
    String(o.concurrency),
    "--user",
    o.user,
    "--users",
    String(o.users ?? 0),
    "--timeout",
    `${o.timeoutMs ?? 10_000}ms`,
  ];
  const { stdout } = await execFileP(bin, args, {
    env: { ...process.env, STORM_PASS: o.pass },
    maxBuffer: 16 * 2 ** 20,
  });
  const line = stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(line) as StormResult;
}
