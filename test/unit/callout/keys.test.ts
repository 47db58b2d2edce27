import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createAccount, createCurve, createOperator, createServer, createUser } from "@nats-io/nkeys";
import { KeyError } from "../../../src/errors.js";
import {
  decodePublicKey,
  isPublicKey,
  signerFromSeed,
  Verifier,
  xkeyFromSeed,
} from "../../../src/callout/keys.js";

const td = new TextDecoder();
const te = new TextEncoder();
const seedOf = (kp: { getSeed(): Uint8Array }) => td.decode(kp.getSeed());

/** Flips one base32 character so the CRC no longer matches. */
function corrupt(s: string, at = 10): string {
  const c = s[at] === "A" ? "B" : "A";
  return s.slice(0, at) + c + s.slice(at + 1);
}

describe("signerFromSeed", () => {
  test("derives the same public key and the same (deterministic) Ed25519 signature as nkeys", () => {
    const kp = createAccount();
    const signer = signerFromSeed(seedOf(kp), "account");
    assert.equal(signer.publicKey, kp.getPublicKey());
    const msg = te.encode("header.payload");
    assert.deepEqual(Buffer.from(signer.sign(msg)), Buffer.from(kp.sign(msg)));
    assert.ok(kp.verify(msg, signer.sign(msg)));
  });

  test("accepts operator, user and server seeds for their own role, with surrounding whitespace", () => {
    for (const [kp, kind] of [
      [createOperator(), "operator"],
      [createUser(), "user"],
      [createServer(), "server"],
    ] as const) {
      assert.equal(signerFromSeed(`  ${seedOf(kp)}\n`, kind).publicKey, kp.getPublicKey());
    }
  });

  test("rejects a seed of another role without echoing it", () => {
    const seed = seedOf(createUser());
    assert.throws(
      () => signerFromSeed(seed, "account"),
      (e: unknown) => e instanceof KeyError && e.code === "key_error" && !e.message.includes(seed),
    );
  });

  test("rejects bad checksums, public keys, curve seeds and garbage without echoing them", () => {
    const good = seedOf(createAccount());
    const bad = [corrupt(good), createAccount().getPublicKey(), seedOf(createCurve()), "SAnotaseed", "", "S"];
    for (const s of bad) {
      assert.throws(
        () => signerFromSeed(s, "account"),
        (e: unknown) => e instanceof KeyError && (s.length < 4 || !e.message.includes(s)),
        `should reject ${s.slice(0, 3)}…`,
      );
    }
    assert.throws(() => signerFromSeed(42 as unknown as string, "account"), KeyError);
  });
});

describe("public keys", () => {
  test("decodePublicKey returns 32 raw bytes and checks role and checksum", () => {
    const pub = createServer().getPublicKey();
    assert.equal(decodePublicKey(pub, "server").byteLength, 32);
    assert.throws(() => decodePublicKey(pub, "account"), KeyError);
    assert.throws(() => decodePublicKey(corrupt(pub), "server"), KeyError);
    assert.throws(() => decodePublicKey(pub.slice(0, 40), "server"), KeyError);
  });

  test("isPublicKey", () => {
    const u = createUser().getPublicKey();
    assert.equal(isPublicKey(u, "user"), true);
    assert.equal(isPublicKey(u, "server"), false);
    assert.equal(isPublicKey(corrupt(u), "user"), false);
    assert.equal(isPublicKey(undefined, "user"), false);
    assert.equal(isPublicKey(createCurve().getPublicKey(), "curve"), true);
  });

  test("isPublicKey remembers well-formed keys and still checks their role", () => {
    for (const [kp, kind] of [
      [createServer(), "server"],
      [createAccount(), "account"],
      [createOperator(), "operator"],
      [createCurve(), "curve"],
    ] as const) {
      const k = kp.getPublicKey();
      for (let round = 0; round < 2; round++) {
        // the second round answers from what the first one learned
        assert.equal(isPublicKey(k, kind), true);
        for (const other of ["server", "account", "operator", "user", "curve"] as const)
          if (other !== kind) assert.equal(isPublicKey(k, other), false, `${kind} key as ${other}`);
        assert.equal(isPublicKey(corrupt(k), kind), false);
        assert.equal(isPublicKey(k.slice(0, -1), kind), false);
      }
    }
  });
});

