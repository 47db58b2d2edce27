/**
 * The policy-controlled decision-log mask (policy.mask_entrypoint) end to end in-process: a real fixture compiled
 * with `opa build -e decision -e mask` (test/fixtures/policies/mask), the handler's snapshot evaluator, the
 * record mapping (src/decision-record.ts), policyMask and the decision log. Paths the rule names are blanked, the
 * built-in secret masks always apply, a failing or malformed mask drops the input, and the mask runs on the
 * snapshot that made the decision even across a reload.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { MASK, applyMaskOps, createDecisionLog, type DecisionEvent } from "../../../src/audit.js";
import { decisionRecordFromResult } from "../../../src/decision-record.js";
import { openPolicy } from "../../../src/policy/open.js";
import { PolicyLoadError } from "../../../src/errors.js";
import { createPolicyEngine, policyHandler, type PolicyEngineHandle } from "../../../src/policy/handler.js";
import { SMOKE_REQUEST } from "../../../src/policy/input.js";
import { policyMask, toMaskOps } from "../../../src/policy/mask.js";
import type { ResultEvent } from "../../../src/service.js";
import type { AuthorizationRequest, Outcome } from "../../../src/types.js";
import type { DecisionFacts, Handler } from "../../../src/callout/pipeline.js";
import { CAPABILITIES, FIXTURES, OPA_BIN, buildWasmFixture, skipWithoutOpa } from "../../support/index.js";

const MASK_EP = "nats/authz/mask";
const PASS = "alice-pw";
const CONN_NAME = "laptop-of-alice.example.org";
const common = { capabilities: CAPABILITIES, opaBin: OPA_BIN ?? "opa", watch: false } as const;

const tmpRoots: string[] = [];
function tmpCopy(fixture: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "policy-mask-"));
  tmpRoots.push(dir);
  cpSync(path.join(FIXTURES, fixture), dir, { recursive: true });
  return dir;
}
after(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});

function req(user: string, pass: string): AuthorizationRequest {
  return {
    ...SMOKE_REQUEST,
    connect_opts: { user, pass, name: CONN_NAME, lang: "node" },
    client_info: { ...SMOKE_REQUEST.client_info, user, name: CONN_NAME, host: "198.51.100.7" },
  };
}

/** Run the handler like the pipeline does and map the result like `serve` does. */
async function decide(handler: Handler, user: string, pass: string): Promise<ResultEvent> {
  const r = req(user, pass);
  const facts: DecisionFacts = {};
  const now = new Date("2030-01-01T00:00:00Z");
  let outcome: Outcome;
  try {
    outcome = { kind: "allow", grant: await handler(r, { decisionId: "d", now, facts }) };
  } catch (e) {
    outcome = { kind: "deny", code: "auth_denied", reason: (e as Error).message };
  }
  return {
    decisionId: `d-${user}`,
    receivedAt: now,
    queue_us: 0,
    replied: true,
    reply: "sent",
    outcome,
    result: {
      decisionId: `d-${user}`,
      outcome,
      request: r,
      facts,
      timings: { decode_us: 0, handler_us: 0, sign_us: 0, total_us: 0 },
    },
  };
}

function collector(mask: ReturnType<typeof policyMask>) {
  const lines: string[] = [];
  const drops: string[] = [];
  const log = createDecisionLog({ sink: (l) => lines.push(l), onDrop: (r) => drops.push(r), mask });
  const record = (ev: ResultEvent): DecisionEvent => {
    log.record(decisionRecordFromResult(ev, "nats/authz/decision"));
    return JSON.parse(lines[lines.length - 1] as string) as DecisionEvent;
  };
  return { lines, drops, record };
}

type Doc = {
  client_info: Record<string, unknown>;
  connect_opts: Record<string, unknown>;
};

