/**
 * Defaults of the evaluation limits, in one leaf module (no imports) so the config schema, the engine
 * and the pool share them. Config: policy.eval_workers, policy.eval_timeout_ms, policy.max_data_bytes,
 * policy.max_memory_mb (docs/configuration.md, docs/operations.md "Evaluation limits").
 */
export const POOL_DEFAULTS = {
  /**
   * Two worker threads, whatever the core count: a slow evaluation then holds one while the other keeps
   * serving (on one core the two share it). More help only with more cores and heavy policies.
   */
  workers: 2,
  /** Longest evaluation, ms: well under nats-server's default 2 s auth timeout. */
  timeoutMs: 500,
  /** Largest data document a revision may load, JSON bytes. */
  maxDataBytes: 8 * 1024 * 1024,
  /** Wasm memory ceiling per instance (one instance per worker), MiB. */
  maxMemoryMb: 256,
  /** How long a replaced revision keeps answering requests that took it before the swap, ms. */
  retireGraceMs: 2_000,
} as const;
