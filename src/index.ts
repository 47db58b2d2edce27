/**
 * nats-opa-callout — the public API (re-exports only). What belongs here: what a library user needs to run the
 * service in-process and to write or embed a decision — the callout with a plain handler, the whole runtime from a
 * config, the policy engine for embedding, config resolution, the errors a caller catches, the request/grant types
 * and the logger. Everything else (protocol core, keys, metrics, HTTP, decision-log plumbing, …) is in
 * `nats-opa-callout/internal` (src/internal.ts), which may change between minor versions.
 *
 *   import { callout, AuthError } from "nats-opa-callout";
 *   const svc = await callout((req) => ({ account: "APP", pub: { allow: ["orders.>"] } }), config);
 *
 *   import { resolveConfig, startRuntime } from "nats-opa-callout";
 *   const rt = await startRuntime(resolveConfig(config)); // policy, decision log, metrics, HTTP, NATS
 */

// Request, grant and outcome types (snake_case, as NATS names them)
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

// Errors a handler throws (AuthError, AbortAuth) or a caller catches
export {
  AbortAuth,
  AuthError,
  CalloutError,
  ConfigError,
  DecisionShapeError,
  KeyError,
  PolicyEvalError,
  PolicyLoadError,
  PolicyTimeoutError,
  type ErrorCode,
} from "./errors.js";

// The callout with a plain handler
export {
  callout,
  startCallout,
  type CalloutService,
  type CalloutStatus,
  type ConnectionState,
  type DropReason,
  type ReplyStatus,
  type ResultEvent,
  type StartCalloutOptions,
  type StatusChange,
} from "./service.js";
export type { Handler, HandlerContext, DecisionFacts } from "./callout/facts.js";
export type { AuthResult, IssuedSummary } from "./callout/pipeline.js";
export { guardHandler } from "./injection.js";

// The whole service in-process (what `serve` runs)
export {
  startRuntime,
  RuntimeStartError,
  DEFAULT_DRAIN_TIMEOUT_MS,
  type LogDestination,
  type Runtime,
  type RuntimeOptions,
  type RuntimeStatus,
} from "./runtime.js";

// Configuration
export {
  resolveConfig,
  type ResolveOptions,
  type ResolvedConfig,
  type ResolvedPolicy,
  type ServiceConfig,
} from "./config.js";
export { loadConfigFile } from "./config/load.js";

// The policy engine, embedded
export {
  createPolicyEngine,
  policyHandler,
  DEFAULT_ENTRYPOINT,
  type CreatePolicyEngineOptions,
  type PolicyEngineHandle,
  type PolicyHandlerOptions,
  type PolicyInput,
  type PolicyStatus,
  type ReloadEvent,
} from "./policy/index.js";

// Logging
export { createLogger, type CreateLoggerOptions, type Logger } from "./log.js";
