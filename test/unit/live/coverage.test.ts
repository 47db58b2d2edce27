/**
 * Grant coverage (src/live/coverage.ts): wildcard subject algebra checked against a brute-force matcher over a small
 * alphabet, and covers() properties: a grant covers itself, widening is covered, narrowing never is (fixed seeds).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  covers,
  permissionCovers,
  subjectCovers,
  subjectsIntersect,
  uncoveredReason,
  type GrantSummary,
} from "../../../src/live/coverage.js";

const SEED = 20261129;
const RUNS = 400;

// Subjects over tokens {a, b} with wildcards, 1–3 tokens; concrete subjects over {a, b, c}, 1–4 tokens.
const token = fc.constantFrom("a", "b", "*");
const pattern = fc
  .tuple(fc.array(token, { minLength: 1, maxLength: 3 }), fc.boolean())
  .map(([ts, tail]) => (tail ? [...ts.slice(0, -1), ">"] : ts).join("."));

const concrete: string[] = [];
for (const n of [1, 2, 3, 4]) {
  const rec = (pre: string[]): void => {
    if (pre.length === n) return void concrete.push(pre.join("."));
    for (const t of ["a", "b", "c"]) rec([...pre, t]);
  };
  rec([]);
}

/** Brute-force NATS match of a literal subject. */
function matches(pat: string, subj: string): boolean {
  const p = pat.split(".");
  const s = subj.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

function grant(over: Partial<GrantSummary> = {}): GrantSummary {
  return {
    account: "APP",
    name: "alice",
    pub: { allow: ["orders.>", "_INBOX.>"] },
    sub: { allow: ["orders.*.created", "_INBOX.>"], deny: ["orders.secret.created"] },
    exp: 2_000_000_000,
    subs: 100,
    data: -1,
    payload: 1_048_576,
    ...over,
  };
}

describe("subject algebra", () => {
  it("subjectCovers agrees with brute force: general ⊇ specific on every concrete subject", () => {
    fc.assert(
      fc.property(pattern, pattern, (g, s) => {
        const brute = concrete.filter((c) => matches(s, c)).every((c) => matches(g, c));
        // Patterns have at most 3 tokens and the literal "c" never appears in one: subjects of up to 4 tokens
        // over {a, b, c} tell every case apart, so the two must agree exactly.
        assert.equal(subjectCovers(g, s), brute, `${g} ⊇ ${s}`);
        assert.ok(subjectCovers(s, s));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("subjectsIntersect agrees with brute force on a shared concrete subject", () => {
    fc.assert(
      fc.property(pattern, pattern, (a, b) => {
        const brute = concrete.some((c) => matches(a, c) && matches(b, c));
        assert.equal(subjectsIntersect(a, b), brute, `${a} ∩ ${b}`);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("examples", () => {
    assert.ok(subjectCovers(">", "a.>"));
    assert.ok(subjectCovers("a.*", "a.b"));
    assert.ok(!subjectCovers("a.*", "a.>"));
    assert.ok(!subjectCovers("a.b", "a.*"));
    assert.ok(!subjectCovers("a.>", "a"));
    assert.ok(subjectsIntersect("a.*", "*.b"));
    assert.ok(!subjectsIntersect("a.>", "a"));
  });
});

describe("covers()", () => {
  const subjects = fc.uniqueArray(pattern, { minLength: 1, maxLength: 4 });

  it("a grant always covers itself", () => {
    fc.assert(
      fc.property(subjects, subjects, fc.integer({ min: -1, max: 10 }), (pub, sub, subs) => {
        const g = grant({ pub: { allow: pub }, sub: { allow: sub }, subs });
        assert.equal(uncoveredReason(g, g), undefined);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("removing an allow subject is never covered (unless another allow still covers it)", () => {
    fc.assert(
      fc.property(subjects, fc.nat(), (pub, i) => {
        const removed = pub[i % pub.length]!;
        const rest = pub.filter((s) => s !== removed);
        fc.pre(rest.length > 0 && !rest.some((s) => subjectCovers(s, removed)));
        assert.equal(uncoveredReason(grant({ pub: { allow: rest } }), grant({ pub: { allow: pub } })), "pub");
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("a narrowed wildcard is not covered; a widened one is", () => {
    const old = grant({ pub: { allow: ["orders.>"] } });
    assert.equal(uncoveredReason(grant({ pub: { allow: ["orders.*"] } }), old), "pub");
    assert.equal(uncoveredReason(grant({ pub: { allow: ["orders.eu.>"] } }), old), "pub");
    assert.ok(covers(grant({ pub: { allow: [">"] } }), old));
  });

  it("a new deny that hits an old allow is not covered; one the old deny already held is", () => {
    const old = grant();
    assert.equal(uncoveredReason(grant({ sub: { ...old.sub, deny: ["orders.eu.created"] } }), old), "sub");
    assert.ok(covers(grant({ sub: { ...old.sub, deny: ["orders.secret.created", "billing.>"] } }), old));
  });

  it("the deny-all side covers nothing to lose; an allow-all old side needs allow-all", () => {
    assert.ok(permissionCovers({ deny: [">"] }, { deny: [">"] }));
    assert.ok(permissionCovers({ allow: ["x"] }, { deny: [">"] }));
    assert.ok(!permissionCovers({ allow: [">"], deny: ["x"] }, {}));
    assert.ok(permissionCovers({}, {}));
  });

  it("account, identity, limits, resp, src, times, connection types, bearer and expiry are compared", () => {
    const old = grant({
      resp: { max: 1, ttl_ms: 1000 },
      src: ["10.0.0.0/8"],
      allowed_connection_types: ["STANDARD"],
    });
    const cases: [Partial<GrantSummary>, string | undefined][] = [
      [{ account: "OPS" }, "account"],
      [{ name: "bob" }, "identity"],
      [{ tags: ["x"] }, "identity"],
      [{ subs: 99 }, "limits"],
      [{ subs: -1 }, undefined],
      [{ data: 10 }, "limits"],
      [{ payload: -1 }, undefined],
      [{ resp: undefined }, "resp"],
      [{ resp: { max: -1, ttl_ms: 1000 } }, undefined],
      [{ resp: { max: 1, ttl_ms: 500 } }, "resp"],
      [{ src: ["10.1.0.0/16"] }, "src"],
      [{ src: undefined }, undefined],
      [{ times: [{ start: "08:00:00", end: "18:00:00" }] }, "times"],
      [{ allowed_connection_types: ["WEBSOCKET"] }, "connection_types"],
      [{ allowed_connection_types: ["STANDARD", "WEBSOCKET"] }, undefined],
      [{ bearer_token: true }, "bearer_token"],
      [{ exp: old.exp - 1 }, "expiry"],
      [{ exp: old.exp + 3600 }, undefined],
    ];
    for (const [over, want] of cases) {
      assert.equal(uncoveredReason({ ...old, ...over }, old), want, JSON.stringify(over));
    }
  });

  it("limit narrowing is never covered (property: -1 = unlimited)", () => {
    const lim = fc.integer({ min: -1, max: 1000 });
    fc.assert(
      fc.property(lim, lim, (n, o) => {
        const inf = (x: number) => (x === -1 ? Infinity : x);
        assert.equal(covers(grant({ payload: n }), grant({ payload: o })), inf(n) >= inf(o));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
