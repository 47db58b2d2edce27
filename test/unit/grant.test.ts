import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { DecisionShapeError } from "../../src/errors.js";
import {
  connectionType,
  isSafeToken,
  isValidSubject,
  isValidTimeZone,
  validateGrant,
} from "../../src/grant.js";
import type { AuthorizationRequest } from "../../src/types.js";

function request(
  o: { client_info?: Record<string, unknown>; connect_opts?: Record<string, unknown> } = {},
): AuthorizationRequest {
  return {
    server_id: { name: "s", host: "127.0.0.1", id: "NSERVER", version: "2.10.27" },
    user_nkey: "UUSER",
    client_info: { host: "10.1.2.3", id: 1, user: "alice", kind: "Client", type: "nats", ...o.client_info },
    connect_opts: { user: "alice", pass: "pw", protocol: 1, ...o.connect_opts },
    request_issuer: "AISSUER",
    issued_at: 0,
    expires_at: 0,
    encrypted: false,
  };
}

const ACCOUNTS = { accounts: ["APP", "OTHER"] };
const validate = (g: unknown, req = request()) => validateGrant(g, req, ACCOUNTS);

/** Asserts a DecisionShapeError with the field and code. */
function rejects(g: unknown, field: string, code = "decision_shape_error", req = request()) {
  assert.throws(
    () => validate(g, req),
    (e: unknown) => {
      assert.ok(e instanceof DecisionShapeError, `expected DecisionShapeError, got ${String(e)}`);
      assert.equal(e.field, field, e.message);
      assert.equal(e.code, code, e.message);
      return true;
    },
    `${JSON.stringify(g)} → ${field}/${code}`,
  );
}

describe("validateGrant: accepts and normalises", () => {
  test("a full grant is returned as a fresh copy", () => {
    const g = {
      account: "APP",
      name: "Alice",
      pub: { allow: ["app.alice.>", "_INBOX.*"], deny: ["app.alice.secret"] },
      sub: { allow: [">"] },
      resp: { max: 1, ttl_ms: 5000 },
      expires_in: 90.5,
      subs: 10,
      data: -1,
      payload: 1024,
      src: ["10.0.0.0/8", "2001:db8::/32"],
      times: [{ start: "08:00:00", end: "17:30:00" }],
      times_location: "Europe/Berlin",
      allowed_connection_types: ["STANDARD", "WEBSOCKET"],
      bearer_token: false,
      tags: ["t1"],
    };
    const out = validate(g);
    assert.deepEqual(out, g);
    assert.notEqual(out.pub, g.pub);
    assert.notEqual(out.pub?.allow, g.pub.allow);
  });

  test("a minimal grant: only the account", () => {
    assert.deepEqual(validate({ account: "OTHER" }), { account: "OTHER" });
  });
});

