/**
 * policy.source.* and policy.signing.*: a valid HTTP or Object Store source resolves (secrets read from files as
 * Secret), and every mistake names its field: a source without policy.bundle or with policy.dir, two sources,
 * a bad URL or one with credentials, cert without key, user without password, signing without a source, fields
 * without their anchor.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createAccount } from "@nats-io/nkeys";
import { resolveConfig, type ServiceConfig } from "../../src/config.js";
import { ConfigError } from "../../src/errors.js";
import { objectStoreConnectionOptions } from "../../src/policy/sources/index.js";

const dir = mkdtempSync(join(tmpdir(), "cfg-source-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string): string => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};
const base: ServiceConfig = {
  issuer: { seed: new TextDecoder().decode(createAccount().getSeed()) },
  accounts: ["APP"],
};
const withPolicy = (policy: ServiceConfig["policy"]): ServiceConfig => ({ ...base, policy });

function problems(input: ServiceConfig): string[] {
  try {
    resolveConfig(input, { baseDir: dir });
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems.map((p) => `${p.field}: ${p.message}`);
  }
  assert.fail("resolveConfig did not throw");
}

describe("policy.source and policy.signing", () => {
  it("an HTTP source with token, mutual TLS and signing resolves; secrets stay Secret", () => {
    const cfg = resolveConfig(
      withPolicy({
        bundle: join(dir, "not-yet-downloaded.tar.gz"),
        source: {
          http: {
            url: "https://bundles.example.com/authz/bundle.tar.gz",
            token_file: file("token", "tok-123\n"),
            ca_file: file("ca.pem", "CA"),
            cert_file: file("cert.pem", "CERT"),
            key_file: file("key.pem", "KEY"),
            long_polling_timeout_seconds: 30,
          },
        },
        signing: {
          key_file: file("pub.pem", "PEM"),
          algorithm: "ES256",
          scope: "prod",
          exclude_files: ["*.md"],
        },
      }),
      { baseDir: dir },
    );
    const src = cfg.policy?.source;
    assert.equal(src?.kind, "http");
    if (src?.kind !== "http") return;
    assert.equal(src.token?.reveal(), "tok-123");
    assert.equal(src.tls?.key?.reveal(), "KEY");
    assert.equal(src.minDelaySeconds, 60);
    assert.equal(src.maxDelaySeconds, 120);
    assert.equal(src.longPollSeconds, 30);
    assert.deepEqual(
      { ...cfg.policy?.signing, key: cfg.policy?.signing?.key.reveal() },
      { algorithm: "ES256", key: "PEM", keyId: "default", scope: "prod", excludeFiles: ["*.md"] },
    );
    assert.doesNotMatch(JSON.stringify(cfg), /tok-123|"KEY"/);
  });

  it("an Object Store source resolves with user/password or creds", () => {
    const cfg = resolveConfig(
      withPolicy({
        bundle: join(dir, "os.tar.gz"),
        source: { object_store: { bucket: "policy", user: "reader", password: "pw" } },
      }),
      { baseDir: dir },
    );
    const src = cfg.policy?.source;
    assert.equal(src?.kind, "object_store");
    if (src?.kind !== "object_store") return;
    assert.equal(src.name, "bundle.tar.gz");
    assert.equal(src.auth.kind, "user");
  });

  it("the Object Store connection gets nats.connect_timeout_ms, its own servers and its auth", () => {
    const resolve = (nats: ServiceConfig["nats"]) =>
      resolveConfig(
        {
          ...withPolicy({
            bundle: join(dir, "os.tar.gz"),
            source: {
              object_store: {
                bucket: "policy",
                servers: ["nats://store:4222"],
                user: "reader",
                password: "pw",
              },
            },
          }),
          ...(nats ? { nats } : {}),
        },
        { baseDir: dir },
      );
    for (const [nats, timeout] of [
      [undefined, 2000],
      [{ connect_timeout_ms: 750 }, 750],
    ] as const) {
      const cfg = resolve(nats);
      const src = cfg.policy?.source;
      assert.ok(src?.kind === "object_store");
      const o = objectStoreConnectionOptions(src, cfg.nats, false);
      assert.equal(o.timeout, timeout); // not nats.js's 20 s
      assert.deepEqual(o.servers, ["nats://store:4222"]);
      assert.equal(o.user, "reader");
      assert.equal(o.pass, "pw");
      assert.equal(o.waitOnFirstConnect, false);
      assert.equal(objectStoreConnectionOptions(src, cfg.nats, true).waitOnFirstConnect, true);
    }
  });

  it("every mistake names its field", () => {
    const b = join(dir, "b.tar.gz");
    const cases: [ServiceConfig["policy"], RegExp][] = [
      [
        { dir, source: { http: { url: "https://x/b.tar.gz" } } },
        /^policy\.source\.http\.url: .*policy\.bundle/,
      ],
      [
        { bundle: b, source: { http: { url: "https://x/b" }, object_store: { bucket: "p" } } },
        /^policy\.source\.http\.url: set one policy source/,
      ],
      [
        { bundle: b, source: { http: { url: "ftp://x/b" } } },
        /^policy\.source\.http\.url: unsupported scheme/,
      ],
      [
        { bundle: b, source: { http: { url: "https://u:hunter2@x/b" } } },
        /^policy\.source\.http\.url: credentials/,
      ],
      [
        { bundle: b, source: { http: { url: "https://x/b", cert_file: file("c", "C") } } },
        /^policy\.source\.http\.key_file: .*go together/,
      ],
      [
        { bundle: b, source: { http: { url: "https://x/b", min_delay_seconds: 50, max_delay_seconds: 10 } } },
        /^policy\.source\.http\.max_delay_seconds/,
      ],
      [
        { bundle: b, source: { http: { token_file: "t" } } },
        /^policy\.source\.http\.token_file: needs policy\.source\.http\.url/,
      ],
      [
        { bundle: b, source: { object_store: { bucket: "a b" } } },
        /^policy\.source\.object_store\.bucket: only letters/,
      ],
      [
        { bundle: b, source: { object_store: { bucket: "p", user: "u" } } },
        /^policy\.source\.object_store\.password: required/,
      ],
      [
        { bundle: file("local.tar.gz", "x"), signing: { key_file: file("k", "K") } },
        /^policy\.signing\.key_file: signatures are checked on downloaded/,
      ],
      [
        { bundle: b, source: { http: { url: "https://x/b" } }, signing: { scope: "s" } },
        /^policy\.signing\.scope: needs policy\.signing\.key_file/,
      ],
      [
        { bundle: join(dir, "missing-dir", "b.tar.gz"), source: { http: { url: "https://x/b" } } },
        /^policy\.bundle: .*missing-dir.* not found/,
      ],
    ];
    for (const [policy, expected] of cases) {
      const got = problems(withPolicy(policy));
      assert.ok(
        got.some((p) => expected.test(p)),
        `expected ${expected} in ${JSON.stringify(got)}`,
      );
      assert.doesNotMatch(got.join("\n"), /hunter2/);
    }
  });
});
