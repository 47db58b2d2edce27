/**
 * Proof of an nkey: the client's `connect_opts.sig` must be an Ed25519 signature of the UTF-8
 * `client_info.nonce` by the public key in `connect_opts.nkey`. nats-server forwards nkey and sig to the
 * callout WITHOUT checking them (config mode; docs/policy-contract.md "Proven nkeys"), so this is the only
 * check there is. Outcomes:
 *
 * - `proven`      the signature verifies: the client holds the seed of `nkey` (policy input `derived.nkey`,
 *                 `AuthorizationRequest.proven_nkey` for plain handlers);
 * - `none`        no nkey was presented: nothing to prove;
 * - `unprovable`  an nkey without a nonce: the client did not sign (nats-server only forwards a nonce with a
 *                 signature) or the server issues no nonces (config mode without any nkey user). The nkey stays
 *                 a bare claim; the request goes on to the handler without `proven_nkey`;
 * - `failed`      a nonce, an nkey and a signature that is missing, malformed or wrong, or an nkey that is not a
 *                 valid `U…` key: the client claims a key it cannot prove → the pipeline denies with
 *                 `nkey_proof_failed`, naming the field.
 *
 * `sig` is accepted as standard base64 (nats.js, with padding) or base64url (Go, Python; without padding), each
 * with or without padding, never with mixed alphabets. Verification runs on node:crypto with a KeyObject cached
 * per client key (Verifier, its own bounded cache so client keys never evict server keys). Never throws.
 */
import { KeyError } from "../errors.js";
import type { AuthorizationRequest } from "../types.js";
import { Verifier } from "./keys.js";

export type NkeyProof =
  | { status: "proven"; nkey: string }
  | { status: "none" }
  | { status: "unprovable" }
  | { status: "failed"; field: "connect_opts.nkey" | "connect_opts.sig"; message: string };

/** 64 signature bytes: 86 base64 characters, then "==" padding (optional). */
const STD_SIG = /^[A-Za-z0-9+/]{86}(==)?$/;
const URL_SIG = /^[A-Za-z0-9_-]{86}(==)?$/;

const te = new TextEncoder();

/** Decodes a signature in either base64 alphabet; undefined when it is not exactly 64 bytes of base64. */
export function decodeSignature(sig: string): Uint8Array | undefined {
  if (!STD_SIG.test(sig) && !URL_SIG.test(sig)) return undefined;
  const raw = Buffer.from(sig, STD_SIG.test(sig) ? "base64" : "base64url");
  return raw.byteLength === 64 ? new Uint8Array(raw) : undefined;
}

/** Checks the nkey proof of one request (see the module doc). `verifier` caches client keys. */
export function proveNkey(
  req: Pick<AuthorizationRequest, "client_info" | "connect_opts">,
  verifier: Verifier,
): NkeyProof {
  const nkey = req.connect_opts.nkey;
  if (typeof nkey !== "string" || nkey === "") return { status: "none" };
  const nonce = req.client_info.nonce;
  if (typeof nonce !== "string" || nonce === "") return { status: "unprovable" };
  const sig = req.connect_opts.sig;
  if (typeof sig !== "string" || sig === "") {
    return {
      status: "failed",
      field: "connect_opts.sig",
      message: "missing although the server sent a nonce",
    };
  }
  const raw = decodeSignature(sig);
  let ok = false;
  try {
    // The key is checked first (prefix, length, CRC), so a malformed nkey is reported as such.
    ok = verifier.verify(nkey, "user", te.encode(nonce), raw ?? new Uint8Array(0));
  } catch (err) {
    if (err instanceof KeyError) {
      return { status: "failed", field: "connect_opts.nkey", message: "is not a valid user (U…) public key" };
    }
    return { status: "failed", field: "connect_opts.sig", message: "cannot be verified" };
  }
  if (raw === undefined) {
    return { status: "failed", field: "connect_opts.sig", message: "is not a base64 Ed25519 signature" };
  }
  if (!ok) {
    return {
      status: "failed",
      field: "connect_opts.sig",
      message: "does not verify over the nonce with the nkey",
    };
  }
  return { status: "proven", nkey };
}

/** A verifier for client nkeys, apart from the one for server keys (a flood of client keys must not evict them). */
export function clientKeyVerifier(maxKeys = 1024): Verifier {
  return new Verifier(maxKeys);
}

/**
 * Returns an observer for the nonce nats-server offers the service's own connection (the value nats.js hands its
 * authenticators at every connect and reconnect; see `nonceObserver`). The first time a connection is offered no
 * nonce, `report` is called, once: such a server forwards no nonce for clients either, so no client nkey can
 * ever be proven there. Config mode needs at least one nkey user for nats-server to send nonces (`init` writes
 * one); operator mode always sends them. (nats.js's `nc.info` is not usable for this: nats-server 2.15 sends
 * later INFO updates without the nonce.)
 */
export function noNonceReporter(report: () => void): (nonce: string | undefined) => void {
  let reported = false;
  return (nonce) => {
    if (reported || (typeof nonce === "string" && nonce !== "")) return;
    reported = true;
    report();
  };
}

/**
 * Adds `observe` to a connection's authenticators: nats.js calls every authenticator with the server's nonce and
 * merges what they return; this one returns nothing, so the CONNECT is unchanged.
 */
export function nonceObserver<A>(
  existing: A | A[] | undefined,
  observe: (nonce: string | undefined) => void,
): (A | ((nonce?: string) => undefined))[] {
  const list = existing === undefined ? [] : Array.isArray(existing) ? [...existing] : [existing];
  return [
    ...list,
    (nonce?: string) => {
      observe(nonce);
      return undefined;
    },
  ];
}
