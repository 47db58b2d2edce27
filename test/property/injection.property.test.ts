/**
 * Property: whatever a naive policy does to a client-controlled string, a hostile string never gets a grant wider than
 * the same policy gives the benign string of the same shape. "Wider" is structural: the hostile login is either denied
 * (by the policy, by `subject_injection`, or by grant validation) or allowed with a grant whose account, resp and
 * every subject, name and tag have the same skeleton (sequence of `*`, `>`, `.`, whitespace, control characters) as
 * the benign grant.
 *
 * Real parts: each policy is Rego compiled by the real `opa build -t wasm` with the host capabilities (loaded from a
 * directory like the service does, so the guard also knows the input paths the Rego reads), evaluated by
 * the service's engine through policyHandler (which runs the probes), then validateGrant as in the pipeline.
 * One policy per transformation; each templates nine client fields at once (`f<i>.<t(v)>.>`), the transformed
 * `connect_opts.name` as the user name and the transformed tags as tags. The hostile string is generated from an
 * alphabet of wildcards, dots, Unicode whitespace, control, mixed-case and look-alike characters, then wrapped
 * (raw, base64, base64url, hex, JSON string, JSON \u-escaped object, unsigned JWT claim) and put in one field.
 *
 * fast-check runs with a fixed seed (SEED below; INJECTION_PROPERTY_SEED / _RUNS override it for exploration) so the
 * outcome never depends on chance.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import type { HandlerContext } from "../../src/callout/pipeline.js";
import { AbortAuth, AuthError, CalloutError } from "../../src/errors.js";
import { validateGrant } from "../../src/grant.js";
import { countOccurrences, skeleton } from "../../src/injection.js";
import { createPolicyEngine, type PolicyEngineHandle } from "../../src/policy/handler.js";
import { SMOKE_REQUEST } from "../../src/policy/input.js";
import type { AuthorizationRequest, Grant } from "../../src/types.js";
import { OPA_BIN, skipWithoutOpa } from "../support/index.js";

const SEED = Number(process.env.INJECTION_PROPERTY_SEED ?? 20261129);
const NUM_RUNS = Number(process.env.INJECTION_PROPERTY_RUNS ?? 150);

/** `_t(v)` for a document decoder: the decoded string, or the decoded object's `u`. */
function stringOrU(decoder: string): string {
  return ["", ".u"]
    .map(
      (path) => `_t(v) := x if {
	x := ${decoder}(v)${path}
	is_string(x)
}`,
    )
    .join("\n\n");
}

/** `_t(v)`: the transformation under test, one Rego function body per policy. */
const TRANSFORMS: Record<string, string> = {
  sprintf: `_t(v) := sprintf("%s", [v])`,
  split: `_t(v) := split(v, "@")[0]`,
  lower: `_t(v) := lower(v)`,
  upper: `_t(v) := upper(v)`,
  trim_space: `_t(v) := trim_space(v)`,
  trim: `_t(v) := trim(v, " _-")`,
  replace: `_t(v) := replace(v, "-", "_")`,
  substring: `_t(v) := substring(v, 1, 5)`,
  concat: `_t(v) := concat("-", ["id", v])`,
  indexof: `_t(v) := substring(v, 0, indexof(v, "@")) if contains(v, "@")
_t(v) := v if not contains(v, "@")`,
  regex: `_t(v) := regex.find_all_string_submatch_n("[^@]+", v, 1)[0][0]`,
  regex_split: `_t(v) := regex.split("[@:]", v)[0]`,
  reverse: `_t(v) := strings.reverse(v)`,
  chain: `_t(v) := lower(trim_space(split(v, "@")[0]))`,
  base64: `_t(v) := base64.decode(v)`,
  base64url: `_t(v) := base64url.decode(v)`,
  // Host builtins fail the whole evaluation on bad input (strict, as OPA's --strict-builtin-errors): guard the shape,
  // and stay naive about what the decoded text carries.
  hex: `_t(v) := hex.decode(v) if regex.match("^([0-9a-fA-F]{2})+$", v)`,
  json: stringOrU("json.unmarshal"),
  jwt: `_t(v) := x if {
	regex.match("^eyJ[A-Za-z0-9_-]*[.][A-Za-z0-9_-]+[.][A-Za-z0-9_-]*$", v)
	x := io.jwt.decode(v)[1].sub
	is_string(x)
}`,
  yaml: stringOrU("yaml.unmarshal"),
};

