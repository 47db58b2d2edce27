/**
 * The two crypto backends (libsodium via sodium-native, node:crypto + tweetnacl) must be interchangeable:
 * byte-identical signatures and boxes, the same verdicts on valid, tampered and malformed input, and both
 * compatible with @nats-io/nkeys (the reference the server side agrees with).
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createAccount, createCurve } from "@nats-io/nkeys";
import {
  CRYPTO_BACKEND,
  CRYPTO_BACKEND_ENV,
  boxAfter,
  boxBefore,
  boxOpenAfter,
  curvePublic,
  ed25519PrivateKey,
  ed25519PublicKey,
  sodiumForTests,
} from "../../../src/callout/crypto-backend.js";
import { Codec } from "@nats-io/nkeys/lib/codec.js";
import { decodePublicKey } from "../../../src/callout/keys.js";

const sodium = sodiumForTests;
const skip =
  sodium === undefined ? `libsodium not loaded here (backend ${CRYPTO_BACKEND}); nothing to compare` : false;

/** A fixed set of inputs (deterministic: no randomness decides the outcome). */
const SEEDS = Array.from({ length: 16 }, (_, i) => new Uint8Array(32).fill(i * 7 + 1));
const MESSAGES = [
  new Uint8Array(0),
  new TextEncoder().encode("header.payload"),
  new Uint8Array(4096).fill(0xab),
];

describe("crypto backend", () => {
  test("the process reports which backend it uses", () => {
    assert.ok(CRYPTO_BACKEND === "libsodium" || CRYPTO_BACKEND === "node:crypto");
    if (process.env[CRYPTO_BACKEND_ENV] === "node") assert.equal(CRYPTO_BACKEND, "node:crypto");
  });

  test("Ed25519: both backends derive the same public key and byte-identical signatures", { skip }, () => {
    for (const seed of SEEDS) {
      const a = ed25519PrivateKey(seed, sodium);
      const b = ed25519PrivateKey(seed, undefined);
      assert.deepEqual(Buffer.from(a.publicRaw), Buffer.from(b.publicRaw));
      for (const m of MESSAGES) assert.deepEqual(Buffer.from(a.sign(m)), Buffer.from(b.sign(m)));
    }
  });

  test("Ed25519: both backends agree with @nats-io/nkeys and on tampered or malformed signatures", () => {
    const kp = createAccount();
    const keyBytes = decodePublicKey(kp.getPublicKey(), "account");
    const backends = sodium === undefined ? [undefined] : [sodium, undefined];
    for (const backend of backends) {
      const v = ed25519PublicKey(keyBytes, backend);
      for (const m of MESSAGES) {
        const sig = kp.sign(m);
        assert.equal(v.verify(m, sig), true);
        const tampered = new Uint8Array(sig);
        tampered[5]! ^= 0x01;
        assert.equal(v.verify(m, tampered), false);
        assert.equal(v.verify(m, sig.subarray(0, 63)), false, "short signature");
        assert.equal(v.verify(m, new Uint8Array(64)), false, "all-zero signature");
        if (m.byteLength > 0) {
          const other = new Uint8Array(m);
          other[0]! ^= 0x80;
          assert.equal(v.verify(other, sig), false, "other message");
        }
      }
    }
  });

  test("box: both backends seal to identical bytes and open each other's boxes", { skip }, () => {
    const ours = createCurve();
    const peer = createCurve();
    const secret = Codec.decodeSeed(ours.getSeed()).buf;
    const peerSecret = Codec.decodeSeed(peer.getSeed()).buf;
    const k = boxBefore(curvePublic(peerSecret), secret);
    const kPeer = boxBefore(curvePublic(secret), peerSecret);
    assert.deepEqual(Buffer.from(k), Buffer.from(kPeer), "shared key is symmetric");
    for (const m of MESSAGES) {
      const nonce = new Uint8Array(randomBytes(24));
      const viaSodium = boxAfter(m, nonce, k, sodium);
      const viaNacl = boxAfter(m, nonce, k, undefined);
      assert.deepEqual(Buffer.from(viaSodium), Buffer.from(viaNacl));
      assert.deepEqual(Buffer.from(boxOpenAfter(viaNacl, nonce, kPeer, sodium)!), Buffer.from(m));
      assert.deepEqual(Buffer.from(boxOpenAfter(viaSodium, nonce, kPeer, undefined)!), Buffer.from(m));
      const tampered = new Uint8Array(viaSodium);
      tampered[tampered.length - 1]! ^= 0x01;
      assert.equal(boxOpenAfter(tampered, nonce, kPeer, sodium), null);
      assert.equal(boxOpenAfter(tampered, nonce, kPeer, undefined), null);
      assert.equal(
        boxOpenAfter(viaSodium.subarray(0, 10), nonce, kPeer, sodium),
        null,
        "shorter than the MAC",
      );
    }
  });

  test("malformed key lengths are refused by both backends", () => {
    for (const backend of sodium === undefined ? [undefined] : [sodium, undefined]) {
      assert.throws(() => ed25519PrivateKey(new Uint8Array(31), backend), RangeError);
      assert.throws(() => ed25519PublicKey(new Uint8Array(33), backend), RangeError);
    }
  });
});
