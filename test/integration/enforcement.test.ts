/**
 * What does nats-server itself enforce of a callout-issued user JWT? For `src`, `subs`, `payload` and
 * `allowed_connection_types` this suite asks each server of the matrix directly. Our own service is
 * bypassed on purpose: a raw responder in this file builds the user claims with @nats-io/jwt exactly as
 * given (test setup; tweetnacl signing is fine here), so the answer is the server's, not ours.
 * Findings are recorded in docs/server-enforcement.md (keep the two in sync).
 */
import { describe, it, before, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection, type Status, type Subscription } from "@nats-io/transport-node";
import { createConnection } from "node:net";
import { decode, encodeAuthorizationResponse, encodeUser, type User } from "@nats-io/jwt";
import { fromCurveSeed, fromSeed } from "@nats-io/nkeys";
import {
  compareVersions,
  configModeSetup,
  serverMatrix,
  startNatsServer,
  type NatsServer,
} from "../support/index.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface RequestClaims {
  user_nkey: string;
  server_id: { id: string };
  connect_opts: { user?: string };
}

/** Claims per connecting user name; the raw responder signs exactly these (plus aud and exp). */
const CLAIMS: Record<string, Partial<User>> = {
  control: {},
  src: { src: ["10.0.0.0/8"] },
  subs: { subs: 1 },
  payload: { payload: 10 },
  ctype: { allowed_connection_types: ["WEBSOCKET"] },
};

const ALL = { allow: [">"] };

/** A bare-bones responder: decode, issue the claims for connect_opts.user as given, reply. */
async function rawResponder(url: string, setup: ReturnType<typeof configModeSetup>): Promise<NatsConnection> {
  const nc = await connect({
    servers: url,
    user: setup.callout.user,
    pass: setup.callout.password,
    name: "raw-responder",
  });
  const issuer = fromSeed(enc.encode(setup.issuer.seed));
  const xkp = setup.xkey ? fromCurveSeed(enc.encode(setup.xkey.seed)) : undefined;
  nc.subscribe("$SYS.REQ.USER.AUTH", {
    callback: (err, msg) => {
      if (err) return;
      void (async () => {
        let data = msg.data;
        const serverXkey = msg.headers?.get("Nats-Server-Xkey");
        if (xkp && serverXkey) {
          const opened = xkp.open(data, serverXkey);
          if (!opened) return;
          data = opened;
        }
        const req = decode<RequestClaims>(dec.decode(data)).nats as RequestClaims;
        const name = req.connect_opts.user ?? "";
        const extra = CLAIMS[name];
        if (!extra) return; // unknown user: no reply (times out)
        const userJwt = await encodeUser(
          name,
          req.user_nkey,
          issuer,
          { pub: ALL, sub: ALL, ...extra },
          { aud: "APP", exp: Math.floor(Date.now() / 1000) + 60 },
        );
        const resp = await encodeAuthorizationResponse(
          req.user_nkey,
          req.server_id.id,
          issuer,
          { jwt: userJwt },
          { exp: Math.floor(Date.now() / 1000) + 10 },
        );
        msg.respond(resp);
      })();
    },
  });
  await nc.flush();
  return nc;
}

/** Collects the async errors a connection reports through status(). */
function collectErrors(nc: NatsConnection): string[] {
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status() as AsyncIterable<Status>) {
      if (s.type === "error") errors.push(String(s.error?.message ?? s.error));
    }
  })();
  return errors;
}

async function tryConnect(url: string, user: string): Promise<NatsConnection | Error> {
  try {
    return await connect({ servers: url, user, pass: "x", reconnect: false, name: user });
  } catch (err) {
    return err as Error;
  }
}

/**
 * Whether a server version enforces these claims for callout-issued users: true/false for versions we
 * ran (see docs/server-enforcement.md), undefined for versions in between (observed and reported only).
 */
function expectEnforced(version: string): boolean | undefined {
  if (compareVersions(version, "2.11.0") < 0) return false; // 2.10.27: none of the four
  if (compareVersions(version, "2.15.0") >= 0) return true; // 2.15.3: all four
  return undefined;
}

