/**
 * Subject injection end to end: real nats-server (latest and 2.10, config mode), the service in-process with a naive
 * fixture policy that templates client strings the way issue 8 found exploitable (the user's local part through
 * split/trim_space/lower, the connection name, and `lang` with only dots replaced), and real clients:
 * nats.js over TCP, nats.js over websocket (a child Node with --experimental-websocket), nats.go (test/clients/
 * go-pubsub, built here with `go build`; skipped with a message when `go` is missing) and a raw-protocol client for
 * `lang`, which libraries do not let you choose. Also the example policy (policies/) against the same attacks.
 *
 * What must hold: an attacker whose user, name or lang carries `*`, `>`, `.` or whitespace is refused (the service
 * logs `subject_injection` naming the field), so it cannot subscribe where the victim publishes; honest clients of the
 * same policy, on every transport, connect and get exactly their own subjects.
 */
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { ResultEvent } from "../../src/service.js";
import {
  nextAsyncError,
  until,
  startExampleStack,
  type ExampleStack,
  serverMatrix,
  type NatsServer,
  buildWasmFixture,
  REPO,
  skipWithoutOpa,
} from "../support/index.js";

const run = promisify(execFile);

/** The naive policy: every password "pw" login gets subjects templated from its own strings. */
const NAIVE = `package naive

import rego.v1

_local := lower(trim_space(split(input.connect_opts.user, "@")[0]))

_lang := replace(object.get(input.connect_opts, "lang", "none"), ".", "_")

_name := object.get(input.connect_opts, "name", "anon")

default decision := {"allow": false, "reason": "bad_password"}

decision := {
	"allow": true,
	"account": "APP",
	"pub": {"allow": [sprintf("user.%s.>", [_local]), sprintf("lang.%s.out", [_lang])]},
	"sub": {"allow": [
		sprintf("user.%s.>", [_local]),
		sprintf("_INBOX.%s.>", [_local]),
		sprintf("lang.%s.in", [_lang]),
		sprintf("app.%s.>", [_name]),
	]},
} if input.connect_opts.pass == "pw"
`;

// ---- the Go client ----

const GO_DIR = join(REPO, "test", "clients", "go-pubsub");
const GO_BIN = join(REPO, "build", "go-pubsub");
let goSkip: string | false = "not built yet";
function buildGo(): void {
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  if (go.error !== undefined || go.status !== 0) {
    goSkip = "`go` not found: the nats.go client tests need Go (CI has it)";
    return;
  }
  mkdirSync(join(REPO, "build"), { recursive: true });
  const b = spawnSync("go", ["build", "-o", GO_BIN, "."], { cwd: GO_DIR, encoding: "utf8" });
  if (b.status !== 0) throw new Error(`go build failed: ${b.stderr}${b.stdout}`);
  goSkip = false;
}
buildGo();

interface GoRun {
  lines: string[];
  done: Promise<number>;
  stop(): void;
}
function goClient(args: string[]): GoRun {
  const p = spawn(GO_BIN, args, { stdio: ["pipe", "pipe", "pipe"] });
  const lines: string[] = [];
  let buf = "";
  p.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    lines.push(...parts);
  });
  const done = new Promise<number>((resolve) => p.once("exit", (code) => resolve(code ?? -1)));
  return { lines, done, stop: () => p.stdin.end("stop\n") };
}

// ---- the websocket client (Node 20 needs --experimental-websocket for nats-core's wsconnect) ----

async function wsAttempt(url: string, user: string, subject: string): Promise<string> {
  const code = `
const { wsconnect } = await import("@nats-io/nats-core");
try {
  const nc = await wsconnect({ servers: ${JSON.stringify(url)}, user: ${JSON.stringify(user)}, pass: "pw", reconnect: false });
  nc.subscribe(${JSON.stringify(subject)}, { callback: (_e, m) => console.log("MSG " + m.subject) });
  await nc.flush();
  console.log("CONNECTED");
  await nc.close();
} catch (e) {
  console.log("CONNECT_ERROR " + (e && e.message));
}`;
  const r = await run(
    process.execPath,
    ["--experimental-websocket", "--no-warnings", "--input-type=module", "-e", code],
    { cwd: REPO, timeout: 30_000 },
  );
  return r.stdout.trim();
}

