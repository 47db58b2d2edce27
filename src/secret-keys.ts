/**
 * Field names whose values are secrets wherever they appear: the one list both the logger's redaction
 * (src/log.ts) and the decision log's input masking (src/audit.ts) start from. No imports.
 */
export const SECRET_KEYS = [
  "pass",
  "password",
  "auth_token",
  "token",
  "jwt",
  "sig",
  "seed",
  "nkey_seed",
  "creds",
  "secret",
  "signature",
  "authorization",
] as const;