function policyFor(transform: string): string {
  return `package naive

import rego.v1

${transform}

_fields := [
	object.get(input.connect_opts, "user", ""),
	object.get(input.connect_opts, "name", ""),
	object.get(input.connect_opts, "lang", ""),
	object.get(input.connect_opts, "version", ""),
	object.get(input.connect_opts, "auth_token", ""),
	object.get(input.client_info, "user", ""),
	object.get(input.client_info, "name_tag", ""),
	object.get(input.client_info, "mqtt_id", ""),
	object.get(input.client_info, ["tags", 0], ""),
]

_subjects contains sprintf("f%d.%s.>", [i, t]) if {
	some i, v in _fields
	t := _t(v)
}

_name := {"name": n} if {
	n := _t(input.connect_opts.name)
} else := {}

default decision := {"allow": false, "reason": "never"}

decision := object.union(
	{
		"allow": true,
		"account": "APP",
		"pub": {"allow": sort(_subjects)},
		"sub": {"allow": sort(_subjects), "deny": [sprintf("f9.%s", [t]) | some t in _subjects]},
		"tags": sort({_t(t) | some t in object.get(input.client_info, "tags", [])}),
	},
	_name,
)
`;
}

/** Where a hostile string can go: every client field the policies read. */
const FIELDS = [
  "connect_opts.user",
  "connect_opts.name",
  "connect_opts.lang",
  "connect_opts.version",
  "connect_opts.auth_token",
  "client_info.user",
  "client_info.name_tag",
  "client_info.mqtt_id",
  "client_info.tags",
] as const;

function withField(field: (typeof FIELDS)[number], value: string): AuthorizationRequest {
  const req = structuredClone(SMOKE_REQUEST) as AuthorizationRequest;
  req.connect_opts = {
    user: "guest",
    pass: "correct-horse-battery",
    name: "svc",
    lang: "go",
    version: "1",
    protocol: 1,
  };
  req.client_info = {
    ...req.client_info,
    user: "guest",
    name: "svc",
    tags: ["t"],
    name_tag: "nt",
    mqtt_id: "m",
  };
  const [part, key] = field.split(".") as ["connect_opts" | "client_info", string];
  if (key === "tags") req.client_info.tags = [value];
  else (req[part] as Record<string, unknown>)[key] = value;
  return req;
}

/** Characters a hostile string is made of: the dangerous ones, separators policies split on, case and look-alikes. */
const HOSTILE = [
  "*",
  ">",
  ".",
  " ",
  "\t",
  "\n",
  "\r",
  "\u0000",
  "\u001b",
  "\u007f",
  "\u0085",
  "\u00a0",
  "\u2028",
  "\u3000",
  "\ufeff",
];
const HARMLESS = ["a", "B", "z", "0", "@", "-", "_", ":", "é", "İ", "ß", "Σ", "\u00a4", "\u200b", "．"];

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const escapeAll = (s: string) =>
  [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("");
const WRAPPERS: Record<string, (s: string) => string> = {
  raw: (s) => s,
  base64: b64,
  base64url: (s) => Buffer.from(s, "utf8").toString("base64url"),
  hex: (s) => Buffer.from(s, "utf8").toString("hex"),
  json_string: (s) => JSON.stringify(s),
  json_escaped: (s) => `{"u": "${escapeAll(s)}"}`,
  // A YAML double-quoted scalar with \x escapes (not JSON, and no raw dangerous character left).
  yaml_escaped: (s) =>
    `"${[...s].map((c) => (c.charCodeAt(0) < 0x80 ? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}` : c)).join("")}"`,
  jwt: (s) =>
    `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify({ sub: s })).toString("base64url")}.`,
};

/** The benign twin: same length and shape, every dangerous character a letter. */
const benign = (s: string) =>
  [...s].map((c) => (HOSTILE.includes(c) || countOccurrences(c) > 0 ? "x" : c)).join("");

/** Strings of `chars` with at least one dangerous character. */
const hostileFrom = (chars: fc.Arbitrary<string>) =>
  fc
    .array(chars, { minLength: 1, maxLength: 10 })
    .map((cs) => cs.join(""))
    .filter((s) => countOccurrences(s) > 0);

const sample = fc.record({
  // Half the strings carry only wildcards and dots: they make valid subjects, so grant validation cannot stop them.
  inner: fc.oneof(
    hostileFrom(fc.oneof(fc.constantFrom(...HOSTILE), fc.constantFrom(...HARMLESS))),
    hostileFrom(fc.constantFrom("*", ">", ".", "a", "B", "@", "-", "é")),
  ),
  wrapper: fc.constantFrom(...Object.keys(WRAPPERS)),
  field: fc.constantFrom(...FIELDS),
});

type Outcome = { kind: "allow"; grant: Grant } | { kind: "deny"; code: string };

