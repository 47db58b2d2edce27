/**
 * resolveConfig: defaults from CONFIG_FIELDS, every error path names its field, several problems are
 * reported together in one ConfigError, secrets never appear in messages or JSON.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { createAccount, createCurve, createOperator, createUser } from "@nats-io/nkeys";
import {
  CONFIG_FIELDS,
  applyEnvOverrides,
  configDefault,
  resolveConfig,
  type ResolvedConfig,
  type ServiceConfig,
} from "../../src/config.js";
import { ConfigError } from "../../src/errors.js";
import { connectionOptions } from "../../src/service.js";
import { loadServeConfig, readConfigFile } from "../../src/config/load.js";
import { SERVE_HELP } from "../../src/cli/serve.js";

const dec = new TextDecoder();
const seed = (kp: { getSeed(): Uint8Array }) => dec.decode(kp.getSeed());
const issuer = createAccount();
const ISSUER_SEED = seed(issuer);
const XKEY = createCurve();
const XKEY_SEED = seed(XKEY);
const APP = createAccount();
const APP_SK = createAccount();
const CALLOUT = createAccount();

/** Runs resolveConfig expecting a ConfigError; returns its problems as "field: message". */
function problems(
  input: unknown,
  opts?: Parameters<typeof resolveConfig>[1],
): { field: string; message: string }[] {
  try {
    resolveConfig(input, opts);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, "config_error");
    return err.problems;
  }
  assert.fail("resolveConfig did not throw");
}

function fields(input: unknown, opts?: Parameters<typeof resolveConfig>[1]): string[] {
  return problems(input, opts).map((p) => p.field);
}

const minimal: ServiceConfig = { issuer: { seed: ISSUER_SEED }, accounts: ["APP"] };

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/** The string with the character at `i` replaced by the next base32 character (always a different one). */
function mutateAt(s: string, i: number): string {
  const next = BASE32[(BASE32.indexOf(s[i]!) + 1) % BASE32.length]!;
  return s.slice(0, i) + next + s.slice(i + 1);
}

