/**
 * Shared types: the verified authorization request, the grant a handler or policy returns,
 * and the outcome of one authorization. Field names follow NATS's own JSON (snake_case) so that
 * handler authors, policy authors and the NATS docs all speak the same names.
 */

/** `nats.server_id` of an authorization request. */
export interface ServerId {
  name: string;
  host: string;
  id: string;
  version: string;
  cluster?: string;
  tags?: string[];
  xkey?: string;
}

/** `nats.client_info` of an authorization request. */
export interface ClientInfo {
  host?: string;
  id?: number;
  user?: string;
  name?: string;
  tags?: string[];
  name_tag?: string;
  kind?: string; // "Client", "Leafnode", ...
  type?: string; // "nats", "websocket", "mqtt", ...
  mqtt_id?: string;
  nonce?: string;
}

/** `nats.connect_opts` of an authorization request. Carries secrets: never log it unredacted. */
export interface ConnectOpts {
  jwt?: string;
  nkey?: string;
  sig?: string;
  auth_token?: string;
  user?: string;
  pass?: string;
  name?: string;
  lang?: string;
  version?: string;
  protocol?: number;
}

/** `nats.client_tls` of an authorization request (TLS connections only). */
export interface ClientTls {
  version?: string;
  cipher?: string;
  certs?: string[];
  verified_chains?: string[][];
}

/** A decoded and fully verified authorization request. */
export interface AuthorizationRequest {
  /** Server nkey (`iss` = `server_id.id`). */
  server_id: ServerId;
  /** The `U…` key the issued user JWT must have as its subject. */
  user_nkey: string;
  client_info: ClientInfo;
  connect_opts: ConnectOpts;
  client_tls?: ClientTls;
  /** `sub` of the request JWT: the issuer account (config mode) or the callout account (operator mode). */
  request_issuer: string;
  /** Request JWT `iat`/`exp`, unix seconds. */
  issued_at: number;
  expires_at: number;
  /** True when the request arrived sealed with xkey. */
  encrypted: boolean;
  /**
   * `connect_opts.nkey`, set only when the client's `connect_opts.sig` verified over `client_info.nonce` with it
   * (src/callout/nkey-proof.ts): the client holds that key's seed. `connect_opts.nkey` itself is a bare claim.
   * Policy input: `derived.nkey`.
   */
  proven_nkey?: string;
}

export interface SubjectPermission {
  allow?: string[];
  deny?: string[];
}

export interface ResponsePermission {
  /** Maximum number of responses (-1 = unlimited). */
  max: number;
  /** Time the response permission lasts, in milliseconds (converted to ns on the wire). */
  ttl_ms: number;
}

export interface TimeRange {
  /** "HH:MM:SS" */
  start: string;
  /** "HH:MM:SS" */
  end: string;
}

export type ConnectionType =
  "STANDARD" | "WEBSOCKET" | "LEAFNODE" | "LEAFNODE_WS" | "MQTT" | "MQTT_WS" | "IN_PROCESS";

/**
 * What a handler (or policy, as its `allow: true` decision) grants a user.
 * Missing `pub`/`sub` mean "deny all" — never "allow all".
 */
export interface Grant {
  /** Target account: a name from the service's account allow-list. */
  account: string;
  /** User name recorded in the user JWT (`name`); defaults to the connecting user. */
  name?: string;
  pub?: SubjectPermission;
  sub?: SubjectPermission;
  resp?: ResponsePermission;
  /** Requested lifetime of the user JWT in seconds; capped by the service's `maxExpiry`. */
  expires_in?: number;
  /** Limits (-1 = unlimited). */
  subs?: number;
  data?: number;
  payload?: number;
  /** Source CIDRs the client must connect from (enforced by this service). */
  src?: string[];
  /** Time windows the user may connect in; `times_location` is an IANA zone. */
  times?: TimeRange[];
  times_location?: string;
  /** Enforced by this service against `client_info.type`/`kind`. */
  allowed_connection_types?: ConnectionType[];
  bearer_token?: boolean;
  tags?: string[];
}

/** The result of one authorization: a discriminated union, never an exception. */
export type Outcome =
  | { kind: "allow"; grant: Grant; reason?: string }
  | { kind: "deny"; reason: string; code: string }
  | { kind: "abort"; reason: string; code: string };
