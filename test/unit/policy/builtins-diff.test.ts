/**
 * Differential tests of the host builtins: the same Rego (test/fixtures/policies/builtins-diff) on the
 * same input, once through the real `opa eval` (OPA's Go evaluator) and once compiled with
 * `opa build -t wasm` and run in our engine. Every case must give the same result, including
 * "undefined" (OPA's default mode turns builtin errors into undefined).
 *
 * Keys and tokens are generated here with node:crypto. Integer results are compared as JSON text,
 * so nanoseconds are compared exactly.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHmac, createPublicKey, sign as cryptoSign, constants, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { before, describe, test } from "node:test";
import { readBundle } from "../../../src/policy/bundle.js";
import { PolicyEngine } from "../../../src/policy/engine.js";
import {
  FIXTURES,
  buildWasmFixture,
  jsonWithBigInts,
  keyPair,
  opaEval,
  skipWithoutOpa,
  type AsymmetricKeySpec,
} from "../../support/index.js";

const FIXTURE = path.join(FIXTURES, "builtins-diff", "diff.rego");

// ---- keys and tokens ----

const b64u = (b: Buffer | string): string => Buffer.from(b).toString("base64url");

function rsaKeys(): { priv: KeyObject; pub: KeyObject } {
  return keyPair({ rsa: 2048 });
}
/** generateKeyPairSync's shape, from test/support's keyPair (openssl: no node:crypto key-generation job to hang on). */
function generated(spec: AsymmetricKeySpec): { privateKey: KeyObject; publicKey: KeyObject } {
  const k = keyPair(spec);
  return { privateKey: k.priv, publicKey: k.pub };
}
const rsa = rsaKeys();
const rsa2 = rsaKeys();
const ec256 = generated({ ec: "P-256" });
const ec384 = generated({ ec: "P-384" });
const ec521 = generated({ ec: "P-521" });
const ec256b = generated({ ec: "P-256" });
const ed = generated("ed25519");
const ed2 = generated("ed25519");

const pem = (k: KeyObject): string => k.export({ type: "spki", format: "pem" }) as string;
const jwk = (k: KeyObject, extra: Record<string, string> = {}): Record<string, unknown> => ({
  ...(k.export({ format: "jwk" }) as Record<string, unknown>),
  ...extra,
});

type Alg =
  | "HS256"
  | "HS384"
  | "HS512"
  | "RS256"
  | "RS384"
  | "RS512"
  | "PS256"
  | "PS384"
  | "PS512"
  | "ES256"
  | "ES384"
  | "ES512"
  | "EdDSA";

function signWith(
  alg: string,
  key: KeyObject | string,
  input: string,
  opts: { pssSalt?: number } = {},
): Buffer {
  const bits = alg.slice(2);
  const hash = `sha${bits}`;
  if (alg.startsWith("HS"))
    return createHmac(hash, key as string)
      .update(input)
      .digest();
  if (alg === "EdDSA") return cryptoSign(null, Buffer.from(input), key as KeyObject);
  if (alg.startsWith("RS")) return cryptoSign(hash, Buffer.from(input), key as KeyObject);
  if (alg.startsWith("PS")) {
    return cryptoSign(hash, Buffer.from(input), {
      key: key as KeyObject,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: opts.pssSalt ?? constants.RSA_PSS_SALTLEN_DIGEST,
    });
  }
  return cryptoSign(hash, Buffer.from(input), { key: key as KeyObject, dsaEncoding: "ieee-p1363" });
}

function token(
  alg: Alg | string,
  key: KeyObject | string,
  payload: Record<string, unknown> | string,
  header: Record<string, unknown> = {},
  opts: { pssSalt?: number } = {},
): string {
  const h = b64u(JSON.stringify({ alg, typ: "JWT", ...header }));
  const p = b64u(typeof payload === "string" ? payload : JSON.stringify(payload));
  const input = `${h}.${p}`;
  return `${input}.${b64u(signWith(alg, key, input, opts))}`;
}

const NOW_S = 1_760_000_000; // fixed "now" for time constraints (2025-10-09)
const T = BigInt(NOW_S) * 1_000_000_000n;
const FUTURE = 4_102_444_800; // 2100-01-01
/** `opa eval` runs without --strict-builtin-errors: compare with the engine's lax mode (failures → undefined). */
const LAX = { strictBuiltinErrors: false } as const;
const claims = { sub: "alice", iss: "https://idp.example", exp: NOW_S + 3600, iat: NOW_S - 10 };

