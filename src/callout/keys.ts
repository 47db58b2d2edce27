/**
 * Key material for the callout hot path.
 *
 * NATS nkeys are parsed once with `@nats-io/nkeys` (prefix and CRC16 checks). Ed25519 signing and
 * verification then run on libsodium (sodium-native) or node:crypto, see ./crypto-backend.ts — never on
 * tweetnacl (~20 ms per operation). For xkey (curve25519-xsalsa20-poly1305) the box shared key is computed
 * once per peer xkey, so each seal/open is one cheap symmetric operation.
 *
 * Nothing here ever puts seed material into an error message.
 */
import { randomFillSync } from "node:crypto";
import { Prefix } from "@nats-io/nkeys";
import { Codec } from "@nats-io/nkeys/lib/codec.js";
import { KeyError } from "../errors.js";
import {
  BOX_OVERHEAD,
  boxAfter,
  boxBefore,
  boxOpenAfter,
  curvePublic,
  ed25519PrivateKey,
  ed25519PublicKey,
  type Ed25519PublicKey,
} from "./crypto-backend.js";

/** The nkey roles this service deals with. */
export type KeyKind = "account" | "operator" | "user" | "server";

const PREFIX: Record<KeyKind, Prefix> = {
  account: Prefix.Account,
  operator: Prefix.Operator,
  user: Prefix.User,
  server: Prefix.Server,
};

const LETTER: Record<KeyKind | "curve", string> = {
  account: "A",
  operator: "O",
  user: "U",
  server: "N",
  curve: "X",
};

/** Length of an encoded public nkey (`A…`, `N…`, `U…`, `X…`). */
const PUBLIC_KEY_LENGTH = 56;

const te = new TextEncoder();
const td = new TextDecoder();

/** Signs with an Ed25519 nkey (libsodium or node:crypto, see ./crypto-backend.ts). */
export interface Signer {
  /** The public nkey (`A…`, `O…`, `U…` or `N…`) that verifies this signer's signatures. */
  readonly publicKey: string;
  /** Raw 64-byte Ed25519 signature of `data`. */
  sign(data: Uint8Array): Uint8Array;
}

/**
 * Parses an nkey seed (`SA…`, `SO…`, `SU…`, `SN…`) once and returns a fast signer.
 * Throws KeyError when the seed is malformed, fails its checksum or has another role than `expect`.
 * The seed is never echoed in the error.
 */
export function signerFromSeed(seed: string, expect: KeyKind): Signer {
  const raw = decodeSeed(seed, expect);
  try {
    const key = ed25519PrivateKey(raw);
    const publicKey = td.decode(Codec.encode(PREFIX[expect], key.publicRaw));
    return { publicKey, sign: (data: Uint8Array): Uint8Array => key.sign(data) };
  } catch {
    throw new KeyError(`cannot load the ${expect} seed as an Ed25519 key`);
  } finally {
    raw.fill(0);
  }
}

/** Returns the raw 32 bytes of a seed of the expected role, or throws KeyError (without the seed). */
function decodeSeed(seed: string, expect: KeyKind | "curve"): Uint8Array {
  const label = expect === "curve" ? "xkey" : expect;
  if (typeof seed !== "string") throw new KeyError(`${label} seed must be a string`);
  const trimmed = seed.trim();
  const letter = LETTER[expect];
  if (!trimmed.startsWith("S")) throw new KeyError(`${label} seed must be an nkey seed (S${letter}…)`);
  let decoded: { prefix: Prefix; buf: Uint8Array };
  try {
    decoded = Codec.decodeSeed(te.encode(trimmed));
  } catch {
    throw new KeyError(`${label} seed is not a valid nkey seed (bad encoding or checksum)`);
  }
  const expected = expect === "curve" ? Prefix.Curve : PREFIX[expect];
  if (decoded.prefix !== expected) {
    decoded.buf.fill(0);
    throw new KeyError(`expected ${label} seed (S${letter}…), got another key role`);
  }
  if (decoded.buf.byteLength !== 32) {
    decoded.buf.fill(0);
    throw new KeyError(`${label} seed has the wrong length`);
  }
  return decoded.buf;
}

/**
 * Decodes a public nkey of the given role to its raw 32 bytes (prefix and CRC16 checked).
 * Throws KeyError. Public keys are not secret, but the error does not repeat the input either.
 */
export function decodePublicKey(key: string, kind: KeyKind | "curve"): Uint8Array {
  const letter = LETTER[kind];
  if (typeof key !== "string" || key.length !== PUBLIC_KEY_LENGTH || key[0] !== letter) {
    throw new KeyError(`not a ${kind} public key (${letter}…)`);
  }
  let raw: Uint8Array;
  try {
    raw = Codec.decode(kind === "curve" ? Prefix.Curve : PREFIX[kind], te.encode(key));
  } catch {
    throw new KeyError(`not a valid ${kind} public key (bad encoding or checksum)`);
  }
  if (raw.byteLength !== 32) throw new KeyError(`${kind} public key has the wrong length`);
  return raw;
}

/** True when `key` is a well-formed public nkey of the given role (prefix and checksum valid). */
export function isPublicKey(key: unknown, kind: KeyKind | "curve"): key is string {
  if (typeof key !== "string") return false;
  if (WELL_FORMED.get(key)) return key[0] === LETTER[kind];
  try {
    decodePublicKey(key, kind);
  } catch {
    return false;
  }
  if (kind !== "user") WELL_FORMED.set(key, true);
  return true;
}