describe("policy decision-log mask", { skip: skipWithoutOpa }, () => {
  let dir: string;
  let h: PolicyEngineHandle;
  before(async () => {
    dir = tmpCopy("mask");
    h = await createPolicyEngine({ dir, extraEntrypoints: [MASK_EP], ...common });
  });
  after(async () => {
    await h?.close();
  });

  test("the module exports both entrypoints; the handler exposes an evaluator only when asked", async () => {
    assert.deepEqual(h.store.current().policy.entrypoints, ["nats/authz/decision", MASK_EP]);
    const ev = await decide(h.handler, "alice", PASS);
    assert.equal(typeof ev.result.facts.evaluate, "function");
    assert.ok(!JSON.stringify(ev.result.facts).includes("evaluate"), "the evaluator is never serialised");
    const plain = await decide(policyHandler(h.store), "alice", PASS);
    assert.equal(plain.result.facts.evaluate, undefined);
    assert.equal(plain.result.outcome.kind, "allow");
  });

  test("paths the rule names are blanked, upserts applied, secrets still masked, each path listed once", async () => {
    const c = collector(policyMask(h.store, MASK_EP));
    const ev = c.record(await decide(h.handler, "alice", PASS));
    assert.equal(ev.outcome, "allow");
    assert.equal(ev.input_dropped, undefined);
    const doc = ev.input as Doc;
    assert.equal(doc.client_info.name, MASK);
    assert.equal(doc.connect_opts.name, MASK); // named as "/input/connect_opts/name"
    assert.equal(doc.client_info.host, "0.0.0.0");
    assert.equal(doc.connect_opts.pass, MASK); // built-in
    assert.equal(doc.connect_opts.lang, "node"); // untouched
    assert.equal(Object.hasOwn(doc.client_info, "absent"), false, "absent paths are not created");
    for (const p of ["/connect_opts/pass", "/client_info/name", "/connect_opts/name", "/client_info/host"]) {
      assert.ok(ev.masked?.includes(p), `masked lacks ${p}: ${JSON.stringify(ev.masked)}`);
    }
    assert.ok(!ev.masked?.includes("/client_info/absent"));
    assert.equal(new Set(ev.masked).size, ev.masked?.length, "no duplicates");
    assert.equal(ev.client?.name, MASK);
    const line = c.lines.join("");
    for (const leaked of [PASS, CONN_NAME, "198.51.100.7"]) assert.ok(!line.includes(leaked), leaked);
    assert.deepEqual(c.drops, []);
  });

  test("the rule sees the unmasked input, but an upsert cannot put a secret back", async () => {
    const c = collector(policyMask(h.store, MASK_EP));
    // The pwcheck rule matches only the real password: it is evaluated with the same input as the decision.
    const pw = c.record(await decide(h.handler, "pwcheck", "pwcheck-pw"));
    assert.equal((pw.input as Doc).connect_opts.lang, MASK);
    assert.equal((pw.input as Doc).connect_opts.pass, MASK);
    const other = c.record(await decide(h.handler, "pwcheck", "another-pw"));
    assert.equal((other.input as Doc).connect_opts.lang, "node");
    // The leaky rule copies input.connect_opts.pass into an upsert: the built-in masks run again after the ops.
    const ev = c.record(await decide(h.handler, "leaky", "leaky-secret-pw"));
    assert.equal(ev.outcome, "deny");
    const doc = ev.input as Doc;
    assert.equal(doc.client_info.copy, MASK);
    assert.ok(ev.masked?.includes("/client_info/copy"));
    assert.ok(!c.lines.join("").includes("leaky-secret-pw"));
  });

  test("a malformed result, an evaluation conflict or a builtin failure drops the input (mask_error)", async () => {
    const c = collector(policyMask(h.store, MASK_EP));
    for (const user of ["broken", "conflict", "builtin"]) {
      const ev = c.record(await decide(h.handler, user, `${user}-secret-pw`));
      assert.equal(ev.input, undefined, user);
      assert.equal(ev.masked, undefined, user);
      assert.equal(ev.input_dropped, "mask_error", user);
      assert.equal(ev.decision_id, `d-${user}`);
    }
    assert.deepEqual(c.drops, ["mask_error", "mask_error", "mask_error"]);
    const text = c.lines.join("");
    for (const s of ["broken-secret-pw", "conflict-secret-pw", "builtin-secret-pw", CONN_NAME]) {
      assert.ok(!text.includes(s), s);
    }
  });

  test("the mask runs on the snapshot that decided, even after a reload", async () => {
    const mask = policyMask(h.store, MASK_EP);
    const before = await decide(h.handler, "alice", PASS);
    const oldRevision = h.store.current().revision;
    writeFileSync(path.join(dir, "mask.rego"), 'package nats.authz\n\nmask := ["/connect_opts/lang"]\n');
    const outcome = await h.watcher.reload();
    assert.equal(outcome.result, "ok");
    assert.notEqual(h.store.current().revision, oldRevision);

    const c = collector(mask);
    const old = c.record(before);
    assert.equal(old.revision, oldRevision);
    assert.equal((old.input as Doc).client_info.name, MASK, "old rule");
    assert.equal((old.input as Doc).connect_opts.lang, "node", "not the new rule");

    const fresh = c.record(await decide(h.handler, "alice", PASS));
    assert.equal((fresh.input as Doc).connect_opts.lang, MASK, "new rule");
    assert.equal((fresh.input as Doc).client_info.name, CONN_NAME);

    // Without an evaluator (no policy decided it, e.g. a dropped request) the rule has no result: everything the
    // client supplied is blanked, the server's facts stay ...
    const dropped = await decide(h.handler, "alice", PASS);
    dropped.result.facts = {};
    dropped.dropped = "queue_full";
    const d = c.record(dropped);
    assert.equal(d.input_dropped, undefined);
    const dd = d.input as Doc & { server_id: { name: string } };
    assert.equal(dd.connect_opts as unknown, MASK);
    assert.equal(dd.client_info as unknown, MASK);
    assert.equal(dd.server_id.name, "smoke-test");
    assert.ok(d.masked?.includes("/connect_opts") && d.masked.includes("/client_info"));
    assert.ok(!(c.lines.at(-1) ?? "").includes(CONN_NAME));
    // ... and a record that names a revision no longer active is never masked with another revision's rule.
    const stale = decisionRecordFromResult(before, "nats/authz/decision");
    delete stale.evaluate;
    const log = createDecisionLog({ sink: () => {}, mask });
    assert.equal(log.record(stale)?.input_dropped, "mask_error");
    assert.deepEqual(c.drops, []);
  });
});