/** Self-signed certificate for the EC key (openssl CLI); undefined when openssl is missing. */
function selfSignedCert(key: KeyObject): string | undefined {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  const dir = mkdtempSync(path.join(tmpdir(), "cert-"));
  try {
    const keyFile = path.join(dir, "key.pem");
    writeFileSync(keyFile, key.export({ type: "pkcs8", format: "pem" }));
    const certFile = path.join(dir, "cert.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-key", keyFile, "-subj", "/CN=test", "-days", "2", "-out", certFile],
      {
        stdio: "ignore",
      },
    );
    return readFileSync(certFile, "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- case tables: builtin rule → id → argument array ----

function cases(): Record<string, Record<string, unknown[]>> {
  const hsTok = token("HS256", "s3cret", claims);
  const rsTok = token("RS256", rsa.priv, claims);
  const esTok = token("ES256", ec256.privateKey, claims);
  const edTok = token("EdDSA", ed.privateKey, claims);
  const cert = selfSignedCert(ec256.privateKey);
  const jwks = JSON.stringify({
    keys: [jwk(rsa2.pub, { kid: "other", alg: "RS256" }), jwk(rsa.pub, { kid: "k1", alg: "RS256" })],
  });
  const c = (extra: Record<string, unknown>): Record<string, unknown> => ({ time: T, ...extra });
  const t = { ...claims };
  const dv: Record<string, unknown[]> = {
    hs256_ok: [hsTok, c({ secret: "s3cret" })],
    hs256_wrong_secret: [hsTok, c({ secret: "nope" })],
    hs384_ok: [token("HS384", "k", t), c({ secret: "k" })],
    hs512_ok: [token("HS512", "k", t), c({ secret: "k" })],
    hs_alg_constraint_ok: [hsTok, c({ secret: "s3cret", alg: "HS256" })],
    hs_alg_constraint_mismatch: [hsTok, c({ secret: "s3cret", alg: "RS256" })],
    rs256_pem: [rsTok, c({ cert: pem(rsa.pub) })],
    rs256_wrong_key: [rsTok, c({ cert: pem(rsa2.pub) })],
    rs256_jwk: [rsTok, c({ cert: JSON.stringify(jwk(rsa.pub)) })],
    rs256_jwks_kid: [token("RS256", rsa.priv, t, { kid: "k1" }), c({ cert: jwks })],
    rs256_jwks_wrong_kid: [token("RS256", rsa.priv, t, { kid: "other" }), c({ cert: jwks })],
    rs256_jwks_no_kid: [rsTok, c({ cert: jwks })],
    rs256_jwks_alg_mismatch: [
      token("RS384", rsa.priv, t),
      c({ cert: JSON.stringify({ keys: [jwk(rsa.pub, { alg: "RS256" })] }) }),
    ],
    rs384_ok: [token("RS384", rsa.priv, t), c({ cert: pem(rsa.pub) })],
    rs512_ok: [token("RS512", rsa.priv, t), c({ cert: pem(rsa.pub) })],
    ps256_ok: [token("PS256", rsa.priv, t), c({ cert: pem(rsa.pub) })],
    ps384_ok: [token("PS384", rsa.priv, t), c({ cert: pem(rsa.pub) })],
    ps512_ok: [token("PS512", rsa.priv, t), c({ cert: pem(rsa.pub) })],
    ps256_max_salt: [
      token("PS256", rsa.priv, t, {}, { pssSalt: constants.RSA_PSS_SALTLEN_MAX_SIGN }),
      c({ cert: pem(rsa.pub) }),
    ],
    es256_ok: [esTok, c({ cert: pem(ec256.publicKey) })],
    es256_wrong_key: [esTok, c({ cert: pem(ec256b.publicKey) })],
    es256_jwk: [esTok, c({ cert: JSON.stringify(jwk(ec256.publicKey)) })],
    es256_der_signature: [
      (() => {
        const h = b64u(JSON.stringify({ alg: "ES256" }));
        const p = b64u(JSON.stringify(t));
        const der = cryptoSign("sha256", Buffer.from(`${h}.${p}`), ec256.privateKey);
        return `${h}.${p}.${b64u(der)}`;
      })(),
      c({ cert: pem(ec256.publicKey) }),
    ],
    es384_ok: [token("ES384", ec384.privateKey, t), c({ cert: pem(ec384.publicKey) })],
    es512_ok: [token("ES512", ec521.privateKey, t), c({ cert: pem(ec521.publicKey) })],
    eddsa_ok: [edTok, c({ cert: pem(ed.publicKey) })],
    eddsa_wrong_key: [edTok, c({ cert: pem(ed2.publicKey) })],
    eddsa_jwk: [edTok, c({ cert: JSON.stringify(jwk(ed.publicKey)) })],
    hs256_jwks_oct: [hsTok, c({ cert: JSON.stringify({ keys: [{ kty: "oct", k: b64u("s3cret") }] }) })],
    es256_p384_key: [esTok, c({ cert: pem(ec384.publicKey) })],
    rs256_private_jwk: [rsTok, c({ cert: JSON.stringify(rsa.priv.export({ format: "jwk" })) })],
    jwks_unknown_kty: [rsTok, c({ cert: JSON.stringify({ keys: [{ kty: "XYZ" }] }) })],
    jwks_unknown_alg: [
      rsTok,
      c({ cert: JSON.stringify({ keys: [jwk(rsa.pub, { alg: "RS1" }), jwk(rsa.pub)] }) }),
    ],
    jwks_non_jws_alg_skipped: [
      rsTok,
      c({
        cert: JSON.stringify({
          keys: [jwk(rsa2.pub, { alg: "RSA-OAEP" }), jwk(rsa.pub, { alg: "RSA-OAEP" })],
        }),
      }),
    ],
    jwks_es256k_skipped: [
      rsTok,
      c({ cert: JSON.stringify({ keys: [jwk(rsa.pub, { alg: "ES256K" }), jwk(rsa.pub)] }) }),
    ],
    jwks_empty: [rsTok, c({ cert: JSON.stringify({ keys: [] }) })],
    // algorithm confusion: HMAC keyed with the RSA public key PEM must not verify
    hs_with_public_key_as_secret: [token("HS256", pem(rsa.pub), t), c({ cert: pem(rsa.pub) })],
    rs_token_with_secret: [rsTok, c({ secret: pem(rsa.pub) })],
    alg_none: [
      `${b64u(JSON.stringify({ alg: "none" }))}.${b64u(JSON.stringify(t))}.`,
      c({ secret: "s3cret" }),
    ],
    no_alg: [
      (() => {
        const h = b64u(JSON.stringify({ typ: "JWT" }));
        const p = b64u(JSON.stringify(t));
        return `${h}.${p}.${b64u(createHmac("sha256", "s3cret").update(`${h}.${p}`).digest())}`;
      })(),
      c({ secret: "s3cret" }),
    ],
    crit_unknown: [
      token("HS256", "s3cret", t, { crit: ["x-custom"], "x-custom": 1 }),
      c({ secret: "s3cret" }),
    ],
    crit_known: [token("HS256", "s3cret", t, { crit: ["kid"], kid: "a" }), c({ secret: "s3cret" })],
    crit_empty: [token("HS256", "s3cret", t, { crit: [] }), c({ secret: "s3cret" })],
    alg_not_string: [token("HS256", "s3cret", t, { alg: 5 }), c({ secret: "s3cret" })],
    jwe_header: [token("HS256", "s3cret", t, { enc: "A128GCM" }), c({ secret: "s3cret" })],
    expired: [token("HS256", "k", { ...t, exp: NOW_S - 1 }), c({ secret: "k" })],
    exp_equals_now: [token("HS256", "k", { ...t, exp: NOW_S }), c({ secret: "k" })],
    exp_fraction: [token("HS256", "k", { ...t, exp: NOW_S + 0.5 }), c({ secret: "k" })],
    exp_string: [token("HS256", "k", { ...t, exp: "soon" }), c({ secret: "k" })],
    nbf_future: [token("HS256", "k", { ...t, nbf: NOW_S + 60 }), c({ secret: "k" })],
    nbf_now: [token("HS256", "k", { ...t, nbf: NOW_S }), c({ secret: "k" })],
    nbf_string: [token("HS256", "k", { ...t, nbf: "x" }), c({ secret: "k" })],
    default_time_valid: [token("HS256", "k", { ...t, exp: FUTURE }), { secret: "k" }],
    default_time_expired: [token("HS256", "k", { ...t, exp: NOW_S - 86400 * 365 * 3 }), { secret: "k" }],
    iss_match: [hsTok, c({ secret: "s3cret", iss: "https://idp.example" })],
    iss_mismatch: [hsTok, c({ secret: "s3cret", iss: "https://evil.example" })],
    iss_missing: [token("HS256", "k", { sub: "x" }), c({ secret: "k", iss: "a" })],
    aud_match: [token("HS256", "k", { ...t, aud: "nats" }), c({ secret: "k", aud: "nats" })],
    aud_mismatch: [token("HS256", "k", { ...t, aud: "other" }), c({ secret: "k", aud: "nats" })],
    aud_in_array: [token("HS256", "k", { ...t, aud: ["x", "nats"] }), c({ secret: "k", aud: "nats" })],
    aud_not_in_array: [token("HS256", "k", { ...t, aud: ["x", "y"] }), c({ secret: "k", aud: "nats" })],
    aud_without_constraint: [token("HS256", "k", { ...t, aud: "nats" }), c({ secret: "k" })],
    aud_constraint_no_claim: [token("HS256", "k", { sub: "x" }), c({ secret: "k", aud: "nats" })],
    unknown_constraint: [hsTok, c({ secret: "s3cret", foo: "bar" })],
    no_key_constraint: [hsTok, c({})],
    empty_secret: [hsTok, c({ secret: "" })],
    both_keys: [hsTok, c({ secret: "s3cret", cert: pem(rsa.pub) })],
    bad_cert: [rsTok, c({ cert: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" })],
    cert_not_json: [rsTok, c({ cert: "hello" })],
    pem_trailing_data: [rsTok, c({ cert: `${pem(rsa.pub)}\nextra` })],
    negative_time: [hsTok, { secret: "s3cret", time: -1 }],
    time_string: [hsTok, { secret: "s3cret", time: "now" }],
    constraints_not_object: [hsTok, "s3cret"],
    two_parts: ["abc.def", c({ secret: "k" })],
    no_dots: ["abcdef", c({ secret: "k" })],
    bad_header_b64: [`@@@.${b64u("{}")}.${b64u("x")}`, c({ secret: "k" })],
    header_not_json: [`${b64u("nope")}.${b64u("{}")}.${b64u("x")}`, c({ secret: "k" })],
    header_array: [`${b64u("[1]")}.${b64u("{}")}.${b64u("x")}`, c({ secret: "k" })],
    bad_sig_b64: [`${hsTok.split(".").slice(0, 2).join(".")}.@@`, c({ secret: "s3cret" })],
    sig_len_1_mod_4: [`${hsTok.split(".").slice(0, 2).join(".")}.abcde`, c({ secret: "s3cret" })],
    padded_sig: [`${hsTok}=`, c({ secret: "s3cret" })],
    payload_not_object: [token("HS256", "k", "[1,2]"), c({ secret: "k" })],
    payload_not_json: [token("HS256", "k", "nope"), c({ secret: "k" })],
    nested_jwt: [
      token("HS256", "outer", token("HS256", "outer", { ...t, nested: true }), { cty: "JWT" }),
      c({ secret: "outer" }),
    ],
  };
  if (cert) {
    dv.es256_certificate = [esTok, c({ cert })];
    dv.rs256_certificate_wrong = [rsTok, c({ cert })];
  }

  const hsParts = hsTok.split(".");
  const jd: Record<string, unknown[]> = {
    ok: [hsTok],
    rs: [rsTok],
    no_alg: [dv.no_alg?.[0]],
    two_parts: ["a.b"],
    jwe: [token("HS256", "k", t, { enc: "x" })],
    payload_array: [token("HS256", "k", "[1]")],
    bad_payload_b64: [`${hsParts[0]}.***.${hsParts[2]}`],
    bad_sig_b64: [`${hsParts[0]}.${hsParts[1]}.a`],
    nested_quoted: [
      (() => {
        const inner = token("HS256", "k", { inner: 1 });
        const h = b64u(JSON.stringify({ alg: "HS256", cty: "JWT" }));
        return `${h}.${b64u(JSON.stringify(inner))}.${b64u("sig")}`;
      })(),
    ],
    unicode: [token("HS256", "k", { name: "Jürgen ✓" })],
    newline_in_b64: [`${hsParts[0]}.${hsParts[1]?.slice(0, 8)}\n${hsParts[1]?.slice(8)}.${hsParts[2]}`],
  };

  const vs = (fam: string, bits: string, key: KeyObject): Record<string, unknown[]> => {
    const alg = fam === "EdDSA" ? "EdDSA" : `${fam}${bits}`;
    const tok = token(alg, key, t);
    const pubKey = createPublicKey(key);
    const out: Record<string, unknown[]> = {
      ok: [tok, pem(pubKey)],
      jwk: [tok, JSON.stringify(jwk(pubKey))],
      jwks_alg_mismatch: [tok, JSON.stringify({ keys: [jwk(pubKey, { alg: "HS256" })] })],
      tampered: [`${tok.slice(0, -4)}AAAA`, pem(pubKey)],
      bad_key: [tok, "nope"],
      not_a_token: ["x.y", pem(pubKey)],
    };
    return out;
  };
  const wrongKey = (fam: string): KeyObject =>
    fam === "RS" || fam === "PS" ? rsa2.pub : fam === "ES" ? ec256b.publicKey : ed2.publicKey;
  const withWrong = (fam: string, bits: string, key: KeyObject): Record<string, unknown[]> => {
    const v = vs(fam, bits, key);
    v.wrong_key = [v.ok?.[0], pem(wrongKey(fam))];
    return v;
  };

  const NS_2024 = 1_704_067_200_000_000_000n; // 2024-01-01T00:00:00Z
  const US_PRECISE = 1_704_067_200_123_456_000n; // µs precision, beyond 2^53
  const DST_NY = 1_710_054_000_000_000_000n; // 2024-03-10T07:00:00Z = 03:00 EDT (just after the jump)
  return {
    parse_rfc3339_ns: {
      utc: ["2024-01-01T00:00:00Z"],
      nanos: ["2024-01-01T00:00:00.123456789Z"],
      more_than_9_digits: ["2024-01-01T00:00:00.1234567891Z"],
      offset: ["2024-06-30T12:34:56+05:30"],
      negative_offset: ["1999-12-31T23:59:59-08:00"],
      comma_fraction: ["2024-01-01T00:00:00,5Z"],
      one_digit_hour: ["2024-01-01T1:00:00Z"],
      lower_t: ["2024-01-01t00:00:00Z"],
      no_zone: ["2024-01-01T00:00:00"],
      bad_day: ["2024-02-30T00:00:00Z"],
      leap_day: ["2024-02-29T00:00:00Z"],
      non_leap: ["2023-02-29T00:00:00Z"],
      hour_24: ["2024-01-01T24:00:00Z"],
      leap_second: ["2016-12-31T23:59:60Z"],
      pre_epoch: ["1969-07-20T20:17:40Z"],
      min_range: ["1677-09-21T00:12:43.145224192Z"],
      below_range: ["1677-09-21T00:12:43.145224191Z"],
      max_range: ["2262-04-11T23:47:16.854775807Z"],
      above_range: ["2262-04-11T23:47:16.854775808Z"],
      year_one: ["0001-01-01T00:00:00Z"],
      trailing: ["2024-01-01T00:00:00Zjunk"],
      offset_24: ["2024-01-01T00:00:00+24:00"],
      offset_25: ["2024-01-01T00:00:00+25:00"],
      empty: [""],
      not_string: [5],
    },
    parse_ns: {
      date_only: ["2006-01-02", "2024-03-15"],
      rfc1123: ["RFC1123", "Mon, 02 Jan 2006 15:04:05 UTC"],
      rfc1123_gmt: ["RFC1123", "Fri, 15 Mar 2024 10:00:00 GMT"],
      rfc1123z: ["RFC1123Z", "Fri, 15 Mar 2024 10:00:00 +0100"],
      rfc822: ["RFC822", "15 Mar 24 10:00 UTC"],
      rfc850: ["RFC850", "Friday, 15-Mar-24 10:00:00 UTC"],
      ansic: ["ANSIC", "Fri Mar  1 10:00:00 2024"],
      unix_date_pst: ["UnixDate", "Fri Mar  1 10:00:00 PST 2024"],
      gmt_plus: ["Mon Jan _2 15:04:05 MST 2006", "Fri Mar  1 10:00:00 GMT+3 2024"],
      rfc3339_name: ["RFC3339", "2024-01-01T00:00:00Z"],
      rfc3339nano: ["RFC3339Nano", "2024-01-01T00:00:00.5Z"],
      custom_12h: ["2006-01-02 3:04PM", "2024-03-15 1:30PM"],
      custom_12h_am: ["2006-01-02 03:04 pm", "2024-03-15 12:30 am"],
      bad_pm: ["2006-01-02 3:04PM", "2024-03-15 1:30XM"],
      month_names: ["January 2, 2006", "march 15, 2024"],
      month_short: ["Jan _2 2006", "Mar  5 2024"],
      frac_fixed: ["2006-01-02 15:04:05.000", "2024-03-15 10:00:00.123"],
      frac_fixed_short: ["2006-01-02 15:04:05.000", "2024-03-15 10:00:00.12"],
      frac_optional: ["2006-01-02 15:04:05.999", "2024-03-15 10:00:00"],
      year_day: ["2006-002", "2024-060"],
      year_day_mismatch: ["2006-01-02 002", "2024-03-02 060"],
      two_digit_year_69: ["06-01-02", "69-01-02"],
      two_digit_year_68: ["06-01-02", "68-01-02"],
      numeric_tz_seconds: ["2006-01-02T15:04:05-07:00:00", "2024-01-01T00:00:00+01:30:15"],
      short_tz: ["2006-01-02T15:04:05-07", "2024-01-01T00:00:00+05"],
      iso_z: ["2006-01-02T15:04:05Z0700", "2024-01-01T00:00:00Z"],
      mismatch: ["2006-01-02", "15/03/2024"],
      extra_text: ["2006-01-02", "2024-03-15x"],
      weekday_checked: ["Mon 2006-01-02", "Xyz 2024-03-15"],
      month_out_of_range: ["2006-01-02", "2024-13-01"],
      space_flex: ["2006-01-02  15:04", "2024-03-15 10:00"],
    },
    parse_duration_ns: {
      h_m: ["1h30m"],
      frac_hour: ["1.5h"],
      negative: ["-2m"],
      plus: ["+3s"],
      zero: ["0"],
      neg_zero: ["-0"],
      empty: [""],
      no_unit: ["1"],
      bad_unit: ["1x"],
      ms: ["300ms"],
      micro_b5: ["1\u00b5s"],
      micro_3bc: ["1\u03bcs"],
      us: ["7us"],
      ns: ["9ns"],
      max: ["2562047h47m16.854775807s"],
      overflow: ["2562047h48m"],
      min: ["-2562047h47m16.854775808s"],
      leading_dot: [".5s"],
      trailing_dot: ["5.s"],
      dot_only: [".s"],
      tiny_frac: ["1h0.000000001s"],
      long_frac: ["0.1234567890123456789s"],
      combo: ["1h2m3s4ms5us6ns"],
      space: ["1h 2m"],
    },
    date: {
      epoch: [0],
      y2024: [NS_2024],
      pre_epoch: [-1_000_000_000_000_000_000n],
      leap_day: [1_709_164_800_000_000_000n],
      tz_ny: [[NS_2024, "America/New_York"]],
      tz_kolkata: [[NS_2024, "Asia/Kolkata"]],
      tz_utc_name: [[NS_2024, "UTC"]],
      tz_empty: [[NS_2024, ""]],
      tz_local: [[NS_2024, "Local"]],
      tz_bad: [[NS_2024, "Mars/Olympus"]],
      tz_wrong_case: [[NS_2024, "america/new_york"]],
      empty_array: [[]],
      fraction: [1.5],
      string: ["2024"],
      micro_precise: [US_PRECISE],
    },
    clock: {
      epoch: [0],
      y2024: [NS_2024 + 3_723_000_000_000n],
      negative: [-1],
      tz_ny_dst: [[DST_NY, "America/New_York"]],
      tz_ny_before: [[DST_NY - 1_000_000_000n, "America/New_York"]],
      tz_nepal: [[NS_2024, "Asia/Kathmandu"]],
    },
    weekday: {
      epoch: [0],
      y2024: [NS_2024],
      negative: [-86_400_000_000_000n],
      tz: [[NS_2024, "Pacific/Kiritimati"]],
      tz_west: [[NS_2024, "Pacific/Pago_Pago"]],
    },
    add_date: {
      one_year: [NS_2024, 1, 0, 0],
      month_overflow: [1_706_659_200_000_000_000n, 0, 1, 0], // Jan 31 + 1 month
      leap_back: [1_709_164_800_000_000_000n, -1, 0, 0], // Feb 29 - 1 year
      negative_days: [NS_2024, 0, 0, -400],
      tz_dst: [[DST_NY - 86_400_000_000_000n, "America/New_York"], 0, 0, 1],
      out_of_range: [NS_2024, 300, 0, 0],
      fraction_arg: [NS_2024, 1.5, 0, 0],
      micro_precise: [US_PRECISE, 0, 0, 1],
    },
    diff: {
      same: [NS_2024, NS_2024],
      year_month: [NS_2024, 1_741_046_400_000_000_000n],
      reversed: [1_741_046_400_000_000_000n, NS_2024],
      borrow_days: [1_706_659_200_000_000_000n, 1_709_251_200_000_000_000n], // Jan 31 → Mar 1
      tz: [
        [NS_2024, "America/New_York"],
        [1_709_251_200_000_000_000n, "Asia/Tokyo"],
      ],
      seconds: [0, 3_723_000_000_000n],
    },
    format: {
      default: [NS_2024],
      nanos: [5],
      micro_precise: [US_PRECISE],
      tz: [[NS_2024, "America/New_York"]],
      tz_layout: [[NS_2024, "America/New_York", "Mon Jan _2 15:04:05 MST 2006"]],
      named: [[NS_2024, "UTC", "RFC1123"]],
      named_z: [[NS_2024, "Asia/Kolkata", "RFC1123Z"]],
      custom: [
        [
          NS_2024 + 45_296_789_000_000n,
          "",
          "2006-01-02 03:04:05.000 PM -07:00 Z07:00 002 __2 Jan January Mon Monday",
        ],
      ],
      frac9: [[NS_2024 + 120_000_000n, "UTC", "15:04:05.999999999"]],
      frac0: [[NS_2024 + 120_000_000n, "UTC", "15:04:05.000000"]],
      comma: [[NS_2024 + 120_000_000n, "UTC", "15:04:05,000"]],
      iso_offsets: [[NS_2024, "America/St_Johns", "Z07:00 Z0700 Z07 -07:00:00 -070000"]],
      pre_epoch: [-1],
      bad_tz: [[NS_2024, "Nowhere/Land"]],
      two_digit_year: [[NS_2024, "UTC", "06 1 2 3 4 5 pm"]],
    },
    sha256: { ascii: ["hello"], empty: [""], unicode: ["héllo ✓"], not_string: [1] },
    sha1: { ascii: ["hello"], unicode: ["héllo ✓"] },
    md5: { ascii: ["hello"], unicode: ["héllo ✓"] },
    hmac_sha256: { ok: ["msg", "key"], unicode: ["ünï", "kéy"], empty_key: ["msg", ""] },
    hmac_sha512: { ok: ["msg", "key"] },
    hmac_sha1: { ok: ["msg", "key"] },
    hmac_md5: { ok: ["msg", "key"] },
    hmac_equal: {
      same: ["abc", "abc"],
      different: ["abc", "abd"],
      length: ["abc", "abcd"],
      unicode: ["é", "é"],
      empty: ["", ""],
    },
    hex_encode: { ascii: ["hello"], unicode: ["héllo"], empty: [""] },
    hex_decode: {
      ok: ["68656c6c6f"],
      upper: ["68656C6C6F"],
      odd: ["686"],
      invalid: ["zz"],
      invalid_utf8: ["ff"],
      truncated_utf8: ["e282"],
      surrogate: ["eda080"],
      overlong: ["c0af"],
      four_byte: ["f09f9880"],
      empty: [""],
    },
    parse_bytes: {
      plain: ["10"],
      kb: ["10KB"],
      kib: ["10kib"],
      frac_gib: ["1.5GiB"],
      exp: ["1e3"],
      exp_kb: ["1e3kb"],
      mb: ["5MB"],
      neg: ["-5mb"],
      empty: [""],
      unit_only: ["kb"],
      spaced: ["1 kb"],
      double_dot: ["1.2.3mb"],
      quoted: ['"10mb"'],
      unknown_unit: ["1zb"],
      exp_too_large: ["1e1234567"],
      tenth: ["0.1"],
      rounding: ["1.3kb"],
      rounding2: ["0.7mb"],
      big: ["123456789012345678901234567890"],
      eib8: ["8eib"],
      frac_ei: ["1.1ei"],
      e_unit: ["1e"],
      eb: ["2eb"],
      dot5: [".5k"],
    },
    jwt_decode: jd,
    jwt_decode_verify: dv,
    verify_hs256: {
      ok: [hsTok, "s3cret"],
      wrong: [hsTok, "x"],
      bad: ["a.b", "x"],
      not_string: [hsTok, 5],
    },
    verify_hs384: { ok: [token("HS384", "k", t), "k"] },
    verify_hs512: { ok: [token("HS512", "k", t), "k"], rs: [rsTok, "k"] },
    verify_rs256: {
      ...withWrong("RS", "256", rsa.priv),
      jwks_kid: [token("RS256", rsa.priv, t, { kid: "k1" }), jwks],
    },
    verify_rs384: withWrong("RS", "384", rsa.priv),
    verify_rs512: withWrong("RS", "512", rsa.priv),
    verify_ps256: {
      ...withWrong("PS", "256", rsa.priv),
      max_salt: [
        token("PS256", rsa.priv, t, {}, { pssSalt: constants.RSA_PSS_SALTLEN_MAX_SIGN }),
        pem(rsa.pub),
      ],
    },
    verify_ps384: withWrong("PS", "384", rsa.priv),
    verify_ps512: withWrong("PS", "512", rsa.priv),
    verify_es256: { ...withWrong("ES", "256", ec256.privateKey), rsa_key: [esTok, pem(rsa.pub)] },
    verify_es384: withWrong("ES", "384", ec384.privateKey),
    verify_es512: withWrong("ES", "512", ec521.privateKey),
    verify_eddsa: withWrong("EdDSA", "", ed.privateKey),
  };
}

// ---- the comparison ----

describe("host builtins match OPA (opa eval vs our wasm engine)", { skip: skipWithoutOpa }, () => {
  let fromOpa: Record<string, Record<string, unknown>>;
  let fromWasm: Record<string, Record<string, unknown>>;
  let table: Record<string, Record<string, unknown[]>>;

  before(async () => {
    table = cases();
    const inputJson = jsonWithBigInts(table);
    const rego = readFileSync(FIXTURE, "utf8");
    fromOpa = opaEval("data.diff.results", { modules: { "diff.rego": rego }, inputJson }) as typeof fromOpa;
    const { bytes } = buildWasmFixture({ "diff.rego": rego }, ["diff/results"]);
    const bundle = readBundle(bytes, ["diff/results"]);
    const engine = await PolicyEngine.load(bundle.wasm, {}, LAX);
    const input = new TextEncoder().encode(inputJson).buffer as ArrayBuffer;
    fromWasm = engine.evaluate(input, "diff/results").result as typeof fromWasm;
  });

  const names = Object.keys(cases());
  for (const builtin of names) {
    test(builtin, () => {
      const ids = Object.keys(table[builtin] ?? {});
      assert.ok(ids.length > 0);
      const opaResults = fromOpa[builtin] ?? {};
      const ours = fromWasm[builtin] ?? {};
      const mismatches: string[] = [];
      for (const id of ids) {
        const a = Object.hasOwn(opaResults, id) ? opaResults[id] : "<undefined>";
        const b = Object.hasOwn(ours, id) ? ours[id] : "<undefined>";
        try {
          assert.deepEqual(b, a);
        } catch {
          mismatches.push(`${id}: opa=${JSON.stringify(a)} ours=${JSON.stringify(b)}`);
        }
      }
      assert.deepEqual(mismatches, [], `${builtin} differs from OPA:\n${mismatches.join("\n")}`);
    });
  }

  test("the table exercises both defined and undefined results", (t) => {
    let defined = 0;
    let undef = 0;
    for (const builtin of names) {
      for (const id of Object.keys(table[builtin] ?? {})) {
        if (Object.hasOwn(fromOpa[builtin] ?? {}, id)) defined++;
        else undef++;
      }
    }
    t.diagnostic(
      `${defined + undef} cases over ${names.length} builtins: ${defined} defined, ${undef} undefined`,
    );
    assert.ok(defined > 200, `defined: ${defined}`);
    assert.ok(undef > 50, `undefined: ${undef}`);
  });

  test("verification outcomes are not all the same", () => {
    const dv = fromOpa.jwt_decode_verify ?? {};
    assert.equal((dv.hs256_ok as unknown[])[0], true);
    assert.equal((dv.es256_ok as unknown[])[0], true);
    assert.equal((dv.eddsa_ok as unknown[])[0], true);
    assert.equal((dv.rs256_pem as unknown[])[0], true);
    assert.equal((dv.expired as unknown[])[0], false);
    assert.equal((dv.hs_with_public_key_as_secret as unknown[])[0], false);
    assert.equal(Object.hasOwn(dv, "unknown_constraint"), false);
    const verified = Object.values(dv).filter((v) => (v as unknown[])[0] === true).length;
    const rejected = Object.values(dv).filter((v) => (v as unknown[])[0] === false).length;
    assert.ok(verified >= 20, `verified: ${verified}`);
    assert.ok(rejected >= 20, `rejected: ${rejected}`);
  });
});

describe("time.now_ns", { skip: skipWithoutOpa }, () => {
  test("is frozen per evaluation, exact in the module, and set by the engine", async () => {
    const rego = readFileSync(FIXTURE, "utf8");
    const { bytes } = buildWasmFixture({ "diff.rego": rego }, ["diff/now_twice", "diff/now_json"]);
    const bundle = readBundle(bytes, ["diff/now_twice", "diff/now_json"]);
    const engine = await PolicyEngine.load(bundle.wasm, {}, LAX);
    const now = 1_704_067_200_123_456_789n;
    const j = engine.evaluate({}, "diff/now_json", { nowNs: now }).result;
    assert.equal(j, "1704067200123456789");
    const twice = engine.evaluate({}, "diff/now_twice").result as number[];
    assert.equal(twice[0], twice[1]);
    const wall = Date.now() * 1e6;
    assert.ok(Math.abs((twice[0] as number) - wall) < 60e9, "defaults to the wall clock");
    // OPA's own clock agrees within a minute
    const fromOpa = opaEval("time.now_ns()") as number;
    assert.ok(Math.abs(fromOpa - wall) < 60e9);
  });
});

describe("documented precision limit of nanosecond arguments", { skip: skipWithoutOpa }, () => {
  test("beyond 2^53, arguments are snapped to the microsecond; µs-precision values stay exact", async () => {
    const rego = readFileSync(FIXTURE, "utf8");
    const { bytes } = buildWasmFixture({ "diff.rego": rego }, ["diff/results"]);
    const engine = await PolicyEngine.load(readBundle(bytes, ["diff/results"]).wasm, {}, LAX);
    const table = { format: { ns: [1_704_067_200_000_000_005n], us: [1_704_067_200_000_001_000n] } };
    const inputJson = jsonWithBigInts(table);
    const opa = (opaEval("data.diff.results", { modules: { "diff.rego": rego }, inputJson }) as FormatResults)
      .format;
    const ours = (
      engine.evaluate(new TextEncoder().encode(inputJson).buffer as ArrayBuffer, "diff/results")
        .result as FormatResults
    ).format;
    assert.equal(opa.ns, "2024-01-01T00:00:00.000000005Z");
    assert.equal(ours.ns, "2024-01-01T00:00:00Z", "sub-µs digits of a >2^53 argument are lost (documented)");
    assert.equal(ours.us, opa.us);
    assert.equal(ours.us, "2024-01-01T00:00:00.000001Z");
  });
});

type FormatResults = { format: Record<string, string> };