describe("validateGrant: shape errors name the field", () => {
  test("not an object", () => {
    for (const g of [null, [], "APP", 1, undefined]) rejects(g, "grant");
  });

  test("unknown keys", () => {
    rejects({ account: "APP", permission: {} }, "permission");
    rejects({ account: "APP", reason: "x" }, "reason");
    rejects({ account: "APP", pub: { allowed: ["a"] } }, "pub.allowed");
    rejects({ account: "APP", resp: { max: 1, ttl_ms: 1, ttl: 1 } }, "resp.ttl");
    rejects({ account: "APP", times: [{ start: "08:00:00", end: "09:00:00", tz: "UTC" }] }, "times[0].tz");
  });

  test("account: missing, wrong type, not allow-listed", () => {
    rejects({}, "account");
    rejects({ account: 7 }, "account");
    rejects({ account: "SYS" }, "account", "account_not_allowed");
    rejects({ account: "$G" }, "account", "account_not_allowed");
    rejects({ account: "app" }, "account", "account_not_allowed");
  });

  test("wrong types", () => {
    rejects({ account: "APP", name: 1 }, "name");
    rejects({ account: "APP", pub: ["a"] }, "pub");
    rejects({ account: "APP", pub: { allow: "a" } }, "pub.allow");
    rejects({ account: "APP", pub: { allow: ["a", "b", 3] } }, "pub.allow[2]");
    rejects({ account: "APP", sub: { deny: [null] } }, "sub.deny[0]");
    rejects({ account: "APP", sub: null }, "sub");
    rejects({ account: "APP", bearer_token: "true" }, "bearer_token");
    rejects({ account: "APP", tags: "a" }, "tags");
    rejects({ account: "APP", tags: ["a", 1] }, "tags[1]");
    rejects({ account: "APP", times: {} }, "times");
  });

  test("invalid subjects", () => {
    const bad = [
      "",
      " ",
      "a b",
      "a\tb",
      "a\nb",
      "a..b",
      ".a",
      "a.",
      "a*",
      "*a",
      "a.b*.c",
      "a>",
      ">a",
      "a.>.b",
      ">.a",
      "a.*>",
    ];
    for (const s of bad) {
      rejects({ account: "APP", pub: { allow: ["ok", s] } }, "pub.allow[1]");
      rejects({ account: "APP", sub: { deny: [s] } }, "sub.deny[0]");
    }
  });

  test("resp", () => {
    rejects({ account: "APP", resp: { max: 1 } }, "resp.ttl_ms");
    rejects({ account: "APP", resp: { ttl_ms: 1 } }, "resp.max");
    rejects({ account: "APP", resp: { max: 1.5, ttl_ms: 1 } }, "resp.max");
    rejects({ account: "APP", resp: { max: -2, ttl_ms: 1 } }, "resp.max");
    rejects({ account: "APP", resp: { max: 1, ttl_ms: -1 } }, "resp.ttl_ms");
    rejects({ account: "APP", resp: { max: 1, ttl_ms: 1e13 } }, "resp.ttl_ms");
    rejects({ account: "APP", resp: 5 }, "resp");
    assert.deepEqual(validate({ account: "APP", resp: { max: -1, ttl_ms: 0 } }).resp, { max: -1, ttl_ms: 0 });
  });

  test("expires_in must be a positive number", () => {
    for (const v of [0, -5, "60", Number.NaN, Number.POSITIVE_INFINITY, null])
      rejects({ account: "APP", expires_in: v }, "expires_in");
  });

  test("limits are integers >= -1", () => {
    for (const k of ["subs", "data", "payload"]) {
      for (const v of [-2, 1.5, "1", null]) rejects({ account: "APP", [k]: v }, k);
      assert.equal(validate({ account: "APP", [k]: -1 })[k as "subs"], -1);
      assert.equal(validate({ account: "APP", [k]: 0 })[k as "subs"], 0);
    }
  });

  test("src CIDRs", () => {
    for (const c of [
      "10.0.0.1",
      "10.0.0.0/33",
      "abc/8",
      "::1/129",
      "10.0.0.0/08",
      "10.0.0.0/",
      "/8",
      "10.0.0.0/8/1",
      "010.0.0.0/8",
    ]) {
      rejects({ account: "APP", src: [c] }, "src[0]");
    }
    rejects({ account: "APP", src: [] }, "src");
    rejects({ account: "APP", src: "10.0.0.0/8" }, "src");
  });

  test("times and times_location", () => {
    for (const t of ["9:00:00", "24:00:00", "08:60:00", "08:00", "08:00:00Z", ""]) {
      rejects({ account: "APP", times: [{ start: t, end: "10:00:00" }] }, "times[0].start");
      rejects({ account: "APP", times: [{ start: "10:00:00", end: t }] }, "times[0].end");
    }
    rejects({ account: "APP", times: [{ start: "10:00:00" }] }, "times[0].end");
    rejects({ account: "APP", times: [] }, "times");
    for (const z of ["Mars/Olympus", "utc", "Local", "europe/berlin", "", "Europe/Berlin "]) {
      rejects({ account: "APP", times_location: z }, "times_location");
    }
    rejects({ account: "APP", times_location: 1 }, "times_location");
    for (const z of [
      "UTC",
      "Europe/Berlin",
      "America/Argentina/Buenos_Aires",
      "Etc/GMT+5",
      "America/Port-au-Prince",
    ]) {
      assert.equal(isValidTimeZone(z), true, z);
      assert.equal(validate({ account: "APP", times_location: z }).times_location, z);
    }
  });

  test("allowed_connection_types values", () => {
    rejects({ account: "APP", allowed_connection_types: ["FOO"] }, "allowed_connection_types[0]");
    rejects({ account: "APP", allowed_connection_types: ["standard"] }, "allowed_connection_types[0]");
    rejects({ account: "APP", allowed_connection_types: [] }, "allowed_connection_types");
  });
});

