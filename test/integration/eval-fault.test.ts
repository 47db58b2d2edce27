/**
 * `nats-opa-callout eval` (the built binary, from dist/, so its evaluation workers run as plain .js) reports why an
 * evaluation failed: OPA's text with file:line for conflicting outputs, the builtin and its reason for a strict
 * host-builtin error — in the text output and in --json — and never the credential it was given.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { FIXTURES, OPA_BIN, REPO, skipWithoutOpa } from "../support/index.js";

const CLI = join(REPO, "dist", "src", "cli.js");

describe("eval reports the cause of an evaluation fault", { skip: skipWithoutOpa }, () => {
  let dir: string;
  before(() => {
    if (!existsSync(CLI)) {
      execFileSync(
        process.execPath,
        [join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
        {
          cwd: REPO,
        },
      );
    }
    dir = mkdtempSync(join(tmpdir(), "eval-fault-"));
    cpSync(join(FIXTURES, "hostile"), join(dir, "policy"), { recursive: true });
    writeFileSync(join(dir, "policy", "data.json"), JSON.stringify({ password: "ok-password-1" }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const evalInput = (user: string, pass: string, json: boolean) => {
    const file = join(dir, `${user}.json`);
    writeFileSync(file, JSON.stringify({ version: 1, connect_opts: { user, pass } }));
    const args = [
      CLI,
      "eval",
      "--policy-dir",
      join(dir, "policy"),
      "--opa",
      OPA_BIN ?? "opa",
      "--input",
      file,
    ];
    if (json) args.push("--json");
    return spawnSync(process.execPath, args, { encoding: "utf8", timeout: 120_000 });
  };

  test("conflicting outputs: code, OPA's text and file:line", () => {
    const r = evalInput("conflict", "conflict-secret-pw", false);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^outcome {3}DENY {2}reason=policy_eval_error {2}code=policy_eval_error/m);
    assert.match(
      r.stdout,
      /^error {5}policy_eval_error: .*authz\.rego:\d+:\d+: .*conflict.* {2}at authz\.rego:\d+$/m,
    );
    assert.ok(!r.stdout.includes("conflict-secret-pw"));

    const j = evalInput("conflict", "conflict-secret-pw", true);
    const report = JSON.parse(j.stdout) as {
      eval_error?: { code: string; message: string; file?: string; line?: number };
    };
    assert.equal(report.eval_error?.code, "policy_eval_error");
    assert.equal(report.eval_error?.file, "authz.rego");
    assert.ok(Number.isInteger(report.eval_error?.line));
  });

  test("a strict host-builtin error names the builtin and its reason", () => {
    const j = evalInput("hex", "zz", true);
    assert.equal(j.status, 0, j.stderr);
    const report = JSON.parse(j.stdout) as { outcome: { code?: string }; eval_error?: { message: string } };
    assert.equal(report.outcome.code, "policy_eval_error");
    assert.match(report.eval_error?.message ?? "", /builtin hex\.decode: invalid byte in hex string/);
  });
});
