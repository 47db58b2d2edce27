import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createAccount, createServer, createUser } from "@nats-io/nkeys";
import { decode as natsDecode, encodeUser } from "@nats-io/jwt";
import { RequestDecodeError } from "../../../src/errors.js";
import { signerFromSeed, Verifier } from "../../../src/callout/keys.js";
import {
  base32NoPad,
  decodeJwt,
  encodeJwt,
  encodeJwtBytes,
  parseJwt,
  verifyJwt,
  DEFAULT_MAX_JWT_BYTES,
} from "../../../src/callout/jwt.js";

const td = new TextDecoder();
const account = createAccount();
const signer = signerFromSeed(td.decode(account.getSeed()), "account");
const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEADER = b64({ typ: "JWT", alg: "ed25519-nkey" });

function isDecodeError(e: unknown): boolean {
  return e instanceof RequestDecodeError && e.code === "request_decode_error";
}

/** A token with the given header/claims, validly signed by `signer`. */
function forge(header: unknown, claims: unknown): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${Buffer.from(signer.sign(Buffer.from(input))).toString("base64url")}`;
}

describe("base32NoPad", () => {
  test("RFC 4648 test vectors without padding", () => {
    const vectors: [string, string][] = [
      ["", ""],
      ["f", "MY"],
      ["fo", "MZXQ"],
      ["foo", "MZXW6"],
      ["foob", "MZXW6YQ"],
      ["fooba", "MZXW6YTB"],
      ["foobar", "MZXW6YTBOI"],
    ];
    for (const [i, o] of vectors) assert.equal(base32NoPad(Buffer.from(i)), o);
  });
});

describe("encodeJwt", () => {
  const now = 1_700_000_000_123;
  const token = encodeJwt(
    { sub: "UXYZ", aud: "APP", exp: 1_700_000_060, nats: { type: "user", version: 2 } },
    signer,
    now,
  );

  test("writes the v2 header, iss, iat and a SHA-512/256 base32 jti", () => {
    const [h, c] = token.split(".");
    assert.equal(h, HEADER);
    const claims = JSON.parse(Buffer.from(c!, "base64url").toString()) as Record<string, unknown>;
    assert.equal(claims.iss, signer.publicKey);
    assert.equal(claims.iat, 1_700_000_000);
    assert.equal(claims.exp, 1_700_000_060);
    const { jti, ...rest } = claims;
    assert.match(String(jti), /^[A-Z2-7]{52}$/);
    assert.equal(jti, base32NoPad(createHash("sha512-256").update(JSON.stringify(rest)).digest()));
  });

  test("the claims text is exactly the whole claims serialised with jti in nats-io/jwt's key order", () => {
    const cases: Record<string, unknown>[] = [
      { sub: "UXYZ", aud: "APP", exp: 1_700_000_060, nats: { type: "user", version: 2 } },
      { sub: "U" },
      { exp: 5, name: "n", nbf: 1, nats: { pub: { allow: ["a.>"] } } },
      { aud: "A", sub: "U", custom: { x: [1, "y"] }, nats: { z: 1 } },
      { aud: 'quote " and \\ backslash', sub: "\u2028 line sep" },
      // Multi-byte text before and after jti (the token is assembled in bytes, so offsets are byte counts).
      { aud: "Zürich-😀", exp: 7, name: "Grüße ß", nats: { tags: ["é", "𝄞"] } },
      { aud: "é", sub: "😀" },
    ];
    for (const claims of cases) {
      const t = encodeJwt(claims as never, signer, now);
      const text = Buffer.from(t.split(".")[1]!, "base64url").toString();
      const { aud, exp, name, nbf, sub, nats, ...rest } = claims;
      const whole = (jti: string | undefined) =>
        JSON.stringify({
          aud,
          exp,
          jti,
          iat: 1_700_000_000,
          iss: signer.publicKey,
          name,
          nbf,
          sub,
          ...rest,
          nats,
        });
      const jti = base32NoPad(createHash("sha512-256").update(whole(undefined)).digest());
      assert.equal(text, whole(jti));
    }
  });

  test("the token's bytes are the token (encodeJwtBytes), and verify", () => {
    const claims = { aud: "Zürich", sub: "UXYZ", nats: { type: "user", version: 2 } };
    const bytes = encodeJwtBytes(claims, signer, now);
    const t = encodeJwt(claims, signer, now);
    assert.equal(bytes.toString("utf8"), t, "ASCII: the same text either way");
    const [h, c, sig] = t.split(".");
    assert.equal(sig!.length, 86);
    assert.ok(
      new Verifier().verify(
        signer.publicKey,
        "account",
        Buffer.from(`${h}.${c}`),
        Buffer.from(sig!, "base64url"),
      ),
    );
  });

  test("never lets the caller choose iss, iat or jti", () => {
    const t = encodeJwt({ sub: "U", iss: "AEVIL", iat: 1, jti: "X" } as never, signer, now);
    const c = parseJwt(t).claims;
    assert.equal(c.iss, signer.publicKey);
    assert.equal(c.iat, 1_700_000_000);
    assert.notEqual(c.jti, "X");
  });

  test("different claims give different jti", () => {
    const a = parseJwt(encodeJwt({ sub: "U", nats: { a: 1 } }, signer, now)).claims.jti;
    const b = parseJwt(encodeJwt({ sub: "U", nats: { a: 2 } }, signer, now)).claims.jti;
    assert.notEqual(a, b);
  });

  test("round trips through our decoder and @nats-io/jwt's decoder (signature verified)", () => {
    const c = decodeJwt(token, { verifier: new Verifier(), issuerKind: "account" });
    assert.equal(c.sub, "UXYZ");
    const n = natsDecode<Record<string, unknown>>(token);
    assert.equal(n.iss, signer.publicKey);
    assert.equal(n.aud, "APP");
  });
});

describe("parseJwt / verifyJwt / decodeJwt rejections", () => {
  const good = encodeJwt({ sub: "U", exp: 2_000_000_000 }, signer);
  const [gh, gc, gs] = good.split(".") as [string, string, string];
  const verifier = new Verifier();
  const dec = (t: string, maxBytes?: number) =>
    decodeJwt(t, { verifier, issuerKind: "account", ...(maxBytes ? { maxBytes } : {}) });

  test("accepts the good token, also one encoded by @nats-io/jwt (tweetnacl)", async () => {
    assert.equal(dec(good).sub, "U");
    const ukp = createUser();
    const theirs = await encodeUser("bob", ukp, account, { pub: { allow: ["a"] } }, { aud: "APP" });
    const c = dec(theirs);
    assert.equal(c.sub, ukp.getPublicKey());
    assert.equal(c.name, "bob");
  });

  const cases: [string, () => string][] = [
    ["two parts", () => `${gh}.${gc}`],
    ["four parts", () => `${good}.x`],
    ["empty", () => ""],
    ["non-base64url header", () => `${gh}+.${gc}.${gs}`],
    ["padded base64", () => `${gh}=.${gc}.${gs}`],
    [
      "non-canonical base64 (stray bits)",
      () => `${gh}.${gc}.${gs.slice(0, -1)}${B64[B64.indexOf(gs.slice(-1)) + 1]}`,
    ],
    ["impossible base64 length", () => `${gh}.${gc}A.${gs}`],
    ["header not JSON", () => `${b64("not json")}.${gc}.${gs}`],
    ["claims not JSON", () => forge({ typ: "JWT", alg: "ed25519-nkey" }, "{oops")],
    ["claims JSON array", () => forge({ typ: "JWT", alg: "ed25519-nkey" }, [1, 2])],
    ["claims JSON null", () => forge({ typ: "JWT", alg: "ed25519-nkey" }, null)],
    ["claims invalid UTF-8", () => `${gh}.${Buffer.from([0x7b, 0xff, 0x7d]).toString("base64url")}.${gs}`],
    ["wrong typ", () => forge({ typ: "JWS", alg: "ed25519-nkey" }, { sub: "U", iss: signer.publicKey })],
    ["v1 alg", () => forge({ typ: "JWT", alg: "ed25519" }, { sub: "U", iss: signer.publicKey })],
    ["HS256 alg", () => forge({ typ: "JWT", alg: "HS256" }, { sub: "U", iss: signer.publicKey })],
    ["no alg", () => forge({ typ: "JWT" }, { sub: "U", iss: signer.publicKey })],
    ["short signature", () => `${gh}.${gc}.${gs.slice(0, 40)}`],
    [
      "forged claims (signature of other claims)",
      () => `${gh}.${b64({ ...parseJwt(good).claims, sub: "V" })}.${gs}`,
    ],
    ["iss missing", () => forge({ typ: "JWT", alg: "ed25519-nkey" }, { sub: "U" })],
    [
      "iss of wrong role",
      () => forge({ typ: "JWT", alg: "ed25519-nkey" }, { sub: "U", iss: createServer().getPublicKey() }),
    ],
  ];
  for (const [name, make] of cases) {
    test(`rejects: ${name}`, () => {
      assert.throws(() => dec(make()), isDecodeError);
    });
  }

  test("the stray-bits signature is rejected as non-canonical, not merely as a bad signature", () => {
    assert.throws(
      () => dec(`${gh}.${gc}.${gs.slice(0, -1)}${B64[B64.indexOf(gs.slice(-1)) + 1]}`),
      /canonical/,
    );
  });

  test("rejects a token signed by another key than iss", () => {
    const other = signerFromSeed(td.decode(createAccount().getSeed()), "account");
    const input = `${gh}.${gc}`;
    const t = `${input}.${Buffer.from(other.sign(Buffer.from(input))).toString("base64url")}`;
    assert.throws(() => dec(t), /bad signature/);
  });

  test("rejects oversize tokens before parsing (default cap 64 KiB)", () => {
    assert.equal(DEFAULT_MAX_JWT_BYTES, 65536);
    const big = encodeJwt({ sub: "U", nats: { pad: "x".repeat(70_000) } }, signer);
    assert.throws(() => dec(big), /larger than/);
    assert.throws(() => dec(good, 100), /larger than 100/);
    assert.equal(dec(encodeJwt({ sub: "U", nats: { pad: "x".repeat(1000) } }, signer), 4096).sub, "U");
  });

  test("verifyJwt alone checks the signature of a parsed token", () => {
    const p = parseJwt(good);
    verifyJwt(p, verifier, "account");
    const bad = { ...p, signature: new Uint8Array(64) };
    assert.throws(() => verifyJwt(bad, verifier, "account"), isDecodeError);
  });
});
