/**
 * The built CLI (dist/src/cli.js) as an operator runs it: init → real nats-server → serve → real clients
 * (TCP and browser-style websocket), /readyz and /metrics before and after the policy loads, the decision
 * log replayed with eval, check on good and broken policies, config errors, SIGTERM.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  CLI_JS,
  ensureBuilt,
  freePorts,
  isListening,
  NATS_SERVER_BIN,
  OPA_BIN,
  REPO,
} from "../support/index.js";

// ---- helpers: run the built binary like a user does ----

const CLI = CLI_JS;
const NATS_SERVER = NATS_SERVER_BIN;
const OPA = OPA_BIN ?? join(REPO, ".tools", "bin", "opa");

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? REPO,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const runCli = (args: string[], opts: { env?: Record<string, string> } = {}) =>
  run(process.execPath, [CLI, ...args], opts);

function runNode(args: string[], opts: { noWarnings?: boolean } = {}): Promise<RunResult> {
  return run(process.execPath, opts.noWarnings ? ["--no-warnings", ...args] : args);
}

interface Proc {
  readonly child: ChildProcess;
  output(): string;
  /** Signal (default SIGTERM), wait for exit (SIGKILL after 15 s); resolves the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

async function startProcess(
  cmd: string,
  args: string[],
  opts: { name: string; env?: Record<string, string> },
): Promise<Proc> {
  const child = spawn(cmd, args, {
    cwd: REPO,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output: () => out,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Poll `f` until it returns something truthy; throw after `timeoutMs`. */
async function waitFor<T>(
  f: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const POLICIES = join(REPO, "policies");

const skipWithoutTools =
  !existsSync(NATS_SERVER) || !existsSync(OPA) ? "nats-server or opa missing (make tools)" : false;

/** nats-server on `<dir>/nats-server.conf` (as init wrote it), once it listens on `port`. */
async function startNats(dir: string, port: number): Promise<Proc> {
  const nats = await startProcess(NATS_SERVER, ["-c", join(dir, "nats-server.conf")], {
    name: "nats-server",
  });
  await waitFor(() => isListening(port), "nats-server");
  return nats;
}

/** `f` of the response from `url`; undefined while nothing answers there (or `f` throws). */
async function probe<T>(url: string, f: (r: Response) => T | Promise<T>): Promise<T | undefined> {
  try {
    return await f(await fetch(url));
  } catch {
    return undefined;
  }
}

/** A suite's teardown: stop serve, then nats-server, then remove the scratch dir. */
async function teardown(
  serve: Proc | undefined,
  nats: Proc | undefined,
  dir: string | undefined,
): Promise<void> {
  await serve?.stop();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** Collects the async errors (e.g. permissions violations) the server reports on `nc`. */
function collectErrors(nc: NatsConnection): Error[] {
  const errors: Error[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === "error") errors.push(s.error);
  })();
  return errors;
}

/** Publishing to `allowed` raises no error; publishing to `denied` comes back as a permissions violation. */
async function assertPublishRights(
  nc: NatsConnection,
  errors: Error[],
  allowed: string,
  denied: string,
): Promise<void> {
  nc.publish(allowed, "x");
  await nc.flush();
  assert.equal(errors.length, 0);
  nc.publish(denied, "x");
  await nc.flush();
  await waitFor(async () => errors.length > 0 || undefined, "the permission violation");
  assert.match(
    String(errors[0]?.message),
    new RegExp(`Permissions Violation for Publish to "${denied}"`, "i"),
  );
}

