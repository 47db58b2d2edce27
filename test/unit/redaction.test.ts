/**
 * Secrets (password, token, JWT, signature, nkey seed) pushed through every operator-facing path — log lines
 * at every level and format, decision-log events for every outcome, config and CLI error messages, `check`
 * failure output and `eval` output — must never come out. Each path's output is grepped for every secret.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer, createUser } from "@nats-io/nkeys";
import { createLogger } from "../../src/log.js";
import { createDecisionLog, maskInput } from "../../src/audit.js";
import { SECRET_KEYS } from "../../src/secret-keys.js";
import { resolveConfig } from "../../src/config.js";
import { ConfigError, PolicyEvalError } from "../../src/errors.js";
import { encodeJwt } from "../../src/callout/jwt.js";
import { signerFromSeed } from "../../src/callout/keys.js";
import { decisionRecordFromResult } from "../../src/decision-record.js";
import type { ResultEvent } from "../../src/service.js";
import { reportError } from "../../src/cli.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const OPA = process.env.OPA_BIN ?? join(REPO, ".tools", "bin", "opa");
const dec = new TextDecoder();

const PASSWORD = "Pa55-w0rd-Secret-7781";
const TOKEN = "tok-Secret-9c41d2e7f0";
const SEED = dec.decode(createUser().getSeed());
const SIG = "c2lnbmF0dXJlLXNlY3JldC0xMjM0NTY3ODkw";
const JWT =
  "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQUJDIiwic2VjcmV0Ijp0cnVlfQ.c2lnbmF0dXJlc2lnbmF0dXJl";
const SECRETS = { PASSWORD, TOKEN, SEED, SIG, JWT };

function assertClean(what: string, text: string): void {
  for (const [name, value] of Object.entries(SECRETS)) {
    assert.ok(!text.includes(value), `${what} leaks ${name}:\n${text.slice(0, 2000)}`);
  }
}

function connectOpts() {
  return { user: "alice", pass: PASSWORD, auth_token: TOKEN, jwt: JWT, sig: SIG, name: "app", lang: "node" };
}

function policyInput() {
  return {
    version: 1,
    server_id: { name: "n", host: "127.0.0.1", id: "NSERVER", version: "2.10.27" },
    user_nkey: createUser().getPublicKey(),
    // On 2.10 a token client's raw token is also sent as client_info.user.
    client_info: {
      host: "127.0.0.1",
      id: 3,
      user: TOKEN,
      name: "app",
      kind: "Client",
      type: "nats",
      nonce: "n0nce",
    },
    connect_opts: connectOpts(),
    request_issuer: "AISSUER",
    derived: { connection_type: "STANDARD", tls: false },
  };
}

function capture(): { lines: string[]; dest: { write(s: string): void } } {
  const lines: string[] = [];
  return { lines, dest: { write: (s: string) => void lines.push(s) } };
}

test("log lines at every level and in both formats redact secret fields", () => {
  for (const format of ["json", "pretty"] as const) {
    const { lines, dest } = capture();
    const log = createLogger({ level: "trace", format, destination: dest });
    const child = log.child({ component: "test" });
    for (const level of ["trace", "debug", "info", "warn", "error", "fatal"] as const) {
      child[level](
        {
          pass: PASSWORD,
          password: PASSWORD,
          auth_token: TOKEN,
          token: TOKEN,
          jwt: JWT,
          sig: SIG,
          seed: SEED,
          creds: `-----BEGIN NATS USER JWT-----\n${JWT}\n------END NATS USER JWT------\n${SEED}`,
          connect_opts: connectOpts(),
          request: { client_info: { user: TOKEN }, connect_opts: connectOpts() },
          deep: { a: { b: { connect_opts: connectOpts() } } },
        },
        `${level} line`,
      );
    }
    assert.equal(lines.length, 6, `${format}: one line per level`);
    assertClean(`${format} log`, lines.join(""));
    assert.ok(lines.join("").includes("[REDACTED]"));
  }
});

test("every shared secret key is redacted by the logger and masked by the decision log, at any depth", () => {
  const value = "v4lue-Secret-5150";
  // The names spelled out here must stay covered even if the shared list shrinks; additions are covered too.
  const names = "pass password auth_token token jwt sig seed nkey_seed creds secret signature authorization";
  for (const k of new Set<string>([...names.split(" "), ...SECRET_KEYS])) {
    const doc = { [k]: value, a: { [k]: value, b: { c: { [k]: value } } } };
    const { lines, dest } = capture();
    createLogger({ level: "info", destination: dest }).info(doc, "line");
    assert.equal(lines.length, 1);
    assert.ok(!lines.join("").includes(value), `log leaks ${k}: ${lines.join("")}`);
    const { input, masked } = maskInput(doc);
    assert.ok(!JSON.stringify(input).includes(value), `decision log leaks ${k}`);
    assert.deepEqual([...masked].sort(), [`/${k}`, `/a/${k}`, `/a/b/c/${k}`].sort());
  }
  // The decision log also masks the server nonce.
  assert.deepEqual(maskInput({ client_info: { nonce: "n0nce" } }).masked, ["/client_info/nonce"]);
});

test("decision-log events for allow, deny, abort and faults carry no secret", () => {
  const lines: string[] = [];
  const dlog = createDecisionLog({ sink: (l) => lines.push(l) });
  const req = {
    server_id: { name: "n", host: "127.0.0.1", id: "NSERVER", version: "2.10.27" },
    user_nkey: createUser().getPublicKey(),
    client_info: { host: "127.0.0.1", user: TOKEN, type: "nats", kind: "Client" },
    connect_opts: connectOpts(),
    request_issuer: "AISSUER",
    issued_at: 1,
    expires_at: 2,
    encrypted: false,
  };
  const base = (over: Partial<ResultEvent["result"]>): ResultEvent => {
    const result: ResultEvent["result"] = {
      decisionId: "d",
      outcome: { kind: "deny", code: "auth_denied", reason: "bad_credentials" },
      facts: { input: policyInput(), revision: "r1", eval_us: 5 },
      timings: { decode_us: 1, handler_us: 2, sign_us: 3, total_us: 6 },
      request: req,
      ...over,
    };
    const sent = result.outcome.kind !== "abort";
    return {
      decisionId: "d",
      receivedAt: new Date(),
      queue_us: 1,
      replied: sent,
      reply: sent ? "sent" : "none",
      outcome: result.outcome,
      result,
    };
  };
  const events: ResultEvent[] = [
    base({}),
    base({ outcome: { kind: "abort", code: "auth_aborted", reason: "user_locked" } }),
    base({
      outcome: { kind: "deny", code: "policy_eval_error", reason: "policy_eval_error" },
      error: new PolicyEvalError("policy evaluation failed", { cause: new Error(PASSWORD) }),
    }),
    // Without an input document (no policy ran): built from the request, masked just the same.
    base({ facts: {} }),
    base({
      outcome: { kind: "allow", grant: { account: "APP" } },
      issued: {
        account: "APP",
        issuer: "AISSUER",
        name: "alice",
        user_nkey: req.user_nkey,
        pub: { allow: ["a.>"] },
        sub: { allow: ["_INBOX.alice.>"] },
        exp: 2,
        subs: -1,
        data: -1,
        payload: -1,
      },
    }),
  ];
  for (const ev of events) dlog.record(decisionRecordFromResult(ev, "nats/authz/decision"));
  assert.equal(lines.length, events.length);
  assertClean("decision log", lines.join(""));
  assert.ok(lines.every((l) => l.includes('"masked":[')));
});

test("config errors and CLI error reports never echo secret values", () => {
  let caught: unknown;
  try {
    resolveConfig({
      nats: { servers: ["nats://127.0.0.1:4222"], user: "u", password: PASSWORD, token: TOKEN },
      issuer: { seed: SEED }, // a user seed where an account seed belongs
      xkey: { seed: JWT },
      accounts: ["APP"],
      policy: { dir: "/nonexistent" },
    });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, "resolveConfig must fail");
  assertClean("ConfigError.message", caught.message);
  assertClean("ConfigError.problems", JSON.stringify(caught.problems));
  const written: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => {
    written.push(String(s));
    return true;
  }) as typeof process.stderr.write;
  try {
    reportError(caught);
    reportError(new PolicyEvalError("policy evaluation failed", { cause: new Error(PASSWORD) }));
  } finally {
    process.stderr.write = orig;
  }
  assert.ok(written.join("").includes("configuration error"));
  assertClean("CLI error report", written.join(""));
});

test(
  "eval and check output mask the secrets of the input they are given",
  { skip: !existsSync(OPA) ? "opa missing" : false },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "redaction-"));
    try {
      const inputFile = join(dir, "input.json");
      const input = policyInput();
      (input.client_info as Record<string, unknown>).name = `client with ${SEED}`;
      writeFileSync(inputFile, JSON.stringify(input));
      const cli = (args: string[]) =>
        spawnSync(process.execPath, ["--import", "tsx", join(REPO, "src", "cli.ts"), ...args], {
          cwd: REPO,
          encoding: "utf8",
          env: { ...process.env, OPA_BIN: OPA },
        });
      for (const extra of [[], ["--json"], ["--print-jwt"]]) {
        const r = cli(["eval", "--policy-dir", join(REPO, "policies"), "--input", inputFile, ...extra]);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /outcome|"outcome"/);
        assertClean(`eval ${extra.join(" ")}`, r.stdout + r.stderr);
      }
      // A captured request JWT carrying the same secrets.
      const server = createServer();
      const signer = signerFromSeed(dec.decode(server.getSeed()), "server");
      const token = encodeJwt(
        {
          aud: "nats-authorization-request",
          sub: "AISSUER",
          exp: Math.floor(Date.now() / 1000) + 60,
          nats: {
            server_id: input.server_id,
            user_nkey: input.user_nkey,
            client_info: input.client_info,
            connect_opts: input.connect_opts,
            type: "authorization_request",
            version: 2,
          },
        },
        signer,
      );
      const jwtFile = join(dir, "request.jwt");
      writeFileSync(jwtFile, token);
      const r = cli(["eval", "--policy-dir", join(REPO, "policies"), "--jwt", jwtFile, "--json"]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { source: string }).source, "request JWT");
      assertClean("eval --jwt", r.stdout + r.stderr);
      // check: a failing case prints its (masked) input and expectation.
      const cases = join(dir, "cases");
      mkdirSync(cases);
      writeFileSync(
        join(cases, "c.json"),
        JSON.stringify({ leak: { name: "leak", input, expect: { allow: true, secret: PASSWORD } } }),
      );
      const c = cli(["check", "--policy-dir", join(REPO, "policies"), "--cases", cases]);
      assert.equal(c.status, 1, c.stdout + c.stderr);
      assert.match(c.stdout, /✘ leak/);
      assertClean("check failure output", c.stdout + c.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