function operatorMinimal(): ServiceConfig {
  return {
    mode: "operator",
    callout_account: { public_key: CALLOUT.getPublicKey(), seed: seed(CALLOUT) },
    accounts: { APP: { public_key: APP.getPublicKey(), signing_key_seed: seed(APP_SK) } },
  };
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "config-test-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("resolveConfig: defaults", () => {
  it("a minimal config-mode config resolves with every default from CONFIG_FIELDS", () => {
    const c = resolveConfig(minimal);
    assert.equal(c.mode, "config");
    assert.deepEqual(c.nats.servers, configDefault("nats.servers"));
    assert.deepEqual(c.nats.servers, ["nats://127.0.0.1:4222"]);
    assert.equal(c.nats.queueGroup, "nats-opa-callout");
    assert.equal(c.nats.subject, "$SYS.REQ.USER.AUTH");
    assert.equal(c.nats.name, configDefault("nats.name"));
    // nats.go's default handshake timeout, not nats.js's 20 s: it reaches the client's options
    assert.equal(c.nats.connectTimeoutMs, 2000);
    assert.equal(connectionOptions(c).timeout, 2000);
    assert.equal(
      connectionOptions(resolveConfig({ ...minimal, nats: { connect_timeout_ms: 750 } })).timeout,
      750,
    );
    assert.deepEqual(c.nats.auth, { kind: "none" });
    assert.equal(c.issuer?.publicKey, issuer.getPublicKey());
    assert.equal(c.issuer?.seed.reveal(), ISSUER_SEED);
    assert.deepEqual(c.accounts, [{ name: "APP" }]);
    assert.deepEqual(c.expiry, {
      defaultSeconds: configDefault("expiry.default_seconds"),
      maxSeconds: configDefault("expiry.max_seconds"),
      responseSeconds: configDefault("expiry.response_seconds"),
    });
    assert.deepEqual(c.limits, {
      maxConcurrency: configDefault("limits.max_concurrency"),
      maxQueue: configDefault("limits.max_queue"),
      shedExpired: configDefault("limits.shed_expired"),
      maxRequestBytes: configDefault("limits.max_request_bytes"),
    });
    assert.equal(c.policy, undefined);
    assert.deepEqual(c.log, { level: "info", format: "json" });
    assert.deepEqual(c.decisionLog, { kind: "stdout" });
    assert.deepEqual(c.metrics, { listen: null });
    assert.deepEqual(c.warnings, []);
    assert.equal(c.xkey, undefined);
  });

  it("CONFIG_FIELDS describes every field with a path, type and description; defaults are valid", () => {
    const paths = new Set<string>();
    for (const f of CONFIG_FIELDS) {
      assert.ok(f.path && f.type && f.description.length > 10, f.path);
      assert.ok(!paths.has(f.path), `duplicate ${f.path}`);
      paths.add(f.path);
    }
    // Every field of the documented brief is present.
    for (const p of [
      "nats.servers",
      "nats.user",
      "nats.password",
      "nats.token",
      "nats.nkey_seed_file",
      "nats.creds_file",
      "nats.queue_group",
      "nats.subject",
      "mode",
      "issuer.seed",
      "accounts",
      "callout_account.seed",
      "xkey.seed",
      "expiry.default_seconds",
      "expiry.max_seconds",
      "expiry.response_seconds",
      "limits.max_concurrency",
      "limits.max_queue",
      "limits.max_request_bytes",
      "policy.dir",
      "policy.bundle",
      "policy.entrypoint",
      "policy.watch",
      "policy.opa_binary",
      "log.level",
      "log.format",
      "decision_log.destination",
      "metrics.listen",
    ]) {
      assert.ok(paths.has(p), `missing ${p}`);
    }
    assert.equal(configDefault("policy.entrypoint"), "nats/authz/decision");
    assert.equal(configDefault("policy.watch"), true);
  });

  it("an xkey seed is parsed to its X public key; a policy dir resolves with its defaults", () => {
    const pdir = join(dir, "pol");
    mkdirSync(pdir, { recursive: true });
    const c = resolveConfig({ ...minimal, xkey: { seed: XKEY_SEED }, policy: { dir: pdir } });
    assert.equal(c.xkey?.publicKey, XKEY.getPublicKey());
    assert.deepEqual(c.policy, {
      dir: pdir,
      entrypoint: "nats/authz/decision",
      watch: true,
      pollSeconds: 10,
      opaBinary: "opa",
      evaluation: { workers: 2, timeoutMs: 500, maxDataBytes: 8 * 1024 * 1024, maxMemoryMb: 256 },
    });
  });

  it("policy.mask_entrypoint: optional, a slash path, distinct from the decision entrypoint", () => {
    const pdir = join(dir, "pol-mask");
    mkdirSync(pdir, { recursive: true });
    const c = resolveConfig({ ...minimal, policy: { dir: pdir, mask_entrypoint: "nats/authz/mask" } });
    assert.equal(c.policy?.maskEntrypoint, "nats/authz/mask");
    assert.equal(resolveConfig({ ...minimal, policy: { dir: pdir } }).policy?.maskEntrypoint, undefined);
    assert.deepEqual(problems({ ...minimal, policy: { dir: pdir, mask_entrypoint: "nats.authz.mask" } }), [
      { field: "policy.mask_entrypoint", message: 'expected a path like "nats/authz/mask"' },
    ]);
    assert.deepEqual(fields({ ...minimal, policy: { dir: pdir, mask_entrypoint: "nats/authz/decision" } }), [
      "policy.mask_entrypoint",
    ]);
    assert.deepEqual(fields({ ...minimal, policy: { dir: pdir, mask_entrypoint: 3 as never } }), [
      "policy.mask_entrypoint",
    ]);
    assert.deepEqual(fields({ ...minimal, policy: { mask_entrypoint: "nats/authz/mask" } }), [
      "policy.mask_entrypoint",
    ]);
  });

  it("operator mode resolves accounts with their public key and signing key", () => {
    const c = resolveConfig(operatorMinimal());
    assert.equal(c.mode, "operator");
    assert.equal(c.calloutAccount?.publicKey, CALLOUT.getPublicKey());
    assert.equal(c.calloutAccount?.signingKey.publicKey, CALLOUT.getPublicKey());
    assert.equal(c.accounts[0]?.name, "APP");
    assert.equal(c.accounts[0]?.publicKey, APP.getPublicKey());
    assert.equal(c.accounts[0]?.signingKey?.publicKey, APP_SK.getPublicKey());
  });

  it("seeds from files; nats auth variants (user, token, nkey file, creds file)", () => {
    const seedFile = join(dir, "issuer.seed");
    writeFileSync(seedFile, ISSUER_SEED + "\n");
    const u = createUser();
    const nkeyFile = join(dir, "svc.nk");
    writeFileSync(nkeyFile, seed(u));
    const credsFile = join(dir, "svc.creds");
    writeFileSync(
      credsFile,
      `-----BEGIN NATS USER JWT-----\neyJx.eyJ.sig\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed(u)}\n------END USER NKEY SEED------\n`,
    );
    const base = { issuer: { seed_file: seedFile }, accounts: ["APP"] };
    assert.equal(resolveConfig(base).issuer?.publicKey, issuer.getPublicKey());
    const user = resolveConfig({ ...base, nats: { user: "callout", password: "pw" } }).nats.auth;
    assert.equal(user.kind, "user");
    assert.equal(user.kind === "user" && user.password.reveal(), "pw");
    assert.equal(resolveConfig({ ...base, nats: { token: "t" } }).nats.auth.kind, "token");
    const nk = resolveConfig({ ...base, nats: { nkey_seed_file: nkeyFile } }).nats.auth;
    assert.equal(nk.kind === "nkey" && nk.publicKey, u.getPublicKey());
    assert.equal(resolveConfig({ ...base, nats: { creds_file: credsFile } }).nats.auth.kind, "creds");
  });

  it("host:port servers get nats://; metrics listen and decision log file are parsed", () => {
    const c = resolveConfig({
      ...minimal,
      nats: { servers: ["127.0.0.1:4333", "tls://nats.example:4443"] },
      metrics: { listen: "127.0.0.1:9090" },
      decision_log: { destination: join(dir, "decisions.log") },
    });
    assert.deepEqual(c.nats.servers, ["nats://127.0.0.1:4333", "tls://nats.example:4443"]);
    assert.deepEqual(c.metrics.listen, { host: "127.0.0.1", port: 9090 });
    assert.deepEqual(c.decisionLog, { kind: "file", path: join(dir, "decisions.log") });
    assert.deepEqual(resolveConfig({ ...minimal, metrics: { listen: "[::1]:9091" } }).metrics.listen, {
      host: "::1",
      port: 9091,
    });
  });

  it("SYS in the allow-list is accepted with a warning naming the field", () => {
    const c = resolveConfig({ ...minimal, accounts: ["APP", "SYS"] });
    assert.equal(c.warnings.length, 1);
    assert.match(c.warnings[0]!, /^accounts\[1\]: .*system account SYS/);
  });
});

