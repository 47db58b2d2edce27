import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { decode as natsDecode } from "@nats-io/jwt";
import { Verifier } from "../../../src/callout/keys.js";
import { decodeJwt } from "../../../src/callout/jwt.js";
import {
  buildUserClaims,
  encodeUserJwt,
  permissionClaim,
  userName,
  type UserClaimsOptions,
} from "../../../src/callout/claims.js";
import type { AuthorizationRequest, Grant } from "../../../src/types.js";
import { newAccountKey, newUserNkey } from "../../support/index.js";

const issuer = newAccountKey();
const NOW = 1_800_000_000_000;
const NOW_S = NOW / 1000;
const userNkey = newUserNkey();

function request(
  o: { client_info?: Record<string, unknown>; connect_opts?: Record<string, unknown> } = {},
): AuthorizationRequest {
  return {
    server_id: { name: "s", host: "h", id: "NSERVER", version: "2.10.27" },
    user_nkey: userNkey,
    client_info: { host: "127.0.0.1", user: "alice", kind: "Client", type: "nats", ...o.client_info },
    connect_opts: { user: "alice", protocol: 1, ...o.connect_opts },
    request_issuer: issuer.publicKey,
    issued_at: NOW_S,
    expires_at: NOW_S + 2,
    encrypted: false,
  };
}

const configOpts: UserClaimsOptions = {
  mode: "config",
  signer: issuer.signer,
  defaultExpirySeconds: 600,
  maxExpirySeconds: 3600,
  nowMs: NOW,
};
const nats = (g: Grant, o: Partial<UserClaimsOptions> = {}, req = request()) =>
  buildUserClaims(g, req, { ...configOpts, ...o }).nats as Record<string, unknown>;

describe("permissions are explicit and deny by default", () => {
  test("no pub/sub in the grant → both sides deny '>'", () => {
    const n = nats({ account: "APP" });
    assert.deepEqual(n.pub, { deny: [">"] });
    assert.deepEqual(n.sub, { deny: [">"] });
  });

  test("an empty or missing allow list never becomes allow-all", () => {
    assert.deepEqual(permissionClaim({ allow: [] }), { deny: [">"] });
    assert.deepEqual(permissionClaim({ deny: ["secret.>"] }), { deny: [">"] });
    assert.deepEqual(permissionClaim({ allow: [], deny: [] }), { deny: [">"] });
    assert.deepEqual(permissionClaim({}), { deny: [">"] });
  });

  test("allow lists are kept with their denies; empty denies are dropped", () => {
    const n = nats({
      account: "APP",
      pub: { allow: ["a.>"], deny: ["a.b"] },
      sub: { allow: ["_INBOX.>"], deny: [] },
    });
    assert.deepEqual(n.pub, { allow: ["a.>"], deny: ["a.b"] });
    assert.deepEqual(n.sub, { allow: ["_INBOX.>"] });
  });
});

describe("expiry", () => {
  const exp = (g: Partial<Grant>) => buildUserClaims({ account: "APP", ...g }, request(), configOpts).exp;
  test("default lifetime when the grant has none", () => assert.equal(exp({}), NOW_S + 600));
  test("capped at maxExpiry", () => assert.equal(exp({ expires_in: 1e9 }), NOW_S + 3600));
  test("fractional seconds floor, but at least 1 s", () => {
    assert.equal(exp({ expires_in: 90.7 }), NOW_S + 90);
    assert.equal(exp({ expires_in: 0.2 }), NOW_S + 1);
  });
  test("a default above the cap is capped too", () => {
    const c = buildUserClaims({ account: "APP" }, request(), { ...configOpts, defaultExpirySeconds: 99_999 });
    assert.equal(c.exp, NOW_S + 3600);
  });
});

