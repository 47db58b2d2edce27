import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { decode as natsDecode } from "@nats-io/jwt";
import { ResponseEncodeError } from "../../../src/errors.js";
import { Verifier } from "../../../src/callout/keys.js";
import { decodeJwt } from "../../../src/callout/jwt.js";
import {
  encodeResponse,
  sanitizeErrorText,
  DEFAULT_RESPONSE_EXPIRY_SECONDS,
  MAX_ERROR_LENGTH,
} from "../../../src/callout/respond.js";
import type { ReplyTarget } from "../../../src/callout/decode.js";
import { makeKeys, newAccountKey, newUserNkey, openResponse } from "../../support/index.js";

const keys = makeKeys();
const td = new TextDecoder();
const plainTarget: ReplyTarget = {
  user_nkey: newUserNkey(),
  server_id: { id: keys.server.publicKey },
  encrypted: false,
};
const sealedTarget: ReplyTarget = {
  user_nkey: plainTarget.user_nkey,
  server_id: { id: keys.server.publicKey, xkey: keys.serverXkey.publicKey },
  encrypted: true,
};
const claimsOf = (reply: Uint8Array) =>
  decodeJwt(td.decode(reply), { verifier: new Verifier(), issuerKind: "account" });

describe("encodeResponse", () => {
  test("allow: iss = signer, sub = user_nkey, aud = server id, short exp, nats.jwt", () => {
    const now = Date.now();
    const reply = encodeResponse(
      plainTarget,
      { jwt: "eyJ.user.jwt" },
      { signer: keys.issuer.signer, nowMs: now },
    );
    const c = claimsOf(reply);
    assert.equal(c.iss, keys.issuer.publicKey);
    assert.equal(c.sub, plainTarget.user_nkey);
    assert.equal(c.aud, keys.server.publicKey);
    assert.equal(c.exp, Math.floor(now / 1000) + DEFAULT_RESPONSE_EXPIRY_SECONDS);
    assert.ok((c.exp as number) > Math.floor(now / 1000));
    assert.deepEqual(c.nats, { jwt: "eyJ.user.jwt", type: "authorization_response", version: 2 });
    // @nats-io/jwt verifies the signature too
    assert.equal(natsDecode<Record<string, unknown>>(td.decode(reply)).sub, plainTarget.user_nkey);
  });

  test("deny: signed error envelope without jwt", () => {
    const c = claimsOf(
      encodeResponse(plainTarget, { error: "bad_credentials" }, { signer: keys.issuer.signer }),
    );
    assert.deepEqual(c.nats, { error: "bad_credentials", type: "authorization_response", version: 2 });
  });

  test("error text is sanitised: control chars removed, bounded, never empty", () => {
    assert.equal(sanitizeErrorText("a\nb\u0000c"), "a b c");
    assert.equal(sanitizeErrorText("x".repeat(5000)).length, MAX_ERROR_LENGTH);
    assert.equal(sanitizeErrorText(""), "denied");
    assert.equal(sanitizeErrorText("\n\t"), "denied");
  });

  test("expirySeconds is honoured (min 1)", () => {
    const now = 1_800_000_000_000;
    const exp = (s: number) =>
      claimsOf(
        encodeResponse(
          plainTarget,
          { error: "x" },
          { signer: keys.issuer.signer, nowMs: now, expirySeconds: s },
        ),
      ).exp;
    // decodeJwt does not check exp, so a fixed clock is fine here
    assert.equal(exp(30), 1_800_000_030);
    assert.equal(exp(0), 1_800_000_001);
  });

  test("operator mode: issuer_account when a signing key signs, omitted when the account signs", () => {
    const sk = newAccountKey();
    const viaSk = claimsOf(
      encodeResponse(
        plainTarget,
        { error: "x" },
        { signer: sk.signer, issuerAccount: keys.issuer.publicKey },
      ),
    );
    assert.equal(viaSk.iss, sk.publicKey);
    assert.equal((viaSk.nats as Record<string, unknown>).issuer_account, keys.issuer.publicKey);
    const direct = claimsOf(
      encodeResponse(
        plainTarget,
        { error: "x" },
        { signer: keys.issuer.signer, issuerAccount: keys.issuer.publicKey },
      ),
    );
    assert.equal((direct.nats as Record<string, unknown>).issuer_account, undefined);
  });

  test("sealed when the request was sealed; the server (nkeys CurveKP) opens it", () => {
    const reply = encodeResponse(
      sealedTarget,
      { jwt: "eyJ.x.y" },
      { signer: keys.issuer.signer, xkey: keys.xkey.xkey },
    );
    assert.equal(td.decode(reply.subarray(0, 4)), "xkv1");
    const token = openResponse(keys, reply, true);
    assert.equal(natsDecode<Record<string, unknown>>(token).nats.jwt, "eyJ.x.y");
    const plain = encodeResponse(
      plainTarget,
      { jwt: "eyJ.x.y" },
      { signer: keys.issuer.signer, xkey: keys.xkey.xkey },
    );
    assert.equal(td.decode(plain.subarray(0, 3)), "eyJ");
  });

  test("faults are ResponseEncodeErrors", () => {
    assert.throws(
      () => encodeResponse(sealedTarget, { jwt: "a" }, { signer: keys.issuer.signer }),
      ResponseEncodeError,
    );
    assert.throws(
      () =>
        encodeResponse(
          { ...sealedTarget, server_id: { id: keys.server.publicKey } },
          { jwt: "a" },
          {
            signer: keys.issuer.signer,
            xkey: keys.xkey.xkey,
          },
        ),
      ResponseEncodeError,
    );
    assert.throws(
      () =>
        encodeResponse(
          { ...sealedTarget, server_id: { id: keys.server.publicKey, xkey: "Xbad" } },
          { jwt: "a" },
          {
            signer: keys.issuer.signer,
            xkey: keys.xkey.xkey,
          },
        ),
      ResponseEncodeError,
    );
    assert.throws(
      () => encodeResponse(plainTarget, { jwt: "" }, { signer: keys.issuer.signer }),
      ResponseEncodeError,
    );
    const broken = {
      publicKey: keys.issuer.publicKey,
      sign: () => {
        throw new Error("hsm down");
      },
    };
    assert.throws(() => encodeResponse(plainTarget, { jwt: "a" }, { signer: broken }), ResponseEncodeError);
  });
});