describe("resolveConfig: every error names its field", () => {
  const cases: [string, unknown, string[], RegExp?][] = [
    ["root not an object", "nope", ["(root)"]],
    ["unknown top-level field", { ...minimal, bogus: 1 }, ["bogus"], /unknown field/],
    ["unknown nested field", { ...minimal, nats: { srvers: "x" } }, ["nats.srvers"], /unknown field/],
    ["section not an object", { ...minimal, nats: "nats://x" }, ["nats"], /expected an object/],
    ["servers wrong type", { ...minimal, nats: { servers: 4222 } }, ["nats.servers"]],
    ["servers bad entry", { ...minimal, nats: { servers: ["nats://ok:1", 5] } }, ["nats.servers[1]"]],
    ["servers bad scheme", { ...minimal, nats: { servers: ["ws://h:1"] } }, ["nats.servers[0]"], /scheme/],
    ["servers empty list", { ...minimal, nats: { servers: [] } }, ["nats.servers"]],
    [
      "servers with credentials",
      { ...minimal, nats: { servers: ["nats://u:secretpw@h:4222"] } },
      ["nats.servers[0]"],
    ],
    [
      "two auth methods",
      { ...minimal, nats: { token: "t", user: "u", password: "p" } },
      ["nats"],
      /one authentication/,
    ],
    ["user without password", { ...minimal, nats: { user: "u" } }, ["nats.password"]],
    ["password without user", { ...minimal, nats: { password: "p" } }, ["nats.user"]],
    [
      "nkey file missing",
      { ...minimal, nats: { nkey_seed_file: "/nonexistent/x.nk" } },
      ["nats.nkey_seed_file"],
      /ENOENT/,
    ],
    ["creds file missing", { ...minimal, nats: { creds_file: "/nonexistent/x.creds" } }, ["nats.creds_file"]],
    [
      "tls cert without key",
      { ...minimal, nats: { tls: { cert_file: "/etc/hostname" } } },
      ["nats.tls.key_file"],
    ],
    ["bad subject", { ...minimal, nats: { subject: "a.*" } }, ["nats.subject"]],
    ["empty queue group", { ...minimal, nats: { queue_group: "" } }, ["nats.queue_group"], /empty/],
    [
      "connect timeout too short",
      { ...minimal, nats: { connect_timeout_ms: 10 } },
      ["nats.connect_timeout_ms"],
    ],
    ["bad mode", { ...minimal, mode: "cluster" }, ["mode"], /config, operator/],
    ["config mode without issuer", { accounts: ["APP"] }, ["issuer.seed"], /required/],
    ["issuer seed and file", { ...minimal, issuer: { seed: ISSUER_SEED, seed_file: "/x" } }, ["issuer.seed"]],
    [
      "issuer is an operator seed",
      { ...minimal, issuer: { seed: seed(createOperator()) } },
      ["issuer.seed"],
      /operator seed/,
    ],
    ["issuer is an xkey seed", { ...minimal, issuer: { seed: XKEY_SEED } }, ["issuer.seed"], /curve/],
    [
      "issuer is a public key",
      { ...minimal, issuer: { seed: issuer.getPublicKey() } },
      ["issuer.seed"],
      /not a seed/,
    ],
    [
      // A character in the middle carries key bits only, so the CRC-16 always catches the change (the last
      // character also carries padding bits: changing it can leave the seed valid).
      "issuer bad checksum",
      { ...minimal, issuer: { seed: mutateAt(ISSUER_SEED, 28) } },
      ["issuer.seed"],
      /invalid \(bad checksum\)/,
    ],
    [
      "issuer seed file missing",
      { ...minimal, issuer: { seed_file: "/nonexistent/s" } },
      ["issuer.seed_file"],
    ],
    ["accounts missing", { issuer: { seed: ISSUER_SEED } }, ["accounts"], /required/],
    ["accounts empty", { ...minimal, accounts: [] }, ["accounts"], /at least one/],
    ["accounts entry not a string", { ...minimal, accounts: ["APP", 7] }, ["accounts[1]"]],
    ["accounts bad name", { ...minimal, accounts: ["APP", "a b"] }, ["accounts[1]"]],
    ["accounts duplicate", { ...minimal, accounts: ["APP", "APP"] }, ["accounts[1]"], /duplicate/],
    ["config mode with a map", { ...minimal, accounts: { APP: {} } }, ["accounts"], /list of account names/],
    [
      "callout_account in config mode",
      { ...minimal, callout_account: { public_key: "A" } },
      ["callout_account.public_key"],
    ],
    ["xkey is an account seed", { ...minimal, xkey: { seed: ISSUER_SEED } }, ["xkey.seed"], /curve/],
    ["expiry not an integer", { ...minimal, expiry: { default_seconds: 1.5 } }, ["expiry.default_seconds"]],
    ["expiry out of range", { ...minimal, expiry: { max_seconds: 0 } }, ["expiry.max_seconds"]],
    [
      "default expiry above max",
      { ...minimal, expiry: { default_seconds: 600, max_seconds: 60 } },
      ["expiry.default_seconds"],
      /max_seconds/,
    ],
    [
      "response expiry too long",
      { ...minimal, expiry: { response_seconds: 3600 } },
      ["expiry.response_seconds"],
    ],
    ["concurrency zero", { ...minimal, limits: { max_concurrency: 0 } }, ["limits.max_concurrency"]],
    ["queue negative", { ...minimal, limits: { max_queue: -1 } }, ["limits.max_queue"]],
    [
      "request bytes too small",
      { ...minimal, limits: { max_request_bytes: 10 } },
      ["limits.max_request_bytes"],
    ],
    ["policy dir and bundle", { ...minimal, policy: { dir: "/tmp", bundle: "/x.tar.gz" } }, ["policy.dir"]],
    [
      "policy dir missing",
      { ...minimal, policy: { dir: "/nonexistent/policies" } },
      ["policy.dir"],
      /not found/,
    ],
    ["policy bundle is a dir", { ...minimal, policy: { bundle: "/tmp" } }, ["policy.bundle"], /not a file/],
    ["policy watch not boolean", { ...minimal, policy: { dir: "/tmp", watch: "yes" } }, ["policy.watch"]],
    [
      "policy entrypoint bad",
      { ...minimal, policy: { dir: "/tmp", entrypoint: "nats.authz" } },
      ["policy.entrypoint"],
    ],
    ["policy options without a policy", { ...minimal, policy: { entrypoint: "a/b" } }, ["policy.entrypoint"]],
    ["log level", { ...minimal, log: { level: "verbose" } }, ["log.level"]],
    ["log format", { ...minimal, log: { format: "xml" } }, ["log.format"]],
    [
      "decision log dir missing",
      { ...minimal, decision_log: { destination: "/nonexistent/d/x.log" } },
      ["decision_log.destination"],
    ],
    ["metrics listen", { ...minimal, metrics: { listen: "9090" } }, ["metrics.listen"]],
    ["metrics port range", { ...minimal, metrics: { listen: "127.0.0.1:99999" } }, ["metrics.listen"]],
  ];
  for (const [name, input, want, re] of cases) {
    it(name, () => {
      const ps = problems(input);
      assert.deepEqual(
        ps.map((p) => p.field),
        want,
        JSON.stringify(ps),
      );
      if (re) assert.match(ps[0]!.message, re);
    });
  }

  it("requirePolicy: policy.dir or policy.bundle is required", () => {
    assert.deepEqual(fields(minimal, { requirePolicy: true }), ["policy.dir"]);
  });

  describe("operator mode", () => {
    it("requires callout_account and a map of accounts", () => {
      assert.deepEqual(fields({ mode: "operator", accounts: ["APP"] }).sort(), [
        "accounts",
        "callout_account.public_key",
        "callout_account.seed",
      ]);
    });
    it("issuer is not used in operator mode", () => {
      assert.deepEqual(fields({ ...operatorMinimal(), issuer: { seed: ISSUER_SEED } }), ["issuer.seed"]);
    });
    it("each account needs a valid public key and signing seed", () => {
      const c = operatorMinimal();
      c.accounts = {
        APP: { public_key: APP.getPublicKey(), signing_key_seed: seed(APP_SK) },
        OPS: { signing_key_seed: seed(createAccount()) },
        BAD: { public_key: createUser().getPublicKey(), signing_key_seed: seed(createUser()) },
        DUP: { public_key: APP.getPublicKey(), signing_key_seed: seed(APP_SK) },
        NONE: { public_key: createAccount().getPublicKey() },
        WRONG: 5 as never,
      };
      assert.deepEqual(fields(c).sort(), [
        "accounts.BAD.public_key",
        "accounts.BAD.signing_key_seed",
        "accounts.DUP.public_key",
        "accounts.NONE.signing_key_seed",
        "accounts.OPS.public_key",
        "accounts.WRONG",
      ]);
    });
    it("the callout account itself cannot be a target", () => {
      const c = operatorMinimal();
      c.accounts = { AUTH: { public_key: CALLOUT.getPublicKey(), signing_key_seed: seed(CALLOUT) } };
      assert.deepEqual(fields(c), ["accounts.AUTH.public_key"]);
    });
    it("a bad callout account public key", () => {
      const c = operatorMinimal();
      c.callout_account = { public_key: "ABAD", seed: seed(CALLOUT) };
      assert.deepEqual(fields(c), ["callout_account.public_key"]);
    });
  });
});

