import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createAccount, createUser } from "@nats-io/nkeys";
import { decode as natsDecode } from "@nats-io/jwt";
import { RequestDecodeError } from "../../../src/errors.js";
import { Verifier } from "../../../src/callout/keys.js";
import { AnswerableDecodeError, decodeRequest, type DecodeOptions } from "../../../src/callout/decode.js";
import {
  buildRequest,
  makeKeys,
  newAccountKey,
  newServerKey,
  newXKey,
  type RequestOptions,
} from "../../support/index.js";

const keys = makeKeys();
const PASSWORD = "s3cret-pass";
const baseOpts = (o: Partial<DecodeOptions> = {}): DecodeOptions => ({
  verifier: new Verifier(),
  expectedIssuer: keys.issuer.publicKey,
  ...o,
});
const sealedOpts = (o: Partial<DecodeOptions> = {}) => baseOpts({ xkey: keys.xkey.xkey, ...o });

function decode(ro: RequestOptions = {}, o: Partial<DecodeOptions> = {}) {
  const r = buildRequest(keys, ro);
  return decodeRequest(r.data, r.header, ro.sealed ? sealedOpts(o) : baseOpts(o));
}

/** Asserts a RequestDecodeError with `code` whose message matches `re` and leaks no secret. */
function rejects(fn: () => unknown, code: string, re?: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RequestDecodeError, `expected RequestDecodeError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    assert.ok(!e.message.includes(PASSWORD));
    return true;
  });
}

describe("decodeRequest accepts what nats-server sends", () => {
  test("plaintext request → verified AuthorizationRequest", () => {
    const r = buildRequest(keys, {
      client_info: { name_tag: "tag1", tags: ["a"] },
      server_id: { cluster: "c1", tags: ["t"] },
    });
    // The fixture is a real NATS JWT: @nats-io/jwt verifies it too.
    assert.equal(natsDecode<Record<string, unknown>>(r.token).iss, keys.server.publicKey);
    const req = decodeRequest(r.data, undefined, baseOpts());
    assert.equal(req.user_nkey, r.userNkey);
    assert.equal(req.server_id.id, keys.server.publicKey);
    assert.equal(req.server_id.name, "test-server");
    assert.equal(req.server_id.cluster, "c1");
    assert.deepEqual(req.server_id.tags, ["t"]);
    assert.equal(req.request_issuer, keys.issuer.publicKey);
    assert.equal(req.client_info.user, "alice");
    assert.equal(req.client_info.id, 7);
    assert.equal(req.client_info.name_tag, "tag1");
    assert.equal(req.connect_opts.pass, PASSWORD);
    assert.equal(req.connect_opts.protocol, 1);
    assert.equal(req.encrypted, false);
    assert.equal(req.expires_at - req.issued_at, 2);
    assert.equal(req.client_tls, undefined);
  });

  test("sealed request (sealed by nkeys/tweetnacl) → opened with our cached box key", () => {
    const req = decode({ sealed: true });
    assert.equal(req.encrypted, true);
    assert.equal(req.server_id.xkey, keys.serverXkey.publicKey);
    assert.equal(req.connect_opts.user, "alice");
  });

  test("a request signed by tweetnacl (nkeys KeyPair) verifies on node:crypto", () => {
    const kp = keys.server.kp;
    const req = decode({ signer: { publicKey: kp.getPublicKey(), sign: (d) => kp.sign(d) } });
    assert.equal(req.server_id.id, kp.getPublicKey());
  });

  test("client_tls is passed through; unknown extra fields are dropped", () => {
    const req = decode({
      client_tls: {
        version: "1.3",
        cipher: "TLS_AES_128_GCM_SHA256",
        verified_chains: [["-----BEGIN CERT"]],
      },
      client_info: { future_field: 1 },
      nats: { request_nonce: "abc" },
    });
    assert.deepEqual(req.client_tls, {
      version: "1.3",
      cipher: "TLS_AES_128_GCM_SHA256",
      verified_chains: [["-----BEGIN CERT"]],
    });
    assert.equal((req.client_info as Record<string, unknown>).future_field, undefined);
  });

  test("exp within the clock skew is accepted; without expectedIssuer any A-key sub is accepted", () => {
    const now = Date.now();
    const req = decode({ now: now - 6000 }, { now, clockSkewSeconds: 5 });
    assert.ok(req.expires_at < Math.floor(now / 1000));
    assert.ok(decode({ claims: { sub: createAccount().getPublicKey() } }, { expectedIssuer: undefined }));
  });
});

describe("decodeRequest rejections", () => {
  test("forged signature (claims changed after signing)", () => {
    const tamper = (t: string) => {
      const [h, c, s] = t.split(".") as [string, string, string];
      const claims = JSON.parse(Buffer.from(c, "base64url").toString()) as Record<
        string,
        Record<string, unknown>
      >;
      claims.nats!.user_nkey = createUser().getPublicKey();
      return `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${s}`;
    };
    rejects(() => decode({ tamper }), "request_decode_error", /signature/);
  });

  test("signed by another server key than iss", () => {
    rejects(() => decode({ signer: newServerKey().signer }), "request_decode_error", /signature/);
  });

  test("wrong aud", () => {
    rejects(() => decode({ claims: { aud: "NATS" } }), "request_decode_error", /aud/);
    rejects(() => decode({ claims: { aud: undefined } }), "request_decode_error", /aud/);
  });

  test("non-N issuer (an account key signing as itself)", () => {
    const acc = newAccountKey();
    rejects(
      () => decode({ signer: acc.signer, claims: { iss: acc.publicKey }, server_id: { id: acc.publicKey } }),
      "request_decode_error",
      /iss/,
    );
  });

  test("iss != server_id.id (both valid N keys)", () => {
    rejects(
      () => decode({ server_id: { id: newServerKey().publicKey } }),
      "request_decode_error",
      /server_id\.id/,
    );
    rejects(() => decode({ nats: { server_id: undefined } }), "request_decode_error", /server_id/);
  });

  test("expired → request_expired, checked before the signature", () => {
    const now = Date.now();
    rejects(() => decode({ now: now - 60_000 }), "request_expired");
    // Expired AND forged: the cheap exp check answers first.
    rejects(() => decode({ now: now - 60_000, signer: newServerKey().signer }), "request_expired");
    rejects(() => decode({ now: now - 8000 }, { now, clockSkewSeconds: 5 }), "request_expired");
  });

  test("exp missing or not an integer; nbf in the future", () => {
    rejects(() => decode({ claims: { exp: undefined } }), "request_decode_error", /exp/);
    rejects(() => decode({ claims: { exp: "2000000000" } }), "request_decode_error", /exp/);
    rejects(
      () => decode({ claims: { nbf: Math.floor(Date.now() / 1000) + 60 } }),
      "request_decode_error",
      /valid/,
    );
  });

  test("malformed base64 / JSON / header", () => {
    rejects(() => decode({ tamper: (t) => t.replace(".", "!.") }), "request_decode_error", /base64/);
    rejects(
      () => decode({ tamper: (t) => t.split(".").slice(0, 2).join(".") }),
      "request_decode_error",
      /3 parts/,
    );
    rejects(
      () => decode({ tamper: (t) => `eyJub3QganNvbg.${t.split(".").slice(1).join(".")}` }),
      "request_decode_error",
      /JSON/,
    );
    rejects(() => decode({ jwtHeader: { alg: "ed25519" } }), "request_decode_error", /alg/);
    const garbage = new TextEncoder().encode("eyJ\u00ff\u00fe");
    rejects(() => decodeRequest(garbage, undefined, baseOpts()), "request_decode_error");
    rejects(() => decodeRequest(new Uint8Array(0), undefined, baseOpts()), "request_decode_error", /empty/);
  });

  test("oversize request (raw bytes cap, sealed or not)", () => {
    rejects(
      () => decode({ client_info: { name: "n".repeat(2000) } }, { maxRequestBytes: 1024 }),
      "request_decode_error",
      /larger/,
    );
    rejects(
      () => decode({ sealed: true, client_info: { name: "n".repeat(2000) } }, { maxRequestBytes: 1024 }),
      "request_decode_error",
      /larger/,
    );
    const r = buildRequest(keys, { client_info: { name: "n".repeat(70_000) } });
    rejects(() => decodeRequest(r.data, undefined, baseOpts()), "request_decode_error", /larger than 65536/);
  });

  test("encryption mismatch, both directions", () => {
    // plaintext request, xkey configured
    const plain = buildRequest(keys);
    rejects(() => decodeRequest(plain.data, undefined, sealedOpts()), "encryption_mismatch");
    // sealed request, no xkey configured
    const sealed = buildRequest(keys, { sealed: true });
    rejects(() => decodeRequest(sealed.data, sealed.header, baseOpts()), "encryption_mismatch");
    // plaintext with an xkey header, or with server_id.xkey, and no xkey configured
    rejects(() => decodeRequest(plain.data, keys.serverXkey.publicKey, baseOpts()), "encryption_mismatch");
    rejects(() => decode({ server_id: { xkey: keys.serverXkey.publicKey } }), "encryption_mismatch");
  });

  test("header xkey != server_id.xkey", () => {
    rejects(
      () => decode({ sealed: true, server_id: { xkey: newXKey().publicKey } }),
      "request_decode_error",
      /server_id\.xkey/,
    );
    rejects(
      () => decode({ sealed: true, server_id: { xkey: undefined } }),
      "request_decode_error",
      /server_id\.xkey/,
    );
    // header names another key than the one that sealed: cannot open
    rejects(() => decode({ sealed: true, header: newXKey().publicKey }), "request_decode_error", /open/);
    rejects(() => decode({ sealed: true, header: null }), "request_decode_error", /header/);
    // sealed for someone else
    rejects(() => decode({ sealed: true, sealTo: newXKey().publicKey }), "request_decode_error", /open/);
  });

  test("bad user_nkey", () => {
    rejects(() => decode({ userNkey: createAccount().getPublicKey() }), "request_decode_error", /user_nkey/);
    const u = createUser().getPublicKey();
    rejects(
      () => decode({ userNkey: u.slice(0, 20) + (u[20] === "A" ? "B" : "A") + u.slice(21) }),
      "request_decode_error",
      /user_nkey/,
    );
    rejects(() => decode({ nats: { user_nkey: undefined } }), "request_decode_error", /user_nkey/);
  });

  test("wrong nats.type / version, missing nats", () => {
    rejects(() => decode({ nats: { type: "user" } }), "request_decode_error", /type/);
    rejects(() => decode({ nats: { version: 3 } }), "request_decode_error", /version/);
    rejects(() => decode({ claims: { nats: undefined } }), "request_decode_error", /nats/);
  });

  test("sub is not the configured issuer / not an account key", () => {
    rejects(() => decode({ claims: { sub: createAccount().getPublicKey() } }), "request_decode_error", /sub/);
    rejects(
      () => decode({ claims: { sub: "APP" } }, { expectedIssuer: undefined }),
      "request_decode_error",
      /sub/,
    );
  });

  test("malformed optional fields of an authentic request → AnswerableDecodeError with the reply target", () => {
    const cases: RequestOptions[] = [
      { client_info: { host: 42 } },
      { client_info: { id: -1 } },
      { client_info: { tags: "x" } },
      { connect_opts: { pass: { nested: true } } },
      { nats: { connect_opts: undefined } },
      { nats: { client_info: [] } },
      { server_id: { name: undefined } },
      { client_tls: { verified_chains: ["not-a-chain"] } } as RequestOptions,
      { claims: { iat: "now" } },
    ];
    for (const ro of cases) {
      const r = buildRequest(keys, ro);
      assert.throws(
        () => decodeRequest(r.data, r.header, baseOpts()),
        (e: unknown) =>
          e instanceof AnswerableDecodeError &&
          e.code === "request_decode_error" &&
          e.target.user_nkey === r.userNkey &&
          e.target.server_id.id === keys.server.publicKey &&
          e.target.encrypted === false,
        JSON.stringify(ro),
      );
    }
    const s = buildRequest(keys, { sealed: true, client_info: { host: 1 } });
    assert.throws(
      () => decodeRequest(s.data, s.header, sealedOpts()),
      (e: unknown) =>
        e instanceof AnswerableDecodeError &&
        e.target.encrypted &&
        e.target.server_id.xkey === keys.serverXkey.publicKey,
    );
  });

  test("non-answerable failures are plain RequestDecodeErrors", () => {
    assert.throws(
      () => decode({ claims: { aud: "x" } }),
      (e: unknown) => e instanceof RequestDecodeError && !(e instanceof AnswerableDecodeError),
    );
  });
});