describe("loading a policy with a mask entrypoint", { skip: skipWithoutOpa }, () => {
  test("a directory without the rule fails to load, naming the entrypoint (opa's own words)", async () => {
    await assert.rejects(
      createPolicyEngine({ dir: tmpCopy("basic"), extraEntrypoints: [MASK_EP], ...common }),
      (e: unknown) =>
        e instanceof PolicyLoadError &&
        /entrypoint "nats\/authz\/mask" does not refer to a rule/.test(e.message),
    );
    // The CLI adds which setting asked for it.
    await assert.rejects(
      openPolicy(
        {
          dir: tmpCopy("basic"),
          entrypoint: "nats/authz/decision",
          maskEntrypoint: MASK_EP,
          watch: false,
          pollSeconds: 0,
          opaBinary: OPA_BIN ?? "opa",
        },
        { watch: false },
      ),
      (e: unknown) =>
        e instanceof PolicyLoadError &&
        e.message.includes('"nats/authz/mask" does not refer to a rule') &&
        e.message.includes("policy.mask_entrypoint"),
    );
  });

  test("a prebuilt bundle must list the mask entrypoint in its manifest", async () => {
    const files = {
      "authz.rego": 'package nats.authz\n\ndecision := {"allow": false, "reason": "no"}\n',
    };
    const { bundlePath } = buildWasmFixture(files, ["nats/authz/decision"]);
    await assert.rejects(
      createPolicyEngine({ bundle: bundlePath, extraEntrypoints: [MASK_EP], ...common }),
      /manifest does not list entrypoint nats\/authz\/mask/,
    );
    const ok = buildWasmFixture(
      { ...files, "mask.rego": 'package nats.authz\n\nmask contains "/client_info/name"\n' },
      ["nats/authz/decision", MASK_EP],
    );
    const h = await createPolicyEngine({ bundle: ok.bundlePath, extraEntrypoints: [MASK_EP], ...common });
    try {
      const c = collector(policyMask(h.store, MASK_EP));
      const ev = c.record(await decide(h.handler, "alice", PASS));
      assert.equal(ev.outcome, "deny");
      assert.equal((ev.input as Doc).client_info.name, MASK, "a Rego set works as well as an array");
    } finally {
      await h.close();
    }
  });
});

describe("toMaskOps and applyMaskOps", () => {
  test("accepts pointers and remove/upsert ops; undefined means nothing to mask", () => {
    assert.equal(toMaskOps(MASK_EP, undefined), undefined);
    assert.deepEqual(
      toMaskOps(MASK_EP, ["/a", { op: "remove", path: "/b" }, { op: "upsert", path: "/c", value: null }]),
      ["/a", { op: "remove", path: "/b" }, { op: "upsert", path: "/c", value: null }],
    );
  });

  test("rejects anything else, without quoting values", () => {
    const bad: [unknown, RegExp][] = [
      [{ "/a": true }, /set or array of JSON pointers, got object/],
      ["/a", /got string/],
      [["relative"], /not a JSON pointer/],
      [[42], /expected a string or an object, got number/],
      [[{ op: "upsert", path: "/a", value: 1, secret: "x" }], /unknown field secret/],
      [[{ op: "delete", path: "/a" }], /op must be/],
      [[{ op: "remove", path: 7 }], /path must be a JSON pointer/],
      [[{ op: "upsert", path: "/a" }], /upsert needs a value/],
    ];
    for (const [v, re] of bad) assert.throws(() => toMaskOps(MASK_EP, v), re, JSON.stringify(v));
  });

  test("a mask path can never reach a prototype", () => {
    const doc: Record<string, unknown> = { a: {} };
    assert.throws(
      () => applyMaskOps(doc, [{ op: "upsert", path: "/__proto__/polluted", value: 1 }], []),
      /__proto__/,
    );
    const masked: string[] = [];
    applyMaskOps(
      doc,
      [{ op: "upsert", path: "/constructor/prototype/polluted", value: 1 }, "/toString"],
      masked,
    );
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.hasOwn(doc, "toString"), false, "inherited names are not 'present'");
    assert.deepEqual(masked, ["/constructor/prototype/polluted"]);
  });
});
