/**
 * The policy input document, version 1 (COMMON contract §2): the verified request's fields as NATS
 * sends them, plus `derived` facts. Time is not in the input: policies call `time.now_ns()`, which
 * the engine freezes once per evaluation. The input carries secrets (connect_opts.pass, auth_token,
 * jwt, sig): it is masked before it reaches the decision log.
 */
import { connectionType } from "../grant.js";
import type { AuthorizationRequest, ClientInfo, ClientTls, ConnectOpts, ServerId } from "../types.js";

export const INPUT_VERSION = 1;

export interface PolicyInput {
  version: 1;
  server_id: ServerId;
  user_nkey: string;
  client_info: ClientInfo;
  connect_opts: ConnectOpts;
  /** Present only for TLS clients. */
  client_tls?: ClientTls;
  request_issuer: string;
  derived: {
    /** STANDARD, WEBSOCKET, MQTT, LEAFNODE, LEAFNODE_WS, another upper-cased type, or UNKNOWN. */
    connection_type: string;
    tls: boolean;
    /**
     * The client's nkey, present ONLY when its signature over the server nonce verified (the client holds the
     * seed). `connect_opts.nkey` is a claim anyone can send: admit by `derived.nkey`, never by `connect_opts.nkey`.
     */
    nkey?: string;
  };
}

export function buildInput(req: AuthorizationRequest): PolicyInput {
  const input: PolicyInput = {
    version: 1,
    server_id: req.server_id,
    user_nkey: req.user_nkey,
    client_info: req.client_info,
    connect_opts: req.connect_opts,
    request_issuer: req.request_issuer,
    derived: {
      connection_type: connectionType(req),
      tls: req.client_tls !== undefined,
    },
  };
  if (req.client_tls !== undefined) input.client_tls = req.client_tls;
  if (req.proven_nkey !== undefined) input.derived.nkey = req.proven_nkey;
  return input;
}

/**
 * The canned request every new policy revision is smoke-evaluated with before it is activated:
 * a plain NATS client "smoke-test" with a password, no TLS. The policy must return a well-formed
 * decision for it (any of allow / deny / abort); an error, an undefined decision or a malformed one
 * rejects the revision. (Give the decision rule a default, e.g.
 * `default decision := {"allow": false, "reason": "not_authorized"}`.)
 */
export const SMOKE_REQUEST: AuthorizationRequest = Object.freeze({
  server_id: {
    name: "smoke-test",
    host: "127.0.0.1",
    id: "NSMOKETESTAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    version: "2.11.0",
  },
  user_nkey: "USMOKETESTAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  client_info: {
    host: "127.0.0.1",
    id: 1,
    user: "smoke-test",
    name: "smoke-test",
    kind: "Client",
    type: "nats",
  },
  connect_opts: {
    user: "smoke-test",
    pass: "smoke-test-password",
    name: "smoke-test",
    lang: "smoke",
    version: "0.0.0",
    protocol: 1,
  },
  request_issuer: "ASMOKETESTAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  issued_at: 0,
  expires_at: 0,
  encrypted: false,
});

export const SMOKE_INPUT: PolicyInput = buildInput(SMOKE_REQUEST);
