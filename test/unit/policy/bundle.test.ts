/**
 * Bundles and snapshots: reading opa's tar.gz (and refusing incomplete ones), building from a
 * directory snapshot with the real opa (compile errors → file + line), data merging as opa does it,
 * and the loader's reuse of the compiled module when only data changed.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { PolicyLoadError } from "../../../src/errors.js";
import { PolicyLoader, buildBundle, parseOpaErrorLocation, readBundle } from "../../../src/policy/bundle.js";
import { jsonErrorOffset, mergeData, takeSnapshot } from "../../../src/policy/snapshot.js";
import { readTarGz } from "../../../src/policy/tar.js";
import {
  CAPABILITIES,
  FIXTURES,
  OPA_BIN,
  buildWasmFixture,
  skipWithoutOpa,
  tarGz,
} from "../../support/index.js";

const EP = "nats/authz/decision";
const tmpRoots: string[] = [];
function tmpCopy(fixture = "basic"): string {
  const dir = mkdtempSync(path.join(tmpdir(), "policy-bundle-"));
  tmpRoots.push(dir);
  cpSync(path.join(FIXTURES, fixture), dir, { recursive: true });
  return dir;
}
after(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});

function loadErr(check: (e: PolicyLoadError) => void) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof PolicyLoadError, `expected PolicyLoadError, got ${String(err)}`);
    check(err);
    return true;
  };
}

const buildOpts = { entrypoints: [EP], capabilities: CAPABILITIES, opaBin: OPA_BIN ?? "opa" };

describe("readBundle", { skip: skipWithoutOpa }, () => {
  const { bytes } = OPA_BIN
    ? buildWasmFixture({ "authz.rego": readFileSync(path.join(FIXTURES, "basic", "authz.rego"), "utf8") }, [
        EP,
      ])
    : { bytes: Buffer.alloc(0) };

  test("reads opa's members (absolute names) and the manifest", () => {
    const files = readTarGz(bytes);
    assert.ok(files.has("/policy.wasm"));
    assert.ok(files.has("/data.json"));
    assert.ok(files.has("/.manifest"));
    const b = readBundle(bytes, [EP]);
    assert.equal(Buffer.from(b.wasm.subarray(0, 4)).toString("latin1"), "\0asm");
    assert.deepEqual(b.manifest.wasm, [{ entrypoint: EP, module: "/policy.wasm" }]);
  });

  test("each required member missing is refused by name", () => {
    const files = readTarGz(bytes);
    for (const missing of ["/policy.wasm", "/data.json", "/.manifest"]) {
      const rest = Object.fromEntries([...files].filter(([n]) => n !== missing));
      assert.throws(
        () => readBundle(tarGz(rest), [EP]),
        loadErr((e) => assert.match(e.message, new RegExp(`missing ${missing.replace(".", "\\.")}`))),
      );
    }
  });

  test("the manifest must list every configured entrypoint, in /policy.wasm", () => {
    assert.throws(
      () => readBundle(bytes, [EP, "nats/authz/other"]),
      loadErr((e) => assert.match(e.message, /nats\/authz\/other/)),
    );
    const files = Object.fromEntries(readTarGz(bytes));
    const manifest = JSON.stringify({ revision: "x", wasm: [{ entrypoint: EP, module: "/other.wasm" }] });
    assert.throws(() => readBundle(tarGz({ ...files, "/.manifest": manifest }), [EP]), PolicyLoadError);
    assert.throws(() => readBundle(tarGz({ ...files, "/.manifest": "not json" }), [EP]), PolicyLoadError);
  });

  test("garbage is not a bundle", () => {
    assert.throws(() => readBundle(Buffer.from("hello"), [EP]), PolicyLoadError);
  });
});

describe("snapshots and data", () => {
  test("takes .rego (no tests) and data files only, skips hidden entries", async () => {
    const dir = tmpCopy();
    writeFileSync(path.join(dir, "authz_test.rego"), "package nats.authz_test\n");
    mkdirSync(path.join(dir, "cases"));
    writeFileSync(path.join(dir, "cases", "allow.json"), "{}");
    writeFileSync(path.join(dir, "capabilities.json"), "{}");
    writeFileSync(path.join(dir, ".authz.rego.swp"), "junk");
    mkdirSync(path.join(dir, ".git"));
    writeFileSync(path.join(dir, ".git", "x.rego"), "junk");
    mkdirSync(path.join(dir, "sub"));
    writeFileSync(path.join(dir, "sub", "data.yaml"), "k: v\n");
    const s = await takeSnapshot(dir);
    assert.deepEqual(
      s.files.map((f) => f.rel),
      ["authz.rego", "data.json", "sub/data.yaml"],
    );
    assert.match(s.revision, /^[0-9a-f]{16}$/);
    const withTests = await takeSnapshot(dir, { includeTests: true });
    assert.ok(withTests.files.some((f) => f.rel === "authz_test.rego"));
  });

  test("revision follows content; regoHash ignores data", async () => {
    const dir = tmpCopy();
    const a = await takeSnapshot(dir);
    assert.equal((await takeSnapshot(dir)).revision, a.revision);
    writeFileSync(path.join(dir, "data.json"), '{"users": {}}');
    const b = await takeSnapshot(dir);
    assert.notEqual(b.revision, a.revision);
    assert.equal(b.regoHash, a.regoHash);
    writeFileSync(
      path.join(dir, "authz.rego"),
      `${readFileSync(path.join(dir, "authz.rego"), "utf8")}\n# x\n`,
    );
    const c = await takeSnapshot(dir);
    assert.notEqual(c.regoHash, b.regoHash);
  });

  test("a directory without Rego is refused", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "policy-empty-"));
    tmpRoots.push(dir);
    await assert.rejects(takeSnapshot(dir), PolicyLoadError);
  });

  test("invalid data files name file and line without quoting content", async () => {
    const dir = tmpCopy();
    writeFileSync(path.join(dir, "data.json"), '{\n  "secret": "hunter2",\n  "b": }\n');
    const s = await takeSnapshot(dir);
    assert.throws(
      () => mergeData(s),
      loadErr((e) => {
        assert.equal(e.file, "data.json");
        assert.equal(e.line, 3);
        assert.doesNotMatch(e.message, /hunter2/);
      }),
    );
    writeFileSync(path.join(dir, "data.json"), "{}");
    mkdirSync(path.join(dir, "y"));
    writeFileSync(path.join(dir, "y", "data.yaml"), "a: 1\nb: [unclosed\n");
    assert.throws(
      () => mergeData(takeSnapshotSync(dir)),
      loadErr((e) => assert.equal(e.file, "y/data.yaml")),
    );
  });

  test("jsonErrorOffset finds the first syntax error", () => {
    assert.equal(jsonErrorOffset('{"a": 1}'), -1);
    assert.equal(jsonErrorOffset('{"a": }'), 6);
    assert.equal(jsonErrorOffset("[1, 2,]"), 6);
    assert.equal(jsonErrorOffset('{"a": 1} x'), 9);
    assert.equal(jsonErrorOffset('"\\x"'), 0 + 1);
  });

  test("conflicting data and a non-object root are refused", async () => {
    const dir = tmpCopy();
    writeFileSync(path.join(dir, "data.json"), '{"users": {"x": 1}}');
    mkdirSync(path.join(dir, "users"));
    writeFileSync(path.join(dir, "users", "data.json"), '{"x": 2}');
    assert.throws(
      () => mergeData(takeSnapshotSync(dir)),
      loadErr((e) => assert.match(e.message, /data\.users\.x/)),
    );
    writeFileSync(path.join(dir, "data.json"), "[1]");
    rmSync(path.join(dir, "users"), { recursive: true });
    assert.throws(
      () => mergeData(takeSnapshotSync(dir)),
      loadErr((e) => assert.match(e.message, /object/)),
    );
  });

  test("merged data equals the data.json opa builds", { skip: skipWithoutOpa }, async () => {
    const dir = tmpCopy();
    mkdirSync(path.join(dir, "accounts", "app"), { recursive: true });
    writeFileSync(
      path.join(dir, "accounts", "app", "data.yaml"),
      "limits:\n  subs: 100\nflag: yes\nlist: [1, 2]\n",
    );
    mkdirSync(path.join(dir, "scalars"));
    writeFileSync(path.join(dir, "scalars", "data.json"), '"just a string"');
    writeFileSync(path.join(dir, "accounts", "data.json"), '{"other": {"n": 1.5}}');
    const s = await takeSnapshot(dir);
    const ours = mergeData(s);
    const gz = await buildBundle(s, buildOpts);
    const theirs = JSON.parse(readBundle(gz, [EP]).dataJson.toString("utf8")) as unknown;
    assert.deepEqual(ours, theirs);
    assert.equal((ours.accounts as { app: { flag: unknown } }).app.flag, "yes");
  });
});

// synchronous snapshot for the data tests (same rules as takeSnapshot)
function takeSnapshotSync(dir: string): Awaited<ReturnType<typeof takeSnapshot>> {
  const files: { rel: string; content: Buffer; kind: "rego" | "data" }[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSorted(path.join(dir, rel))) {
      const childRel = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, childRel);
      if (name.startsWith(".")) continue;
      if (statIsDir(abs)) walk(childRel);
      else if (/^data\.(json|ya?ml)$/.test(name))
        files.push({ rel: childRel, content: readFileSync(abs), kind: "data" });
      else if (name.endsWith(".rego"))
        files.push({ rel: childRel, content: readFileSync(abs), kind: "rego" });
    }
  };
  walk("");
  return { dir, files, revision: "test", regoHash: "test" };
}
const readdirSorted = (p: string): string[] => readdirSync(p).sort();
const statIsDir = (p: string): boolean => statSync(p).isDirectory();

describe("buildBundle", { skip: skipWithoutOpa }, () => {
  test("builds a loadable bundle stamped with the snapshot revision", async () => {
    const s = await takeSnapshot(tmpCopy());
    const b = readBundle(await buildBundle(s, buildOpts), [EP]);
    assert.equal(b.manifest.revision, s.revision);
  });

  const broken: [string, string, RegExp, number][] = [
    ["syntax error", 'package nats.authz\n\ndecision := {"allow": true\n\nx := 1\n', /rego_parse_error/, 5],
    [
      "type error",
      'package nats.authz\n\ndecision := {"allow": true} if {\n\t1 + "a" == 2\n}\n',
      /rego_type_error/,
      4,
    ],
    [
      "unsafe variable",
      "package nats.authz\n\ndecision := x if {\n\ty == 1\n}\n",
      /rego_unsafe_var_error/,
      3,
    ],
    [
      "builtin outside the capabilities",
      'package nats.authz\n\ndecision := {"allow": false, "reason": r} if {\n\tr := opa.runtime().version\n}\n',
      /undefined function opa\.runtime/,
      4,
    ],
  ];
  for (const [name, rego, pattern, line] of broken) {
    test(`${name}: PolicyLoadError with file and line`, async () => {
      const dir = tmpCopy();
      mkdirSync(path.join(dir, "sub"));
      writeFileSync(
        path.join(dir, "sub", "broken.rego"),
        rego.replace("package nats.authz", "package nats.broken"),
      );
      writeFileSync(path.join(dir, "authz.rego"), rego);
      const s = await takeSnapshot(dir);
      await assert.rejects(
        buildBundle(s, buildOpts),
        loadErr((e) => {
          assert.match(e.message, pattern);
          assert.ok(e.file === "authz.rego" || e.file === "sub/broken.rego", `file: ${e.file}`);
          assert.equal(e.line, line);
          assert.doesNotMatch(e.message, /nats-opa-callout-build-/, "no temp paths");
        }),
      );
    });
  }

  test("a missing opa binary is a clear PolicyLoadError", async () => {
    const s = await takeSnapshot(tmpCopy());
    await assert.rejects(
      buildBundle(s, { ...buildOpts, opaBin: "/nonexistent/opa" }),
      loadErr((e) => assert.match(e.message, /opa binary not found/)),
    );
  });

  test("parseOpaErrorLocation", () => {
    assert.deepEqual(parseOpaErrorLocation("1 error occurred: authz.rego:12: rego_parse_error: x"), {
      file: "authz.rego",
      line: 12,
    });
    assert.deepEqual(
      parseOpaErrorLocation("load error: 1 error occurred during loading: a/b/data.json: merge error"),
      {
        file: "a/b/data.json",
      },
    );
    assert.deepEqual(parseOpaErrorLocation("something else"), {});
  });
});

describe("PolicyLoader", { skip: skipWithoutOpa }, () => {
  test("unchanged → undefined; data-only → reuses the module; Rego change → compiles", async () => {
    const dir = tmpCopy();
    const loader = new PolicyLoader({ dir }, buildOpts);
    const first = await loader.load();
    assert.ok(first);
    assert.equal(first.compiled, true);
    first.commit();
    assert.equal(await loader.load(), undefined);

    const data = JSON.parse(readFileSync(path.join(dir, "data.json"), "utf8")) as { blocked: string[] };
    data.blocked.push("eve");
    writeFileSync(path.join(dir, "data.json"), JSON.stringify(data));
    const second = await loader.load();
    assert.ok(second);
    assert.equal(second.compiled, false);
    assert.equal(second.module, first.module);
    assert.notEqual(second.revision, first.revision);
    second.commit();

    writeFileSync(path.join(dir, "extra.rego"), "package nats.extra\n\nx := 1\n");
    const third = await loader.load();
    assert.ok(third);
    assert.equal(third.compiled, true);
    assert.notEqual(third.module, first.module);
  });

  test("a prebuilt bundle file: revision from its manifest, reload on change only", async () => {
    const s = await takeSnapshot(tmpCopy());
    const gz = await buildBundle(s, buildOpts);
    const dir = mkdtempSync(path.join(tmpdir(), "policy-prebuilt-"));
    tmpRoots.push(dir);
    const file = path.join(dir, "bundle.tar.gz");
    writeFileSync(file, gz);
    const loader = new PolicyLoader({ bundle: file }, buildOpts);
    const loaded = await loader.load();
    assert.ok(loaded);
    assert.equal(loaded.revision, s.revision);
    loaded.commit();
    assert.equal(await loader.load(), undefined);
    writeFileSync(file, tarGz({ "/policy.wasm": Buffer.from("x") }));
    await assert.rejects(loader.load(), PolicyLoadError);
  });

  test("a Rego bundle (no policy.wasm, as OPA bundle servers serve them) is compiled on arrival like a directory", async () => {
    const dir = tmpCopy();
    writeFileSync(path.join(dir, "data.json"), JSON.stringify({ marker: { n: 1 } }));
    const work = mkdtempSync(path.join(tmpdir(), "policy-rego-bundle-"));
    tmpRoots.push(work);
    const file = path.join(work, "bundle.tar.gz");
    execFileSync(OPA_BIN!, ["build", "-b", "-r", "rego-rev-1", "-o", file, "."], { cwd: dir, stdio: "pipe" });
    const files = readTarGz(readFileSync(file));
    assert.ok(!files.has("/policy.wasm") && [...files.keys()].some((k) => k.endsWith(".rego")));
    const loader = new PolicyLoader({ bundle: file }, buildOpts);
    const loaded = await loader.load();
    assert.ok(loaded);
    assert.equal(loaded.revision, "rego-rev-1");
    assert.equal(loaded.compiled, true);
    assert.deepEqual(JSON.parse(loaded.data.toString()), { marker: { n: 1 } });
    loaded.commit();
    assert.equal(await loader.load(), undefined, "an unchanged Rego bundle is not rebuilt");
    // A Rego bundle with a compile error is refused with the bundle's file and line.
    writeFileSync(
      file,
      tarGz({
        "/authz.rego": "package nats.authz\n\ndecision := {\n",
        "/.manifest": JSON.stringify({ revision: "bad" }),
      }),
    );
    await assert.rejects(
      loader.load(),
      loadErr((e) => assert.match(`${e.file}:${e.line} ${e.message}`, /authz\.rego/)),
    );
    // Neither wasm nor Rego: refused by name.
    writeFileSync(file, tarGz({ "/data.json": "{}", "/.manifest": "{}" }));
    await assert.rejects(
      loader.load(),
      loadErr((e) => assert.match(e.message, /neither policy\.wasm nor \.rego/)),
    );
  });
});
