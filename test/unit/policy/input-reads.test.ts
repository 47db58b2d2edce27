/**
 * The input paths a policy may read (src/policy/input-reads.ts) and what the injection guard does with them: a
 * client string the policy cannot read needs no probe; one it reads in any way — a static path, a dynamic key,
 * object.get, an import alias, the whole input through json.marshal or walk — is still probed, and the attack is
 * still refused. Real opa (parse and build) and the real policy handler.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { DecisionFacts, HandlerContext } from "../../../src/callout/pipeline.js";
import { CalloutError } from "../../../src/errors.js";
import { inputReads, mayRead } from "../../../src/policy/input-reads.js";
import { buildInput, SMOKE_REQUEST } from "../../../src/policy/input.js";
import { createPolicyEngine, type PolicyEngineHandle } from "../../../src/policy/handler.js";
import type { AuthorizationRequest } from "../../../src/types.js";
import { OPA_BIN, REPO, skipWithoutOpa } from "../../support/index.js";
import { readFileSync, readdirSync } from "node:fs";

const opa = OPA_BIN ?? "opa";
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function policyDir(rego: string, data?: unknown): string {
  const d = mkdtempSync(join(tmpdir(), "input-reads-"));
  dirs.push(d);
  writeFileSync(join(d, "policy.rego"), rego);
  if (data !== undefined) writeFileSync(join(d, "data.json"), JSON.stringify(data));
  return d;
}

const reads = (rego: string) => inputReads([{ rel: "p.rego", content: Buffer.from(rego) }], opa);

/** A policy whose grant templates `expr` (a string it computes from the input) into a subject. */
function templating(expr: string, extra = ""): string {
  return `package t

import rego.v1
${extra}

_v := ${expr}

decision := {
	"allow": true,
	"account": "APP",
	"pub": {"allow": [sprintf("out.%s", [_v])]},
	"sub": {"allow": ["in"]},
} if input.connect_opts.pass == "pw"

default decision := {"allow": false, "reason": "bad"}
`;
}

function request(opts: Record<string, unknown>): AuthorizationRequest {
  const req = structuredClone(SMOKE_REQUEST) as AuthorizationRequest;
  req.connect_opts = { user: "alice", pass: "pw", lang: "go", version: "1", protocol: 1, ...opts };
  return req;
}

async function decide(
  h: PolicyEngineHandle,
  req: AuthorizationRequest,
): Promise<{ ok: true; facts: DecisionFacts; pub: string[] } | { ok: false; code: string }> {
  const ctx: HandlerContext = { decisionId: "t", now: new Date("2030-01-01T00:00:00Z"), facts: {} };
  try {
    const g = await h.handler(req, ctx);
    return { ok: true, facts: ctx.facts, pub: g.pub?.allow ?? [] };
  } catch (err) {
    if (err instanceof CalloutError) return { ok: false, code: err.code };
    throw err;
  }
}