/** policyHandler (with the probes), then validateGrant as the pipeline does; `validate: false` for the benign twin. */
async function decide(h: PolicyEngineHandle, req: AuthorizationRequest, validate = true): Promise<Outcome> {
  const ctx: HandlerContext = { decisionId: "p", now: new Date("2030-01-01T00:00:00Z"), facts: {} };
  try {
    const g = await h.handler(req, ctx);
    return { kind: "allow", grant: validate ? validateGrant(g, req, { accounts: ["APP"] }) : g };
  } catch (err) {
    if (err instanceof AuthError || err instanceof AbortAuth || err instanceof CalloutError) {
      return { kind: "deny", code: err.code };
    }
    throw err;
  }
}

/**
 * Where the hostile grant has dangerous structure the benign one has not: an allowed subject whose skeleton is neither
 * the template's own (`f<i>.<t>.>` → "..>") nor one of the benign grant's; a name or tag likewise; another account.
 * (Deny entries mirror allow entries one to one in this corpus; garbage that a lenient decoder makes of the benign
 * twin may carry dangerous characters of its own, which is why this is a one-way comparison.)
 */
function wider(good: Grant, hostile: Grant): string[] {
  const out: string[] = [];
  if (good.account !== hostile.account) out.push("account");
  for (const kind of ["pub", "sub"] as const) {
    const known = new Set(["..>", ...(good[kind]?.allow ?? []).map(skeleton)]);
    for (const s of hostile[kind]?.allow ?? []) if (!known.has(skeleton(s))) out.push(`${kind}.allow: ${s}`);
  }
  const names = new Set(["", ...(good.name === undefined ? [] : [skeleton(good.name)])]);
  if (hostile.name !== undefined && !names.has(skeleton(hostile.name))) out.push("name");
  const tags = new Set(["", ...(good.tags ?? []).map(skeleton)]);
  for (const t of hostile.tags ?? []) if (!tags.has(skeleton(t))) out.push("tags");
  return out;
}

describe("no transformation lets a hostile client string widen a grant", { skip: skipWithoutOpa }, () => {
  const engines = new Map<string, PolicyEngineHandle>();
  before(async () => {
    // Loaded from a directory, as the service loads policies: the guard then also knows which input paths the Rego
    // reads (src/policy/input-reads.ts), and must still probe every field these policies reach through object.get.
    for (const [name, fn] of Object.entries(TRANSFORMS)) {
      const dir = mkdtempSync(join(tmpdir(), "injection-property-"));
      dirs.push(dir);
      writeFileSync(join(dir, "naive.rego"), policyFor(fn));
      const h = await createPolicyEngine({
        dir,
        entrypoint: "naive/decision",
        opaBin: OPA_BIN ?? "opa",
        watch: false,
      });
      assert.ok(h.store.current().policy.inputReads !== undefined, "the input paths are known");
      engines.set(name, h);
    }
  });
  const dirs: string[] = [];
  after(async () => {
    for (const h of engines.values()) await h.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  for (const name of Object.keys(TRANSFORMS)) {
    test(`${name}`, async () => {
      const h = engines.get(name)!;
      const stats = { injection: 0, allowedEqual: 0, otherDeny: 0 };
      await fc.assert(
        fc.asyncProperty(sample, async ({ inner, wrapper, field }) => {
          const wrap = WRAPPERS[wrapper]!;
          const hostile = await decide(h, withField(field, wrap(inner)));
          // Unvalidated: the benign twin of a templated token is refused as secret_in_grant, which is not our concern.
          const good = await decide(h, withField(field, wrap(benign(inner))), false);
          if (hostile.kind === "deny") {
            if (hostile.code === "subject_injection") stats.injection++;
            else stats.otherDeny++;
            return;
          }
          // A denied twin (its lenient decoding may be the dangerous one) leaves only the template's own structure.
          const extra = wider(good.kind === "allow" ? good.grant : { account: "APP" }, hostile.grant);
          assert.deepEqual(extra, [], JSON.stringify({ extra, good, hostile }));
          stats.allowedEqual++;
        }),
        { seed: SEED, numRuns: NUM_RUNS },
      );
      // The property must not hold vacuously: the probes really denied injections through this transformation.
      assert.ok(stats.injection > 0, JSON.stringify(stats));
    });
  }

  test("the naive policies really are vulnerable: without the probes the hostile grant is wider", async () => {
    const h = engines.get("chain")!;
    const req = withField("connect_opts.user", " *@evil.example");
    const evaluated = await h.store
      .current()
      .policy.evaluate((await import("../../src/policy/input.js")).buildInput(req), "naive/decision", {
        nowNs: 0n,
      });
    const raw = evaluated.result as Grant;
    assert.ok(raw.pub?.allow?.includes("f0.*.>"), JSON.stringify(raw));
    assert.deepEqual(await decide(h, req), { kind: "deny", code: "subject_injection" });
  });
});
