/** Small timing helpers: per-op cost over batches (median batch), and latency quantiles. */

/** Median of per-op microseconds over `batches` batches of `iterations` calls (after a warm-up). */
export function perOpUs(
  fn: (i: number) => unknown,
  iterations: number,
  batches = 5,
  warmup = iterations,
): number {
  for (let i = 0; i < warmup; i++) fn(i);
  const results: number[] = [];
  let k = 0;
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn(k++);
    const dt = Number(process.hrtime.bigint() - t0) / 1000;
    results.push(dt / iterations);
  }
  results.sort((a, b) => a - b);
  return results[Math.floor(results.length / 2)] ?? NaN;
}

/** Async variant (awaits each call). */
export async function perOpUsAsync(
  fn: (i: number) => Promise<unknown>,
  iterations: number,
  batches = 5,
  warmup = iterations,
): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const results: number[] = [];
  let k = 0;
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) await fn(k++);
    const dt = Number(process.hrtime.bigint() - t0) / 1000;
    results.push(dt / iterations);
  }
  results.sort((a, b) => a - b);
  return results[Math.floor(results.length / 2)] ?? NaN;
}

/** Per-call latencies (µs) of `n` calls, sorted, after `warmup` calls. */
export function latenciesUs(fn: (i: number) => unknown, n: number, warmup = Math.min(n, 1000)): number[] {
  for (let i = 0; i < warmup; i++) fn(i);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    fn(i);
    out[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return out.sort((a, b) => a - b);
}

export function q(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

/** latenciesUs for an async operation, awaited one at a time (sorted µs). */
export async function latenciesUsAsync(
  fn: (i: number) => Promise<unknown>,
  n: number,
  warmup = Math.min(n, 1000),
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    out[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return out.sort((a, b) => a - b);
}