describe("input paths a policy reads", { skip: skipWithoutOpa }, () => {
  test("static paths are cut at the first non-constant term", async () => {
    assert.deepEqual(
      await reads(`package t
import rego.v1
a if input.connect_opts.user == "x"
b if { some k; input.client_info[k] == 1 }
c := object.get(input.server_id, "name", "")
d := [x | x := input.client_info.tags[0]]
`),
      [["client_info"], ["connect_opts", "user"], ["server_id"]],
    );
  });

  for (const [what, rego] of [
    ["json.marshal(input)", `x := json.marshal(input)`],
    ["walk(input, …)", `x contains v if walk(input, [_, v])`],
    ["input[k]", `x contains v if { some k; v := input[k] }`],
    ["x := input", `x := input`],
    ["import input", `import input\nx := input.connect_opts.user`],
  ]) {
    test(`${what} reads the whole input`, async () => {
      assert.deepEqual(await reads(`package t\nimport rego.v1\n${rego}\n`), [[]]);
    });
  }

  test("an import alias of an input path reads that whole subtree", async () => {
    assert.deepEqual(
      await reads(`package t\nimport rego.v1\nimport input.connect_opts as co\nx := co.lang\n`),
      [["connect_opts"]],
    );
  });

  test("a file opa cannot parse means: may read anything", async () => {
    assert.equal(await reads(`package t\nthis is not rego {\n`), undefined);
    assert.equal(
      await inputReads([{ rel: "p.rego", content: Buffer.from("package t\n") }], "/nonexistent/opa"),
      undefined,
    );
  });

  test("a Rego v0 file is analysed too", async () => {
    assert.deepEqual(await reads(`package t\nallow { input.connect_opts.user == "x" }\n`), [
      ["connect_opts", "user"],
    ]);
  });

  test("mayRead: prefixes either way, undefined reads everything", () => {
    const r = [["connect_opts", "user"], ["client_info"]];
    assert.equal(mayRead(r, ["connect_opts", "user"]), true);
    assert.equal(mayRead(r, ["client_info", "tags", 0]), true);
    assert.equal(mayRead(r, ["connect_opts", "version"]), false);
    assert.equal(mayRead([["client_info", "tags", "0"]], ["client_info", "tags", 0]), true);
    assert.equal(mayRead([["connect_opts", "user", "x"]], ["connect_opts", "user"]), true);
    assert.equal(mayRead(undefined, ["connect_opts", "version"]), true);
    assert.equal(mayRead([[]], ["connect_opts", "version"]), true);
  });

  test("request paths are input paths: connect_opts and client_info go into the input verbatim", () => {
    const req = request({ version: "1.2.3" });
    const input = buildInput(req);
    assert.equal(input.connect_opts, req.connect_opts);
    assert.equal(input.client_info, req.client_info);
  });

  test("the example policy reads neither connect_opts.version nor connect_opts.lang", async () => {
    const dir = join(REPO, "policies");
    const files = [join(dir, "authz"), join(dir, "lib")].flatMap((d) =>
      readdirSync(d)
        .filter((f) => f.endsWith(".rego") && !f.endsWith("_test.rego"))
        .map((f) => ({ rel: f, content: readFileSync(join(d, f)) })),
    );
    const r = await inputReads(files, opa);
    assert.ok(r !== undefined);
    assert.equal(mayRead(r, ["connect_opts", "version"]), false);
    assert.equal(mayRead(r, ["connect_opts", "lang"]), false);
    assert.equal(mayRead(r, ["connect_opts", "user"]), true);
  });
});

describe(
  "the injection guard probes exactly the strings the policy can read",
  { skip: skipWithoutOpa },
  () => {
    const engines: PolicyEngineHandle[] = [];
    after(async () => {
      for (const e of engines) await e.close();
    });
    const engine = async (rego: string, data?: unknown) => {
      const h = await createPolicyEngine({
        dir: policyDir(rego, data),
        entrypoint: "t/decision",
        opaBin: opa,
        watch: false,
      });
      engines.push(h);
      return h;
    };

    test("a dotted version the policy never reads needs no probe; a dotted user it templates is refused", async () => {
      const h = await engine(templating("input.connect_opts.user"));
      assert.deepEqual(h.store.current().policy.inputReads, [
        ["connect_opts", "pass"],
        ["connect_opts", "user"],
      ]);
      const honest = await decide(h, request({ version: "2.29.1", lang: "nats.js" }));
      assert.ok(honest.ok);
      assert.equal(honest.facts.injection, undefined, "no probe evaluation");
      assert.deepEqual(honest.pub, ["out.alice"]);
      assert.deepEqual(await decide(h, request({ user: "a.*", version: "2.29.1" })), {
        ok: false,
        code: "subject_injection",
      });
    });

    // Every way of reading `connect_opts.version` other than its static path: still probed, the attack still refused.
    for (const [what, expr, extra, data] of [
      ["object.get with a constant key", `object.get(input.connect_opts, "version", "")`, "", undefined],
      [
        "object.get with a key from data",
        `object.get(input.connect_opts, data.field, "")`,
        "",
        { field: "version" },
      ],
      ["a dynamic key", `[v | some k, v in input.connect_opts; k == "version"][0]`, "", undefined],
      ["an import alias", `co.version`, "import input.connect_opts as co", undefined],
      ["json.marshal(input)", `json.unmarshal(json.marshal(input)).connect_opts.version`, "", undefined],
      ["walk(input)", `[v | walk(input, [p, v]); p == ["connect_opts", "version"]][0]`, "", undefined],
    ] as [string, string, string, unknown][]) {
      test(`version read through ${what} is probed`, async () => {
        const h = await engine(templating(expr, extra), data);
        const honest = await decide(h, request({ version: "1" }));
        assert.ok(honest.ok, JSON.stringify(honest));
        assert.deepEqual(honest.pub, ["out.1"]);
        assert.deepEqual(await decide(h, request({ version: "x.*" })), {
          ok: false,
          code: "subject_injection",
        });
        assert.deepEqual(await decide(h, request({ version: ">" })), {
          ok: false,
          code: "subject_injection",
        });
      });
    }
  },
);