describe("Verifier", () => {
  const kp = createServer();
  const signer = signerFromSeed(seedOf(kp), "server");
  const msg = te.encode("some signed input");

  test("verifies a node:crypto signature and a tweetnacl one; rejects tampering", () => {
    const v = new Verifier();
    assert.equal(v.verify(kp.getPublicKey(), "server", msg, signer.sign(msg)), true);
    assert.equal(v.verify(kp.getPublicKey(), "server", msg, kp.sign(msg)), true);
    const sig = new Uint8Array(signer.sign(msg));
    sig[5] = (sig[5] ?? 0) ^ 1;
    assert.equal(v.verify(kp.getPublicKey(), "server", msg, sig), false);
    assert.equal(v.verify(kp.getPublicKey(), "server", te.encode("other input"), signer.sign(msg)), false);
    assert.equal(v.verify(kp.getPublicKey(), "server", msg, sig.subarray(0, 63)), false);
  });

  test("a signature by another key does not verify", () => {
    const other = signerFromSeed(seedOf(createServer()), "server");
    assert.equal(new Verifier().verify(kp.getPublicKey(), "server", msg, other.sign(msg)), false);
  });

  test("throws KeyError for a key of the wrong role, also once cached", () => {
    const v = new Verifier();
    assert.throws(() => v.verify(createAccount().getPublicKey(), "server", msg, signer.sign(msg)), KeyError);
    v.verify(kp.getPublicKey(), "server", msg, signer.sign(msg));
    assert.throws(() => v.verify(kp.getPublicKey(), "account", msg, signer.sign(msg)), KeyError);
  });

  test("the key cache is bounded", () => {
    const v = new Verifier(3);
    for (let i = 0; i < 6; i++) {
      const k = createServer();
      const s = signerFromSeed(seedOf(k), "server");
      assert.equal(v.verify(k.getPublicKey(), "server", msg, s.sign(msg)), true);
    }
    assert.equal(v.size, 3);
  });
});

describe("xkey", () => {
  const service = createCurve();
  const server = createCurve();
  const x = xkeyFromSeed(seedOf(service));

  test("public key matches nkeys", () => {
    assert.equal(x.publicKey, service.getPublicKey());
  });

  test("opens what nkeys sealed, and nkeys opens what we sealed", () => {
    const sealed = server.seal(te.encode("hello request"), service.getPublicKey());
    assert.equal(td.decode(x.open(sealed, server.getPublicKey())), "hello request");
    const reply = x.seal(te.encode("hello reply"), server.getPublicKey());
    assert.equal(td.decode(reply.subarray(0, 4)), "xkv1");
    const opened = server.open(reply, service.getPublicKey());
    assert.ok(opened);
    assert.equal(td.decode(opened), "hello reply");
  });

  test("each seal uses a fresh nonce", () => {
    const a = x.seal(te.encode("same"), server.getPublicKey());
    const b = x.seal(te.encode("same"), server.getPublicKey());
    assert.notDeepEqual(Buffer.from(a), Buffer.from(b));
  });

  test("nonces stay distinct and every seal opens across refills of the nonce buffer (128 per fill)", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const sealed = x.seal(te.encode(`reply ${i}`), server.getPublicKey());
      seen.add(Buffer.from(sealed.subarray(4, 28)).toString("hex"));
      assert.equal(td.decode(server.open(sealed, service.getPublicKey()) as Uint8Array), `reply ${i}`);
    }
    assert.equal(seen.size, 300);
  });

  test("rejects tampered, mis-addressed, truncated and non-xkv1 messages", () => {
    const sealed = server.seal(te.encode("payload"), service.getPublicKey());
    const tampered = new Uint8Array(sealed);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
    assert.throws(() => x.open(tampered, server.getPublicKey()), KeyError);
    assert.throws(() => x.open(sealed, createCurve().getPublicKey()), KeyError);
    assert.throws(() => x.open(sealed.subarray(0, 30), server.getPublicKey()), KeyError);
    const wrongMagic = new Uint8Array(sealed);
    wrongMagic[0] = 0x58;
    assert.throws(() => x.open(wrongMagic, server.getPublicKey()), KeyError);
    assert.throws(() => x.open(sealed, "not-a-key"), KeyError);
    assert.throws(() => x.seal(te.encode("x"), createAccount().getPublicKey()), KeyError);
  });

  test("xkeyFromSeed rejects non-curve seeds without echoing them", () => {
    const seed = seedOf(createAccount());
    assert.throws(
      () => xkeyFromSeed(seed),
      (e: unknown) => e instanceof KeyError && !e.message.includes(seed),
    );
    assert.throws(() => xkeyFromSeed(corrupt(seedOf(createCurve()))), KeyError);
  });
});