describe("validateGrant: service-side enforcement", () => {
  test("source CIDR (IPv4, IPv6, IPv4-mapped, missing host)", () => {
    assert.ok(validate({ account: "APP", src: ["10.0.0.0/8"] }));
    assert.ok(validate({ account: "APP", src: ["192.168.0.0/16", "10.1.2.3/32"] }));
    rejects({ account: "APP", src: ["192.168.0.0/16"] }, "src", "source_not_allowed");
    const v6 = request({ client_info: { host: "2001:db8::5" } });
    assert.ok(validate({ account: "APP", src: ["2001:db8::/32"] }, v6));
    rejects({ account: "APP", src: ["2001:db9::/32", "10.0.0.0/8"] }, "src", "source_not_allowed", v6);
    const mapped = request({ client_info: { host: "::ffff:10.9.9.9" } });
    assert.ok(validate({ account: "APP", src: ["10.0.0.0/8"] }, mapped));
    rejects(
      { account: "APP", src: ["10.0.0.0/8"] },
      "src",
      "source_not_allowed",
      request({ client_info: { host: undefined } }),
    );
    rejects(
      { account: "APP", src: ["0.0.0.0/0"] },
      "src",
      "source_not_allowed",
      request({ client_info: { host: "not-an-ip" } }),
    );
  });

  test("connection type", () => {
    assert.ok(validate({ account: "APP", allowed_connection_types: ["STANDARD"] }));
    rejects(
      { account: "APP", allowed_connection_types: ["WEBSOCKET"] },
      "allowed_connection_types",
      "connection_type_not_allowed",
    );
    const ws = request({ client_info: { type: "websocket" } });
    assert.ok(validate({ account: "APP", allowed_connection_types: ["WEBSOCKET"] }, ws));
    rejects(
      { account: "APP", allowed_connection_types: ["STANDARD", "MQTT"] },
      "allowed_connection_types",
      "connection_type_not_allowed",
      ws,
    );
    const leaf = request({ client_info: { kind: "Leafnode", type: "nats" } });
    rejects(
      { account: "APP", allowed_connection_types: ["STANDARD"] },
      "allowed_connection_types",
      "connection_type_not_allowed",
      leaf,
    );
    assert.ok(validate({ account: "APP", allowed_connection_types: ["LEAFNODE"] }, leaf));
  });

  test("connectionType derivation", () => {
    const ct = (kind: string | undefined, type: string | undefined) =>
      connectionType({ client_info: { kind, type } });
    assert.equal(ct("Client", "nats"), "STANDARD");
    assert.equal(ct("Client", "websocket"), "WEBSOCKET");
    assert.equal(ct("Client", "mqtt"), "MQTT");
    assert.equal(ct("Leafnode", "nats"), "LEAFNODE");
    assert.equal(ct("Leafnode", "websocket"), "LEAFNODE_WS");
    assert.equal(ct("Client", "quic"), "QUIC");
    assert.equal(ct(undefined, undefined), "UNKNOWN");
  });
});

describe("subject tokens (injection itself: test/unit/injection.test.ts)", () => {
  test("isSafeToken / isValidSubject", () => {
    for (const s of ["alice", "a-b_c", "Ünïcødé", "$x", "123"]) assert.equal(isSafeToken(s), true, s);
    for (const s of ["", "a.b", "*", ">", "a*", "a b", "a\tb", "a\u00a0b", "a\u0000b", "a\u007fb"]) {
      assert.equal(isSafeToken(s), false, JSON.stringify(s));
    }
    for (const s of ["a", "a.b", "a.*", "a.>", ">", "*", "*.b.>", "$SYS.REQ.USER.AUTH", "_INBOX.>"]) {
      assert.equal(isValidSubject(s), true, s);
    }
    for (const s of ["", "a..b", "a.", ".a", "a*", "a.>.b", "a b", "a>", "a\u0000b", "a.\u001b"]) {
      assert.equal(isValidSubject(s), false, JSON.stringify(s));
    }
  });
});

describe("validateGrant: credentials never reach the user JWT", () => {
  const token = "tok-3f9a1c77e2";
  const tokenReq = request({ connect_opts: { user: undefined, pass: undefined, auth_token: token } });

  test("a name, tag or subject equal to the token is refused", () => {
    rejects({ account: "APP", name: token }, "name", "secret_in_grant", tokenReq);
    rejects({ account: "APP", tags: ["ok", token] }, "tags[1]", "secret_in_grant", tokenReq);
    rejects(
      { account: "APP", pub: { allow: [`_INBOX.${token}.>`] } },
      "pub.allow[0]",
      "secret_in_grant",
      tokenReq,
    );
    rejects({ account: "APP", sub: { deny: [`x.${token}`] } }, "sub.deny[0]", "secret_in_grant", tokenReq);
  });

  test("a long credential embedded in a longer string is refused", () => {
    rejects({ account: "APP", name: `user-${token}-x` }, "name", "secret_in_grant", tokenReq);
    const req = request({ connect_opts: { pass: "correct-horse" } });
    rejects({ account: "APP", name: "alice:correct-horse" }, "name", "secret_in_grant", req);
  });

  test("a short password only counts when it is the whole value or a whole subject token", () => {
    // pass "pw": "pw" must not make every string containing "pw" a leak …
    assert.equal(
      validate({ account: "APP", name: "pwned-alice", pub: { allow: ["app.pwx"] } }).name,
      "pwned-alice",
    );
    // … but granting the password itself is refused.
    rejects({ account: "APP", name: "pw" }, "name", "secret_in_grant");
    rejects({ account: "APP", pub: { allow: ["app.pw.>"] } }, "pub.allow[0]", "secret_in_grant");
  });

  test("the request's JWT and signature count as credentials too", () => {
    const req = request({ connect_opts: { jwt: "eyJhbGciOi.payload.sig", sig: "c2lnbmF0dXJlLXZhbHVl" } });
    rejects({ account: "APP", name: "eyJhbGciOi.payload.sig" }, "name", "secret_in_grant", req);
    rejects({ account: "APP", tags: ["c2lnbmF0dXJlLXZhbHVl"] }, "tags[0]", "secret_in_grant", req);
  });
});
