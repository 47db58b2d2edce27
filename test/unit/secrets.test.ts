/**
 * The one definition of "credential" and "contains" (src/secrets.ts) and its three users: grant checks
 * (secret_in_grant), reason redaction (policy decisions and the pipeline, for any handler) and the decision log.
 * Transformed forms a careless policy produces: upper(password), a 12-character fragment of a token, lower(token).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  credentialValues,
  credentialsOf,
  fold,
  MIN_FRAGMENT,
  requestCredentials,
} from "../../src/secrets.js";
import { validateGrant } from "../../src/grant.js";
import { DecisionShapeError, AuthError } from "../../src/errors.js";
import { toDecision } from "../../src/policy/decision.js";
import { buildDecisionEvent, maskInput } from "../../src/audit.js";
import { createAuthorizer } from "../../src/callout/pipeline.js";
import { buildInput, SMOKE_REQUEST } from "../../src/policy/input.js";
import type { AuthorizationRequest } from "../../src/types.js";
import { buildRequest, makeKeys } from "../support/index.js";

const PASSWORD = "Correct-Horse-Battery";
const TOKEN = "tok3n-9f2c41d7e0ab55c3";

function req(co: AuthorizationRequest["connect_opts"], ci: AuthorizationRequest["client_info"] = {}) {
  return { ...SMOKE_REQUEST, connect_opts: { user: "alice", ...co }, client_info: { ...ci } };
}

function refusedAsSecret(grant: unknown, r: AuthorizationRequest, field: string): void {
  assert.throws(
    () => validateGrant(grant, r, { accounts: ["APP"] }),
    (e: unknown) => e instanceof DecisionShapeError && e.code === "secret_in_grant" && e.field === field,
  );
}

describe("what a credential is", () => {
  test("pass, auth_token, jwt and sig; client_info.user only when it is not the user name or the nkey", () => {
    assert.deepEqual(
      credentialValues({
        connect_opts: { user: "alice", pass: "p", auth_token: "t", jwt: "j", sig: "s", nkey: "U" },
      }),
      ["p", "t", "j", "s"],
    );
    // nats-server 2.10 sends a token client's raw token as client_info.user.
    assert.deepEqual(
      credentialValues({ connect_opts: { auth_token: TOKEN }, client_info: { user: TOKEN } }),
      [TOKEN],
    );
    assert.deepEqual(credentialValues({ connect_opts: {}, client_info: { user: "2.10-token" } }), [
      "2.10-token",
    ]);
    assert.deepEqual(
      credentialValues({ connect_opts: { user: "alice" }, client_info: { user: "alice" } }),
      [],
    );
    assert.deepEqual(credentialValues({ connect_opts: { nkey: "UKEY" }, client_info: { user: "UKEY" } }), []);
    assert.deepEqual(credentialValues({ connect_opts: { pass: "", user: "" } }), []);
    assert.deepEqual(credentialValues(undefined), []);
  });
});

describe("what contains means", () => {
  const creds = credentialsOf([PASSWORD, TOKEN]);

  test("a credential in any case, whole or as any 8-character piece", () => {
    assert.ok(creds.contains(`bad password ${PASSWORD.toUpperCase()}`));
    assert.ok(creds.contains(`bad password ${PASSWORD.toLowerCase()}`));
    assert.ok(creds.contains(`token fragment ${TOKEN.slice(3, 15)} rejected`), "12-character fragment");
    assert.ok(creds.contains(TOKEN.slice(5, 5 + MIN_FRAGMENT).toUpperCase()), "exactly 8 characters");
    assert.ok(
      !creds.contains(TOKEN.slice(5, 5 + MIN_FRAGMENT - 1)),
      "7 characters of a long credential are not",
    );
    assert.ok(!creds.contains("not_authorized"));
    assert.ok(!creds.contains(""));
  });

  test("a credential shorter than 8 characters only as a whole word, not inside other words", () => {
    const one = credentialsOf(["a"]);
    assert.ok(!one.contains("not_authorized"), "a one-character password no longer redacts every reason");
    assert.ok(!one.contains("bad_credentials"));
    assert.ok(one.contains("a"));
    assert.ok(one.contains("bad password A"));
    const seven = credentialsOf(["Hunter2"]);
    assert.ok(seven.contains("user alice: HUNTER2."));
    assert.ok(seven.contains("app.hunter2.>"), "as a subject token");
    assert.ok(!seven.contains("xhunter2y"));
    assert.ok(credentialsOf(["p@ss!"]).contains("password was P@SS!"));
  });

  test("8 shared characters are found and 7 are not, on each search path", () => {
    const password = "hunter2-password"; // 9 pieces: values with fewer windows are compared in place
    const jwtLike = `eyJ${"abcdefghijklmnopqrstuvwxyz0123456789".repeat(5)}`; // 176 pieces: window lookups
    for (const cred of [password, jwtLike]) {
      const c = credentialsOf([cred]);
      for (const [pad, path] of [
        ["#", "short value"],
        ["#".repeat(400), "long value (pieces searched in it)"],
      ] as const) {
        const seven = `${pad}${cred.slice(3, 3 + MIN_FRAGMENT - 1)}${pad}`;
        const eight = `${pad}${cred.slice(3, 3 + MIN_FRAGMENT)}${pad}`;
        assert.equal(c.contains(seven), false, `${cred.length}-char credential, ${path}: 7 characters`);
        assert.equal(
          c.contains(eight.toUpperCase()),
          true,
          `${cred.length}-char credential, ${path}: 8 characters`,
        );
      }
    }
  });

  test("case folding is symmetric (ß vs SS)", () => {
    assert.equal(fold("Straße"), "strasse");
    assert.ok(credentialsOf(["Straße-Passwort"]).contains("STRASSE-PASSWORT"));
  });

  test("property: any 8..len window of a long credential, in any case, inside any text is found", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: MIN_FRAGMENT, maxLength: 40 }),
        fc.nat(),
        fc.nat(),
        fc.string({ maxLength: 10 }),
        fc.string({ maxLength: 10 }),
        fc.boolean(),
        (cred, a, b, pre, post, upper) => {
          const start = a % (cred.length - MIN_FRAGMENT + 1);
          const len = MIN_FRAGMENT + (b % (cred.length - start - MIN_FRAGMENT + 1));
          const piece = cred.slice(start, start + len);
          const shown = upper ? piece.toUpperCase() : piece.toLowerCase();
          return credentialsOf([cred]).contains(pre + shown + post);
        },
      ),
      { seed: 8108, numRuns: 300 },
    );
  });
});

describe("the two search strategies agree", () => {
  test("property: after the indexOf budget is spent (Set of pieces), answers are unchanged", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 8 }),
        (creds, values) => {
          const fresh = credentialsOf(creds);
          const warmed = credentialsOf(creds);
          warmed.contains("x".repeat(2000)); // spends the budget: the Set path from here on
          // Pieces of the credentials themselves, transformed, must be found by both.
          const probes = [...values, ...creds.map((c) => `<${c.toUpperCase()}>`)];
          return probes.every((v) => fresh.contains(v) === warmed.contains(v));
        },
      ),
      { seed: 4242, numRuns: 300 },
    );
  });
});

describe("every search strategy answers as the definition does", () => {
  /** The module doc's definition, written out naively. */
  function reference(creds: string[], value: string): boolean {
    const v = fold(value);
    for (const raw of creds) {
      const c = fold(raw);
      if (c === "") continue;
      if (c.length >= MIN_FRAGMENT) {
        for (let i = 0; i + MIN_FRAGMENT <= c.length; i++)
          if (v.includes(c.slice(i, i + MIN_FRAGMENT))) return true;
      } else {
        for (let at = v.indexOf(c); at >= 0; at = v.indexOf(c, at + 1)) {
          const before = at > 0 ? v[at - 1]! : "";
          const after = v[at + c.length] ?? "";
          const alnum = (ch: string) => ch !== "" && /[\p{L}\p{N}]/u.test(ch);
          if (!alnum(before) && !alnum(after)) return true;
        }
      }
    }
    return false;
  }

  test("property: short and long values (credential pieces searched in the value, or the value's windows in the credentials)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 24 }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.string({ maxLength: 120 }), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (creds, values, k) => {
          const c = credentialsOf(creds);
          // Also values that embed a credential piece inside long text (the piece-search path).
          const cred = creds[k % creds.length] as string;
          const probes = [...values, `${"x".repeat(60)}${cred.toUpperCase()}${"y".repeat(60)}`];
          return probes.every((v) => c.contains(v) === reference(creds, v));
        },
      ),
      { seed: 9917, numRuns: 400 },
    );
  });

  test("property: long credentials (a client JWT, 65..700 characters) against short and long values", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 65, maxLength: 700 }),
        fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (cred, values, k) => {
          const c = credentialsOf([cred]);
          const at = k % (cred.length - MIN_FRAGMENT);
          const piece = cred.slice(at, at + MIN_FRAGMENT + (k % 3));
          const probes = [...values, piece.toUpperCase(), `a.${piece}.b`, "x".repeat(600)];
          return probes.every((v) => c.contains(v) === reference([cred], v));
        },
      ),
      { seed: 5150, numRuns: 200 },
    );
  });
});

