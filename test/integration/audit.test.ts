/**
 * An honest audit against real nats-servers (latest and 2.10, config mode): a result, a decision event and the
 * requests_total metric say allow or deny only when that reply reached the server before the request expired.
 *
 * - a grant too large for the server's max_payload is denied before replying (`grant_too_large`): the client
 *   gets the deny (the server logs its reason), not a timeout;
 * - a handler that answers after the request expired is never replied to (`request_expired`);
 * - a reply sent after the server gave up (the event loop stalled between the decision and the reply) is
 *   recorded as abort `reply_late`, with the allow as `decided`;
 * - a reply the server refuses (a callout user without `allow_responses`) is recorded as abort `reply_failed`.
 *
 * Events and metrics are built exactly as `serve` builds them (decision-record.ts → audit.ts, metrics.ts); the last
 * test runs `serve` itself with a policy granting 100k subjects and reads its decision log and /metrics.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startCallout, type CalloutService, type ResultEvent } from "../../src/service.js";
import type { ServiceConfig } from "../../src/config.js";
import type { Handler } from "../../src/callout/pipeline.js";
import { AuthError } from "../../src/errors.js";
import type { Grant } from "../../src/types.js";
import { buildDecisionEvent, type DecisionEvent } from "../../src/audit.js";
import { CalloutMetrics } from "../../src/metrics.js";
import { decisionRecordFromResult, decisionSampleFromResult } from "../../src/decision-record.js";
import {
  configModeSetup,
  serverMatrix,
  startNatsServer,
  type NatsServer,
  until,
  fileDir,
  startStack,
  tryConnect,
  waitUntil,
  readDecisions,
  type Stack,
} from "../support/index.js";

const ENTRYPOINT = "nats/authz/decision";
const SUBJECTS = 100_000;

/** Blocks this thread (the event loop) for `ms`, like a long garbage collection or a slow synchronous task. */
function stall(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const handler: Handler = async (req) => {
  const user = req.connect_opts.user ?? "";
  if (req.connect_opts.pass !== "pw") throw new AuthError("bad_credentials");
  const base: Grant = { account: "APP", pub: { allow: ["app.>"] }, sub: { allow: ["_INBOX.>"] } };
  switch (user) {
    case "huge":
      return {
        ...base,
        pub: { allow: Array.from({ length: SUBJECTS }, (_, i) => `app.tenant.${i}.>`) },
      };
    case "slow": {
      // Answer only after the server's timeout (exp - iat seconds) has passed.
      const ms = (req.expires_at - req.issued_at) * 1000 + 300;
      await new Promise((r) => setTimeout(r, ms));
      return base;
    }
    case "stalled": {
      // Decided in time; then the event loop stalls past the server's timeout before the reply is signed.
      const ms = (req.expires_at - req.issued_at) * 1000 + 300;
      let stalled = false;
      return {
        ...base,
        get account() {
          if (!stalled) {
            stalled = true;
            stall(ms);
          }
          return "APP";
        },
      };
    }
    default:
      return base;
  }
};

interface Recorded {
  result: ResultEvent;
  event: DecisionEvent;
}

for (const sb of serverMatrix()) {
  describe(
    `honest audit — nats-server ${sb.label} (${sb.version})`,
    { skip: sb.missing ? `nats-server ${sb.label} not found at ${sb.bin}` : false },
    () => {
      let server: NatsServer;
      let refusing: NatsServer;
      let svc: CalloutService;
      let refused: CalloutService;
      const metrics = new CalloutMetrics({ version: "test" });
      const recorded: Recorded[] = [];
      const clients: NatsConnection[] = [];

      // The same mapping serve uses: result → metrics sample and decision event.
      const onResult = (ev: ResultEvent) => {
        metrics.observeDecision(decisionSampleFromResult(ev, ENTRYPOINT));
        recorded.push({ result: ev, event: buildDecisionEvent(decisionRecordFromResult(ev, ENTRYPOINT)) });
      };
      const login = async (srv: NatsServer, user: string) => {
        const nc = await connect({ servers: srv.url, user, pass: "pw", reconnect: false, timeout: 20_000 });
        clients.push(nc);
        return nc;
      };
      /** The one record of a login (results arrive once the reply's fate is known). */
      const recordFor = async (user: string): Promise<Recorded> => {
        const find = () =>
          recorded.filter((r) => (r.result.result.request?.connect_opts.user ?? "") === user);
        await until(() => find().length > 0, `the result for ${user}`);
        const all = find();
        assert.equal(all.length, 1, `one result for ${user}`);
        return all[0]!;
      };
      /** requests_total for one outcome and code, summed over the account label. */
      const requests = async (outcome: string, code: string): Promise<number> =>
        (await metrics.requests.get()).values
          .filter((v) => v.labels.outcome === outcome && v.labels.code === code)
          .reduce((sum, v) => sum + v.value, 0);

      const serviceConfig = (srv: NatsServer, setup: ReturnType<typeof configModeSetup>): ServiceConfig => ({
        mode: "config",
        nats: { servers: srv.url, user: setup.callout.user, password: setup.callout.password },
        issuer: { seed: setup.issuer.seed },
        accounts: ["APP"],
      });

      before(async () => {
        const setup = configModeSetup();
        server = await startNatsServer({ bin: sb.bin, config: setup.config });
        svc = await startCallout({ config: serviceConfig(server, setup), handler, onResult });
        // The same callout user without allow_responses: the server refuses every reply.
        const bad = configModeSetup();
        const noResponses = bad.config.replace("allow_responses: true", "allow_responses: false");
        assert.notEqual(noResponses, bad.config);
        refusing = await startNatsServer({ bin: sb.bin, config: noResponses });
        refused = await startCallout({ config: serviceConfig(refusing, bad), handler, onResult });
      });

      after(async () => {
        for (const nc of clients) await nc.close().catch(() => {});
        await svc?.stop();
        await refused?.stop();
        await server?.stop();
        await refusing?.stop();
      });

      it("an allow sent in time is recorded as allow, reply sent", async () => {
        await login(server, "alice");
        const { result, event } = await recordFor("alice");
        assert.equal(result.outcome.kind, "allow");
        assert.equal(result.reply, "sent");
        assert.equal(result.replied, true);
        assert.equal(event.outcome, "allow");
        assert.equal(event.reply, "sent");
        assert.equal(event.decided, undefined);
        assert.equal(typeof event.timings.reply_us, "number");
        assert.equal(await requests("allow", "ok"), 1);
      });

      it(`a grant of ${SUBJECTS} subjects (over max_payload) is denied grant_too_large, not left to time out`, async () => {
        const mark = server.logMark();
        await assert.rejects(login(server, "huge"), /Authorization Violation/);
        // The server received our deny and logged its reason: the client was refused, it did not time out.
        await server.waitForLog(/grant_too_large/, { mark });
        const { result, event } = await recordFor("huge");
        assert.equal(result.result.outcome.kind, "deny");
        assert.deepEqual(
          { kind: result.outcome.kind, code: (result.outcome as { code: string }).code },
          { kind: "deny", code: "grant_too_large" },
        );
        assert.equal(result.reply, "sent");
        assert.match(
          (result.outcome as { reason: string }).reason,
          /^grant_too_large: allow response of at least \d+ bytes exceeds the server's max_payload \d+$/,
        );
        assert.equal(result.result.issued, undefined, "nothing was issued");
        assert.equal(event.outcome, "deny");
        assert.equal(event.code, "grant_too_large");
        assert.equal(event.issued, undefined);
        assert.equal(await requests("deny", "grant_too_large"), 1);
        assert.equal(await requests("allow", "ok"), 1, "no allow recorded for it");
      });

      it("a handler that answers after the request expired is not replied to (request_expired)", async () => {
        await assert.rejects(login(server, "slow"), /Authorization Violation/);
        const { result, event } = await recordFor("slow");
        assert.deepEqual(
          { kind: result.outcome.kind, code: (result.outcome as { code: string }).code },
          { kind: "abort", code: "request_expired" },
        );
        assert.equal(result.reply, "none");
        assert.equal(event.outcome, "abort");
        assert.equal(event.code, "request_expired");
        assert.equal(await requests("abort", "request_expired"), 1);
        assert.equal(await requests("allow", "ok"), 1, "no allow recorded for it");
      });

      it("a reply sent after the server gave up is recorded as abort reply_late, decided allow", async () => {
        await assert.rejects(login(server, "stalled"), /Authorization Violation/);
        const { result, event } = await recordFor("stalled");
        assert.equal(result.result.outcome.kind, "allow", "the decision was allow");
        assert.deepEqual(
          { kind: result.outcome.kind, code: (result.outcome as { code: string }).code },
          { kind: "abort", code: "reply_late" },
        );
        assert.equal(result.reply, "late");
        assert.equal(result.replied, false);
        assert.equal(event.outcome, "abort");
        assert.equal(event.code, "reply_late");
        assert.equal(event.error, true);
        assert.equal(event.reply, "late");
        assert.deepEqual(event.decided, { outcome: "allow", code: "ok" });
        assert.equal(await requests("abort", "reply_late"), 1);
        assert.equal(await requests("allow", "ok"), 1, "no allow recorded for it");
      });

      it("a reply the server refuses (no allow_responses) is recorded as abort reply_failed", async () => {
        await assert.rejects(login(refusing, "bob"), /Authorization Violation/);
        const { result, event } = await recordFor("bob");
        assert.equal(result.result.outcome.kind, "allow", "the decision was allow");
        assert.deepEqual(
          { kind: result.outcome.kind, code: (result.outcome as { code: string }).code },
          { kind: "abort", code: "reply_failed" },
        );
        assert.equal(result.reply, "failed");
        assert.match(String((result.error as Error)?.message), /permissions violation for publish/i);
        assert.equal(event.outcome, "abort");
        assert.equal(event.code, "reply_failed");
        assert.equal(event.reply, "failed");
        assert.deepEqual(event.decided, { outcome: "allow", code: "ok" });
        assert.equal(await requests("abort", "reply_failed"), 1);
        // A refused deny is no deny either.
        const denied = connect({ servers: refusing.url, user: "carol", pass: "nope", reconnect: false });
        await assert.rejects(denied, /Authorization Violation/);
        const carol = await recordFor("carol");
        assert.equal(carol.result.outcome.kind, "abort");
        assert.deepEqual(carol.event.decided, { outcome: "deny", code: "auth_denied" });
        assert.equal(await requests("abort", "reply_failed"), 2);
        assert.equal(refused.status().allowed, 0);
        assert.equal(refused.status().denied, 0);
        assert.equal(refused.status().errors, 2);
      });

      it("status() counts what the clients got", () => {
        const s = svc.status();
        assert.equal(s.allowed, 1);
        assert.equal(s.denied, 1);
        assert.equal(s.aborted, 2);
      });
    },
  );
}

describe("honest audit — the serve CLI", () => {
  let stack: Stack | undefined;
  after(async () => {
    await stack?.close();
  });

  it(`a policy granting ${SUBJECTS} subjects: deny grant_too_large in the decision log and /metrics`, async () => {
    const subjects = Array.from({ length: SUBJECTS }, (_, i) => `app.tenant.${i}.>`);
    stack = await startStack({
      dir: fileDir("audit-cli"),
      policy: `package nats.authz

import rego.v1

decision := {"allow": true, "account": "APP", "pub": {"allow": data.subjects}, "sub": {"allow": ["_INBOX.>"]}}
`,
      files: { "data.json": JSON.stringify({ subjects }) },
      // Evaluating and validating 100k subjects takes over a second on a busy machine: outlast it (the server's
      // auth timeout, and the evaluation deadline that also bounds the start-up smoke evaluation).
      timeoutS: 10,
      evalTimeoutMs: 8_000,
    });
    const s = stack;
    const mark = s.server.logMark();
    assert.match((await tryConnect(s.server.url, s.creds(1))) ?? "", /Authorization Violation/);
    // The server received the deny and logged its reason: the client was refused, it did not time out.
    await s.server.waitForLog(/grant_too_large/, { mark, timeoutMs: 10_000 });
    const [event] = await waitUntil(
      "the decision event",
      async () => {
        const all = readDecisions(s.decisionLog(0));
        return all.length > 0 ? all : undefined;
      },
      10_000,
    );
    assert.deepEqual([event!.outcome, event!.code, event!.reply], ["deny", "grant_too_large", "sent"]);
    assert.equal(event!.issued, undefined);
    const metrics = await (await fetch(`${s.services[0]!.http}/metrics`)).text();
    assert.match(
      metrics,
      /^nats_opa_callout_requests_total\{outcome="deny",code="grant_too_large",account=""\} 1$/m,
    );
    assert.doesNotMatch(metrics, /requests_total\{outcome="allow"/);
  });
});
