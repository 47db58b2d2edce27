/**
 * The browser demo in a real headless Chromium (Debian's chromium, driven by playwright-core), against the stack
 * `make run` starts (scripts/run.mjs on random loopback ports: nats-server with JetStream and websocket, the
 * built service with the example policy, the KV bucket `prefs`, the page). Asserts what the page shows: a wrong
 * password is refused, alice logs in, puts and gets her own key, her live watch shows a change a second (nats.js)
 * client makes, and reading or writing bob's key shows the server's permissions violation.
 *
 * Chromium: CHROMIUM_BIN, else chromium on PATH (`make browser` installs it as root via apt). Without it the suite
 * is skipped and says why; BROWSER_REQUIRED=1 (CI) turns that into a failure.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { serverMatrix, OPA_BIN, REPO } from "../support/index.js";

function findChromium(): string | undefined {
  if (process.env.CHROMIUM_BIN)
    return existsSync(process.env.CHROMIUM_BIN) ? process.env.CHROMIUM_BIN : undefined;
  for (const name of ["chromium", "chromium-browser"]) {
    try {
      return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined;
    } catch {
      // not on PATH
    }
  }
  return undefined;
}

const CHROMIUM = findChromium();
/** The example policy still has the prefs grant from before issue 10 (STREAM.INFO, no watch). */
const LEGACY_PREFS_GRANT = readFileSync(join(REPO, "policies", "data.json"), "utf8").includes(
  '"$JS.API.STREAM.INFO.KV_prefs"',
);
const NATS = serverMatrix()[0]!;
const CLI = join(REPO, "dist", "src", "cli.js");
const missing = !CHROMIUM
  ? "Chromium not found (run `make browser` as root to apt-get install Debian's chromium, or set CHROMIUM_BIN)"
  : NATS.missing || !OPA_BIN
    ? "nats-server or opa missing (make tools)"
    : !existsSync(CLI)
      ? "dist/ missing (make build)"
      : undefined;
const SUITE = "browser demo (make run's page in headless Chromium)";
if (missing && process.env.BROWSER_REQUIRED === "1") {
  test(`${SUITE}: prerequisites (BROWSER_REQUIRED=1)`, () => assert.fail(missing));
} else if (missing) {
  // A skipped test (not a skipped suite) so that the run's summary counts it.
  test(SUITE, { skip: `SKIPPED, browser demo not tested: ${missing}` }, () => {});
}

/** The little of the DOM the page function uses (this project compiles without lib "dom"). */
interface Dom {
  document: { getElementById(id: string): { textContent: string | null } | null };
}

interface Ready {
  page: string;
  nats: string;
  dir: string;
  jsStore: string;
}

