/**
 * Secrets: every log line and decision event the suite wrote (build/reliability/*: service output,
 * decision logs) is scanned for every password, token and seed the suite used: 0 hits. This file
 * runs last (zz-) and first adds its own scenario, at log level trace, built to tempt leaks:
 * password and token clients, denials, and a policy that echoes the password into its deny reason.
 *
 * A second test covers a policy that names the user after its token: validateGrant refuses such a
 * grant (secret_in_grant), so the token never reaches the user JWT, `issued.name` in the decision
 * event or the service's one-line summary. Its secrets live in their own file so the suite-wide scan
 * above stays about what the service itself controls.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import {
  secret,
  SUITE_DIR,
  fileDir,
  readDecisions,
  registerSecret,
  scanSuite,
  startStack,
  tryConnect,
  type Stack,
} from "../support/index.js";
import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";

const LEAKY_POLICY = `package nats.authz

import rego.v1

default decision := {"allow": false, "reason": "not_authorized"}

# Deny with a reason that echoes the password (a careless policy): must be redacted.
decision := {"allow": false, "reason": sprintf("bad password %s for %s", [input.connect_opts.pass, input.connect_opts.user])} if {
	startswith(input.connect_opts.user, "deny")
}

decision := {"allow": true, "account": "APP", "pub": {"allow": ["app.>"]}, "sub": {"allow": ["_INBOX.>"]}} if {
	startswith(input.connect_opts.user, "ok")
}

decision := {"allow": true, "account": "APP", "pub": {"allow": ["app.>"]}, "sub": {"allow": ["_INBOX.>"]}} if {
	startswith(input.connect_opts.auth_token, "token-")
}
`;

/** A careless policy that names the user after its token. */
const NAME_LEAK_POLICY = `package nats.authz

import rego.v1

default decision := {"allow": false, "reason": "not_authorized"}

decision := {"allow": true, "account": "APP", "name": input.connect_opts.auth_token, "pub": {"allow": ["app.>"]}, "sub": {"allow": ["_INBOX.>"]}} if {
	startswith(input.connect_opts.auth_token, "nametoken-")
}
`;

let stack: Stack | undefined;
after(async () => {
  await stack?.close();
});

test("no secret in any log line or decision event of the suite", async (t) => {
  const dir = fileDir("zz-secrets");
  stack = await startStack({ dir, policy: LEAKY_POLICY, logLevel: "trace" });
  const s = stack;
  const url = s.server.url;
  let allowed = 0;
  let denied = 0;
  for (let i = 0; i < 20; i++) {
    const pass = registerSecret(dir, secret(`pw${i}`));
    if ((await tryConnect(url, { user: `ok-user${i}`, pass })) === undefined) allowed++;
    const dpass = registerSecret(dir, secret(`deny-pw${i}`));
    if ((await tryConnect(url, { user: `deny-user${i}`, pass: dpass })) !== undefined) denied++;
    const token = registerSecret(dir, `token-${secret(`t${i}`)}`);
    try {
      const nc = await connect({ servers: url, token, maxReconnectAttempts: 0, reconnect: false });
      allowed++;
      await nc.close();
    } catch {
      /* counted below via the decision log */
    }
  }
  await s.close();
  const events = readDecisions(s.decisionLog(0));
  t.diagnostic(`scenario: ${allowed} allowed, ${denied} denied, ${events.length} decision events`);
  assert.equal(allowed, 40, "password and token clients were allowed");
  assert.equal(denied, 20, "deny users were denied");
  assert.ok(
    events.some((e) => e.outcome === "deny"),
    "deny events were written",
  );

  const scan = scanSuite(SUITE_DIR);
  t.diagnostic(
    `scanned ${scan.files} files, ${scan.lines} lines, for ${scan.secrets} secrets: ${scan.hits.length} hits` +
      (scan.hits.length
        ? ` (first: ${scan.hits
            .slice(0, 5)
            .map((h) => `${h.file}:${h.line}`)
            .join(", ")})`
        : ""),
  );
  assert.ok(scan.secrets >= 60, "the secrets list is populated");
  assert.ok(scan.lines > 100, "there were log lines to scan");
  assert.equal(scan.hits.length, 0, "a secret reached a log line or decision event");
});

test("a policy that names the user after its token does not leak the token", async (t) => {
  const dir = fileDir("zz-secrets-name");
  const leakStack = await startStack({ dir, policy: NAME_LEAK_POLICY, logLevel: "trace" });
  const tokens: string[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const token = `nametoken-${secret(`n${i}`)}`;
      tokens.push(token);
      appendFileSync(join(dir, "name-secrets.txt"), token + "\n");
      try {
        const nc = await connect({
          servers: leakStack.server.url,
          token,
          maxReconnectAttempts: 0,
          reconnect: false,
        });
        await nc.close();
      } catch {
        /* refusing such a grant is fine too */
      }
    }
  } finally {
    await leakStack.close();
  }
  const text = ["service-0.log", "decisions-0.jsonl"]
    .map((f) => {
      try {
        return readFileSync(join(dir, f), "utf8");
      } catch {
        return "";
      }
    })
    .join("\n");
  const hits = tokens.filter((tok) => text.includes(tok)).length;
  t.diagnostic(`${hits} of ${tokens.length} tokens found in the service log / decision log`);
  assert.equal(hits, 0);
  // The grant was refused by the service (not merely scrubbed from the logs): one deny per login.
  const refused = readFileSync(join(dir, "decisions-0.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as { outcome?: string; code?: string })
    .filter((e) => e.outcome === "deny" && e.code === "secret_in_grant").length;
  assert.equal(refused, tokens.length, "every token-named grant is denied with secret_in_grant");
});
