/** Protocol core of the auth callout: keys, JWTs, request decoding, user claims, responses, pipeline. */
export {
  signerFromSeed,
  xkeyFromSeed,
  decodePublicKey,
  isPublicKey,
  Verifier,
  type KeyKind,
  type Signer,
  type XKey,
} from "./keys.js";
export {
  encodeJwt,
  parseJwt,
  verifyJwt,
  decodeJwt,
  base32NoPad,
  JWT_ALGORITHM,
  DEFAULT_MAX_JWT_BYTES,
  type JwtClaims,
  type ParsedJwt,
  type UnsignedClaims,
} from "./jwt.js";
export {
  decodeRequest,
  AnswerableDecodeError,
  AUTH_REQUEST_AUDIENCE,
  XKEY_HEADER,
  DEFAULT_CLOCK_SKEW_SECONDS,
  type DecodeOptions,
  type ReplyTarget,
} from "./decode.js";
export {
  buildUserClaims,
  encodeUserJwt,
  permissionClaim,
  userName,
  lifetimeSeconds,
  type UserClaimsOptions,
} from "./claims.js";
export {
  encodeResponse,
  sanitizeErrorText,
  DEFAULT_RESPONSE_EXPIRY_SECONDS,
  MAX_ERROR_LENGTH,
  type ResponseBody,
  type ResponseOptions,
} from "./respond.js";
export {
  createAuthorizer,
  replyDeadline,
  CORE_DEFAULTS,
  type AccountKeys,
  type AuthResult,
  type Authorize,
  type AuthorizeOptions,
  type ConfigModeOptions,
  type CoreOptions,
  type Handler,
  type HandlerContext,
  type IssuedSummary,
  type OperatorModeOptions,
} from "./pipeline.js";
