/**
 * The Ed25519 and xsalsa20-poly1305 primitives behind src/callout/keys.ts, from one of two backends:
 *
 * - **libsodium** via `sodium-native` (prebuilt binaries ship inside its npm package): measured here at about
 *   half the cost of node:crypto per verify and two thirds per sign. Each login does one verify and two signs,
 *   so this is the largest single CPU item of the protocol path.
 * - **node:crypto** (OpenSSL) for Ed25519 and tweetnacl for the box, used when the native module cannot load
 *   (an unsupported platform) or when `NATS_OPA_CALLOUT_CRYPTO=node` forces it.
 *
 * Both backends produce byte-identical output: Ed25519 signatures are deterministic, and libsodium's
 * `crypto_secretbox_easy` (MAC ‖ ciphertext) is exactly NaCl's `box.after` once the box key is precomputed
 * (the precomputation, once per peer xkey, stays on tweetnacl: libsodium's beforenm is not exposed by
 * sodium-native). Tests check both backends against each other and against `@nats-io/nkeys`.
 *
 * The backend is chosen once at module load; `CRYPTO_BACKEND` says which, for the start-up log and /status.
 */
import { createRequire } from "node:module";
import {
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from "node:crypto";
import naclModule from "@nats-io/nkeys/lib/nacl.js";

// `@nats-io/nkeys/lib/nacl.js` is CommonJS with `exports.default = tweetnacl`.
const nacl = naclModule.default;

/** Name of a backend, as logged at start-up and shown in /status. */
export type CryptoBackendName = "libsodium" | "node:crypto";

/** Environment variable that forces the node:crypto backend when set to `node`. */
export const CRYPTO_BACKEND_ENV = "NATS_OPA_CALLOUT_CRYPTO";

/** The subset of sodium-native this module uses. */
export interface Sodium {
  crypto_sign_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void;
  crypto_sign_detached(sig: Uint8Array, m: Uint8Array, sk: Uint8Array): void;
  crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean;
  crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void;
  crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
  sodium_malloc(size: number): Uint8Array;
  sodium_memzero(buf: Uint8Array): void;
}

/** Why libsodium is not in use (undefined when it is). */
export let cryptoFallbackReason: string | undefined;

function loadSodium(): Sodium | undefined {
  if (process.env[CRYPTO_BACKEND_ENV] === "node") {
    cryptoFallbackReason = `${CRYPTO_BACKEND_ENV}=node`;
    return undefined;
  }
  try {
    const mod = createRequire(import.meta.url)("sodium-native") as Sodium;
    // A broken prebuild can load yet lack symbols: check the ones we call.
    for (const fn of [
      "crypto_sign_seed_keypair",
      "crypto_sign_detached",
      "crypto_sign_verify_detached",
      "crypto_secretbox_easy",
      "crypto_secretbox_open_easy",
    ] as const) {
      if (typeof mod[fn] !== "function") throw new Error(`sodium-native lacks ${fn}`);
    }
    return mod;
  } catch (err) {
    cryptoFallbackReason = `sodium-native unavailable: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`;
    return undefined;
  }
}

const sodium = loadSodium();

/** The backend in use for this process. */
export const CRYPTO_BACKEND: CryptoBackendName = sodium !== undefined ? "libsodium" : "node:crypto";

/** DER prefixes that wrap a raw 32-byte Ed25519 seed / public key as PKCS#8 / SPKI. */
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** An Ed25519 private key ready to sign, and its raw public key. */
export interface Ed25519PrivateKey {
  readonly publicRaw: Uint8Array;
  sign(data: Uint8Array): Uint8Array;
}

/** An Ed25519 public key ready to verify. */
export interface Ed25519PublicKey {
  verify(data: Uint8Array, signature: Uint8Array): boolean;
}

/**
 * Builds a signer from a raw 32-byte Ed25519 seed. The caller may zero `seed` afterwards: the key is copied
 * (into sodium's guarded memory, or an OpenSSL KeyObject). Throws on a malformed seed.
 */
export function ed25519PrivateKey(seed: Uint8Array, backend: Sodium | undefined = sodium): Ed25519PrivateKey {
  if (seed.byteLength !== 32) throw new RangeError("Ed25519 seed must be 32 bytes");
  if (backend !== undefined) {
    const pk = new Uint8Array(32);
    const sk = backend.sodium_malloc(64);
    backend.crypto_sign_seed_keypair(pk, sk, seed);
    return {
      publicRaw: pk,
      sign(data: Uint8Array): Uint8Array {
        const sig = new Uint8Array(64);
        backend.crypto_sign_detached(sig, data, sk);
        return sig;
      },
    };
  }
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return {
    publicRaw: new Uint8Array(spki.subarray(spki.length - 32)),
    sign(data: Uint8Array): Uint8Array {
      return cryptoSign(null, data, privateKey);
    },
  };
}

/** Builds a verifier from a raw 32-byte Ed25519 public key. Throws on a malformed key. */
export function ed25519PublicKey(raw: Uint8Array, backend: Sodium | undefined = sodium): Ed25519PublicKey {
  if (raw.byteLength !== 32) throw new RangeError("Ed25519 public key must be 32 bytes");
  if (backend !== undefined) {
    const pk = new Uint8Array(raw);
    return {
      verify(data: Uint8Array, signature: Uint8Array): boolean {
        if (signature.byteLength !== 64) return false;
        return backend.crypto_sign_verify_detached(signature, data, pk);
      },
    };
  }
  const key: KeyObject = createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, raw]),
    format: "der",
    type: "spki",
  });
  return {
    verify(data: Uint8Array, signature: Uint8Array): boolean {
      if (signature.byteLength !== 64) return false;
      return cryptoVerify(null, data, key, signature);
    },
  };
}

