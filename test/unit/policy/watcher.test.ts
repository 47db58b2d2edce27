/**
 * Hot reload with a real chokidar watcher and the real opa: edits become new revisions; broken
 * edits (syntax, type, runtime conflict, bad decision shape, undefined decision, missing data)
 * keep the last good revision serving and report file + line; atomic rename-replace, deletions,
 * data-only changes and bundle-file replacement. Waits are bounded but nothing asserts speed.
 */
import assert from "node:assert/strict";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, afterEach, describe, test, type TestContext } from "node:test";
import { buildBundle } from "../../../src/policy/bundle.js";
import { SMOKE_REQUEST, buildInput } from "../../../src/policy/input.js";
import { takeSnapshot } from "../../../src/policy/snapshot.js";
import { PolicyStore, type ReloadEvent } from "../../../src/policy/store.js";
import { PolicyWatcher } from "../../../src/policy/watcher.js";
import { until, CAPABILITIES, FIXTURES, OPA_BIN, skipWithoutOpa } from "../../support/index.js";

const EP = "nats/authz/decision";
const tmpRoots: string[] = [];
const watchers: PolicyWatcher[] = [];
after(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});
afterEach(async () => {
  while (watchers.length) await watchers.pop()?.close();
});

function tmpCopy(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "policy-watch-"));
  tmpRoots.push(dir);
  cpSync(path.join(FIXTURES, "basic"), dir, { recursive: true });
  return dir;
}

const opts = {
  entrypoint: EP,
  capabilities: CAPABILITIES,
  opaBin: OPA_BIN ?? "opa",
  debounceMs: 150,
  writeFinishMs: 80,
};

async function started(
  source: { dir: string } | { bundle: string },
  extra: { pollMs?: number; watch?: boolean } = {},
) {
  const store = new PolicyStore();
  const events: ReloadEvent[] = [];
  store.on("reload", (e) => events.push(e));
  const watcher = new PolicyWatcher(store, source, { ...opts, ...extra });
  watchers.push(watcher);
  await watcher.start();
  return { store, watcher, events };
}

