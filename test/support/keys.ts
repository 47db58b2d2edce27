/**
 * Key material for tests and benchmarks (generation only: never on a hot path): the key set of the protocol
 * fixtures (server, issuer, xkey, server xkey, each with a fast signer and the nkeys KeyPair), the seeds one
 * config-mode service run needs, and recognisable random secrets.
 */
import { randomBytes } from "node:crypto";
import {
  createAccount,
  createCurve,
  createServer,
  createUser,
  fromCurveSeed,
  fromSeed,
  type KeyPair,
} from "@nats-io/nkeys";
import { signerFromSeed, xkeyFromSeed, type Signer, type XKey } from "../../src/callout/keys.js";

const td = new TextDecoder();
const te = new TextEncoder();

/** An Ed25519 nkey with its seed, a fast signer and the (slow, tweetnacl) nkeys KeyPair. */
export interface TestKey {
  seed: string;
  publicKey: string;
  signer: Signer;
  kp: KeyPair;
}

/** A curve (xkey) key with its seed, our XKey and the nkeys KeyPair. */
export interface TestXKey {
  seed: string;
  publicKey: string;
  xkey: XKey;
  kp: KeyPair;
}

/** Everything one config- or operator-mode test setup needs. */
export interface TestKeys {
  /** The server's N key (request `iss` = `server_id.id`). */
  server: TestKey;
  /** Config mode: `auth_callout.issuer`. Operator mode: the callout account. */
  issuer: TestKey;
  /** The service's xkey (`auth_callout.xkey`). */
  xkey: TestXKey;
  /** The server's per-process curve key (sent in `Nats-Server-Xkey`). */
  serverXkey: TestXKey;
}

function ed(kp: KeyPair, kind: "account" | "server" | "user" | "operator"): TestKey {
  const seed = td.decode(kp.getSeed());
  return { seed, publicKey: kp.getPublicKey(), signer: signerFromSeed(seed, kind), kp };
}

function curve(kp: KeyPair): TestXKey {
  const seed = td.decode(kp.getSeed());
  return { seed, publicKey: kp.getPublicKey(), xkey: xkeyFromSeed(seed), kp };
}

/** A fresh account key (e.g. an operator-mode target account or signing key). */
export function newAccountKey(): TestKey {
  return ed(createAccount(), "account");
}

/** A fresh server key. */
export function newServerKey(): TestKey {
  return ed(createServer(), "server");
}

/** A fresh user public key (`U…`), as the server makes one per connection attempt. */
export function newUserNkey(): string {
  return createUser().getPublicKey();
}

/** A fresh curve key. */
export function newXKey(): TestXKey {
  return curve(createCurve());
}

/** Generates a full key set. */
export function makeKeys(): TestKeys {
  return { server: newServerKey(), issuer: newAccountKey(), xkey: newXKey(), serverXkey: newXKey() };
}

/** Re-creates slow nkeys key pairs from seeds (cross-checks only; tweetnacl is ~20 ms per op). */
export function slowKeyPair(seed: string): KeyPair {
  return seed.startsWith("SX") ? fromCurveSeed(te.encode(seed)) : fromSeed(te.encode(seed));
}

/** The seeds and password of one config-mode service run (issuer account, xkey, callout user). */
export interface RunKeys {
  /** Issuer account: seed SA… and public key A…. */
  issuerSeed: string;
  issuerPub: string;
  /** xkey: seed SX… and public key X…. */
  xkeySeed: string;
  xkeyPub: string;
  /** Password of the callout service's own user. */
  calloutPass: string;
}

export function newKeys(): RunKeys {
  const a = newAccountKey();
  const x = newXKey();
  return {
    issuerSeed: a.seed,
    issuerPub: a.publicKey,
    xkeySeed: x.seed,
    xkeyPub: x.publicKey,
    calloutPass: secret("callout"),
  };
}

/** A random secret with a recognisable prefix (so the secrets scan can look for it). */
export function secret(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString("base64url")}`;
}
