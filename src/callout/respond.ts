/**
 * Authorization response JWT (service → server):
 * `iss` = response signer (an account key), `sub` = the request's `user_nkey`, `aud` = `server_id.id`,
 * `exp` = now + `expirySeconds`, `nats = { jwt | error, issuer_account?, type: "authorization_response",
 * version: 2 }` with exactly one of `jwt`/`error`. Sealed with xkey for the server's xkey when the
 * request arrived sealed (nats-server also accepts a plaintext reply, but we answer in kind).
 *
 * Response lifetime: DEFAULT_RESPONSE_EXPIRY_SECONDS (10 s). A replayed request inside its validity window IS
 * answered again (docs/operations.md, "Trust model"), but the answer is addressed (`aud`, `sub`) and, with xkey,
 * sealed to the original server and that attempt's one-time `user_nkey`: the server accepts it only on its own
 * reply inbox for that pending login, so it is useless to whoever replayed it. `exp` therefore only needs to
 * outlive the auth timeout (2 s default) plus clock skew between this host and the server; 10 s keeps it short
 * while tolerating a few seconds of skew.
 */
import { ResponseEncodeError } from "../errors.js";
import type { ReplyTarget } from "./decode.js";
import { encodeJwtBytes } from "./jwt.js";
import type { Signer, XKey } from "./keys.js";
import { CORE_DEFAULTS } from "./defaults.js";

/** Default `exp` offset of a response, seconds (see module doc). */
export const DEFAULT_RESPONSE_EXPIRY_SECONDS = CORE_DEFAULTS.responseExpirySeconds;

/** Longest error text we put in a response (the server logs it). */
export const MAX_ERROR_LENGTH = 512;

/** How to sign, address and seal a response. */
export interface ResponseOptions {
  /** The response signer: the issuer account (config) or the callout account / its signing key (operator). */
  signer: Signer;
  /** Operator mode: the callout account's public key, written as `issuer_account` when it differs from the signer. */
  issuerAccount?: string;
  /** Needed when the request was sealed. */
  xkey?: XKey;
  /** `exp` offset in seconds (>= 1). */
  expirySeconds?: number;
  /** Current time, ms since the epoch. */
  nowMs?: number;
}

/** Either an issued user JWT or an error text (a reason code; never a secret). */
export type ResponseBody = { jwt: string } | { error: string };

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]+/g;

/** Makes an error text safe to send: printable, bounded, never empty. */
export function sanitizeErrorText(s: string): string {
  const clean = String(s).replace(CONTROL_CHARS, " ").trim();
  const bounded = clean.length > MAX_ERROR_LENGTH ? clean.slice(0, MAX_ERROR_LENGTH) : clean;
  return bounded.length > 0 ? bounded : "denied";
}

/** Signs (and if the request was sealed, seals) the authorization response. Throws ResponseEncodeError. */
export function encodeResponse(target: ReplyTarget, body: ResponseBody, opts: ResponseOptions): Uint8Array {
  const nowMs = opts.nowMs ?? Date.now();
  const expiry = Math.max(1, Math.floor(opts.expirySeconds ?? DEFAULT_RESPONSE_EXPIRY_SECONDS));
  const nats: Record<string, unknown> = {};
  if ("jwt" in body) {
    if (typeof body.jwt !== "string" || body.jwt.length === 0)
      throw new ResponseEncodeError("empty user jwt");
    nats.jwt = body.jwt;
  } else {
    nats.error = sanitizeErrorText(body.error);
  }
  if (opts.issuerAccount !== undefined && opts.issuerAccount !== opts.signer.publicKey) {
    nats.issuer_account = opts.issuerAccount;
  }
  nats.type = "authorization_response";
  nats.version = 2;

  let bytes: Uint8Array;
  try {
    bytes = encodeJwtBytes(
      { aud: target.server_id.id, exp: Math.floor(nowMs / 1000) + expiry, sub: target.user_nkey, nats },
      opts.signer,
      nowMs,
    );
  } catch (err) {
    throw new ResponseEncodeError("cannot sign the response", { cause: err });
  }
  if (!target.encrypted) return bytes;
  if (opts.xkey === undefined) throw new ResponseEncodeError("request was sealed but no xkey is configured");
  if (target.server_id.xkey === undefined)
    throw new ResponseEncodeError("sealed request without a server xkey");
  try {
    return opts.xkey.seal(bytes, target.server_id.xkey);
  } catch (err) {
    throw new ResponseEncodeError("cannot seal the response", { cause: err });
  }
}
