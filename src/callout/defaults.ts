/**
 * The protocol core's default limits, in one place: the core (pipeline, decode, respond) falls back to
 * them, and the service config (src/config.ts CONFIG_FIELDS) takes its defaults from them. No imports, so
 * anything may depend on it without pulling in the core.
 */

/** Defaults for CoreOptions (also the service's defaults). */
export const CORE_DEFAULTS = Object.freeze({
  /** User JWT lifetime when the grant has no `expires_in`. */
  defaultExpirySeconds: 3600,
  /** Cap on any user JWT lifetime. */
  maxExpirySeconds: 86_400,
  /** Authorization response `exp` offset. */
  responseExpirySeconds: 10,
  /** Tolerance for request `exp`/`nbf`. */
  clockSkewSeconds: 5,
  /** Cap on a raw request (sealed or plaintext). */
  maxRequestBytes: 64 * 1024,
});
