/**
 * Reload under load: N policy reloads (full 100, reduced 10) alternating two valid revisions, with a
 * broken edit before every other one, while a connect storm runs. Asserts: no authorization fails;
 * every decision event names exactly one revision, always one of the two valid ones; no broken edit
 * is ever served (never the active revision, never in a decision event); every broken edit is
 * counted as a failed reload and every valid one as a successful reload.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { join } from "node:path";
import {
  stormTs,
  RELIABILITY_FULL as FULL,
  RELIABILITY_SCALE_NAME as SCALE_NAME,
  atomicWrite,
  fileDir,
  policyStatus,
  readDecisions,
  revisionOf,
  startStack,
  waitUntil,
  type Stack,
} from "../support/index.js";

const RELOADS = FULL ? 100 : 10;

const valid = (tag: string) => `package nats.authz

import rego.v1

decision := {
	"allow": true,
	"account": "APP",
	"pub": {"allow": ["app.${tag}.>"]},
	"sub": {"allow": ["app.${tag}.>", "_INBOX.>"]},
}
`;
const REV_A = valid("a");
const REV_B = valid("b");

/** Edits that must never be served: compile errors, and policies the smoke evaluation rejects. */
const BROKEN: { kind: string; body: string }[] = [
  { kind: "syntax error", body: `package nats.authz\n\ndecision := {"allow": true,\n` },
  { kind: "empty file", body: "" },
  { kind: "truncated write", body: REV_A.slice(0, Math.floor(REV_A.length / 2)) },
  {
    kind: "builtin the host lacks",
    body: `package nats.authz\n\nimport rego.v1\n\ndecision := {"allow": true, "account": http.send({"method": "get", "url": "http://127.0.0.1:1"}).body}\n`,
  },
  {
    kind: "undefined decision",
    body: `package nats.authz\n\nimport rego.v1\n\ndecision := {"allow": true} if false\n`,
  },
  {
    kind: "malformed decision",
    body: `package nats.authz\n\nimport rego.v1\n\ndecision := {"allow": "yes"}\n`,
  },
  {
    kind: "conflicting outputs",
    body: `package nats.authz\n\nimport rego.v1\n\ndecision := {"allow": false, "reason": "a"} if input.version == 1\n\ndecision := {"allow": false, "reason": "b"} if input.version > 0\n`,
  },
];

let stack: Stack | undefined;
after(async () => {
  await stack?.close();
});

test(`policy reloads under a connect storm (${SCALE_NAME}: ${RELOADS} reloads)`, async (t) => {
  const dir = fileDir("reload");
  stack = await startStack({ dir, watch: true, policy: REV_A });
  const status = stack.statusUrl(0);
  const rego = join(stack.policyDir, "policy.rego");
  const revA = revisionOf({ "policy.rego": REV_A });
  const revB = revisionOf({ "policy.rego": REV_B });
  const brokenRevs = new Set(BROKEN.map((b) => revisionOf({ "policy.rego": b.body })));
  assert.equal((await policyStatus(status)).revision, revA, "revision formula matches the service's");

  const abort = new AbortController();
  const s = stack;
  const storm = stormTs({
    url: s.server.url,
    n: 10_000_000,
    concurrency: 20,
    creds: s.creds,
    signal: abort.signal,
  });

  let okReloads = 0;
  let brokenEdits = 0;
  const servedRevisions = new Set<string>();
  try {
    for (let i = 0; i < RELOADS; i++) {
      // A broken edit before every other valid reload; each must fail and leave the active revision alone.
      if (i % 2 === 1) {
        const b = BROKEN[brokenEdits % BROKEN.length] as { kind: string; body: string };
        const before = await policyStatus(status);
        atomicWrite(rego, b.body);
        const after = await waitUntil(
          `failed reload after "${b.kind}"`,
          async () => {
            const st = await policyStatus(status);
            return (st.reloads?.failed ?? 0) > (before.reloads?.failed ?? 0) ? st : undefined;
          },
          60_000,
        );
        assert.equal(after.revision, before.revision, `"${b.kind}" must not change the active revision`);
        assert.ok(!brokenRevs.has(after.revision ?? ""), `"${b.kind}" must never be served`);
        brokenEdits++;
      }
      const next = i % 2 === 0 ? REV_B : REV_A;
      const want = i % 2 === 0 ? revB : revA;
      const before = await policyStatus(status);
      atomicWrite(rego, next);
      await waitUntil(
        `reload ${i + 1} to ${want}`,
        async () => {
          const st = await policyStatus(status);
          return st.revision === want && (st.reloads?.ok ?? 0) > (before.reloads?.ok ?? 0) ? st : undefined;
        },
        60_000,
      );
      servedRevisions.add(want);
      okReloads++;
    }
  } finally {
    abort.abort();
  }
  const result = await storm;
  const final = await policyStatus(status);
  await stack.close();

  const events = readDecisions(stack.decisionLog(0));
  const byRevision: Record<string, number> = {};
  let withoutRevision = 0;
  for (const e of events) {
    if (typeof e.revision === "string" && /^[0-9a-f]{16}$/.test(e.revision)) {
      byRevision[e.revision] = (byRevision[e.revision] ?? 0) + 1;
    } else withoutRevision++;
  }
  t.diagnostic(
    `storm: ${result.ok} ok, ${result.failed} failed ${JSON.stringify(result.errors)}; reloads ok ${final.reloads?.ok}, ` +
      `failed ${final.reloads?.failed}; decision events ${events.length} by revision ${JSON.stringify(byRevision)}`,
  );

  assert.equal(okReloads, RELOADS);
  assert.equal(result.failed, 0, `authorizations failed during reloads: ${JSON.stringify(result.errors)}`);
  assert.ok(result.ok > 0, "the storm made connections");
  assert.equal(final.reloads?.failed, brokenEdits, "every broken edit was rejected");
  assert.ok((final.reloads?.ok ?? 0) >= RELOADS, "every valid edit was activated");
  assert.equal(withoutRevision, 0, "every decision event names exactly one revision");
  for (const rev of Object.keys(byRevision)) {
    assert.ok(rev === revA || rev === revB, `decision under unexpected revision ${rev}`);
    assert.ok(!brokenRevs.has(rev), "a broken revision served a decision");
  }
  assert.equal(events.length, result.ok + result.failed, "one decision event per authorization");
  assert.ok(
    (byRevision[revA] ?? 0) > 0 && (byRevision[revB] ?? 0) > 0,
    "decisions were served under both revisions",
  );
  assert.ok(
    events.every((e) => e.outcome === "allow"),
    "every decision was an allow",
  );
});
