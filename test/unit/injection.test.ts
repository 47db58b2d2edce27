/**
 * src/injection.ts in-process: which strings are client-controlled, where dangerous characters hide (raw and encoded),
 * what a neutralised probe looks like, the structural comparison, and the probe search against decision functions
 * written in TypeScript that transform client strings the way naive policies do. The same property against real
 * compiled Rego: test/property/injection.property.test.ts.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, test } from "node:test";
import { DecisionShapeError } from "../../src/errors.js";
import {
  checkInjection,
  clientStrings,
  countOccurrences,
  dangerousFields,
  guardHandler,
  isGuarded,
  LETTER,
  MAX_PROBE_CHARS,
  MAX_PROBES,
  neutralise,
  PLACEHOLDER,
  signatureCanary,
  skeleton,
  structuralDiff,
  verbatimInjection,
  type Decide,
} from "../../src/injection.js";
import { createPolicyEngine } from "../../src/policy/handler.js";
import { SMOKE_REQUEST } from "../../src/policy/input.js";
import type { AuthorizationRequest, Grant } from "../../src/types.js";
import type { DecisionFacts } from "../../src/callout/facts.js";
import { buildWasmFixture, skipWithoutOpa } from "../support/index.js";

/** The smoke request reduced to alice with a password and no other client strings, plus `o`. */
function request(
  o: { client_info?: Record<string, unknown>; connect_opts?: Record<string, unknown> } = {},
): AuthorizationRequest {
  const { host, id, kind, type } = SMOKE_REQUEST.client_info;
  const client_info = { host, id, kind, type, user: "alice", ...o.client_info };
  return {
    ...SMOKE_REQUEST,
    client_info,
    connect_opts: { user: "alice", pass: "pw", protocol: 1, ...o.connect_opts },
  };
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const b64url = (s: string) => Buffer.from(s).toString("base64url");
const jwt = (claims: unknown) => `${b64url('{"alg":"HS256"}')}.${b64url(JSON.stringify(claims))}.c2ln`;

describe("client-controlled strings", () => {
  test("all of connect_opts and client_info except host, id, kind, type, nonce; unknown keys included", () => {
    const req = request({
      connect_opts: {
        user: "u",
        pass: "p",
        name: "n",
        lang: "l",
        version: "v",
        nkey: "k",
        auth_token: "t",
        jwt: "j",
        sig: "s",
        future_field: "f",
        nested: { deep: ["d"] },
        "a.b[c]": "odd key",
      },
      client_info: {
        name: "cn",
        name_tag: "nt",
        tags: ["t0", "t1"],
        mqtt_id: "m",
        nonce: "NONCE",
        new_key: "x",
      },
    });
    assert.deepEqual(
      clientStrings(req).map((f) => f.path),
      [
        "connect_opts.user",
        "connect_opts.pass",
        "connect_opts.name",
        "connect_opts.lang",
        "connect_opts.version",
        "connect_opts.nkey",
        "connect_opts.auth_token",
        "connect_opts.jwt",
        "connect_opts.sig",
        "connect_opts.future_field",
        "connect_opts.nested.deep[0]",
        "connect_opts.a.b[c]",
        "client_info.user",
        "client_info.name",
        "client_info.name_tag",
        "client_info.tags[0]",
        "client_info.tags[1]",
        "client_info.mqtt_id",
        "client_info.new_key",
      ],
    );
    // Odd keys are rewritten in place, not parsed from the path.
    const odd = request({ connect_opts: { "a.b[c]": "x.y" } });
    assert.equal(
      (neutralise(odd, dangerousFields(odd)).connect_opts as Record<string, unknown>)["a.b[c]"],
      `x${PLACEHOLDER}y`,
    );
  });
});

describe("dangerous occurrences", () => {
  test("raw characters: wildcards, dots, any whitespace, control characters", () => {
    for (const [s, n] of [
      ["alice", 0],
      ["a-b_c@d:e/f", 0],
      ["Ünïcødé", 0],
      ["*", 1],
      [">", 1],
      ["*@evil.example", 2],
      [" *\t", 3],
      ["a\u0000b\u007fc\u0085", 3],
      ["a\u00a0b\u2028c\ufeff", 3],
      ["nats.js", 1],
      ["3.0.2", 2],
    ] as const)
      assert.equal(countOccurrences(s), n, JSON.stringify(s));
  });

  test("encoded layers: base64, base64url, hex, JSON escapes, JWT payloads, nesting", () => {
    for (const [s, n] of [
      [b64("*"), 1],
      [b64("*").replace(/=+$/, ""), 1],
      [b64url("a>b*"), 2],
      [b64("alice"), 0],
      ["2a2e", 2],
      ['"\\u002a"', 1],
      ['{"u":"\\u002a","v":["a.b"]}', 2],
      ['{ "n": 1.5 }', 4],
      [jwt({ sub: "*" }), 3],
      [jwt({ sub: "alice" }), 2],
      [b64(JSON.stringify({ u: b64("*") })), 1],
      ['u: "\\x2a\\u002E\\N"', 4],
      ["DOMAIN\\bob", 1],
      ["alice\\x41", 0],
    ] as const)
      assert.equal(countOccurrences(s), n, JSON.stringify(s));
  });

  test("neutralise: same code-point length raw, still decodable encoded, original untouched", () => {
    const req = request({
      connect_opts: { user: "*@evil.example", auth_token: b64("*"), lang: "nats.js", name: '{"u":"*"}' },
      client_info: { tags: ["a b"] },
    });
    const before = JSON.stringify(req);
    const fields = dangerousFields(req);
    assert.deepEqual(
      fields.map((f) => f.path),
      [
        "connect_opts.user",
        "connect_opts.auth_token",
        "connect_opts.lang",
        "connect_opts.name",
        "client_info.tags[0]",
      ],
    );
    const n = neutralise(req, fields);
    assert.equal(JSON.stringify(req), before);
    assert.equal(n.connect_opts.user, `${PLACEHOLDER}@evil${PLACEHOLDER}example`);
    assert.equal([...n.connect_opts.user!].length, [..."*@evil.example"].length);
    assert.equal(Buffer.from(n.connect_opts.auth_token!, "base64").toString(), PLACEHOLDER);
    assert.deepEqual(JSON.parse(n.connect_opts.name!), { u: PLACEHOLDER });
    assert.deepEqual(n.client_info.tags, [`a${PLACEHOLDER}b`]);
    assert.equal(n.client_info.user, "alice");
    // One occurrence at a time, with the letter.
    const yaml = request({ connect_opts: { name: 'u: "\\x2a"' } });
    assert.equal(neutralise(yaml, dangerousFields(yaml)).connect_opts.name, 'u:\u00a4"\\u00a4"');
    const one = neutralise(req, [fields[0]!], LETTER, (_f, i) => i === 1);
    assert.equal(one.connect_opts.user, "*@evilxexample");
    // The placeholder survives the case and trim functions policies use.
    assert.equal(PLACEHOLDER.toLowerCase(), PLACEHOLDER);
    assert.equal(PLACEHOLDER.toUpperCase(), PLACEHOLDER);
    assert.equal(PLACEHOLDER.trim(), PLACEHOLDER);
    assert.equal(countOccurrences(PLACEHOLDER), 0);
  });
});

describe("structural comparison", () => {
  test("skeleton keeps only the dangerous characters, in order", () => {
    assert.equal(skeleton("user.*.>"), ".*.>");
    assert.equal(skeleton(`user.${PLACEHOLDER}.>`), "..>");
    assert.equal(skeleton("a b\tc"), " \t");
  });

  test("differences by grant path; order of subjects does not matter; letters do not matter", () => {
    const g = { account: "APP", pub: { allow: ["a.b", "user.alice.>"] }, sub: { deny: ["x"] } };
    assert.deepEqual(structuralDiff(g, { ...g, pub: { allow: ["user.bob.>", "c.d"] } }), []);
    assert.deepEqual(structuralDiff(g, { ...g, pub: { allow: ["a.b", "user.*.>"] } }), ["pub.allow"]);
    assert.deepEqual(structuralDiff(g, { ...g, sub: { deny: ["x.y"] } }), ["sub.deny"]);
    assert.deepEqual(structuralDiff(g, { ...g, account: "OTHER" }), ["account"]);
    assert.deepEqual(structuralDiff({ ...g, name: "a b" }, { ...g, name: "ab" }), ["name"]);
    assert.deepEqual(structuralDiff({ ...g, tags: ["a.b"] }, { ...g, tags: ["ab"] }), ["tags"]);
    assert.deepEqual(structuralDiff({ ...g, resp: { max: 1, ttl_ms: 0 } }, g), ["resp"]);
    assert.deepEqual(structuralDiff(g, { ...g, pub: { allow: ["a.b"] } }), ["pub.allow"]);
  });
});

/** A decision function in TypeScript: `template(req)` is the subject part, undefined to deny. */
function policy(template: (req: AuthorizationRequest) => string | undefined): Decide {
  return async (req) => {
    const t = template(req);
    return t === undefined
      ? undefined
      : { account: "APP", pub: { allow: [`user.${t}.>`] }, sub: { allow: ["x"] } };
  };
}

async function verdict(decide: Decide, req: AuthorizationRequest) {
  const grant = await decide(req);
  assert.notEqual(grant, undefined, "the real request must be allowed for this test");
  return checkInjection(req, grant, decide);
}

describe("checkInjection", () => {
  test("no dangerous character anywhere: no probe at all", async () => {
    let calls = 0;
    const d: Decide = async (r) => {
      calls++;
      return { account: "APP", pub: { allow: [`user.${r.connect_opts.user}.>`] } };
    };
    const c = await verdict(d, request());
    assert.deepEqual(c, { fields: [], probes: 0 });
    assert.equal(calls, 1);
  });

  test("a dangerous field the policy does not use costs one probe and passes (lang nats.js)", async () => {
    const c = await verdict(
      policy((r) => r.connect_opts.user),
      request({ connect_opts: { lang: "nats.js", version: "3.0.2" } }),
    );
    assert.equal(c.finding, undefined);
    assert.equal(c.probes, 1);
  });

  const transforms: [string, (s: string) => string | undefined, string][] = [
    ["split on @", (s) => s.split("@")[0], "*@evil.example"],
    ["trim", (s) => s.trim(), " *"],
    ["lower", (s) => s.toLowerCase(), "ALICE.*"],
    ["substring", (s) => s.slice(0, 3), "ab.cd"],
    ["base64 decode", (s) => Buffer.from(s, "base64").toString(), b64("*")],
    ["JSON decode", (s) => String((JSON.parse(s) as { u: string }).u), '{"u":"\\u003e"}'],
    [
      "JWT payload (unverified)",
      (s) => String(JSON.parse(Buffer.from(s.split(".")[1]!, "base64url").toString()).sub),
      jwt({ sub: "*" }),
    ],
  ];
  for (const [name, fn, hostile] of transforms) {
    test(`finds the field through ${name}`, async () => {
      const c = await verdict(
        policy((r) => fn(r.connect_opts.auth_token ?? "")),
        request({ connect_opts: { auth_token: hostile, lang: "nats.js" } }),
      );
      assert.deepEqual(c.finding?.fields, ["connect_opts.auth_token"]);
      assert.deepEqual(c.finding?.grant, ["pub.allow"]);
    });
  }

  test("a vetted credential (exact password with dots and spaces) passes; a templated name still fails", async () => {
    const d = policy((r) => (r.connect_opts.pass === "pa.ss w*rd" ? r.connect_opts.name : undefined));
    const ok = await verdict(d, request({ connect_opts: { pass: "pa.ss w*rd", name: "svc" } }));
    assert.equal(ok.finding, undefined);
    const bad = await verdict(d, request({ connect_opts: { pass: "pa.ss w*rd", name: "*" } }));
    assert.deepEqual(bad.finding?.fields, ["connect_opts.name"]);
  });

  test("exact lookup of a dotted user is vetted; the domain lookup + templated local part is not", async () => {
    const users = new Set(["alice.smith"]);
    const exact = await verdict(
      policy((r) => (users.has(r.connect_opts.user!) ? r.connect_opts.user!.replace(".", "_") : undefined)),
      request({ connect_opts: { user: "alice.smith" } }),
    );
    assert.equal(exact.finding, undefined);
    const domain = policy((r) => {
      const [local, dom] = r.connect_opts.user!.split("@");
      return dom === "evil.example" ? local : undefined;
    });
    const c = await verdict(domain, request({ connect_opts: { user: "*@evil.example" } }));
    assert.deepEqual(c.finding?.fields, ["connect_opts.user"]);
  });

  test("a pattern that refuses the placeholder but allows letters is caught by the letter probe", async () => {
    const d = policy((r) => (/^[a-z.]+$/.test(r.connect_opts.user!) ? r.connect_opts.user : undefined));
    const c = await verdict(d, request({ connect_opts: { user: "alice.x" } }));
    assert.deepEqual(c.finding?.fields, ["connect_opts.user"]);
  });

  test("a dot the pattern requires at that place is vetted (the structure is the policy's)", async () => {
    const d = policy((r) =>
      /^[a-z]+\.[a-z]+$/.test(r.connect_opts.user!) ? r.connect_opts.user : undefined,
    );
    const c = await verdict(d, request({ connect_opts: { user: "alice.x" } }));
    assert.equal(c.finding, undefined);
  });

  test("a probe that only loses subjects (a decoder failed on it) tells nothing: honest JWT passes, hostile fails", async () => {
    const d: Decide = async (r) => {
      const subjects = ["base.>"];
      try {
        const t = r.connect_opts.auth_token!.split(".");
        if (t.length === 3)
          subjects.push(`u.${JSON.parse(Buffer.from(t[1]!, "base64url").toString()).sub}.>`);
      } catch {
        /* no token subject */
      }
      return { account: "APP", pub: { allow: subjects } };
    };
    const honest = await verdict(
      d,
      request({ connect_opts: { auth_token: jwt({ sub: "alice", iss: "https://idp.example" }) } }),
    );
    assert.equal(honest.finding, undefined);
    const hostile = await verdict(
      d,
      request({ connect_opts: { auth_token: jwt({ sub: "*", iss: "https://idp.example" }) } }),
    );
    assert.deepEqual(hostile.finding?.fields, ["connect_opts.auth_token"]);
  });

  test("a JWS whose signature the policy verifies is vetted as a whole (one canary probe, not one per character)", async () => {
    const key = "k";
    const sign = (claims: unknown) => {
      const body = `${b64url('{"alg":"HS256"}')}.${b64url(JSON.stringify(claims))}`;
      return `${body}.${createHmac("sha256", key).update(body).digest("base64url")}`;
    };
    const d = policy((r) => {
      const [h, p, sig] = r.connect_opts.auth_token!.split(".");
      if (createHmac("sha256", key).update(`${h}.${p}`).digest("base64url") !== sig) return undefined;
      return String(JSON.parse(Buffer.from(p!, "base64url").toString()).sub).replace(/\W/g, "_");
    });
    const c = await verdict(
      d,
      request({ connect_opts: { auth_token: sign({ sub: "a.b", iss: "https://idp.example" }) } }),
    );
    assert.equal(c.finding, undefined);
    assert.equal(c.probes, 3); // all fields, the token field, the signature canary
    assert.equal(signatureCanary(jwt({ sub: "x" })), `${jwt({ sub: "x" }).slice(0, -4)}A2ln`);
    assert.equal(signatureCanary(`${b64url('{"alg":"none"}')}.${b64url("{}")}.c2ln`), undefined);
    assert.equal(signatureCanary("a.b"), undefined);
  });

  test("a throwing probe counts as not allowed; the probe and text budgets fail closed", async () => {
    const exact =
      (pass: string): Decide =>
      async (r) => {
        if (r.connect_opts.pass !== pass) throw new Error("boom");
        return { account: "APP" };
      };
    // 40 dots a password needs, a budget of 41: 2 probes, then 2 + 40 > 41 → fail fast, no per-character probes.
    const many = request({ connect_opts: { pass: ".".repeat(40) } });
    const c1 = await checkInjection(many, { account: "APP" }, exact(".".repeat(40)), 41);
    assert.deepEqual(c1.finding, { fields: ["connect_opts.pass"], grant: [], probes: 2 });
    // 20 dots: up to 2 + 2 × 20 probes are needed; a budget of 30 runs out after 30.
    const some = request({ connect_opts: { pass: ".".repeat(20) } });
    const c2 = await checkInjection(some, { account: "APP" }, exact(".".repeat(20)), 30);
    assert.equal(c2.finding?.probes, 30);
    // A huge string: the text budget (MAX_PROBE_CHARS) stops the second rewrite, long before the probe budget.
    const big = "a".repeat(MAX_PROBE_CHARS / 2) + ".";
    const c3 = await checkInjection(request({ connect_opts: { pass: big } }), { account: "APP" }, exact(big));
    assert.deepEqual(c3.finding, { fields: ["connect_opts.pass"], grant: [], probes: 1 });
    assert.ok(MAX_PROBES >= 64);
  });
});

describe("policyHandler wiring (real opa build)", { skip: skipWithoutOpa }, () => {
  test("probes run on the request's snapshot; ctx.facts keeps the real input and decision, plus the probe count", async () => {
    const rego = `package naive

import rego.v1

default decision := {"allow": false}

decision := {"allow": true, "account": "APP", "pub": {"allow": [sprintf("u.%s.>", [lower(input.connect_opts.name)])]}}
`;
    const { bundlePath } = buildWasmFixture({ "naive.rego": rego }, ["naive/decision"]);
    const h = await createPolicyEngine({ bundle: bundlePath, entrypoint: "naive/decision", watch: false });
    try {
      const ctx = () => ({
        decisionId: "d",
        now: new Date("2030-01-01T00:00:00Z"),
        facts: {} as DecisionFacts,
      });
      const ok = ctx();
      assert.deepEqual(await h.handler(request({ connect_opts: { name: "Svc", lang: "nats.js" } }), ok), {
        account: "APP",
        pub: { allow: ["u.svc.>"] },
      });
      assert.deepEqual(ok.facts.injection, { fields: ["connect_opts.lang"], probes: 1 });
      assert.equal((ok.facts.input as { connect_opts: { lang: string } }).connect_opts.lang, "nats.js");
      const bad = ctx();
      await assert.rejects(
        async () => h.handler(request({ connect_opts: { name: "ALICE.*", lang: "nats.js" } }), bad),
        (e: unknown) =>
          e instanceof DecisionShapeError &&
          e.code === "subject_injection" &&
          e.field === "connect_opts.name",
      );
      assert.deepEqual((bad.facts.decision as { grant: Grant }).grant.pub, { allow: ["u.alice.*.>"] });
      assert.equal((bad.facts.input as { connect_opts: { name: string } }).connect_opts.name, "ALICE.*");
    } finally {
      await h.close();
    }
  });
});

describe("plain handlers", () => {
  test("guardHandler denies with subject_injection naming the field, and leaves meta a probe count", async () => {
    const h = guardHandler((r) => ({
      account: "APP",
      pub: { allow: [`u.${r.connect_opts.name!.trim()}.>`] },
    }));
    assert.equal(isGuarded(h), true);
    const facts: DecisionFacts = {};
    await assert.rejects(
      async () => h(request({ connect_opts: { name: " >" } }), { decisionId: "d", now: new Date(), facts }),
      (e: unknown) =>
        e instanceof DecisionShapeError && e.code === "subject_injection" && e.field === "connect_opts.name",
    );
    assert.deepEqual(facts.injection, { fields: ["connect_opts.name"], probes: 2 });
    const ok = await h(request({ connect_opts: { name: "svc" } }), {
      decisionId: "d",
      now: new Date(),
      facts: {},
    });
    assert.deepEqual(ok, { account: "APP", pub: { allow: ["u.svc.>"] } });
  });

  test("verbatimInjection: an unsafe client string verbatim in any subject list, from any client field", () => {
    const grant = (s: string): Grant => ({ account: "APP", pub: { allow: ["ok"], deny: [`x.${s}`] } });
    for (const user of ["*", ">", "a.b", "bob.*", "a b"]) {
      const e = verbatimInjection(grant(user), request({ connect_opts: { user } }));
      assert.equal(e?.code, "subject_injection");
      assert.equal(e?.field, "pub.deny[0]");
    }
    for (const o of [
      { connect_opts: { name: "x.y" } },
      { connect_opts: { lang: "x.y" } },
      { client_info: { name_tag: "x.y" } },
      { client_info: { mqtt_id: "x.y" } },
    ]) {
      assert.equal(
        verbatimInjection({ account: "APP", sub: { allow: ["app.x.y.>"] } }, request(o))?.field,
        "sub.allow[0]",
      );
    }
    assert.equal(verbatimInjection(grant("alice"), request()), undefined);
    assert.equal(
      verbatimInjection(grant("johndoe"), request({ connect_opts: { user: "john.doe" } })),
      undefined,
    );
    assert.equal(verbatimInjection(grant("a.b"), request({ connect_opts: { user: "" } })), undefined);
  });
});