/** Length of the xsalsa20-poly1305 authenticator that prefixes every box. */
export const BOX_OVERHEAD = 16;

/**
 * NaCl `box.after`: seals `data` with a precomputed box key (from `boxBefore`) and a 24-byte nonce.
 * Output is MAC ‖ ciphertext, identical on both backends.
 */
export function boxAfter(
  data: Uint8Array,
  nonce: Uint8Array,
  key: Uint8Array,
  backend: Sodium | undefined = sodium,
): Uint8Array {
  if (backend !== undefined) {
    const out = new Uint8Array(data.byteLength + BOX_OVERHEAD);
    backend.crypto_secretbox_easy(out, data, nonce, key);
    return out;
  }
  return nacl.box.after(data, nonce, key);
}

/** NaCl `box.open.after`: the plaintext, or null when the box does not authenticate. */
export function boxOpenAfter(
  box: Uint8Array,
  nonce: Uint8Array,
  key: Uint8Array,
  backend: Sodium | undefined = sodium,
): Uint8Array | null {
  if (backend !== undefined) {
    if (box.byteLength < BOX_OVERHEAD) return null;
    const out = new Uint8Array(box.byteLength - BOX_OVERHEAD);
    return backend.crypto_secretbox_open_easy(out, box, nonce, key) ? out : null;
  }
  return nacl.box.open.after(box, nonce, key);
}

/** NaCl `box.before`: the box key shared by our curve secret and a peer's curve public key (tweetnacl). */
export function boxBefore(peerPublic: Uint8Array, secret: Uint8Array): Uint8Array {
  return nacl.box.before(peerPublic, secret);
}

/** NaCl `scalarMult.base`: the curve public key of a curve secret (tweetnacl). */
export function curvePublic(secret: Uint8Array): Uint8Array {
  return nacl.scalarMult.base(secret);
}

/** For tests: the loaded sodium-native module (undefined on the node:crypto backend). */
export const sodiumForTests: Sodium | undefined = sodium;
