/**
 * The `revocation` config section (src/config/resolve-revocation.ts): off by default, a credential required when on,
 * one auth method, defaults from the field table, fields given while off reported, and no secret in the output.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { createAccount } from "@nats-io/nkeys";
import { ConfigError } from "../../../src/errors.js";
import { resolveConfig, type ServiceConfig } from "../../../src/config.js";

const minimal: ServiceConfig = {
  issuer: { seed: new TextDecoder().decode(createAccount().getSeed()) },
  accounts: ["APP"],
  nats: { servers: "nats://10.0.0.1:4222" },
};

function problems(input: ServiceConfig): { field: string; message: string }[] {
  try {
    resolveConfig(input);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  return [];
}

describe("revocation config", () => {
  it("is off by default", () => {
    assert.equal(resolveConfig(minimal).revocation, undefined);
  });

  it("on: resolves the credential, defaults servers to nats.servers, never prints the password", () => {
    const r = resolveConfig({
      ...minimal,
      revocation: { enabled: true, nats: { user: "kicker", password: "hunter2-kick" } },
    }).revocation!;
    assert.deepEqual(r.servers, ["nats://10.0.0.1:4222"]);
    assert.equal(r.auth.kind, "user");
    assert.deepEqual(
      [r.ratePerSecond, r.periodicSeconds, r.maxLiveGrants, r.concurrency],
      [200, 0, 100_000, 4],
    );
    assert.ok(!JSON.stringify(r).includes("hunter2") && !inspect(r, { depth: 5 }).includes("hunter2"));
  });

  it("on without a credential, with two methods, or with half a user: each named", () => {
    assert.deepEqual(
      problems({ ...minimal, revocation: { enabled: true } }).map((p) => p.field),
      ["revocation.nats"],
    );
    assert.match(
      problems({ ...minimal, revocation: { enabled: true } })[0]!.message,
      /\$SYS\.REQ\.SERVER\.\*\.KICK/,
    );
    assert.deepEqual(
      problems({
        ...minimal,
        revocation: { enabled: true, nats: { user: "k", password: "p", token: "t" } },
      }).map((p) => p.field),
      ["revocation.nats"],
    );
    assert.deepEqual(
      problems({ ...minimal, revocation: { enabled: true, nats: { password: "p" } } }).map((p) => p.field),
      ["revocation.nats.user"],
    );
    assert.deepEqual(
      problems({
        ...minimal,
        revocation: {
          enabled: true,
          nats: { user: "k", password: "p", servers: ["http://x"] },
          rate_per_second: 0,
        },
      }).map((p) => p.field),
      ["revocation.rate_per_second", "revocation.nats.servers[0]"],
    );
  });

  it("fields given while off are reported, not ignored", () => {
    assert.deepEqual(
      problems({ ...minimal, revocation: { nats: { user: "k", password: "p" }, periodic_seconds: 60 } }).map(
        (p) => p.field,
      ),
      ["revocation.nats.user", "revocation.nats.password", "revocation.periodic_seconds"],
    );
  });
});
