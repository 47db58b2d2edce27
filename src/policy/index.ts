/** Public surface of the policy engine. */
export {
  policyHandler,
  createPolicyEngine,
  bindEvaluate,
  answerDeadline,
  DEFAULT_ENTRYPOINT,
} from "./handler.js";
export type {
  PolicyHandlerOptions,
  CreatePolicyEngineOptions,
  PolicyEngineHandle,
  SnapshotEvaluate,
} from "./handler.js";
export { EvaluatorPool, POOL_DEFAULTS } from "./pool.js";
export type { PoolOptions, PoolEvaluateOptions, EntrypointOutcome } from "./pool.js";
export { PolicyStore, errorInfo } from "./store.js";
export type { ActivePolicy, PolicyStatus, ReloadEvent, PolicyErrorInfo } from "./store.js";
export { PolicyWatcher, verifyPolicy } from "./watcher.js";
export type { PolicyWatcherOptions, ReloadOutcome } from "./watcher.js";
export { PolicyEngine, DEFAULT_MEMORY, SUPPORTED_HOST_BUILTINS } from "./engine.js";
export type { EngineOptions, EvaluateOptions, EvalResult, MemoryLimits } from "./engine.js";
export {
  PolicyLoader,
  buildBundle,
  readBundle,
  defaultCapabilitiesPath,
  parseOpaErrorLocation,
} from "./bundle.js";
export type { BundleManifest, PolicyBundle, PolicySource, BuildOptions, LoaderOptions } from "./bundle.js";
export { takeSnapshot, mergeData } from "./snapshot.js";
export type { PolicySnapshot, SnapshotFile, SnapshotOptions } from "./snapshot.js";
export { buildInput, INPUT_VERSION, SMOKE_INPUT, SMOKE_REQUEST } from "./input.js";
export type { PolicyInput } from "./input.js";
export { toDecision, redactReason, GRANT_FIELDS } from "./decision.js";
export { policyMask, toMaskOps } from "./mask.js";
export type { Decision } from "./decision.js";
export { HOST_BUILTINS, JS_BUILTINS, createHostBuiltins } from "./builtins.js";
export type { BuiltinFailure, HostBuiltinOptions } from "./builtins.js";