describe("resolveConfig: all problems at once, no secrets", () => {
  it("reports several problems together, each naming its field", () => {
    const secret = "hunter2-very-secret";
    const ps = problems({
      nats: { servers: ["ftp://x"], token: secret, user: "u", password: secret },
      issuer: { seed: "SAnotaseed" },
      accounts: ["APP", "APP"],
      expiry: { default_seconds: "soon" },
      log: { level: "loud" },
      extra: true,
    });
    const fs = ps.map((p) => p.field).sort();
    assert.deepEqual(fs, [
      "accounts[1]",
      "expiry.default_seconds",
      "extra",
      "issuer.seed",
      "log.level",
      "nats",
      "nats.servers[0]",
    ]);
    let err: unknown;
    try {
      resolveConfig({ nats: { token: secret, user: "u", password: secret }, issuer: { seed: ISSUER_SEED } });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /nats: choose one authentication method/);
    assert.match(err.message, /accounts: required/);
    assert.ok(!err.message.includes(secret));
    assert.ok(!err.message.includes(ISSUER_SEED));
  });

  it("seeds do not appear in error messages", () => {
    const bad = ISSUER_SEED.slice(0, -2) + "AA";
    const msg = problems({ issuer: { seed: bad }, xkey: { seed: ISSUER_SEED }, accounts: ["APP"] })
      .map((p) => p.message)
      .join(" ");
    assert.ok(!msg.includes(bad.slice(2, 20)));
    assert.ok(!msg.includes(ISSUER_SEED.slice(2, 20)));
  });

  it("a resolved config prints no secret (JSON, inspect, String)", () => {
    const c: ResolvedConfig = resolveConfig({
      ...minimal,
      xkey: { seed: XKEY_SEED },
      nats: { user: "callout", password: "pw-secret-123" },
    });
    for (const text of [JSON.stringify(c), inspect(c, { depth: 10 }), String(c.issuer?.seed)]) {
      assert.ok(!text.includes(ISSUER_SEED), text);
      assert.ok(!text.includes(XKEY_SEED), text);
      assert.ok(!text.includes("pw-secret-123"), text);
    }
    assert.match(JSON.stringify(c), /\[REDACTED\]/);
  });
});

