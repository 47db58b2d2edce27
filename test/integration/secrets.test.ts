/**
 * Transformed secrets never reach a log sink. A careless policy puts upper(password) into a deny reason, a
 * 12-character fragment of a token into another, and names a user lower(token). Against real nats-server (2.15
 * and 2.10) and the real service CLI at log level trace, every sink — the service's output, the decision log and
 * nats-server's log — is scanned, case-insensitively, for each secret and for every 8-character piece of it:
 * 0 hits. The reasons arrive as "redacted", the name as a `secret_in_grant` refusal; a one-character password
 * no longer redacts an unrelated reason.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import {
  startOurs,
  type OursChild,
  configModeSetup,
  serverMatrix,
  startNatsServer,
  type NatsServer,
  OPA_BIN,
} from "../support/index.js";
import { fold, MIN_FRAGMENT } from "../../src/secrets.js";

// Fixed values: randomness must not decide the outcome.
const PASSWORD = "Zq7-Wide-Mango-Pass-4411";
const FRAG_TOKEN = "frag-Tx81Kpq2Vn5Lm0RzWc";
const NAME_TOKEN = "NAME-Qw93Bd47Hs2Xy6JcUe";
const SECRETS = [PASSWORD, FRAG_TOKEN, NAME_TOKEN];

const LEAKY_POLICY = `package nats.authz

import rego.v1

default decision := {"allow": false, "reason": "not_authorized"}

decision := {"allow": false, "reason": sprintf("bad password %s for %s", [upper(input.connect_opts.pass), input.connect_opts.user])} if {
	startswith(input.connect_opts.user, "upper")
}

decision := {"allow": false, "reason": sprintf("token %s... rejected", [substring(input.connect_opts.auth_token, 5, 12)])} if {
	startswith(input.connect_opts.auth_token, "frag-")
}

decision := {"allow": true, "account": "APP", "name": lower(input.connect_opts.auth_token), "pub": {"allow": ["app.>"]}, "sub": {"allow": ["_INBOX.>"]}} if {
	startswith(input.connect_opts.auth_token, "NAME-")
}
`;

/** Every 8-character piece of every secret, folded like src/secrets.ts folds. */
function pieces(): Set<string> {
  const out = new Set<string>();
  for (const s of SECRETS) {
    const f = fold(s);
    for (let i = 0; i + MIN_FRAGMENT <= f.length; i++) out.add(f.slice(i, i + MIN_FRAGMENT));
  }
  return out;
}

function leaks(text: string): string[] {
  const f = fold(text);
  const hits: string[] = [];
  for (const p of pieces()) if (f.includes(p)) hits.push(p);
  return hits;
}

async function refused(url: string, o: { user?: string; pass?: string; token?: string }): Promise<void> {
  await assert.rejects(connect({ servers: url, reconnect: false, timeout: 10_000, ...o }), /Authorization/i);
}

for (const sb of serverMatrix()) {
  const skip = sb.missing ? `nats-server ${sb.label} missing (make tools)` : OPA_BIN ? false : "opa missing";
  describe(`transformed secrets in every log sink (nats-server ${sb.version || sb.label})`, { skip }, () => {
    let dir: string;
    let server: NatsServer;
    let svc: OursChild | undefined;
    let serviceOutput = "";
    let decisions = "";
    let serverLog = "";

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "secrets-"));
      const policyDir = join(dir, "policy");
      mkdirSync(policyDir);
      writeFileSync(join(policyDir, "policy.rego"), LEAKY_POLICY);
      const cm = configModeSetup();
      server = await startNatsServer({ bin: sb.bin, config: cm.config });
      svc = await startOurs({
        url: server.url,
        calloutUser: cm.callout.user,
        calloutPass: cm.callout.password,
        issuerSeed: cm.issuer.seed,
        account: "APP",
        policyDir,
        decisionLog: join(dir, "decisions.jsonl"),
        logLevel: "trace",
        workDir: join(dir, "svc"),
        fromSource: true,
      });
      await refused(server.url, { user: "upper-alice", pass: PASSWORD });
      await refused(server.url, { token: FRAG_TOKEN });
      await refused(server.url, { token: NAME_TOKEN });
      await refused(server.url, { user: "short", pass: "a" });
      await svc.stop();
      serviceOutput = svc.output();
      svc = undefined;
      decisions = readFileSync(join(dir, "decisions.jsonl"), "utf8");
      serverLog = server.log();
    });
    after(async () => {
      await svc?.stop();
      await server?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test("the service output, the decision log and nats-server's log carry no secret in any case or piece", () => {
      for (const [sink, text] of [
        ["service output", serviceOutput],
        ["decision log", decisions],
        ["nats-server log", serverLog],
      ] as const) {
        assert.ok(text.length > 0, `${sink} is empty`);
        assert.deepEqual(leaks(text), [], `${sink} leaks`);
      }
    });

    test("the decision log says what happened: two redacted reasons, one secret_in_grant, one plain reason", () => {
      const events = decisions
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { outcome: string; code?: string; reason?: string });
      assert.equal(events.length, 4);
      assert.deepEqual(
        events.map((e) => [e.outcome, e.code, e.reason]),
        [
          ["deny", "auth_denied", "redacted"],
          ["deny", "auth_denied", "redacted"],
          ["deny", "secret_in_grant", "secret_in_grant: name"],
          ["deny", "auth_denied", "not_authorized"],
        ],
      );
    });

    test("the reasons did reach nats-server's log (so scanning it proves something)", () => {
      assert.match(serverLog, /redacted/);
      assert.match(serverLog, /secret_in_grant: name/);
      assert.match(serverLog, /not_authorized/);
    });
  });
}
