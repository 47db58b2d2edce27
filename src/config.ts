/**
 * Service configuration, the facade: every config name the rest of the code (and library users) import,
 * re-exported from the modules under src/config/, one concern each, none importing another back:
 *
 *   types.ts            input shape, resolved shape, Secret, Problems (the leaf everything else imports)
 *   schema.ts           CONFIG_FIELDS (names, types, defaults, docs) and the input walk against it
 *   paths.ts, keys.ts   files relative to the config, nkey seeds and public keys
 *   listen.ts           listen addresses (metrics.listen, --metrics-listen, startHttpServer)
 *   url.ts              server URLs with their user info masked, for messages
 *   resolve-*.ts        one resolver per section; resolve.ts runs them and throws ONE ConfigError
 *   env.ts, flags.ts    environment and flag overrides (the CLI applies them; the library never reads env)
 *   load.ts             the YAML config file → env → flags → resolveConfig (the CLI's loading)
 *
 * Seeds, passwords, tokens and creds are wrapped in `Secret` so that they cannot reach a log line by
 * accident (JSON and util.inspect print `[REDACTED]`).
 */
export {
  Secret,
  type CalloutAccountInput,
  type ConfigField,
  type DecisionLogDestination,
  type LogFormat,
  type LogLevel,
  type Mode,
  type NatsAuth,
  type OperatorAccountInput,
  type ResolveOptions,
  type ResolvedAccount,
  type ResolvedConfig,
  type ResolvedKey,
  type ResolvedNats,
  type ResolvedPolicy,
  type ResolvedEvaluation,
  type ResolvedRevocation,
  type SeedInput,
  type ServiceConfig,
} from "./config/types.js";
export {
  CONFIG_FIELDS,
  DEFAULT_ENTRYPOINT,
  DEFAULT_QUEUE_GROUP,
  DEFAULT_SUBJECT,
  configDefault,
} from "./config/schema.js";
export { resolveConfig } from "./config/resolve.js";
export { applyEnvOverrides } from "./config/env.js";
export { formatListenAddress, parseListenAddress, type ListenAddress } from "./config/listen.js";
export { maskUrlCredentials } from "./config/url.js";
