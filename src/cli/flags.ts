/**
 * `serve` flags and environment variables that override config fields. The tables live with the config
 * (src/config/flags.ts, src/config/env.ts), which loads them; re-exported here for the CLI's help text.
 */
export { FLAG_OVERRIDES, type FlagOverride } from "../config/flags.js";
export { ENV_OVERRIDES } from "../config/env.js";
