/**
 * Rebuilding an AuthorizationRequest offline (for `eval` and `check`) from what an operator has at hand:
 * a policy input document (possibly from a decision-log event) or a captured request JWT.
 */
import { createUser } from "@nats-io/nkeys";
import { parseJwt } from "../callout/jwt.js";
import { isPublicKey, Verifier } from "../callout/keys.js";
import { proveNkey } from "../callout/nkey-proof.js";
import type { AuthorizationRequest, ClientInfo, ClientTls, ConnectOpts, ServerId } from "../types.js";
import { UsageError } from "./common.js";

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const PLACEHOLDER_SERVER: ServerId = {
  name: "eval",
  host: "127.0.0.1",
  id: "NEVALAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  version: "2.11.0",
};

/**
 * The request a policy input document was built from (the inverse of buildInput). Missing parts get
 * harmless placeholders; an absent or invalid user_nkey gets a fresh ephemeral U key (noted in `notes`).
 */
export function requestFromInput(input: unknown, now: Date, notes?: string[]): AuthorizationRequest {
  if (!isObj(input)) throw new UsageError("the input document must be a JSON object");
  let userNkey = input.user_nkey;
  if (!isPublicKey(userNkey, "user")) {
    userNkey = createUser().getPublicKey();
    notes?.push("input.user_nkey missing or not a U… key: using an ephemeral one");
  }
  const nowSec = Math.floor(now.getTime() / 1000);
  const req: AuthorizationRequest = {
    server_id: isObj(input.server_id) ? (input.server_id as unknown as ServerId) : PLACEHOLDER_SERVER,
    user_nkey: userNkey as string,
    client_info: isObj(input.client_info) ? (input.client_info as ClientInfo) : {},
    connect_opts: isObj(input.connect_opts) ? (input.connect_opts as ConnectOpts) : {},
    request_issuer: typeof input.request_issuer === "string" ? input.request_issuer : "",
    issued_at: nowSec,
    expires_at: nowSec + 60,
    encrypted: false,
  };
  if (isObj(input.client_tls)) req.client_tls = input.client_tls as ClientTls;
  // The proof happened when the input was built (an event's input is what the policy saw): keep the fact.
  const proven = isObj(input.derived) ? input.derived.nkey : undefined;
  if (isPublicKey(proven, "user")) req.proven_nkey = proven;
  return req;
}

/**
 * A captured authorization request JWT (plaintext; sealed xkey requests must be opened first). The
 * signature is not required to verify (the server key changes at every restart); claims are used as sent.
 */
export function requestFromJwt(token: string): { req: AuthorizationRequest; issuedAt: Date; note?: string } {
  let claims: Record<string, unknown>;
  try {
    claims = parseJwt(token.trim(), 1024 * 1024).claims as unknown as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`not a NATS request JWT: ${(e as Error).message}`);
  }
  const nats = claims.nats;
  if (!isObj(nats) || nats.type !== "authorization_request") {
    throw new UsageError('not an authorization request JWT (nats.type is not "authorization_request")');
  }
  const iat = typeof claims.iat === "number" ? claims.iat : Math.floor(Date.now() / 1000);
  const exp = typeof claims.exp === "number" ? claims.exp : iat + 60;
  if (!isPublicKey(nats.user_nkey, "user"))
    throw new UsageError("request JWT: nats.user_nkey is not a U… key");
  const req: AuthorizationRequest = {
    server_id: (isObj(nats.server_id) ? nats.server_id : PLACEHOLDER_SERVER) as unknown as ServerId,
    user_nkey: nats.user_nkey,
    client_info: (isObj(nats.client_info) ? nats.client_info : {}) as ClientInfo,
    connect_opts: (isObj(nats.connect_opts) ? nats.connect_opts : {}) as ConnectOpts,
    request_issuer: typeof claims.sub === "string" ? claims.sub : "",
    issued_at: iat,
    expires_at: exp,
    encrypted: false,
  };
  if (isObj(nats.client_tls)) req.client_tls = nats.client_tls as ClientTls;
  // The nonce signature travels in the request: prove the nkey exactly as serve does.
  const proof = proveNkey(req, new Verifier());
  if (proof.status === "proven") req.proven_nkey = proof.nkey;
  if (proof.status === "failed") {
    return {
      req,
      issuedAt: new Date(iat * 1000),
      note: `the nkey proof fails (${proof.field} ${proof.message}): serve denies this request with nkey_proof_failed before the policy runs`,
    };
  }
  return { req, issuedAt: new Date(iat * 1000) };
}