/** Resolves with the next reload event (bounded wait). */
function nextReload(store: PolicyStore, timeoutMs = 15_000): Promise<ReloadEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reload event within ${timeoutMs} ms`)), timeoutMs);
    store.once("reload", (e) => {
      clearTimeout(timer);
      resolve(e);
    });
  });
}

async function decide(store: PolicyStore, user: string, pass: string): Promise<Record<string, unknown>> {
  const active = store.current();
  const input = buildInput({ ...SMOKE_REQUEST, connect_opts: { user, pass } });
  return (await active.policy.evaluate(input, active.entrypoint)).result as Record<string, unknown>;
}

const authz = (dir: string): string => path.join(dir, "authz.rego");
const read = (p: string): string => readFileSync(p, "utf8");

describe("policy hot reload", { skip: skipWithoutOpa }, () => {
  test("an edit becomes a new revision; the request path sees it", async (t: TestContext) => {
    const dir = tmpCopy();
    const { store, events } = await started({ dir });
    const r1 = store.current().revision;
    assert.equal(events.length, 1);
    assert.equal((await decide(store, "alice", "alice-pw")).allow, true);

    const written = performance.now();
    const reload = nextReload(store);
    writeFileSync(authz(dir), read(authz(dir)).replace('"not_authorized"', '"nope"'));
    const e = await reload;
    t.diagnostic(`file write → new revision serving: ${(performance.now() - written).toFixed(0)} ms`);
    assert.equal(e.result, "ok");
    assert.equal(e.compiled, true);
    assert.notEqual(store.current().revision, r1);
    assert.equal(e.revision, store.current().revision);
    assert.equal((await decide(store, "alice", "bad")).reason, "nope");
    assert.deepEqual(store.status().reloads, { ok: 2, failed: 0 });
  });

  const brokenEdits: [string, (src: string) => string, { file?: string; line?: number; message: RegExp }][] =
    [
      [
        "syntax error",
        (src) => src.replace("default decision :=", "default decision :=="),
        { file: "authz.rego", line: 4, message: /rego_parse_error/ },
      ],
      [
        "type error",
        (src) => src.replace("crypto.sha256(input.connect_opts.pass)", "crypto.sha256(5)"),
        { file: "authz.rego", line: 16, message: /rego_type_error/ },
      ],
      [
        "conflict at runtime on the smoke input",
        (src) =>
          `${src}\ndecision := {"allow": false, "reason": "one"} if input.connect_opts.user == "smoke-test"\n` +
          `\ndecision := {"allow": false, "reason": "two"} if input.connect_opts.user == "smoke-test"\n`,
        { message: /smoke evaluation 1 failed: .*conflict/i },
      ],
      [
        "bad decision shape on smoke",
        (src) =>
          src.replace(
            'default decision := {"allow": false, "reason": "not_authorized"}',
            'default decision := {"allow": "no"}',
          ),
        { message: /smoke evaluation 1 failed: allow: must be a boolean, got string/ },
      ],
      [
        "unknown decision field on smoke",
        (src) =>
          src.replace(
            'default decision := {"allow": false, "reason": "not_authorized"}',
            'default decision := {"allow": false, "permissions": {}}',
          ),
        { message: /permissions: unknown decision field/ },
      ],
      [
        "undefined decision on smoke",
        (src) => src.replace('default decision := {"allow": false, "reason": "not_authorized"}', ""),
        { message: /undefined/ },
      ],
    ];
  for (const [name, edit, expected] of brokenEdits) {
    test(`broken edit (${name}) keeps the old revision and reports it`, async () => {
      const dir = tmpCopy();
      const { store, watcher } = await started({ dir });
      const r1 = store.current().revision;
      const reload = nextReload(store);
      writeFileSync(authz(dir), edit(read(authz(dir))));
      const e = await reload;
      assert.equal(e.result, "error");
      assert.equal(e.revision, r1, "the event names the revision that stays active");
      assert.match(e.error?.message ?? "", expected.message);
      if (expected.file) assert.equal(e.error?.file, expected.file);
      if (expected.line) assert.equal(e.error?.line, expected.line);
      assert.equal(store.current().revision, r1);
      assert.equal((await decide(store, "alice", "alice-pw")).allow, true, "last good policy still serves");
      const st = store.status();
      assert.equal(st.revision, r1);
      assert.deepEqual(st.reloads, { ok: 1, failed: 1 });
      assert.match(st.lastError?.message ?? "", expected.message);
      assert.ok(st.lastError?.at);

      // restoring the active content needs no reload
      cpSync(path.join(FIXTURES, "basic", "authz.rego"), authz(dir));
      assert.equal((await watcher.reload()).result, "unchanged");
      assert.equal(store.current().revision, r1);
      // a good edit recovers
      const fixed = nextReload(store);
      writeFileSync(authz(dir), `${read(authz(dir))}\n# fixed\n`);
      const ok = await fixed;
      assert.equal(ok.result, "ok");
      assert.notEqual(store.current().revision, r1);
    });
  }

  test("atomic rename-replace is picked up", async () => {
    const dir = tmpCopy();
    const { store } = await started({ dir });
    const r1 = store.current().revision;
    const reload = nextReload(store);
    const tmp = path.join(dir, ".authz.rego.tmp");
    writeFileSync(tmp, read(authz(dir)).replace('"password_ok"', '"renamed"'));
    renameSync(tmp, authz(dir));
    const e = await reload;
    assert.equal(e.result, "ok");
    assert.notEqual(store.current().revision, r1);
    assert.equal((await decide(store, "alice", "alice-pw")).reason, "renamed");
  });

  test("deleting a file: harmless → new revision; needed → error, old kept", async () => {
    const dir = tmpCopy();
    writeFileSync(path.join(dir, "extra.rego"), "package nats.extra\n\nx := 1\n");
    writeFileSync(
      path.join(dir, "helpers.rego"),
      "package nats.helpers\n\nis_blocked(user) if user in data.blocked\n",
    );
    writeFileSync(
      authz(dir),
      read(authz(dir)).replace(
        "input.connect_opts.user in data.blocked",
        "data.nats.helpers.is_blocked(input.connect_opts.user)",
      ),
    );
    const { store } = await started({ dir });
    const r1 = store.current().revision;
    assert.equal((await decide(store, "mallory", "x")).abort, true);

    let reload = nextReload(store);
    unlinkSync(path.join(dir, "extra.rego"));
    const e1 = await reload;
    assert.equal(e1.result, "ok");
    const r2 = store.current().revision;
    assert.notEqual(r2, r1);

    reload = nextReload(store);
    unlinkSync(path.join(dir, "helpers.rego"));
    const e2 = await reload;
    assert.equal(e2.result, "error");
    assert.match(e2.error?.message ?? "", /undefined function data\.nats\.helpers\.is_blocked/);
    assert.equal(e2.error?.file, "authz.rego");
    assert.equal(store.current().revision, r2);
    assert.equal((await decide(store, "mallory", "x")).abort, true);
  });

  test("a data-only change reloads without recompiling", async () => {
    const dir = tmpCopy();
    const { store } = await started({ dir });
    const before = store.current();
    const reload = nextReload(store);
    const data = JSON.parse(read(path.join(dir, "data.json"))) as { blocked: string[] };
    data.blocked.push("bob");
    writeFileSync(path.join(dir, "data.json"), JSON.stringify(data));
    const e = await reload;
    assert.equal(e.result, "ok");
    assert.equal(e.compiled, false);
    const after = store.current();
    assert.notEqual(after.revision, before.revision);
    assert.notEqual(after.policy, before.policy, "a new instance");
    assert.equal(after.policy.module, before.policy.module, "the same compiled module");
    assert.deepEqual(await decide(store, "bob", "x"), { allow: false, abort: true, reason: "blocked" });
    // the old snapshot (held by an in-flight request) still answers with the old data
    const oldInput = buildInput({ ...SMOKE_REQUEST, connect_opts: { user: "bob", pass: "x" } });
    assert.deepEqual((await before.policy.evaluate(oldInput, EP)).result, {
      allow: false,
      reason: "not_authorized",
    });
  });

  test("invalid data keeps the old revision and names the data file and line", async () => {
    const dir = tmpCopy();
    const { store } = await started({ dir });
    const r1 = store.current().revision;
    const reload = nextReload(store);
    writeFileSync(path.join(dir, "data.json"), '{\n  "users": {,\n}\n');
    const e = await reload;
    assert.equal(e.result, "error");
    assert.equal(e.error?.file, "data.json");
    assert.equal(e.error?.line, 2);
    assert.equal(store.current().revision, r1);
  });

  test("one broken save is one failure: neither the poll nor a file event retries the same content", async () => {
    const dir = tmpCopy();
    // No file events and no poll timer: the test runs every reload and poll tick itself, so each is counted.
    const { store, watcher } = await started({ dir }, { watch: false });
    writeFileSync(authz(dir), "package nats.authz\n\ndecision := {\n");
    assert.equal((await watcher.reload()).result, "error", "the save, as a file event reloads it");
    await watcher.poll();
    await watcher.poll();
    assert.equal(
      (await watcher.reload()).result,
      "unchanged",
      "a non-forced reload skips the failed content",
    );
    assert.deepEqual(store.status().reloads, { ok: 1, failed: 1 });
    // a forced reload (SIGHUP, an operator) does try again
    assert.equal((await watcher.reload(true)).result, "error");
    assert.deepEqual(store.status().reloads, { ok: 1, failed: 2 });
    // a different broken save is a new failure; going back to good recovers
    writeFileSync(authz(dir), "package nats.authz\n\ndecision := {{\n");
    await watcher.poll();
    assert.deepEqual(store.status().reloads, { ok: 1, failed: 3 });
    cpSync(path.join(FIXTURES, "basic", "authz.rego"), authz(dir));
    writeFileSync(authz(dir), `${read(authz(dir))}\n# fixed\n`);
    await watcher.poll();
    assert.equal(store.status().reloads.ok, 2);
    assert.equal(store.status().lastError, undefined);
  });

  test("close() while the poll re-watches a recreated directory leaves no file watcher open", async () => {
    const dir = tmpCopy();
    const { watcher } = await started({ dir }, { pollMs: 0 });
    const internals = watcher as unknown as { fsWatcher?: { closed: boolean } };
    const first = internals.fsWatcher;
    assert.ok(first);
    rmSync(dir, { recursive: true, force: true });
    await watcher.poll(); // the root is gone: noted, nothing to load
    cpSync(path.join(FIXTURES, "basic"), dir, { recursive: true });
    const polling = watcher.poll(); // closes the old watcher, starts a new one
    await until(() => internals.fsWatcher !== undefined && internals.fsWatcher !== first, "the new watcher");
    const second = internals.fsWatcher;
    await watcher.close();
    await polling;
    assert.equal(first.closed, true);
    assert.equal(second?.closed, true, "the watcher started during the re-watch is closed too");
    assert.equal(internals.fsWatcher, undefined);
  });

  test("files that are not policy (cases, notes) do not cause reloads", async () => {
    const dir = tmpCopy();
    const { store, watcher, events } = await started({ dir });
    writeFileSync(path.join(dir, "notes.md"), "hello");
    writeFileSync(path.join(dir, "case.json"), "{}");
    // a forced reload afterwards proves the watcher was idle: only the start-up event, then this one
    const outcome = await watcher.reload();
    assert.equal(outcome.result, "unchanged");
    assert.equal(store.status().reloads.ok, 1);
    assert.equal(events.length, 1);
  });

  test("a prebuilt bundle file replaced atomically is reloaded", async () => {
    const src = tmpCopy();
    const bundleDir = mkdtempSync(path.join(tmpdir(), "policy-bundle-watch-"));
    tmpRoots.push(bundleDir);
    const file = path.join(bundleDir, "bundle.tar.gz");
    const build = async (): Promise<Buffer> =>
      buildBundle(await takeSnapshot(src), {
        entrypoints: [EP],
        capabilities: CAPABILITIES,
        opaBin: opts.opaBin,
      });
    writeFileSync(file, await build());
    const { store } = await started({ bundle: file });
    const r1 = store.current().revision;

    writeFileSync(authz(src), read(authz(src)).replace('"password_ok"', '"from_bundle"'));
    const next = await build();
    const reload = nextReload(store);
    writeFileSync(path.join(bundleDir, "bundle.tar.gz.tmp"), next);
    renameSync(path.join(bundleDir, "bundle.tar.gz.tmp"), file);
    const e = await reload;
    assert.equal(e.result, "ok");
    assert.notEqual(store.current().revision, r1);
    assert.equal((await decide(store, "alice", "alice-pw")).reason, "from_bundle");

    const broken = nextReload(store);
    writeFileSync(file, "not a bundle");
    assert.equal((await broken).result, "error");
    assert.equal((await decide(store, "alice", "alice-pw")).reason, "from_bundle");
  });
  test("a Kubernetes ConfigMap volume (symlinks, ..data swapped atomically) loads and reloads", async () => {
    // The layout kubelet writes: real files in a hidden timestamped dir, `..data` -> that dir, and one
    // visible symlink per key. An update swaps `..data` by rename; the visible links never change, so
    // whether a file event arrives depends on chokidar following the links; the content-hash poll is the
    // backstop (proved on its own in test/integration/reload.test.ts, case 5b).
    const dir = mkdtempSync(path.join(tmpdir(), "policy-configmap-"));
    tmpRoots.push(dir);
    const version = (name: string, edit?: (data: { blocked: string[] }) => void): void => {
      mkdirSync(path.join(dir, name));
      cpSync(path.join(FIXTURES, "basic", "authz.rego"), path.join(dir, name, "authz.rego"));
      const data = JSON.parse(read(path.join(FIXTURES, "basic", "data.json"))) as { blocked: string[] };
      edit?.(data);
      writeFileSync(path.join(dir, name, "data.json"), JSON.stringify(data));
    };
    version("..2026_11_29_v1");
    symlinkSync("..2026_11_29_v1", path.join(dir, "..data"));
    for (const f of ["authz.rego", "data.json"]) symlinkSync(`..data/${f}`, path.join(dir, f));

    const { store } = await started({ dir }, { pollMs: 300 });
    const r1 = store.current().revision;
    assert.equal((await decide(store, "alice", "alice-pw")).allow, true, "the symlinked files were loaded");

    version("..2026_11_29_v2", (d) => d.blocked.push("bob"));
    const reload = nextReload(store);
    symlinkSync("..2026_11_29_v2", path.join(dir, "..data_tmp"));
    renameSync(path.join(dir, "..data_tmp"), path.join(dir, "..data"));
    rmSync(path.join(dir, "..2026_11_29_v1"), { recursive: true });
    const e = await reload;
    assert.equal(e.result, "ok");
    assert.notEqual(store.current().revision, r1);
    assert.deepEqual(await decide(store, "bob", "x"), { allow: false, abort: true, reason: "blocked" });
  });
});
