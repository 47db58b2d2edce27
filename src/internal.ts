/**
 * nats-opa-callout/internal — everything the public entry (src/index.ts) does not promise: the protocol core, the
 * decide stage, keys, grant validation, config plumbing, the policy engine's parts, metrics, HTTP, the decision log
 * and its record mapping. For tools and tests built on the service's own parts; these names may change between
 * minor versions. It re-exports the public entry too, so one import serves both.
 */
export * from "./index.js";

// Errors raised inside the pipeline (seen by users only as ResultEvent codes)
export { RequestDecodeError, ResponseEncodeError } from "./errors.js";

// Service helpers
export { coreOptionsFromConfig, connectionOptions, decisionIdGenerator } from "./service.js";

// Configuration plumbing
export {
  CONFIG_FIELDS,
  DEFAULT_QUEUE_GROUP,
  DEFAULT_SUBJECT,
  Secret,
  applyEnvOverrides,
  configDefault,
  type ConfigField,
  type DecisionLogDestination,
  type LogFormat,
  type LogLevel,
  type Mode,
  type NatsAuth,
  type ResolvedAccount,
  type ResolvedKey,
  type ResolvedNats,
} from "./config.js";
export { loadServeConfig, readConfigFile } from "./config/load.js";

// Protocol core (transport-agnostic authorizer) and the decide stage
export {
  createAuthorizer,
  CORE_DEFAULTS,
  denyReason,
  replyDeadline,
  type AccountKeys,
  type Authorize,
  type AuthorizeOptions,
  type CoreOptions,
} from "./callout/pipeline.js";
export {
  decide,
  replyBytesLowerBound,
  type Decided,
  type DecideDeps,
  type Verdict,
} from "./callout/decide.js";
export { signerFromSeed, xkeyFromSeed, type Signer, type XKey } from "./callout/keys.js";
export { validateGrant, CONNECTION_TYPES } from "./grant.js";

// Policy engine parts
export { buildInput, INPUT_VERSION, policyMask, toDecision, type Decision } from "./policy/index.js";
export { openPolicy, policySettings, type PolicyHandle, type PolicyReload } from "./policy/open.js";

// Logging, decision log, metrics, HTTP
export { silentLogger } from "./log.js";
export {
  createDecisionLog,
  type DecisionEvent,
  type DecisionLog,
  type DecisionLogOptions,
  type DecisionRecord,
  type MaskFunction,
  type MaskOp,
} from "./audit.js";
export { decisionRecordFromResult, decisionSampleFromResult } from "./decision-record.js";
export { CalloutMetrics } from "./metrics.js";
export { startHttpServer, type HttpServer, type Readiness } from "./http.js";
export { packageVersion } from "./version.js";