describe("nats-opa-callout CLI (built binary)", { skip: skipWithoutTools }, () => {
  let dir: string;
  let natsPort: number;
  let wsPort: number;
  let metricsPort: number;
  let nats: Proc | undefined;
  let serve: Proc | undefined;
  const gate = () => join(dir, "opa-gate-open");
  const decisions = () => join(dir, "decisions.log");
  const metricsUrl = (p: string) => `http://127.0.0.1:${metricsPort}${p}`;

  before(async () => {
    await ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), "cli-test-"));
    [natsPort, wsPort, metricsPort] = (await freePorts(3)) as [number, number, number];
  });

  after(() => teardown(serve, nats, dir));

  test("version and help", async () => {
    const v = await runCli(["version"]);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^nats-opa-callout \d+\.\d+\.\d+/);
    for (const cmd of [
      ["--help"],
      ["serve", "--help"],
      ["init", "--help"],
      ["check", "--help"],
      ["eval", "--help"],
    ]) {
      const r = await runCli(cmd);
      assert.equal(r.code, 0, cmd.join(" "));
      assert.match(r.stdout, /Usage: nats-opa-callout/);
      assert.match(r.stdout, /Examples?:/);
    }
    const serveHelp = await runCli(["serve", "--help"]);
    assert.match(serveHelp.stdout, /3 +policy error/);
    const bad = await runCli(["frobnicate"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command "frobnicate"/);
    const badFlag = await runCli(["serve", "--no-such-flag"]);
    assert.equal(badFlag.code, 2);
  });

  test("init writes keys and configs, secrets 0600 and not printed", async () => {
    const r = await runCli([
      "init",
      "--dir",
      dir,
      "--websocket",
      "--port",
      String(natsPort),
      "--ws-port",
      String(wsPort),
      "--accounts",
      "APP,OPS",
      "--policy-dir",
      POLICIES,
      "--metrics-listen",
      `127.0.0.1:${metricsPort}`,
      "--timeout",
      "5",
      "--bcrypt-cost",
      "6",
    ]);
    assert.equal(r.code, 0, r.stderr);
    for (const f of ["issuer.nk", "xkey.nk", "service.yaml", "nats-server.conf"]) {
      const mode = statSync(join(dir, f)).mode & 0o777;
      assert.equal(mode, 0o600, `${f} mode ${mode.toString(8)}`);
    }
    const issuerSeed = readFileSync(join(dir, "issuer.nk"), "utf8").trim();
    const xkeySeed = readFileSync(join(dir, "xkey.nk"), "utf8").trim();
    assert.match(issuerSeed, /^SA[A-Z2-7]{56}$/);
    assert.match(xkeySeed, /^SX[A-Z2-7]{56}$/);
    const yaml = readFileSync(join(dir, "service.yaml"), "utf8");
    const password = /^ {2}password: (\S+)$/m.exec(yaml)?.[1];
    assert.ok(password && password.length >= 24);
    const conf = readFileSync(join(dir, "nats-server.conf"), "utf8");
    assert.ok(!conf.includes(password), "the server config holds only the bcrypt hash");
    assert.match(conf, /password: "\$2a\$06\$/);
    assert.match(conf, /allow_responses: true/);
    for (const secret of [issuerSeed, xkeySeed, password]) {
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), "init printed a secret");
    }
    const again = await runCli(["init", "--dir", dir]);
    assert.equal(again.code, 2, "refuses to overwrite");
    assert.match(again.stderr, /exists; use --force/);
    // Like `make run`: the decision log is also masked by the example policy's rule (policies/authz/mask.rego).
    assert.match(yaml, /^policy:\n/m);
    writeFileSync(
      join(dir, "service.yaml"),
      yaml.replace(/^policy:\n/m, "policy:\n  mask_entrypoint: nats/authz/mask\n"),
      { mode: 0o600 },
    );
  });

  test("serve: /readyz is 503 until the policy loads, then 200; /metrics follows", async () => {
    // An opa wrapper that blocks until the test opens the gate: "before the policy loads" without timing.
    const wrapper = join(dir, "opa-gated.sh");
    writeFileSync(
      wrapper,
      `#!/bin/sh\nwhile [ ! -e "${gate()}" ]; do sleep 0.05; done\nexec "${OPA}" "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    nats = await startNats(dir, natsPort);
    serve = await startProcess(
      process.execPath,
      [
        CLI,
        "serve",
        "--config",
        join(dir, "service.yaml"),
        "--decision-log",
        decisions(),
        "--log-level",
        "debug",
      ],
      { name: "serve", env: { OPA_BIN: wrapper } },
    );
    const res = await waitFor(() => probe(metricsUrl("/readyz"), (r) => r), "the HTTP endpoint");
    assert.equal(res.status, 503);
    const body = (await res.json()) as { ready: boolean; reasons: string[] };
    assert.equal(body.ready, false);
    assert.ok(body.reasons.includes("policy: not loaded"), JSON.stringify(body));
    assert.ok(
      body.reasons.some((r) => r.startsWith("nats: ")),
      JSON.stringify(body),
    );
    assert.equal((await fetch(metricsUrl("/healthz"))).status, 200);
    const m0 = await (await fetch(metricsUrl("/metrics"))).text();
    assert.match(m0, /^nats_opa_callout_nats_connected 0$/m);
    assert.doesNotMatch(m0, /nats_opa_callout_policy_revision_info\{/);
    assert.match(m0, /^nats_opa_callout_policy_last_reload_success_timestamp_seconds 0$/m);

    writeFileSync(gate(), "");
    const ready = await waitFor(
      async () => {
        const r = await fetch(metricsUrl("/readyz"));
        return r.status === 200 ? r : undefined;
      },
      "readiness",
      60_000,
    );
    const rb = (await ready.json()) as { ready: boolean; revision: string; reasons: string[] };
    assert.equal(rb.ready, true);
    assert.match(rb.revision, /^[0-9a-f]{16}$/);
    assert.deepEqual(rb.reasons, []);
    const m1 = await (await fetch(metricsUrl("/metrics"))).text();
    assert.match(m1, /^nats_opa_callout_nats_connected 1$/m);
    assert.match(
      m1,
      new RegExp(`^nats_opa_callout_policy_revision_info\\{revision="${rb.revision}"\\} 1$`, "m"),
    );
    assert.match(m1, /^nats_opa_callout_policy_reloads_total\{result="success"\} 1$/m);
    assert.match(m1, /^nats_opa_callout_wasm_memory_bytes [1-9]\d*$/m);
    const status = (await (await fetch(metricsUrl("/status"))).json()) as {
      policy: { revision: string };
      crypto: string;
    };
    assert.equal(status.policy.revision, rb.revision);
    // sodium-native ships a linux-x64 prebuild: the fast backend must be the one in use here.
    assert.equal(status.crypto, "libsodium");
  });

  test("a TCP client is authorized with its policy rights; bad credentials are refused", async () => {
    const url = `nats://127.0.0.1:${natsPort}`;
    const nc = await connect({
      servers: url,
      user: "alice",
      pass: "alice-pw",
      name: "alice-laptop.example.org",
      inboxPrefix: "_INBOX.alice",
      maxReconnectAttempts: 0,
    });
    await assertPublishRights(nc, collectErrors(nc), "orders.create", "orders.events.created");
    await nc.close();
    await assert.rejects(
      connect({ servers: url, user: "alice", pass: "wrong", maxReconnectAttempts: 0 }),
      /Authorization Violation/i,
    );
    // The demo client (what `make run` tells people to run) passes against the same setup.
    const demo = await runNode([join(REPO, "examples", "demo-client.mjs"), "--server", url, "--only", "tcp"]);
    assert.equal(demo.code, 0, demo.stdout + demo.stderr);
    assert.match(demo.stdout, /✔ bob \(read-only analyst\): publish orders\.create denied/);
  });

  test("a browser-style websocket client gets the narrower websocket role", async () => {
    const r = await runNode(
      [
        "--experimental-websocket",
        join(REPO, "examples", "demo-client.mjs"),
        "--ws",
        `ws://127.0.0.1:${wsPort}`,
        "--only",
        "ws",
      ],
      { noWarnings: true },
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /✔ dave over websocket \(browser role\): publish dashboard\.dave\.requests allowed/,
    );
    assert.match(r.stdout, /✔ dave over websocket \(browser role\): publish orders\.query\.1 denied/);
    assert.match(
      r.stdout,
      /✔ bob over websocket \(only his own KV keys\): publish \$KV\.prefs\.bob\.theme allowed/,
    );
    assert.match(r.stdout, /✔ bob over websocket \(only his own KV keys\): publish orders\.query\.1 denied/);
    assert.match(r.stdout, /✔ carol over websocket \(no role allowed there\): connection refused/);
  });

  test("metrics count the decisions by outcome, code and account", async () => {
    const m = await (await fetch(metricsUrl("/metrics"))).text();
    const get = (re: RegExp) => Number(re.exec(m)?.[1] ?? "NaN");
    // One series per account; prom-client writes histogram labels with le first.
    const sum = (outcome: string, code: string) =>
      [
        ...m.matchAll(
          new RegExp(
            `^nats_opa_callout_requests_total\\{outcome="${outcome}",code="${code}",account="[^"]*"\\} (\\d+)$`,
            "gm",
          ),
        ),
      ].reduce((a, x) => a + Number(x[1]), 0);
    assert.ok(sum("allow", "ok") >= 5);
    assert.ok(sum("deny", "bad_credentials") >= 2);
    assert.ok(sum("deny", "unknown_user") >= 1);
    assert.ok(sum("deny", "connection_type_not_allowed") >= 1);
    assert.match(
      m,
      /^nats_opa_callout_requests_total\{outcome="deny",code="bad_credentials",account=""\} \d+$/m,
    );
    assert.match(
      m,
      /^nats_opa_callout_requests_total\{outcome="allow",code="ok",account="[A-Za-z0-9_$-]+"\} \d+$/m,
    );
    const allowCount = get(/^nats_opa_callout_request_duration_seconds_count\{outcome="allow"\} (\d+)$/m);
    const allowInf = get(
      /^nats_opa_callout_request_duration_seconds_bucket\{le="\+Inf",outcome="allow"\} (\d+)$/m,
    );
    assert.equal(allowCount, allowInf);
    assert.match(
      m,
      /^nats_opa_callout_policy_eval_duration_seconds_bucket\{le="0.0001",entrypoint="nats\/authz\/decision"\} \d+$/m,
    );
  });

  test("the decision log has one masked event per request, and eval replays them", async () => {
    const lines = readFileSync(decisions(), "utf8").trim().split("\n");
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const m = await (await fetch(metricsUrl("/metrics"))).text();
    const total = [...m.matchAll(/^nats_opa_callout_requests_total\{[^}]*\} (\d+)$/gm)].reduce(
      (a, x) => a + Number(x[1]),
      0,
    );
    assert.equal(events.length, total, "one event per request");
    const text = lines.join("\n");
    for (const secret of ["alice-pw", "bob-pw", "dave-pw", "tok_5Vf8kQz2LmN7xR3c", "not-her-password"]) {
      assert.ok(!text.includes(secret), `decision log leaks ${secret}`);
    }
    assert.equal(statSync(decisions()).mode & 0o777, 0o600);

    /** `eval --config service.yaml <args>` with the real opa. */
    const evalCli = (args: string[]) =>
      runCli(["eval", "--config", join(dir, "service.yaml"), ...args], { env: { OPA_BIN: OPA } });

    const mallory = events.find((e) => e.reason === "unknown_user");
    assert.ok(mallory, "mallory's denial is logged");
    writeFileSync(join(dir, "mallory.json"), JSON.stringify(mallory));
    const r1 = await evalCli(["--event", join(dir, "mallory.json"), "--expect", "unknown_user"]);
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    assert.match(r1.stdout, /outcome +DENY +reason=unknown_user/);
    assert.match(r1.stdout, /→ reproduced/);

    // alice's allow depended on her password, which the log masks: replaying the event alone cannot allow ...
    const alice = events.find(
      (e) => e.outcome === "allow" && (e.issued as { name?: string } | undefined)?.name === "alice",
    );
    assert.ok(alice, "alice's allow is logged");
    assert.equal((alice.input as { connect_opts: { pass: string } }).connect_opts.pass, "[REDACTED]");
    // policy.mask_entrypoint: the example rule blanks the client-chosen connection name as well.
    const aliceInput = alice.input as { connect_opts: { name: string }; client_info: { name: string } };
    assert.equal(aliceInput.connect_opts.name, "[REDACTED]");
    assert.equal(aliceInput.client_info.name, "[REDACTED]");
    for (const p of ["/connect_opts/pass", "/connect_opts/name", "/client_info/name"]) {
      assert.ok((alice.masked as string[]).includes(p), `masked lacks ${p}`);
    }
    assert.ok(!text.includes("alice-laptop.example.org"), "the connection name is masked");
    assert.ok(!events.some((e) => e.input_dropped === "mask_error"), "the mask never failed");
    writeFileSync(join(dir, "alice.json"), JSON.stringify(alice));
    const r2 = await evalCli([join(dir, "alice.json"), "--json"]);
    assert.equal(r2.code, 0, r2.stderr);
    const rep2 = JSON.parse(r2.stdout) as { outcome: { kind: string; reason: string }; notes: string[] };
    assert.equal(rep2.outcome.kind, "deny");
    assert.equal(rep2.outcome.reason, "bad_credentials");
    assert.ok(rep2.notes.some((n) => n.includes("/connect_opts/pass")));
    // ... but with the real input (--input) the decision and the issued permissions are reproduced.
    const realInput = structuredClone(alice.input) as { connect_opts: { pass: string } };
    realInput.connect_opts.pass = "alice-pw";
    writeFileSync(join(dir, "alice-input.json"), JSON.stringify(realInput));
    const r3 = await evalCli([
      "--event",
      join(dir, "alice.json"),
      "--input",
      join(dir, "alice-input.json"),
      "--json",
      "--expect",
      "allow",
    ]);
    assert.equal(r3.code, 0, r3.stdout + r3.stderr);
    const rep3 = JSON.parse(r3.stdout) as {
      claims: { aud: string; nats: { pub: unknown; sub: unknown } };
      signed_by: string;
    };
    const issued = alice.issued as { account: string; pub: unknown; sub: unknown };
    assert.equal(rep3.claims.aud, issued.account);
    assert.deepEqual(rep3.claims.nats.pub, issued.pub);
    assert.deepEqual(rep3.claims.nats.sub, issued.sub);
    const issuerPub = /issuer: "(A[A-Z2-7]{55})"/.exec(
      readFileSync(join(dir, "nats-server.conf"), "utf8"),
    )?.[1];
    assert.equal(rep3.signed_by, issuerPub, "with --config, eval signs with the configured issuer");
    assert.ok(!r3.stdout.includes("alice-pw"), "eval output masks the password it was given");
    const r4 = await evalCli(["--event", join(dir, "alice.json"), "--expect", "allow"]);
    assert.equal(r4.code, 1, "--expect fails when the outcome differs");
  });

  test("SIGTERM drains and exits 0", async () => {
    assert.ok(serve);
    const code = await serve.stop("SIGTERM");
    assert.equal(code, 0, serve.output());
    assert.match(serve.output(), /"msg":"stopped"/);
    // Everything the service printed at trace level: no client secret, no key material.
    const seeds = ["issuer.nk", "xkey.nk"].map((f) => readFileSync(join(dir, f), "utf8").trim());
    const calloutPassword =
      /^ {2}password: (\S+)$/m.exec(readFileSync(join(dir, "service.yaml"), "utf8"))?.[1] ?? "";
    for (const secret of [
      "alice-pw",
      "bob-pw",
      "dave-pw",
      "tok_5Vf8kQz2LmN7xR3c",
      "not-her-password",
      calloutPassword,
      ...seeds,
    ]) {
      assert.ok(secret && !serve.output().includes(secret), `serve output leaks a secret`);
    }
    serve = undefined;
  });

  test("config problems are all reported, naming fields, before connecting (exit 2)", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      [
        "mode: config",
        "nats: { servers: ['nats://127.0.0.1:1'], user: callout }",
        "accounts: []",
        "issuer: { seed: NOT-A-SEED }",
        "policy: { dir: ./does-not-exist }",
        "log: { level: loud }",
        "metrics: { listen: 'nowhere' }",
        "bogus_field: 1",
      ].join("\n"),
    );
    const r = await runCli(["serve", "--config", bad]);
    assert.equal(r.code, 2, r.stderr);
    for (const field of [
      "nats.password",
      "accounts",
      "issuer.seed",
      "policy.dir",
      "log.level",
      "metrics.listen",
      "bogus_field",
    ]) {
      assert.match(
        r.stderr,
        new RegExp(`^  ${field.replace(".", "\\.")}: `, "m"),
        `${field} not reported:\n${r.stderr}`,
      );
    }
    assert.ok(!r.stderr.includes("NOT-A-SEED"), "the bad seed value is not echoed");
    const yamlErr = join(dir, "syntax.yaml");
    writeFileSync(yamlErr, "nats:\n  servers: [unclosed\n");
    const r2 = await runCli(["serve", "--config", yamlErr]);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /syntax\.yaml:\d+: YAML/);
  });

  test("serve exits 3 when the policy does not compile at start", async () => {
    const broken = join(dir, "broken-policies");
    cpSync(POLICIES, broken, { recursive: true });
    const file = join(broken, "authz", "decision.rego");
    const lines = readFileSync(file, "utf8").split("\n");
    const at = lines.findIndex((l) => l.startsWith("decision"));
    lines[at] = "decision := { this is not rego";
    writeFileSync(file, lines.join("\n"));
    const r = await runCli(
      ["serve", "--config", join(dir, "service.yaml"), "--policy-dir", broken, "--metrics-listen", "off"],
      {
        env: { OPA_BIN: OPA },
      },
    );
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr + r.stdout, new RegExp(`authz/decision\\.rego:${at + 1}`));
    const c = await runCli(["check", "--policy-dir", broken], { env: { OPA_BIN: OPA } });
    assert.equal(c.code, 3);
    assert.match(c.stderr, new RegExp(`policy error in authz/decision\\.rego:${at + 1}:`));
    assert.match(c.stderr, /rego_parse_error/);
  });

  test("live reload: a broken edit keeps the last good revision (counted), a good edit changes behaviour", async () => {
    const live = join(dir, "live-policies");
    cpSync(POLICIES, live, { recursive: true });
    const [port] = (await freePorts(1)) as [number];
    const base = `http://127.0.0.1:${port}`;
    const svc = await startProcess(
      process.execPath,
      [
        CLI,
        "serve",
        "--config",
        join(dir, "service.yaml"),
        "--policy-dir",
        live,
        "--metrics-listen",
        `127.0.0.1:${port}`,
        "--decision-log",
        "off",
      ],
      { name: "serve-live", env: { OPA_BIN: OPA } },
    );
    try {
      const metric = async (re: RegExp) =>
        Number(re.exec(await (await fetch(`${base}/metrics`)).text())?.[1] ?? 0);
      const r1 = await waitFor(
        () =>
          probe(`${base}/readyz`, async (r) =>
            r.status === 200 ? ((await r.json()) as { revision: string }).revision : undefined,
          ),
        "readiness",
        60_000,
      );
      const url = `nats://127.0.0.1:${natsPort}`;
      const bobPublishes = async (subject: string): Promise<boolean> => {
        const nc = await connect({
          servers: url,
          user: "bob",
          pass: "bob-pw",
          inboxPrefix: "_INBOX.bob",
          maxReconnectAttempts: 0,
        });
        const errors = collectErrors(nc);
        nc.publish(subject, "x");
        await nc.flush();
        await nc.flush();
        await nc.close();
        return errors.length === 0;
      };
      assert.equal(await bobPublishes("orders.create"), false, "bob starts read-only");

      // 1. A broken edit: the reload fails, is counted, and the old revision keeps serving.
      const rego = join(live, "authz", "decision.rego");
      const original = readFileSync(rego, "utf8");
      writeFileSync(rego, original + "\nthis is not rego\n");
      await waitFor(
        async () =>
          (await metric(/^nats_opa_callout_policy_reloads_total\{result="failure"\} (\d+)$/m)) >= 1 ||
          undefined,
        "a failed reload",
        30_000,
      );
      const still = (await (await fetch(`${base}/readyz`)).json()) as { ready: boolean; revision: string };
      assert.equal(still.ready, true);
      assert.equal(still.revision, r1, "the last good revision stays active");
      assert.ok((await metric(/^nats_opa_callout_policy_last_reload_failure_timestamp_seconds (\S+)$/m)) > 0);

      // 2. A good edit (bob becomes a writer): a new revision, and the next login gets the new rights.
      writeFileSync(rego, original);
      const dataFile = join(live, "data.json");
      const data = JSON.parse(readFileSync(dataFile, "utf8")) as {
        callout: { users: { bob: { roles: string[] } } };
      };
      data.callout.users.bob.roles.push("orders-writer");
      writeFileSync(dataFile, JSON.stringify(data, null, 2));
      const r2 = await waitFor(
        async () => {
          const r = (await (await fetch(`${base}/readyz`)).json()) as { revision?: string };
          return r.revision !== undefined && r.revision !== r1 ? r.revision : undefined;
        },
        "the new revision",
        30_000,
      );
      assert.match(
        await (await fetch(`${base}/metrics`)).text(),
        new RegExp(`policy_revision_info\\{revision="${r2}"\\} 1`),
      );
      assert.equal(await bobPublishes("orders.create"), true, "bob can now create orders");
    } finally {
      assert.equal(await svc.stop("SIGTERM"), 0, svc.output());
    }
  });

  test("check: compiles like serve, prints revision and entrypoints, runs the golden cases", async () => {
    const r = await runCli(["check", "--policy-dir", POLICIES], { env: { OPA_BIN: OPA } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^revision +[0-9a-f]{16}$/m);
    assert.match(r.stdout, /^entrypoints +nats\/authz\/decision/m);
    assert.match(r.stdout, /^cases +[1-9]\d* passed, 0 failed/m);
    // A case whose expectation is wrong fails the check (exit 1) and names the case.
    const cases = join(dir, "cases");
    const src = JSON.parse(readFileSync(join(POLICIES, "cases", "password.json"), "utf8")) as Record<
      string,
      { expect: { allow: boolean } }
    >;
    const [name, c] = Object.entries(src).find(([, v]) => v.expect.allow === true)!;
    c.expect = { allow: false, reason: "made_up" } as never;
    rmSync(cases, { recursive: true, force: true });
    cpSync(join(POLICIES, "cases"), cases, { recursive: true });
    writeFileSync(
      join(cases, "wrong.json"),
      JSON.stringify({ [`${name}_wrong`]: { ...c, name: `${name}_wrong` } }),
    );
    const r2 = await runCli(["check", "--policy-dir", POLICIES, "--cases", cases], {
      env: { OPA_BIN: OPA },
    });
    assert.equal(r2.code, 1, r2.stdout);
    assert.match(r2.stdout, new RegExp(`✘ ${name}_wrong \\(wrong\\.json\\)`));
    assert.match(r2.stdout, /1 failed/);
    assert.ok(!r2.stdout.includes("alice-pw"), "case inputs are masked in failure output");
  });
});