for (const sb of serverMatrix()) {
  const expected = expectEnforced(sb.version);
  describe(
    `server enforcement of callout-issued user limits (nats-server ${sb.label} ${sb.version})`,
    { skip: sb.missing ? `nats-server ${sb.label} not found at ${sb.bin}` : false },
    () => {
      let server: NatsServer;
      let responder: NatsConnection;
      let observer: NatsConnection;
      const open: NatsConnection[] = [];

      /** Asserts the observation against the expectation for this version, or reports it. */
      const check = (t: TestContext, what: string, enforced: boolean): void => {
        t.diagnostic(`nats-server ${sb.version}: ${what} ${enforced ? "ENFORCED" : "NOT enforced"}`);
        if (expected !== undefined) assert.equal(enforced, expected, `${what} on ${sb.version}`);
      };

      before(async () => {
        const setup = configModeSetup();
        server = await startNatsServer({ bin: sb.bin, config: setup.config });
        responder = await rawResponder(server.url, setup);
        const o = await tryConnect(server.url, "control");
        assert.ok(!(o instanceof Error), `control user must connect: ${String(o)}`);
        observer = o;
      });

      after(async () => {
        for (const nc of open) await nc.close().catch(() => {});
        await observer?.close().catch(() => {});
        await responder?.close().catch(() => {});
        await server?.stop();
      });

      it("control: a user without limits connects, subscribes twice and publishes 100 bytes", async () => {
        const nc = await tryConnect(server.url, "control");
        assert.ok(!(nc instanceof Error), String(nc));
        open.push(nc);
        const a = nc.subscribe("ctl.a");
        const b = nc.subscribe("ctl.b");
        nc.publish("ctl.a", "x".repeat(100));
        nc.publish("ctl.b", "y");
        assert.equal((await next(a)).length, 100);
        assert.equal(await next(b), "y");
        const raw = await rawSession(server.port, "control", (send) => {
          send(`PUB ctl.c 100\r\n${"x".repeat(100)}\r\nPING\r\n`);
        });
        assert.deepEqual(
          raw.filter((l) => l.startsWith("-ERR")),
          [],
        );
      });

      it("src [10.0.0.0/8] from 127.0.0.1", async (t) => {
        const mark = server.logMark();
        const nc = await tryConnect(server.url, "src");
        const refused = nc instanceof Error;
        if (refused) {
          assert.match(nc.message, /Authorization Violation/);
          assert.match(await server.waitForLog(/Bad src Ip 127\.0\.0\.1/, { mark }), /Bad src Ip/);
        } else {
          open.push(nc);
          await nc.flush(); // really connected
        }
        check(t, "src", refused);
      });

      it("allowed_connection_types [WEBSOCKET] over plain TCP", async (t) => {
        const mark = server.logMark();
        const nc = await tryConnect(server.url, "ctype");
        const refused = nc instanceof Error;
        if (refused) {
          assert.match(nc.message, /Authorization Violation/);
          await server.waitForLog(/not allowed to use connection type/, { mark });
        } else {
          open.push(nc);
          await nc.flush();
        }
        check(t, "allowed_connection_types", refused);
      });

      it("subs 1: a second subscription", async (t) => {
        const nc = await tryConnect(server.url, "subs");
        assert.ok(!(nc instanceof Error), String(nc));
        open.push(nc);
        const errors = collectErrors(nc);
        const got: string[] = [];
        nc.subscribe("subs.one", {
          callback: (_e, m) => {
            got.push(m.subject);
          },
        });
        nc.subscribe("subs.two", {
          callback: (_e, m) => {
            got.push(m.subject);
          },
        });
        await nc.flush();
        observer.publish("subs.one", "1");
        observer.publish("subs.two", "2");
        await observer.flush();
        await nc.flush(); // the server writes pending messages before this PONG
        assert.ok(got.includes("subs.one"), "the first subscription works");
        const enforced = !got.includes("subs.two");
        if (enforced)
          assert.ok(
            errors.some((e) => /maximum subscriptions exceeded/i.test(e)),
            JSON.stringify(errors),
          );
        check(t, "subs", enforced);
      });

      it("payload 10: publish 100 bytes (raw protocol, no client-side check)", async (t) => {
        const lines = await rawSession(server.port, "payload", (send) => {
          send(`PUB payload.x 100\r\n${"x".repeat(100)}\r\nPING\r\n`);
        });
        const enforced = lines.includes("-ERR 'Maximum Payload Violation'");
        if (enforced)
          assert.ok(lines.includes("INFO max_payload=10"), "the server advertises the user limit");
        else assert.equal(lines.at(-1), "PONG");
        check(t, "payload", enforced);
      });
    },
  );
}

/**
 * A raw protocol session (no client library, so no client-side checks): CONNECT as `user`, PING, then
 * `act`, then read until the final PONG or -ERR. Returns every line the server sent.
 */
async function rawSession(
  port: number,
  user: string,
  act: (send: (s: string) => void) => void,
): Promise<string[]> {
  const sock = createConnection({ host: "127.0.0.1", port });
  let buf = "";
  const lines: string[] = [];
  let phase = 0;
  return await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`raw session timed out; got ${JSON.stringify(lines)}`));
    }, 10_000);
    const finish = (): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(lines);
    };
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      let i: number;
      while ((i = buf.indexOf("\r\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        lines.push(
          line.startsWith("INFO ")
            ? "INFO max_payload=" + String(JSON.parse(line.slice(5)).max_payload)
            : line,
        );
        if (phase === 0 && line.startsWith("INFO ")) {
          phase = 1;
          sock.write(
            `CONNECT ${JSON.stringify({ user, pass: "x", verbose: false, pedantic: false, protocol: 1, headers: true })}\r\nPING\r\n`,
          );
        } else if (phase === 1 && line === "PONG") {
          phase = 2;
          act((s) => sock.write(s));
        } else if (phase === 2 && line === "PONG") {
          finish();
        } else if (line.startsWith("-ERR")) {
          finish();
        }
      }
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on("close", () => finish());
  });
}

async function next(sub: Subscription): Promise<string> {
  for await (const m of sub) return m.string();
  throw new Error("subscription ended");
}