describe("applyEnvOverrides", () => {
  it("maps NATS_URL (comma list), NATS_USER/NATS_PASSWORD and drops the file's auth", () => {
    const cfg: ServiceConfig = {
      ...minimal,
      nats: { servers: "nats://file:1", token: "file-token", name: "n" },
    };
    const out = applyEnvOverrides(cfg, {
      NATS_URL: "nats://a:1, nats://b:2",
      NATS_USER: "u",
      NATS_PASSWORD: "p",
    });
    assert.deepEqual(out.nats, {
      servers: ["nats://a:1", "nats://b:2"],
      user: "u",
      password: "p",
      name: "n",
    });
    assert.equal(cfg.nats?.token, "file-token", "input not mutated");
  });
  it("NATS_CREDS, NATS_NKEY / NATS_NKEY_SEED, NATS_TOKEN", () => {
    assert.deepEqual(applyEnvOverrides(minimal, { NATS_CREDS: "/c.creds" }).nats, { creds_file: "/c.creds" });
    assert.deepEqual(applyEnvOverrides(minimal, { NATS_NKEY: "/k.nk" }).nats, { nkey_seed_file: "/k.nk" });
    assert.deepEqual(applyEnvOverrides(minimal, { NATS_NKEY_SEED: "/s.nk", NATS_NKEY: "/k.nk" }).nats, {
      nkey_seed_file: "/s.nk",
    });
    assert.deepEqual(applyEnvOverrides(minimal, { NATS_TOKEN: "tok" }).nats, { token: "tok" });
  });
  it("NATS_PASSWORD alone only fills the file's user; conflicting env methods are reported by resolveConfig", () => {
    const cfg: ServiceConfig = { ...minimal, nats: { user: "callout" } };
    assert.deepEqual(applyEnvOverrides(cfg, { NATS_PASSWORD: "p" }).nats, { user: "callout", password: "p" });
    const both = applyEnvOverrides(minimal, { NATS_TOKEN: "t", NATS_CREDS: "/c" });
    assert.deepEqual(fields(both), ["nats"]);
  });
  it("empty values are ignored; no env → unchanged", () => {
    assert.deepEqual(applyEnvOverrides(minimal, { NATS_URL: "", NATS_TOKEN: "  " }).nats, {});
    assert.deepEqual(applyEnvOverrides(minimal, {}).issuer, minimal.issuer);
  });
});