/** A Map that evicts its oldest entry beyond `max` entries (insertion order). */
class BoundedCache<V> {
  readonly #map = new Map<string, V>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max));
  }
  get(key: string): V | undefined {
    return this.#map.get(key);
  }
  set(key: string, value: V): void {
    if (this.#map.size >= this.#max && !this.#map.has(key)) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
    this.#map.set(key, value);
  }
  get size(): number {
    return this.#map.size;
  }
}

/**
 * Public keys already found well-formed, except user keys (nats-server makes a new one per connection): every request
 * names the same server (iss) and account (sub) keys, whose base32 and CRC16 need checking once. A key's first letter
 * is its role, so a hit still checks that.
 */
const WELL_FORMED = new BoundedCache<true>(1024);

/**
 * Verifies Ed25519 signatures by public nkey, caching one prepared key per public key
 * (a server's N key changes at each server start, so the cache is bounded).
 */
export class Verifier {
  readonly #cache: BoundedCache<Ed25519PublicKey>;

  /** @param maxKeys how many public keys to keep (oldest evicted first). */
  constructor(maxKeys = 256) {
    this.#cache = new BoundedCache(maxKeys);
  }

  /**
   * True when `signature` is a valid signature of `data` by `publicKey`.
   * Throws KeyError when `publicKey` is not a valid key of role `kind`.
   */
  verify(publicKey: string, kind: KeyKind, data: Uint8Array, signature: Uint8Array): boolean {
    let key = this.#cache.get(publicKey);
    if (key === undefined) {
      key = ed25519PublicKey(decodePublicKey(publicKey, kind));
      this.#cache.set(publicKey, key);
    } else {
      // Cached keys were validated on insertion; still enforce the role the caller expects.
      if (publicKey[0] !== LETTER[kind]) throw new KeyError(`not a ${kind} public key (${LETTER[kind]}…)`);
    }
    return key.verify(data, signature);
  }

  /** Number of cached keys (for tests and status). */
  get size(): number {
    return this.#cache.size;
  }
}

/** xkey wire format: "xkv1" ‖ 24-byte nonce ‖ NaCl box. */
const XKV1 = te.encode("xkv1");
const NONCE_LENGTH = 24;

/**
 * Random nonces drawn from one buffer filled 128 nonces at a time (one CSPRNG call instead of one per reply; nonces
 * are public, each is used once). The returned view is valid until the next call: use it at once.
 */
const nonces = Buffer.alloc(NONCE_LENGTH * 128);
let nonceAt = nonces.length;
function nextNonce(): Uint8Array {
  if (nonceAt === nonces.length) {
    randomFillSync(nonces);
    nonceAt = 0;
  }
  nonceAt += NONCE_LENGTH;
  return nonces.subarray(nonceAt - NONCE_LENGTH, nonceAt);
}

/** A curve (xkey) key pair that seals/opens NATS xkey messages. */
export interface XKey {
  /** The public xkey (`X…`). */
  readonly publicKey: string;
  /** Opens a sealed message from `senderXkey`. Throws KeyError when it cannot be opened. */
  open(sealed: Uint8Array, senderXkey: string): Uint8Array;
  /** Seals `data` for `recipientXkey` with a random nonce. Throws KeyError on a bad recipient key. */
  seal(data: Uint8Array, recipientXkey: string): Uint8Array;
}

/**
 * Parses an xkey seed (`SX…`) once. The NaCl box shared key is computed once per peer xkey and cached
 * (bounded), so seal/open cost one symmetric box operation each.
 */
export function xkeyFromSeed(seed: string, opts: { cacheSize?: number } = {}): XKey {
  const secret = decodeSeed(seed, "curve");
  const publicKey = td.decode(Codec.encode(Prefix.Curve, curvePublic(secret)));
  const shared = new BoundedCache<Uint8Array>(opts.cacheSize ?? 256);

  const sharedKeyFor = (peer: string): Uint8Array => {
    let k = shared.get(peer);
    if (k === undefined) {
      const peerRaw = decodePublicKey(peer, "curve");
      k = boxBefore(peerRaw, secret);
      shared.set(peer, k);
    }
    return k;
  };

  return {
    publicKey,
    open(sealed: Uint8Array, senderXkey: string): Uint8Array {
      const k = sharedKeyFor(senderXkey);
      if (sealed.byteLength < XKV1.length + NONCE_LENGTH + BOX_OVERHEAD) {
        throw new KeyError("xkey: sealed message too short");
      }
      for (let i = 0; i < XKV1.length; i++) {
        if (sealed[i] !== XKV1[i]) throw new KeyError("xkey: not an xkv1 sealed message");
      }
      const nonce = sealed.subarray(XKV1.length, XKV1.length + NONCE_LENGTH);
      const box = sealed.subarray(XKV1.length + NONCE_LENGTH);
      const opened = boxOpenAfter(box, nonce, k);
      if (opened === null) throw new KeyError("xkey: cannot open sealed message");
      return opened;
    },
    seal(data: Uint8Array, recipientXkey: string): Uint8Array {
      const k = sharedKeyFor(recipientXkey);
      const nonce = nextNonce();
      const box = boxAfter(data, nonce, k);
      const out = new Uint8Array(XKV1.length + NONCE_LENGTH + box.byteLength);
      out.set(XKV1, 0);
      out.set(nonce, XKV1.length);
      out.set(box, XKV1.length + NONCE_LENGTH);
      return out;
    },
  };
}