// ---- a raw-protocol client: CONNECT with any lang ----

async function rawConnect(port: number, opts: Record<string, unknown>): Promise<string> {
  const sock: Socket = tcpConnect(port, "127.0.0.1");
  let data = "";
  sock.on("data", (d: Buffer) => (data += d.toString()));
  try {
    await until(() => data.includes("INFO "), "INFO");
    sock.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...opts })}\r\nPING\r\n`);
    await until(() => /PONG|-ERR/.test(data), "PONG or -ERR");
    return /-ERR[^\r\n]*/.exec(data)?.[0] ?? "PONG";
  } finally {
    sock.destroy();
  }
}

const userOf = (e: ResultEvent) => e.result.request?.connect_opts.user;

for (const srv of serverMatrix()) {
  const skip = srv.missing ? `nats-server ${srv.label} not found` : skipWithoutOpa;
  describe(`subject injection, naive policy (nats-server ${srv.label} ${srv.version})`, { skip }, () => {
    let server: NatsServer;
    let naive: ExampleStack;
    let victim: NatsConnection;
    let ticker: ReturnType<typeof setInterval>;
    const results: ResultEvent[] = [];

    before(async () => {
      const { bundlePath } = buildWasmFixture({ "naive.rego": NAIVE }, ["naive/decision"]);
      naive = await startExampleStack({
        bin: srv.bin,
        bundle: { path: bundlePath, entrypoint: "naive/decision" },
        websocket: true,
        accounts: ["APP"],
        log: { level: "silent" },
        onResult: (e) => results.push(e),
      });
      server = naive.server;
      // The victim: alice publishes into her own tree all the time.
      victim = await connect({ servers: server.url, user: "alice@good.example", pass: "pw" });
      ticker = setInterval(() => victim.publish("user.alice.secret", "for alice only"), 20);
    });
    after(async () => {
      clearInterval(ticker);
      await victim?.close();
      await naive?.stop();
    });

    /** The service's decision for `user`'s latest login. */
    async function decisionFor(user: string): Promise<ResultEvent["result"]["outcome"]> {
      await until(() => results.some((e) => userOf(e) === user), `a decision for ${JSON.stringify(user)}`);
      return results.filter((e) => userOf(e) === user).at(-1)!.result.outcome;
    }

    test("control: honest clients of the naive policy connect and get only their own tree", async () => {
      const own = await connect({ servers: server.url, user: " Mallory@evil.example", pass: "pw" });
      try {
        const got: string[] = [];
        own.subscribe("user.mallory.>", {
          callback: (_e, m) => {
            got.push(m.subject);
          },
        });
        await own.flush();
        own.publish("user.mallory.note", "hi");
        await until(() => got.includes("user.mallory.note"), "mallory's own message");
        const denied = nextAsyncError(own);
        own.subscribe("user.alice.>");
        assert.match((await denied).message, /permissions violation/i);
      } finally {
        await own.close();
      }
      assert.deepEqual((await decisionFor(" Mallory@evil.example")).kind, "allow");
    });

    for (const user of ["*@evil.example", " ALICE.*", ">", "alice.>", "*\t"]) {
      test(`nats.js over TCP: user ${JSON.stringify(user)} is refused (subject_injection, connect_opts.user)`, async () => {
        await assert.rejects(
          connect({ servers: server.url, user, pass: "pw", reconnect: false }),
          /authorization violation/i,
        );
        assert.deepEqual(await decisionFor(user), {
          kind: "deny",
          code: "subject_injection",
          reason: "subject_injection: connect_opts.user",
        });
      });
    }

    test("nats.js over TCP: a connection name '>' is refused (connect_opts.name)", async () => {
      await assert.rejects(
        connect({ servers: server.url, user: "carol", pass: "pw", name: ">", reconnect: false }),
        /authorization violation/i,
      );
      assert.deepEqual(await decisionFor("carol"), {
        kind: "deny",
        code: "subject_injection",
        reason: "subject_injection: connect_opts.name",
      });
    });

    test("nats.js over websocket: '*@evil.example' is refused; an honest websocket user connects", async () => {
      assert.match(
        await wsAttempt(server.wsUrl!, "*@evil.example", "user.alice.>"),
        /^CONNECT_ERROR .*authorization violation/i,
      );
      assert.equal((await decisionFor("*@evil.example")).kind, "deny");
      assert.equal(await wsAttempt(server.wsUrl!, "wendy@web.example", "user.wendy.>"), "CONNECTED");
    });

    test(
      "nats.go: '*@evil.example' and name '>' are refused and receive nothing; an honest Go user works",
      { skip: goSkip },
      async () => {
        for (const args of [
          ["-user", "*@evil.example"],
          ["-user", "gopher", "-name", ">"],
        ]) {
          const c = goClient(["-server", server.url, "-pass", "pw", ...args, "-sub", "user.alice.>"]);
          assert.equal(await c.done, 2, c.lines.join("\n"));
          assert.match(c.lines.join("\n"), /^CONNECT_ERROR .*authorization violation/im);
          assert.ok(!c.lines.some((l) => l.startsWith("MSG ")), c.lines.join("\n"));
        }
        assert.equal((await decisionFor("*@evil.example")).kind, "deny");
        const gopher = ["-server", server.url, "-user", "gopher@go.example", "-pass", "pw"];
        const honest = goClient([...gopher, "-sub", "user.gopher.>"]);
        await until(() => honest.lines.includes("SUBSCRIBED"), "the Go subscriber");
        const pub = goClient([...gopher, "-pub", "user.gopher.x", "-data", "hi"]);
        assert.equal(await pub.done, 0, pub.lines.join("\n"));
        await until(() => honest.lines.includes("MSG user.gopher.x hi"), "the Go client's own message");
        honest.stop();
        assert.equal(await honest.done, 0);
        assert.ok(!honest.lines.some((l) => l.includes("user.alice")), honest.lines.join("\n"));
      },
    );

    test("raw protocol: CONNECT lang '>' or '*' is refused (connect_opts.lang); lang 'nats.js' is fine", async () => {
      for (const [i, lang] of [">", "*", "x.*"].entries()) {
        const user = `lang${i}`;
        assert.match(
          await rawConnect(server.port, { user, pass: "pw", lang }),
          /-ERR 'Authorization Violation'/,
        );
        assert.deepEqual(await decisionFor(user), {
          kind: "deny",
          code: "subject_injection",
          reason: "subject_injection: connect_opts.lang",
        });
      }
      assert.equal(await rawConnect(server.port, { user: "raw", pass: "pw", lang: "nats.js" }), "PONG");
    });
  });

  describe(`subject injection, example policy (nats-server ${srv.label} ${srv.version})`, { skip }, () => {
    let stack: ExampleStack;
    const results: ResultEvent[] = [];
    before(async () => {
      stack = await startExampleStack({ bin: srv.bin, onResult: (e) => results.push(e) });
    });
    after(async () => {
      await stack?.stop();
    });

    test("alice's password with a wildcard or dotted user name gets nothing, over nats.js and nats.go", async () => {
      for (const user of ["*", "alice.*", "alice.>", " alice"]) {
        await assert.rejects(
          connect({ servers: stack.server.url, user, pass: "alice-pw", reconnect: false }),
          /authorization violation/i,
          user,
        );
      }
      if (goSkip === false) {
        const c = goClient(["-server", stack.server.url, "-user", "*", "-pass", "alice-pw", "-sub", ">"]);
        assert.equal(await c.done, 2, c.lines.join("\n"));
      }
      await until(() => results.filter((e) => e.result.outcome.kind === "deny").length >= 4, "the denies");
      assert.ok(results.every((e) => e.result.outcome.kind !== "allow"));
    });
  });
}