describe("nats-opa-callout CLI, operator mode (init --operator)", { skip: skipWithoutTools }, () => {
  let dir: string;
  let nats: Proc | undefined;
  let serve: Proc | undefined;

  before(async () => {
    await ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), "cli-op-test-"));
  });

  after(() => teardown(serve, nats, dir));

  test("init --operator boots nats-server and serve; sentinel creds + password are placed by the policy", async () => {
    const [natsPort, metricsPort] = (await freePorts(2)) as [number, number];
    const r = await runCli([
      "init",
      "--operator",
      "--dir",
      dir,
      "--port",
      String(natsPort),
      "--accounts",
      "APP,OPS",
      "--policy-dir",
      POLICIES,
      "--metrics-listen",
      `127.0.0.1:${metricsPort}`,
      "--timeout",
      "5",
    ]);
    assert.equal(r.code, 0, r.stderr);
    for (const f of [
      "operator.nk",
      "AUTH.nk",
      "APP.nk",
      "OPS.nk",
      "xkey.nk",
      "callout.creds",
      "sentinel.creds",
    ]) {
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    }
    for (const f of ["AUTH.nk", "APP.nk", "callout.creds"]) {
      const secret = readFileSync(join(dir, f), "utf8").match(/S[AU][A-Z2-7]{56}/)?.[0];
      assert.ok(secret && !r.stdout.includes(secret), `${f} printed`);
    }
    nats = await startNats(dir, natsPort);
    serve = await startProcess(process.execPath, [CLI, "serve", "--config", join(dir, "service.yaml")], {
      name: "serve",
      env: { OPA_BIN: OPA },
    });
    await waitFor(
      () => probe(`http://127.0.0.1:${metricsPort}/readyz`, (r) => r.status === 200),
      "readiness",
      60_000,
    );
    const { credsAuthenticator } = await import("@nats-io/transport-node");
    const sentinel = credsAuthenticator(readFileSync(join(dir, "sentinel.creds")));
    const url = `nats://127.0.0.1:${natsPort}`;
    const nc = await connect({
      servers: url,
      authenticator: sentinel,
      user: "bob",
      pass: "bob-pw",
      inboxPrefix: "_INBOX.bob",
      maxReconnectAttempts: 0,
    });
    // bob is read-only: a query is allowed, creating an order is not.
    await assertPublishRights(nc, collectErrors(nc), "orders.query.1", "orders.create");
    await nc.close();
    await assert.rejects(
      connect({
        servers: url,
        authenticator: sentinel,
        user: "bob",
        pass: "nope",
        maxReconnectAttempts: 0,
      }),
      /Authorization Violation/i,
    );
    const code = await serve.stop("SIGTERM");
    serve = undefined;
    assert.equal(code, 0);
  });
});
