/** Fresh key material for one benchmark or test run (generation only: not on any hot path). */
import { randomBytes } from "node:crypto";
import { createAccount, createCurve } from "@nats-io/nkeys";

const td = new TextDecoder();

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
  const a = createAccount();
  const x = createCurve();
  return {
    issuerSeed: td.decode(a.getSeed()),
    issuerPub: a.getPublicKey(),
    xkeySeed: td.decode(x.getSeed()),
    xkeyPub: x.getPublicKey(),
    calloutPass: secret("callout"),
  };
}

/** A random secret with a recognisable prefix (so the secrets scan can look for it). */
export function secret(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString("base64url")}`;
}
