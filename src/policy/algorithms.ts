/**
 * The JWS signature algorithms (RFC 7518) that OPA's bundle signing and `io.jwt.verify_*` both accept: one list for
 * the config schema (policy.signing.algorithm), the bundle signature check and the JWT builtins. No imports.
 */
export const JWS_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "HS256",
  "HS384",
  "HS512",
] as const;