describe("config fixes: keys, URLs, paths, listen addresses, the input type", () => {
  it("a one-character change anywhere in a seed but its last character is always reported", () => {
    // CRC-16 catches every change confined to 16 consecutive bits; one base32 character is 5 bits. The last
    // character also holds the 2 padding bits, so it is left out (the old flaky case).
    for (let i = 0; i < ISSUER_SEED.length - 1; i++) {
      const ps = problems({ ...minimal, issuer: { seed: mutateAt(ISSUER_SEED, i) } });
      assert.deepEqual(
        ps.map((p) => p.field),
        ["issuer.seed"],
        `position ${i}`,
      );
      if (i >= 4) assert.match(ps[0]!.message, /invalid \(bad checksum\)/, `position ${i}`);
    }
  });

  it("a server URL with credentials is never echoed, whether or not it parses", () => {
    for (const url of [
      "nats://svc:hunter2@host:99999",
      "svc:hunter2@host:99999",
      "nats://svc:hunter2@host:4222",
      "tls://svc:p@ss:hunter2@host:bad",
    ]) {
      let err: unknown;
      try {
        resolveConfig(applyEnvOverrides(minimal, { NATS_URL: url }));
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof ConfigError, url);
      assert.deepEqual(
        err.problems.map((p) => p.field),
        ["nats.servers[0]"],
      );
      const text = `${err.message} ${JSON.stringify(err.problems)} ${inspect(err)}`;
      assert.ok(!text.includes("hunter2"), text);
    }
    const ps = problems({ ...minimal, nats: { servers: "nats://svc:hunter2@host:99999" } });
    assert.equal(ps[0]!.message, 'not a server URL: "nats://[REDACTED]@host:99999"');
  });

  it("missing files are named by their resolved path", () => {
    const base = mkdtempSync(join(tmpdir(), "cfg-enoent-"));
    try {
      const ps = problems({ issuer: { seed_file: "keys/issuer.nk" }, accounts: ["APP"] }, { baseDir: base });
      assert.deepEqual(ps, [
        { field: "issuer.seed_file", message: `cannot read ${join(base, "keys/issuer.nk")} (ENOENT)` },
      ]);
      const pp = problems({ ...minimal, policy: { dir: "pol" } }, { baseDir: base });
      assert.deepEqual(pp, [{ field: "policy.dir", message: `${join(base, "pol")} not found (ENOENT)` }]);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it("metrics.listen: host:port, [v6]:port, :port, port 0, and off / empty / 0 for no listener", () => {
    const listen = (v: string) => resolveConfig({ ...minimal, metrics: { listen: v } }).metrics.listen;
    assert.deepEqual(listen("127.0.0.1:9464"), { host: "127.0.0.1", port: 9464 });
    assert.deepEqual(listen("localhost:9464"), { host: "localhost", port: 9464 });
    assert.deepEqual(listen(":9464"), { host: "0.0.0.0", port: 9464 });
    assert.deepEqual(listen("[::1]:9464"), { host: "::1", port: 9464 });
    assert.deepEqual(listen("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
    for (const off of ["off", "OFF", "0"]) assert.equal(listen(off), null, off);
    assert.equal(resolveConfig(minimal).metrics.listen, null, "default off");
    for (const bad of ["9464", "host:", "host:99999", "a:b:c", "[nope]:1", "::1:9464", "local host:80"]) {
      const ps = problems({ ...minimal, metrics: { listen: bad } });
      assert.deepEqual(
        ps.map((p) => p.field),
        ["metrics.listen"],
        bad,
      );
      assert.match(
        ps[0]!.message,
        /expected "host:port", "\[v6\]:port", ":port" \(port 0: any free port\) or "off"/,
      );
    }
  });

  it("serve --help's example --metrics-listen value is accepted (and other forms via the flag)", () => {
    const example = /--metrics-listen (\S+)/.exec(SERVE_HELP.slice(SERVE_HELP.indexOf("Examples:")))?.[1];
    assert.equal(example, ":9464");
    const base = mkdtempSync(join(tmpdir(), "cfg-flag-"));
    try {
      const file = join(base, "service.yaml");
      mkdirSync(join(base, "pol"));
      writeFileSync(file, `issuer: { seed: ${ISSUER_SEED} }\naccounts: [APP]\npolicy: { dir: pol }\n`);
      const listen = (v: string) =>
        loadServeConfig({ config: file, overrides: [["metrics-listen", v]] }, {}).metrics.listen;
      assert.deepEqual(listen(example), { host: "0.0.0.0", port: 9464 });
      assert.deepEqual(listen("[::1]:0"), { host: "::1", port: 0 });
      assert.equal(listen("off"), null);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it("loading: a password in NATS_URL or --nats-url never reaches the error; a missing file is named", () => {
    for (const [overrides, env] of [
      [[["nats-url", "nats://svc:hunter2@host:99999"]], {}],
      [[], { NATS_URL: "nats://svc:hunter2@host:99999" }],
    ] as [[string, string][], Record<string, string>][]) {
      let err: unknown;
      try {
        loadServeConfig({ overrides }, env);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /nats\.servers\[0\]: not a server URL: "nats:\/\/\[REDACTED\]@host:99999"/);
      assert.ok(!err.message.includes("hunter2"), err.message);
    }
    assert.throws(
      () => readConfigFile("no-such-dir/service.yaml"),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems[0]!.message === `cannot read ${join(process.cwd(), "no-such-dir/service.yaml")}: ENOENT`,
    );
  });

  it("ServiceConfig (the input type) has a field for every CONFIG_FIELDS path", () => {
    // Typed as ServiceConfig: a field missing from the type fails the typecheck; a field missing from this
    // literal fails the comparison below.
    const full: Required<ServiceConfig> = {
      nats: {
        servers: "nats://h:1",
        user: "u",
        password: "p",
        token: "t",
        nkey_seed_file: "f",
        creds_file: "f",
        tls: { ca_file: "f", cert_file: "f", key_file: "f" },
        name: "n",
        queue_group: "q",
        subject: "s",
        connect_timeout_ms: 1,
      },
      mode: "config",
      issuer: { seed: "s", seed_file: "f" },
      accounts: { "*": { public_key: "A", signing_key_seed: "S", signing_key_seed_file: "f" } },
      callout_account: { public_key: "A", seed: "S", seed_file: "f" },
      xkey: { seed: "S", seed_file: "f" },
      expiry: { default_seconds: 1, max_seconds: 1, response_seconds: 1 },
      limits: { max_concurrency: 1, max_queue: 1, shed_expired: true, max_request_bytes: 1 },
      policy: {
        dir: "d",
        bundle: "b",
        entrypoint: "e",
        mask_entrypoint: "m",
        watch: true,
        poll_seconds: 1,
        opa_binary: "o",
        eval_workers: 1,
        eval_timeout_ms: 1,
        max_data_bytes: 1,
        max_memory_mb: 1,
        source: {
          http: {
            url: "u",
            token_file: "f",
            ca_file: "f",
            cert_file: "f",
            key_file: "f",
            min_delay_seconds: 1,
            max_delay_seconds: 1,
            long_polling_timeout_seconds: 1,
          },
          object_store: { bucket: "b", name: "n", servers: "s", creds_file: "f", user: "u", password: "p" },
        },
        signing: { key_file: "f", algorithm: "RS256", key_id: "k", scope: "s", exclude_files: ["x"] },
      },
      log: { level: "info", format: "json" },
      decision_log: { destination: "stdout" },
      metrics: { listen: "off" },
      revocation: {
        enabled: true,
        nats: { servers: "s", user: "u", password: "p", token: "t", nkey_seed_file: "f", creds_file: "f" },
        rate_per_second: 1,
        periodic_seconds: 0,
        max_live_grants: 1,
        concurrency: 1,
      },
    };
    const leaves = (o: Record<string, unknown>, pre: string): string[] =>
      Object.entries(o).flatMap(([k, v]) =>
        typeof v === "object" && v !== null && !Array.isArray(v)
          ? [...(pre === "" && k === "accounts" ? ["accounts"] : []), ...leaves(v as never, `${pre}${k}.`)]
          : [`${pre}${k}`],
      );
    assert.deepEqual(leaves(full, "").sort(), CONFIG_FIELDS.map((f) => f.path).sort());
  });
});
