/**
 * Error classes with stable codes. The code is the log field and the metric label;
 * the original error rides in `cause`. Lower layers throw these and never log.
 */

export type ErrorCode =
  | "config_error"
  | "key_error"
  | "request_decode_error"
  | "request_expired"
  | "encryption_mismatch"
  | "policy_load_error"
  | "policy_eval_error"
  | "decision_shape_error"
  | "account_not_allowed"
  | "subject_injection"
  | "secret_in_grant"
  | "source_not_allowed"
  | "connection_type_not_allowed"
  | "nkey_proof_failed"
  | "response_encode_error"
  | "handler_error"
  | "auth_denied"
  | "auth_aborted"
  | "overloaded"
  | "grant_too_large"
  | "reply_failed"
  | "reply_late"
  | "service_stopping";

export class CalloutError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One or more configuration problems; each names its field. */
export class ConfigError extends CalloutError {
  readonly problems: { field: string; message: string }[];
  constructor(problems: { field: string; message: string }[]) {
    super("config_error", problems.map((p) => `${p.field}: ${p.message}`).join("; "));
    this.problems = problems;
  }
}

export class KeyError extends CalloutError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("key_error", message, options);
  }
}

/** The request could not be decoded or failed verification. */
export class RequestDecodeError extends CalloutError {
  constructor(
    message: string,
    code: "request_decode_error" | "request_expired" | "encryption_mismatch" = "request_decode_error",
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

export class PolicyLoadError extends CalloutError {
  /** Source file and line when the compiler named them. */
  readonly file?: string;
  readonly line?: number;
  constructor(message: string, options?: { cause?: unknown; file?: string; line?: number }) {
    super("policy_load_error", message, options);
    if (options?.file !== undefined) this.file = options.file;
    if (options?.line !== undefined) this.line = options.line;
  }
}

export class PolicyEvalError extends CalloutError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("policy_eval_error", message, options);
  }
}

/** A decision or grant that does not have the documented shape. `field` is a dotted path. */
export class DecisionShapeError extends CalloutError {
  readonly field: string;
  constructor(
    field: string,
    message: string,
    code:
      | "decision_shape_error"
      | "account_not_allowed"
      | "subject_injection"
      | "secret_in_grant"
      | "source_not_allowed"
      | "connection_type_not_allowed" = "decision_shape_error",
  ) {
    super(code, `${field}: ${message}`);
    this.field = field;
  }
}

/**
 * The client presented an nkey and the server a nonce, but the signature is missing, malformed or wrong, or the
 * nkey is not a valid user key (src/callout/nkey-proof.ts). `field` is `connect_opts.nkey` or `connect_opts.sig`.
 */
export class NkeyProofError extends CalloutError {
  readonly field: string;
  constructor(field: string, message: string) {
    super("nkey_proof_failed", `${field}: ${message}`);
    this.field = field;
  }
}

export class ResponseEncodeError extends CalloutError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("response_encode_error", message, options);
  }
}

/**
 * Thrown by a handler to deny a login. `reason` is sent to the server (which logs it) and written
 * to the decision log: it must not contain secrets.
 */
export class AuthError extends CalloutError {
  constructor(reason: string) {
    super("auth_denied", reason);
  }
}

/** Thrown by a handler to send no reply at all: the client waits out the server's auth timeout. */
export class AbortAuth extends CalloutError {
  constructor(reason = "aborted") {
    super("auth_aborted", reason);
  }
}