describe("claim fields", () => {
  test("times_location (not locale), times, src array, resp ttl in ns, limits default -1", () => {
    const n = nats({
      account: "APP",
      resp: { max: 3, ttl_ms: 1500 },
      src: ["10.0.0.0/8", "::1/128"],
      times: [{ start: "08:00:00", end: "17:00:00" }],
      times_location: "Europe/Berlin",
    });
    assert.equal(n.times_location, "Europe/Berlin");
    assert.equal(n.locale, undefined);
    assert.deepEqual(n.times, [{ start: "08:00:00", end: "17:00:00" }]);
    assert.deepEqual(n.src, ["10.0.0.0/8", "::1/128"]);
    assert.deepEqual(n.resp, { max: 3, ttl: 1_500_000_000 });
    assert.equal(n.subs, -1);
    assert.equal(n.data, -1);
    assert.equal(n.payload, -1);
    assert.equal(n.type, "user");
    assert.equal(n.version, 2);
    assert.equal(n.bearer_token, undefined);
  });

  test("limits, bearer_token, allowed_connection_types, tags", () => {
    const n = nats({
      account: "APP",
      subs: 5,
      data: 0,
      payload: 1024,
      bearer_token: true,
      allowed_connection_types: ["STANDARD"],
      tags: ["x"],
    });
    assert.equal(n.subs, 5);
    assert.equal(n.data, 0);
    assert.equal(n.payload, 1024);
    assert.equal(n.bearer_token, true);
    assert.deepEqual(n.allowed_connection_types, ["STANDARD"]);
    assert.deepEqual(n.tags, ["x"]);
    assert.equal(nats({ account: "APP", bearer_token: false }).bearer_token, undefined);
  });

  test("config mode: aud = account name, sub = user_nkey, no issuer_account", () => {
    const c = buildUserClaims({ account: "APP" }, request(), configOpts);
    assert.equal(c.aud, "APP");
    assert.equal(c.sub, userNkey);
    assert.equal((c.nats as Record<string, unknown>).issuer_account, undefined);
  });

  test("operator mode: issuer_account only when a signing key signs; no aud", () => {
    const account = newAccountKey();
    const signingKey = newAccountKey();
    const viaSk = buildUserClaims({ account: "APP" }, request(), {
      ...configOpts,
      mode: "operator",
      signer: signingKey.signer,
      accountPublicKey: account.publicKey,
    });
    assert.equal((viaSk.nats as Record<string, unknown>).issuer_account, account.publicKey);
    assert.equal(viaSk.aud, undefined);
    const direct = buildUserClaims({ account: "APP" }, request(), {
      ...configOpts,
      mode: "operator",
      signer: account.signer,
      accountPublicKey: account.publicKey,
    });
    assert.equal((direct.nats as Record<string, unknown>).issuer_account, undefined);
  });

  test("name: grant.name, else connect user, else client user (not when a token was sent), else user_nkey", () => {
    assert.equal(userName({ account: "A", name: "Boss" }, request()), "Boss");
    assert.equal(userName({ account: "A", name: "" }, request()), "alice");
    assert.equal(userName({ account: "A" }, request({ connect_opts: { user: undefined } })), "alice");
    const tokenReq = request({
      connect_opts: { user: undefined, auth_token: "tok-123" },
      client_info: { user: "tok-123" },
    });
    assert.equal(userName({ account: "A" }, tokenReq), userNkey);
    assert.equal(
      userName(
        { account: "A" },
        request({ connect_opts: { user: undefined }, client_info: { user: undefined } }),
      ),
      userNkey,
    );
  });
});

describe("encodeUserJwt", () => {
  test("signed by the issuer; verifies with our decoder and with @nats-io/jwt", () => {
    const { jwt } = encodeUserJwt({ account: "APP", pub: { allow: ["a"] } }, request(), {
      ...configOpts,
      nowMs: Date.now(),
    });
    const ours = decodeJwt(jwt, { verifier: new Verifier(), issuerKind: "account" });
    assert.equal(ours.iss, issuer.publicKey);
    assert.equal(ours.sub, userNkey);
    const theirs = natsDecode<Record<string, unknown>>(jwt);
    assert.equal(theirs.aud, "APP");
    assert.deepEqual(theirs.nats.pub, { allow: ["a"] });
    assert.deepEqual(theirs.nats.sub, { deny: [">"] });
    assert.equal(typeof theirs.exp, "number");
  });
});