// Only registered when it can run (a skipped suite would show a second, reasonless skip line).
if (!missing)
  describe(SUITE, () => {
    let dir: string;
    let run: ChildProcess | undefined;
    let runOutput = "";
    let ready: Ready;
    let browser: Browser | undefined;
    let page: Page;
    const conns: NatsConnection[] = [];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "browser-test-"));
      const readyFile = join(dir, "ready.json");
      run = spawn(process.execPath, [join(REPO, "scripts", "run.mjs")], {
        env: {
          ...process.env,
          RUN_DIR: join(dir, "run"),
          RUN_READY_FILE: readyFile,
          NATS_PORT: "0",
          WS_PORT: "0",
          METRICS_PORT: "0",
          HTTP_PORT: "0",
          NATS_SERVER_BIN: NATS.bin,
          OPA_BIN: OPA_BIN!,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      run.stdout?.on("data", (d: Buffer) => (runOutput += d.toString()));
      run.stderr?.on("data", (d: Buffer) => (runOutput += d.toString()));
      const deadline = Date.now() + 120_000;
      while (!existsSync(readyFile) || readFileSync(readyFile, "utf8") === "") {
        if (run.exitCode !== null) throw new Error(`scripts/run.mjs exited (${run.exitCode}):\n${runOutput}`);
        if (Date.now() > deadline) throw new Error(`scripts/run.mjs never became ready:\n${runOutput}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      ready = JSON.parse(readFileSync(readyFile, "utf8")) as Ready;
      // Running as root (CI containers) Chromium needs --no-sandbox; containers often have a tiny /dev/shm.
      browser = await chromium.launch({
        executablePath: CHROMIUM!,
        args: ["--no-sandbox", "--disable-dev-shm-usage"],
      });
      page = await browser.newPage();
      page.setDefaultTimeout(20_000);
    });

    after(async () => {
      for (const nc of conns) await nc.close().catch(() => {});
      await browser?.close();
      if (run && run.exitCode === null) {
        const exited = new Promise((r) => run!.once("exit", r));
        run.kill("SIGTERM");
        await exited;
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** Waits until element #id's text matches `re`; on timeout fails with what the page shows. */
    async function shows(id: string, re: RegExp): Promise<string> {
      try {
        await page.waitForFunction(
          ({ id, src, flags }) =>
            new RegExp(src, flags).test(
              (globalThis as unknown as Dom).document.getElementById(id)?.textContent ?? "",
            ),
          { id, src: re.source, flags: re.flags },
        );
      } catch (e) {
        const text = await page
          .locator(`#${id}`)
          .textContent()
          .catch(() => "?");
        throw new Error(`#${id} never matched ${re}; it shows: ${JSON.stringify(text)}`, { cause: e });
      }
      return (await page.locator(`#${id}`).textContent()) ?? "";
    }

    async function natsKv(user: string, pass: string): Promise<KV> {
      const nc = await connect({ servers: ready.nats, user, pass, inboxPrefix: `_INBOX.${user}` });
      conns.push(nc);
      return new Kvm(nc).open("prefs", { allow_direct: true });
    }

    test("a wrong password is refused", async () => {
      await page.goto(ready.page);
      await page.fill("#user", "alice");
      await page.fill("#password", "wrong");
      await page.click("#login-btn");
      await shows("login-status", /login failed: .*Authorization Violation/i);
    });

    test("alice logs in, puts and gets her own key", async () => {
      await page.goto(ready.page);
      await page.fill("#user", "alice");
      await page.fill("#password", "alice-pw");
      await page.click("#login-btn");
      await shows("login-status", /^logged in as alice$/);
      assert.equal(await page.inputValue("#key"), "alice.theme");
      await page.fill("#value", "dark");
      await page.click("#put-btn");
      await shows("own-result", /^put alice\.theme: revision \d+$/);
      await page.click("#get-btn");
      await shows("own-result", /^get alice\.theme = dark$/);
    });

    test("alice's live watch shows a change another nats.js client makes", async (t) => {
      const status = await shows("watch-status", /^(watching alice\.>|watch refused: .+)$/);
      // Until the example policy's KV grant is rebuilt with the JetStream library (issue 10, branch js-lib), it
      // grants no consumer create, so no watch: that grant is recognised by its leaking STREAM.INFO right. Once it
      // is gone, a refused watch fails this test.
      if (status.startsWith("watch refused") && LEGACY_PREFS_GRANT) {
        assert.match(status, /Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.CREATE\.KV_prefs\./);
        t.skip(`SKIPPED: the example policy's old prefs grant has no KV watch (${status})`);
        return;
      }
      assert.equal(status, "watching alice.>");
      const kv = await natsKv("alice", "alice-pw");
      await kv.put("alice.theme", "from-another-client");
      await shows("watch", /alice\.theme = from-another-client \(revision \d+\)/);
    });

    test("reading or writing bob's key shows the server's permissions violation", async () => {
      // bob's key exists (written by APP's JetStream admin), so a refusal cannot be mistaken for "no such key".
      const admin = await connect({
        servers: ready.nats,
        user: "js-admin-APP",
        pass: readFileSync(join(ready.dir, "js-admin-APP.password"), "utf8").trim(),
      });
      conns.push(admin);
      await (await new Kvm(admin).open("prefs")).put("bob.theme", "bob-secret");
      assert.equal(await page.inputValue("#other-key"), "bob.theme");
      await page.click("#other-get-btn");
      const read = await shows("other-result", /^get bob\.theme refused: /);
      assert.match(
        read,
        /Permissions Violation for Publish to "\$JS\.API\.DIRECT\.GET\.KV_prefs\.\$KV\.prefs\.bob\.theme"/,
      );
      assert.doesNotMatch(read, /bob-secret/);
      await page.click("#other-put-btn");
      const write = await shows("other-result", /^put bob\.theme refused: /);
      assert.match(write, /Permissions Violation for Publish to "\$KV\.prefs\.bob\.theme"/);
      const bob = await (await new Kvm(admin).open("prefs")).get("bob.theme");
      assert.equal(bob?.string(), "bob-secret", "bob's key is unchanged");
    });

    test("make run's shutdown stops everything and removes the JetStream store", async () => {
      assert.ok(existsSync(ready.jsStore), "the store exists while running");
      const exited = new Promise<number | null>((r) => run!.once("exit", (code) => r(code)));
      run!.kill("SIGTERM");
      assert.equal(await exited, 0, runOutput.slice(-2000));
      assert.equal(existsSync(ready.jsStore), false, "the JetStream store is removed on exit");
    });
  });
