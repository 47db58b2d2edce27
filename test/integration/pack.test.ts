/**
 * The npm package as a user gets it: `npm pack` (of the built dist/), then `npm install --prefix <tmp> <tgz>` (what
 * `npm install -g` does, in a temp prefix), then the installed `nats-opa-callout` bin: --help, version, and
 * `init --policy` scaffolding a starter from the files the package ships, on which `opa test`, the service's own
 * `check` (wasm) and `make policy POLICY_DIR=<it>` pass; both library entries (`nats-opa-callout` and
 * `nats-opa-callout/internal`) resolve from an ES module, and the main one keeps internals out. Needs the npm registry (or npm's cache) for the package's dependencies.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OPA_BIN, REPO, skipWithoutOpa } from "../support/index.js";

const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 180_000,
  });
  return { code: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

describe("npm package (npm pack → npm install → the CLI)", { skip: skipWithoutOpa }, () => {
  let dir: string;
  let tgz: string;
  let files: string[];
  let bin: string;

  before(() => {
    assert.ok(existsSync(join(REPO, "dist", "src", "cli.js")), "dist/ is missing: run make build");
    dir = mkdtempSync(join(tmpdir(), "pack-test-"));
    const packed = JSON.parse(
      execFileSync(NPM, ["pack", "--json", "--pack-destination", dir], { cwd: REPO, encoding: "utf8" }),
    ) as { filename: string; files: { path: string }[] }[];
    tgz = join(dir, packed[0]!.filename);
    files = packed[0]!.files.map((f) => f.path);
    bin = join(dir, "prefix", "node_modules", ".bin", "nats-opa-callout");
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the tarball ships the CLI, the policy libraries, capabilities.json and the starter; no tests or sources", () => {
    for (const f of [
      "package.json",
      "README.md",
      "dist/src/cli.js",
      "dist/src/index.js",
      "dist/src/index.d.ts",
      "dist/src/internal.js",
      "dist/src/internal.d.ts",
      "policies/capabilities.json",
      "policies/lib/subject.rego",
      "examples/policy-starter/authz/decision.rego",
      "docs/policy-contract.md",
    ]) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    for (const target of Object.values(pkg.bin))
      assert.ok(files.includes(target.replace(/^\.\//, "")), target);
    const stray = files.filter((f) => /^(src|test|bench|scripts)\//.test(f) || /\.tsbuildinfo$/.test(f));
    assert.deepEqual(stray, [], "sources, tests and scripts stay out of the package");
  });

  test("installed into a temp prefix, the bin runs and scaffolds a starter policy that passes opa test and check", () => {
    const inst = run(
      NPM,
      ["install", "--prefix", join(dir, "prefix"), tgz, "--no-audit", "--no-fund", "--prefer-offline"],
      dir,
    );
    assert.equal(inst.code, 0, inst.out);
    assert.ok(existsSync(bin), "npm linked the nats-opa-callout bin");

    const help = run(bin, ["--help"], dir);
    assert.equal(help.code, 0, help.out);
    assert.match(help.out, /^nats-opa-callout — /);
    const version = run(bin, ["version"], dir);
    assert.match(version.out, /^nats-opa-callout \d+\.\d+\.\d+ \(node /);

    const starter = join(dir, "my-policy");
    const init = run(bin, ["init", "--policy", starter], dir);
    assert.equal(init.code, 0, init.out);
    for (const f of ["authz/decision.rego", "lib/subject.rego", "capabilities.json", "cases/password.json"]) {
      assert.ok(existsSync(join(starter, f)), `init --policy wrote ${f}`);
    }
    const opaTest = run(OPA_BIN!, ["test", starter], dir);
    assert.equal(opaTest.code, 0, opaTest.out);
    assert.match(opaTest.out, /PASS: \d+\/\d+/);
    const check = run(bin, ["check", "--policy-dir", starter], dir, { OPA_BIN: OPA_BIN! });
    assert.equal(check.code, 0, check.out);
    assert.match(check.out, /cases\s+2 passed, 0 failed/);
    // The repository's policy pipeline works on it too: fmt, check against the capabilities, coverage, wasm build.
    const make = run(
      "make",
      ["--no-print-directory", "policy", `POLICY_DIR=${starter}`, `POLICY_OUT=${join(dir, "out")}`],
      REPO,
      {
        OPA_BIN: OPA_BIN!,
      },
    );
    assert.equal(make.code, 0, make.out);
    assert.match(make.out, /opa test: coverage \d/);
  });

  test("installed, both library entries resolve; the main entry is curated, internals only in /internal", () => {
    const prefix = join(dir, "prefix");
    if (!existsSync(join(prefix, "node_modules", "nats-opa-callout"))) {
      const inst = run(
        NPM,
        ["install", "--prefix", prefix, tgz, "--no-audit", "--no-fund", "--prefer-offline"],
        dir,
      );
      assert.equal(inst.code, 0, inst.out);
    }
    // An ES module next to the installed package, as a library user's code would be.
    const probe = join(prefix, "probe.mjs");
    writeFileSync(
      probe,
      `const main = await import("nats-opa-callout");
const internal = await import("nats-opa-callout/internal");
console.log(JSON.stringify({ main: Object.keys(main).sort(), internal: Object.keys(internal).sort() }));
`,
    );
    const r = run(process.execPath, [probe], prefix);
    assert.equal(r.code, 0, r.out);
    const { main, internal } = JSON.parse(r.out) as { main: string[]; internal: string[] };
    for (const name of [
      "callout",
      "startCallout",
      "AuthError",
      "AbortAuth",
      "guardHandler",
      "startRuntime",
      "resolveConfig",
      "createPolicyEngine",
      "policyHandler",
      "createLogger",
    ]) {
      assert.ok(main.includes(name), `${name} is exported from nats-opa-callout`);
    }
    for (const name of ["createAuthorizer", "decide", "validateGrant", "CalloutMetrics", "signerFromSeed"]) {
      assert.ok(!main.includes(name), `${name} is NOT exported from nats-opa-callout`);
      assert.ok(internal.includes(name), `${name} is exported from nats-opa-callout/internal`);
    }
    for (const name of main) assert.ok(internal.includes(name), `internal re-exports ${name}`);
  });
});