describe("grant checks use it (secret_in_grant)", () => {
  test("a user JWT name of lower(token), a tag with upper(password), a subject with a token fragment", () => {
    const r = req({ auth_token: TOKEN, pass: PASSWORD });
    refusedAsSecret({ account: "APP", name: TOKEN.toLowerCase() }, r, "name");
    refusedAsSecret({ account: "APP", name: TOKEN.toUpperCase() }, r, "name");
    refusedAsSecret({ account: "APP", tags: ["ok", PASSWORD.toUpperCase()] }, r, "tags[1]");
    refusedAsSecret({ account: "APP", pub: { allow: [`app.${TOKEN.slice(2, 14)}.>`] } }, r, "pub.allow[0]");
    // The 2.10 token in client_info.user counts as well.
    refusedAsSecret(
      { account: "APP", name: "x-2.10-token-value" },
      req({}, { user: "2.10-token-value" }),
      "name",
    );
  });

  test("a one-character password does not refuse every grant", () => {
    const r = req({ pass: "a" });
    const g = validateGrant(
      { account: "APP", name: "alice", pub: { allow: ["app.alice.>"] }, tags: ["team:alpha"] },
      r,
      { accounts: ["APP"] },
    );
    assert.equal(g.name, "alice");
    refusedAsSecret({ account: "APP", name: "a" }, r, "name");
    refusedAsSecret({ account: "APP", pub: { allow: ["app.a.>"] } }, r, "pub.allow[0]");
  });
});

