// TEST-ONLY: re-mints the IdP bearer JWTs used by policies/cases/jwt.json and
// policies/authz/jwt_test.rego. The private keys next to this file exist only to sign
// test tokens; the policy data (policies/data.json) holds nothing but the public key.
//
//   node policies/testdata/mint-test-jwts.mjs > /tmp/tokens.json
//
// ES256 signatures are raw r||s (IEEE P1363), as JWS requires, not DER.
import { createHmac, createPrivateKey, sign } from "node:crypto";
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import process from "node:process";
import { URL } from "node:url";

const here = new URL(".", import.meta.url);
const idpKey = createPrivateKey(readFileSync(new URL("idp-es256.TEST-ONLY.key.pem", here)));
const attackerKey = createPrivateKey(readFileSync(new URL("attacker-es256.TEST-ONLY.key.pem", here)));
const idpPublicPem = readFileSync(new URL("idp-es256.pub.pem", here), "utf8");

const b64u = (value) => Buffer.from(value).toString("base64url");
const segment = (obj) => b64u(JSON.stringify(obj));

function es256(header, claims, key = idpKey) {
  const input = `${segment(header)}.${segment(claims)}`;
  const sig = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  return `${input}.${b64u(sig)}`;
}

function hs256(header, claims, secret) {
  const input = `${segment(header)}.${segment(claims)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

// Frozen clock of the JWT golden cases: 2025-06-04T10:00:00Z.
const NOW = 1749031200;
const FAR = 4102444800; // 2100-01-01T00:00:00Z
const header = { alg: "ES256", typ: "JWT", kid: "demo-es256-1" };
const base = { iss: "https://idp.example.test", aud: "nats", iat: NOW - 1200 };

const tokens = {
  valid_frank: es256(header, { ...base, sub: "frank", groups: ["orders-team"], exp: FAR }),
  short_grace: es256(header, {
    ...base,
    sub: "grace",
    groups: ["orders-viewers", "unmapped"],
    exp: NOW + 600,
  }),
  support_heidi: es256(header, { ...base, sub: "heidi", groups: ["support"], exp: FAR }),
  expired_frank: es256(header, {
    ...base,
    sub: "frank",
    groups: ["orders-team"],
    iat: NOW - 7200,
    exp: NOW - 3600,
  }),
  not_yet_valid: es256(header, { ...base, sub: "frank", groups: ["orders-team"], nbf: NOW + 3600, exp: FAR }),
  bad_signature: es256(header, { ...base, sub: "frank", groups: ["orders-team"], exp: FAR }, attackerKey),
  wrong_issuer: es256(header, {
    ...base,
    iss: "https://evil.example.test",
    sub: "frank",
    groups: ["orders-team"],
    exp: FAR,
  }),
  wrong_audience: es256(header, {
    ...base,
    aud: "other-service",
    sub: "frank",
    groups: ["orders-team"],
    exp: FAR,
  }),
  no_exp: es256(header, { ...base, sub: "frank", groups: ["orders-team"] }),
  unknown_kid: es256(
    { ...header, kid: "retired-key" },
    { ...base, sub: "frank", groups: ["orders-team"], exp: FAR },
  ),
  hs256_key_confusion: hs256(
    { alg: "HS256", typ: "JWT", kid: "demo-es256-1" },
    { ...base, sub: "frank", groups: ["orders-team"], exp: FAR },
    idpPublicPem,
  ),
  alg_none: `${segment({ alg: "none", typ: "JWT", kid: "demo-es256-1" })}.${segment({ ...base, sub: "frank", groups: ["orders-team"], exp: FAR })}.`,
  sub_with_dot: es256(header, { ...base, sub: "fr.ank", groups: ["orders-team"], exp: FAR }),
  sub_wildcard: es256(header, { ...base, sub: "*", groups: ["orders-team"], exp: FAR }),
  unmapped_groups: es256(header, { ...base, sub: "ivan", groups: ["marketing"], exp: FAR }),
  groups_not_array: es256(header, { ...base, sub: "judy", groups: "orders-team", exp: FAR }),
};

process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
