/**
 * nats-opa-callout — public API (re-exports only).
 *
 *   import { callout, AuthError } from "nats-opa-callout";
 *   const svc = await callout((req) => ({ account: "APP", pub: { allow: ["orders.>"] } }), config);
 */

// Shared types (snake_case, as NATS names them)
export type {
  AuthorizationRequest,
  ClientInfo,
  ClientTls,
  ConnectOpts,
  ConnectionType,
  Grant,
  Outcome,
  ResponsePermission,
  ServerId,
  SubjectPermission,
  TimeRange,
} from "./types.js";

// Errors
export {
  AbortAuth,
  AuthError,
  CalloutError,
  ConfigError,
  DecisionShapeError,
  KeyError,
  PolicyEvalError,
  PolicyLoadError,
  RequestDecodeError,
  ResponseEncodeError,
  type ErrorCode,
} from "./errors.js";

// Service runtime
export {
  callout,
  startCallout,
  coreOptionsFromConfig,
  connectionOptions,
  decisionIdGenerator,
  type CalloutService,
  type CalloutStatus,
  type ConnectionState,
  type DropReason,
  type ReplyStatus,
  type ResultEvent,
  type StartCalloutOptions,
  type StatusChange,
} from "./service.js";

// Configuration
export {
  CONFIG_FIELDS,
  DEFAULT_QUEUE_GROUP,
  DEFAULT_SUBJECT,
  Secret,
  applyEnvOverrides,
  configDefault,
  resolveConfig,
  type ConfigField,
  type DecisionLogDestination,
  type LogFormat,
  type LogLevel,
  type Mode,
  type NatsAuth,
  type ResolveOptions,
  type ResolvedAccount,
  type ResolvedConfig,
  type ResolvedKey,
  type ResolvedNats,
  type ResolvedPolicy,
  type ServiceConfig,
} from "./config.js";

// Protocol core (transport-agnostic authorizer)
export {
  createAuthorizer,
  CORE_DEFAULTS,
  type AccountKeys,
  type AuthResult,
  type Authorize,
  type AuthorizeOptions,
  type CoreOptions,
  type Handler,
  type HandlerContext,
  type IssuedSummary,
} from "./callout/pipeline.js";
export { signerFromSeed, xkeyFromSeed, type Signer, type XKey } from "./callout/keys.js";
export { validateGrant, CONNECTION_TYPES } from "./grant.js";

// Policy engine
export {
  createPolicyEngine,
  policyHandler,
  DEFAULT_ENTRYPOINT,
  buildInput,
  INPUT_VERSION,
  policyMask,
  type CreatePolicyEngineOptions,
  type PolicyEngineHandle,
  type PolicyHandlerOptions,
  type PolicyInput,
  type PolicyStatus,
  type ReloadEvent,
} from "./policy/index.js";

// Logging and decision log
export { createLogger, silentLogger, type CreateLoggerOptions, type Logger } from "./log.js";
export {
  createDecisionLog,
  type DecisionEvent,
  type DecisionLog,
  type DecisionLogOptions,
  type MaskFunction,
  type MaskOp,
} from "./audit.js";