describe("reason redaction uses it", () => {
  const co = { user: "alice", pass: PASSWORD, auth_token: TOKEN };

  test("policy decisions: upper(password) and a 12-character token fragment are redacted", () => {
    assert.deepEqual(toDecision({ allow: false, reason: `bad password ${PASSWORD.toUpperCase()}` }, co), {
      kind: "deny",
      reason: "redacted",
    });
    assert.deepEqual(toDecision({ allow: false, reason: `token ${TOKEN.slice(4, 16)}…` }, co), {
      kind: "deny",
      reason: "redacted",
    });
    assert.deepEqual(toDecision({ allow: false, reason: "not_authorized" }, { pass: "a" }), {
      kind: "deny",
      reason: "not_authorized",
    });
  });

  test("plain handlers: the pipeline redacts AuthError reasons and allow reasons too", async () => {
    const keys = makeKeys();
    const auth = createAuthorizer({ mode: "config", issuer: keys.issuer.signer, accounts: ["APP"] }, (rq) => {
      if (rq.connect_opts.user === "deny")
        throw new AuthError(`wrong ${String(rq.connect_opts.pass).toUpperCase()}`);
      throw new AuthError("plain reason");
    });
    const denied = buildRequest(keys, { connect_opts: { user: "deny", pass: PASSWORD } });
    const r1 = await auth(denied.data);
    assert.deepEqual(r1.outcome, { kind: "deny", code: "auth_denied", reason: "redacted" });
    const plain = buildRequest(keys, { connect_opts: { user: "other", pass: PASSWORD } });
    assert.deepEqual((await auth(plain.data)).outcome, {
      kind: "deny",
      code: "auth_denied",
      reason: "plain reason",
    });
    const allowAuth = createAuthorizer(
      { mode: "config", issuer: keys.issuer.signer, accounts: ["APP"] },
      (_rq, ctx) => {
        ctx.facts.reason = `welcome ${TOKEN.slice(0, 10).toUpperCase()}`;
        return { account: "APP" };
      },
    );
    const r3 = await allowAuth(buildRequest(keys, { connect_opts: { auth_token: TOKEN } }).data);
    assert.equal(r3.outcome.kind, "allow");
    assert.equal(r3.outcome.kind === "allow" ? r3.outcome.reason : "", "redacted");
  });
});

describe("the decision log uses it", () => {
  test("input strings carrying a transformed credential are masked; the reason is redacted", () => {
    const r = req({ pass: PASSWORD, auth_token: TOKEN }, { name: `app-${TOKEN.slice(3, 15).toUpperCase()}` });
    const input = buildInput(r);
    const { input: masked, masked: paths } = maskInput(input);
    const text = fold(JSON.stringify(masked));
    assert.ok(!text.includes(fold(PASSWORD)) && !text.includes(fold(TOKEN.slice(3, 15))), text);
    assert.ok(paths.includes("/client_info/name"));
    assert.ok(!paths.includes("/connect_opts/user"), "the user name is kept");
    const ev = buildDecisionEvent({
      decisionId: "d1",
      receivedAt: new Date(0),
      outcome: "deny",
      reason: `password ${PASSWORD.toLowerCase()} wrong`,
      input,
    });
    assert.equal(ev.reason, "redacted");
  });

  test("an input holding the request's objects is masked with the request's credentials, any other with its own", () => {
    const r = req({ pass: PASSWORD, auth_token: TOKEN });
    // The policy input holds the request's connect_opts and client_info: the request's credentials apply.
    const shared = { ...buildInput(r), note: `copy ${TOKEN.slice(2, 12)}` };
    const ev = buildDecisionEvent({
      decisionId: "d1",
      receivedAt: new Date(0),
      outcome: "allow",
      input: shared,
      request: r,
    });
    assert.equal((ev.input as { note: string }).note, "[REDACTED]");
    // An input document of its own (a custom input builder): its credentials count, not only the request's.
    const own = {
      connect_opts: { user: "alice", pass: "other-secret-pw" },
      client_info: { host: "127.0.0.1" },
      note: "OTHER-SECRET",
      copy: `x ${TOKEN.slice(2, 12)}`,
    };
    const ev2 = buildDecisionEvent({
      decisionId: "d2",
      receivedAt: new Date(0),
      outcome: "allow",
      input: own,
      request: r,
    });
    const logged = ev2.input as Record<string, unknown>;
    assert.equal(logged.note, "[REDACTED]", "a piece of the input's own password");
    assert.equal((logged.connect_opts as { pass: string }).pass, "[REDACTED]");
    assert.equal(
      logged.copy,
      `x ${TOKEN.slice(2, 12)}`,
      "the request's token is not this input's credential",
    );
  });

  test("requestCredentials of an input document and of its request agree", () => {
    const r = req({ pass: PASSWORD }, { user: "2.10-token-value" });
    const a = requestCredentials(r);
    const b = requestCredentials(buildInput(r));
    for (const v of [PASSWORD, "2.10-token-value", "alice", "x"])
      assert.equal(a.contains(v), b.contains(v), v);
  });
});
