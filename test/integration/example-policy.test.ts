/**
 * The example policy set (policies/) end to end: a real nats-server in config mode with accounts APP and
 * OPS, the service in-process with the policy engine exactly as `serve` wires it (createPolicyEngine on
 * policies/, startCallout with the allow-list [APP, OPS]), and real clients for every demo role of
 * docs/policy-contract.md §9. One server + service per server binary (latest, and 2.10 when present).
 *
 * Rights are checked by nats-server itself: allowed traffic must arrive at a subscriber, denied traffic
 * must come back as a permissions violation. Clients use their private inbox prefix `_INBOX.<name>`.
 * (dave over websocket is covered by test/integration/cli.test.ts.)
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { CalloutService, ResultEvent } from "../../src/service.js";
import {
  nextAsyncError,
  until,
  EXAMPLE_POLICIES as POLICIES,
  startExampleStack,
  type ExampleStack,
  serverMatrix,
  type NatsServer,
  type ServerBinary,
  skipWithoutOpa,
} from "../support/index.js";

/** The IdP bearer token of golden case jwt_frank_allow (test-only key, valid until 2100). */
function frankToken(): string {
  const cases = JSON.parse(readFileSync(join(POLICIES, "cases", "jwt.json"), "utf8")) as Record<
    string,
    { input: { connect_opts: { auth_token: string } } }
  >;
  const token = cases.jwt_frank_allow?.input.connect_opts.auth_token;
  assert.ok(token, "case jwt_frank_allow has a token");
  return token;
}

// ---- carol's window: Monday–Friday 08:00–18:00 Europe/Berlin ----

const WEEKDAYS = new Set(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]);
const berlin = new Intl.DateTimeFormat("en-US", {
  timeZone: "Europe/Berlin",
  weekday: "long",
  hour: "numeric",
  minute: "numeric",
  second: "numeric",
  hourCycle: "h23",
});

/** Weekday and seconds since Berlin midnight at `d`. */
function berlinClock(d: Date): { weekday: string; sec: number } {
  const parts = Object.fromEntries(berlin.formatToParts(d).map((p) => [p.type, p.value]));
  return {
    weekday: parts.weekday ?? "",
    sec: Number(parts.hour) * 3600 + Number(parts.minute) * 60 + Number(parts.second),
  };
}

const WINDOW_START = 8 * 3600;
const WINDOW_END = 18 * 3600;

/** The data must still say what this test (and docs/policy-contract.md) assumes about carol. */
function assertOfficeHoursData(): void {
  const data = JSON.parse(readFileSync(join(POLICIES, "data.json"), "utf8")) as {
    callout: {
      settings: { time_zone: string };
      windows: Record<string, unknown>;
      roles: Record<string, { window?: string }>;
      users: Record<string, { roles: string[] }>;
    };
  };
  const c = data.callout;
  assert.equal(c.settings.time_zone, "Europe/Berlin");
  assert.deepEqual(c.users.carol?.roles, ["business-hours"]);
  assert.equal(c.roles["business-hours"]?.window, "office-hours");
  assert.deepEqual(c.windows["office-hours"], {
    days: [...WEEKDAYS],
    start: "08:00:00",
    end: "18:00:00",
  });
}

function insideOfficeHours(d: Date): boolean {
  const { weekday, sec } = berlinClock(d);
  return WEEKDAYS.has(weekday) && sec >= WINDOW_START && sec < WINDOW_END;
}

/** Seconds to the nearest window edge (08:00 / 18:00 Berlin) on a weekday, else Infinity. */
function secondsToEdge(d: Date): number {
  const { weekday, sec } = berlinClock(d);
  if (!WEEKDAYS.has(weekday)) return Infinity;
  return Math.min(Math.abs(sec - WINDOW_START), Math.abs(sec - WINDOW_END));
}

// ---- the matrix: latest always, 2.10 when its binary is there ----

for (const sb of serverMatrix()) {
  describe(
    `example policy set — nats-server ${sb.label} (${sb.version})`,
    {
      skip: sb.missing ? `nats-server ${sb.label} not found at ${sb.bin}` : skipWithoutOpa,
    },
    () => exampleSuite(sb),
  );
}

function exampleSuite(sb: ServerBinary): void {
  let stack: ExampleStack;
  let server: NatsServer;
  let svc: CalloutService;
  const results: ResultEvent[] = [];
  const clients: NatsConnection[] = [];
  let seq = 0;
  /** Connection name of each client (unique per connection: `<inbox>-c<n>`). */
  const names = new WeakMap<NatsConnection, string>();
  const nameOf = (nc: NatsConnection): string => names.get(nc) ?? "";

  /** Connect; `inbox` is the login name whose private inbox prefix the client uses. */
  const client = async (
    inbox: string,
    auth: Partial<NodeConnectionOptions>,
    extra: Partial<NodeConnectionOptions> = {},
  ): Promise<NatsConnection> => {
    const name = `${inbox}-c${++seq}`;
    const nc = await connect({
      servers: server.url,
      name,
      inboxPrefix: `_INBOX.${inbox}`,
      reconnect: false,
      ...auth,
      ...extra,
    });
    clients.push(nc);
    names.set(nc, name);
    return nc;
  };
  const password = (user: string, pass: string, extra: Partial<NodeConnectionOptions> = {}) =>
    client(user, { user, pass }, extra);
  const token = (inbox: string, t: string) => client(inbox, { token: t });

  /** The service's result for the connection named `name` (waits for it). */
  const resultOf = async (name: string): Promise<ResultEvent> => {
    const find = () => results.find((r) => r.result.request?.connect_opts.name === name);
    await until(() => find() !== undefined, `the decision for ${name}`);
    return find() as ResultEvent;
  };
  /** Decisions taken since `from` (index into results). */
  const since = async (from: number, n: number): Promise<ResultEvent[]> => {
    await until(() => results.length >= from + n, `${n} decision(s)`);
    return results.slice(from);
  };
  const outcome = (r: ResultEvent): [string, string] => {
    const o = r.result.outcome;
    return o.kind === "allow" ? ["allow", o.grant.account] : [o.kind, o.reason];
  };

  /** Waits for `count` messages on `sub`, returns their payloads. */
  const received = async (sub: AsyncIterable<{ string(): string }>, count: number): Promise<string[]> => {
    const out: string[] = [];
    if (count === 0) return out;
    for await (const m of sub) {
      out.push(m.string());
      if (out.length >= count) break;
    }
    return out;
  };

  /** orders-svc: the token user serving orders.create and orders.query.> (replies through `resp`). */
  let ordersSvc: NatsConnection;
  const created: string[] = [];

  /** Whether the server's /connz reports the connection named `name` in `account`. */
  const connzAccount = async (name: string): Promise<string | undefined> => {
    const res = await fetch(`http://127.0.0.1:${server.monitorPort}/connz?auth=1&limit=1024`);
    const body = (await res.json()) as { connections?: { name?: string; account?: string }[] };
    return body.connections?.find((c) => c.name === name)?.account;
  };

  before(async () => {
    stack = await startExampleStack({ bin: sb.bin, monitor: true, onResult: (e) => results.push(e) });
    ({ server, svc } = stack);
    ordersSvc = await token("orders-svc", "tok_5Vf8kQz2LmN7xR3c");
    ordersSvc.subscribe("orders.create", {
      callback: (_e, m) => {
        created.push(m.string());
      },
    });
    ordersSvc.subscribe("orders.query.>", {
      callback: (_e, m) => {
        m.respond(`answer to ${m.subject}: ${m.string()}`);
      },
    });
    await ordersSvc.flush();
  });

  after(async () => {
    for (const nc of clients) await nc.close().catch(() => {});
    await stack?.stop();
  });

  it("orders-svc (token) lands in APP with the orders-service role", async () => {
    const r = await resultOf(nameOf(ordersSvc));
    assert.deepEqual(outcome(r), ["allow", "APP"]);
    assert.equal(r.result.issued?.name, "orders-svc");
    assert.deepEqual(r.result.issued?.resp, { max: 1, ttl_ms: 5000 });
    assert.deepEqual(r.result.issued?.pub, { allow: ["orders.events.>"], deny: ["$SYS.>"] });
  });

  it("alice: publish orders.create reaches orders-svc; orders.delete is a permissions violation", async () => {
    const nc = await password("alice", "alice-pw");
    const r = await resultOf(nameOf(nc));
    assert.deepEqual(outcome(r), ["allow", "APP"]);
    assert.equal(r.result.issued?.name, "alice");

    const before = created.length;
    nc.publish("orders.create", "order from alice");
    await nc.flush();
    await until(() => created.length > before, "orders-svc to receive orders.create");
    assert.deepEqual(created.slice(before), ["order from alice"]);

    const errP = nextAsyncError(nc);
    nc.publish("orders.delete", "x");
    await nc.flush();
    assert.match((await errP).message, /permissions violation for publish to "orders\.delete"/i);
  });

  it("alice: request/reply with orders-svc through _INBOX.alice; orders-svc replies only via resp", async () => {
    const nc = await password("alice", "alice-pw");
    const m = await nc.request("orders.query.x", "q1", { timeout: 5000 });
    assert.equal(m.string(), "answer to orders.query.x: q1");

    // orders-svc has no publish right on inboxes: only the one response `resp` allows.
    const errP = nextAsyncError(ordersSvc);
    ordersSvc.publish("_INBOX.alice.unsolicited", "x");
    await ordersSvc.flush();
    assert.match((await errP).message, /permissions violation for publish to "_INBOX\.alice\.unsolicited"/i);
  });

  it("a client without its private inbox prefix cannot receive replies", async () => {
    const nc = await password("alice", "alice-pw", { inboxPrefix: "_INBOX" });
    const errP = nextAsyncError(nc);
    await assert.rejects(nc.request("orders.query.x", "q", { timeout: 2000 }));
    assert.match((await errP).message, /permissions violation for subscription to "_INBOX\./i);
  });

  it("bob (read-only): orders.query.x answered, orders.events.> delivered, orders.create refused", async () => {
    const nc = await password("bob", "bob-pw");
    assert.deepEqual(outcome(await resultOf(nameOf(nc))), ["allow", "APP"]);
    const m = await nc.request("orders.query.x", "q2", { timeout: 5000 });
    assert.equal(m.string(), "answer to orders.query.x: q2");

    const events = nc.subscribe("orders.events.>", { max: 1 });
    await nc.flush();
    ordersSvc.publish("orders.events.created", "evt-1");
    assert.deepEqual(await received(events, 1), ["evt-1"]);

    const before = created.length;
    const errP = nextAsyncError(nc);
    nc.publish("orders.create", "x");
    await nc.flush();
    assert.match((await errP).message, /permissions violation for publish to "orders\.create"/i);
    assert.equal(created.length, before, "nothing reached orders-svc");
  });

  it("dave over TCP: like bob; the browser role (dashboard.dave.*) is not active", async () => {
    const nc = await password("dave", "dave-pw");
    const r = await resultOf(nameOf(nc));
    assert.deepEqual(outcome(r), ["allow", "APP"]);
    assert.deepEqual(r.result.issued?.allowed_connection_types, ["STANDARD"]);
    const m = await nc.request("orders.query.x", "q3", { timeout: 5000 });
    assert.equal(m.string(), "answer to orders.query.x: q3");

    let errP = nextAsyncError(nc);
    nc.publish("orders.create", "x");
    await nc.flush();
    assert.match((await errP).message, /permissions violation for publish to "orders\.create"/i);
    errP = nextAsyncError(nc);
    nc.publish("dashboard.dave.requests", "x");
    await nc.flush();
    assert.match((await errP).message, /permissions violation for publish to "dashboard\.dave\.requests"/i);
  });

  it("admin from 127.0.0.1 lands in OPS with broad rights; $SYS stays closed; no traffic crosses to APP", async () => {
    const nc = await password("admin", "admin-pw");
    const name = nameOf(nc);
    const r = await resultOf(name);
    assert.deepEqual(outcome(r), ["allow", "OPS"]);
    assert.deepEqual(r.result.issued?.src, ["10.20.0.0/16", "127.0.0.0/8", "::1/128"]);
    // The server's own view of the connection's account.
    assert.equal(await connzAccount(name), "OPS");
    assert.equal(await connzAccount(nameOf(ordersSvc)), "APP");

    // Broad rights: any subject, both ways.
    const any = nc.subscribe("anything.>", { max: 1 });
    nc.publish("anything.at.all", "hello ops");
    assert.deepEqual(await received(any, 1), ["hello ops"]);

    // orders.create in OPS is not orders.create in APP: orders-svc sees only alice's marker.
    const own = nc.subscribe("orders.create", { max: 1 });
    await nc.flush();
    const before = created.length;
    nc.publish("orders.create", "from ops");
    await nc.flush();
    assert.deepEqual(await received(own, 1), ["from ops"]);
    const alice = await password("alice", "alice-pw");
    alice.publish("orders.create", "marker");
    await alice.flush();
    await until(() => created.includes("marker"), "the APP marker");
    assert.deepEqual(created.slice(before), ["marker"]);

    const errP = nextAsyncError(nc);
    nc.publish("$SYS.REQ.USER.INFO", "");
    await nc.flush();
    assert.match((await errP).message, /permissions violation for publish to "\$SYS\.REQ\.USER\.INFO"/i);
  });

  it("the IdP bearer JWT (frank, group orders-team) gets alice's order rights without KV", async () => {
    const nc = await token("idp-frank", frankToken());
    const r = await resultOf(nameOf(nc));
    assert.deepEqual(outcome(r), ["allow", "APP"]);
    assert.equal(r.result.issued?.name, "idp-frank");
    assert.equal(r.result.outcome.kind === "allow" ? r.result.outcome.reason : "", "jwt");

    const before = created.length;
    nc.publish("orders.create", "order from frank");
    await nc.flush();
    await until(() => created.length > before, "orders-svc to receive frank's order");
    assert.deepEqual(created.slice(before), ["order from frank"]);
    const m = await nc.request("orders.query.y", "q4", { timeout: 5000 });
    assert.equal(m.string(), "answer to orders.query.y: q4");

    const errP = nextAsyncError(nc);
    nc.publish("$KV.prefs.idp-frank.theme", "dark");
    await nc.flush();
    assert.match(
      (await errP).message,
      /permissions violation for publish to "\$KV\.prefs\.idp-frank\.theme"/i,
    );
  });

  it("carol: allowed inside Mon–Fri 08:00–18:00 Europe/Berlin, refused outside (real clock)", async (t) => {
    assertOfficeHoursData();
    // Stay clear of a window edge so the service and this test see the same side of it.
    while (secondsToEdge(new Date()) < 5) await new Promise((r) => setTimeout(r, 1000));
    const at = new Date();
    const inside = insideOfficeHours(at);
    const { weekday, sec } = berlinClock(at);
    t.diagnostic(
      `Berlin ${weekday} ${Math.floor(sec / 3600)}:${String(Math.floor(sec / 60) % 60).padStart(2, "0")} → ${inside ? "inside" : "outside"} the window`,
    );
    const from = results.length;
    if (inside) {
      const nc = await password("carol", "carol-pw");
      const [r] = await since(from, 1);
      assert.ok(r);
      assert.deepEqual(outcome(r), ["allow", "APP"]);
      assert.deepEqual(r.result.issued?.times, [{ start: "08:00:00", end: "18:00:00" }]);
      assert.equal(r.result.issued?.times_location, "Europe/Berlin");
      const windowEnd = Math.floor(at.getTime() / 1000) + (WINDOW_END - sec);
      const exp = r.result.issued?.exp ?? 0;
      assert.ok(exp <= windowEnd + 1, `exp ${exp} ends with the window (${windowEnd})`);
      assert.ok(exp > Math.floor(at.getTime() / 1000), "exp in the future");
      const tickets = nc.subscribe("support.tickets.>", { max: 1 });
      nc.publish("support.tickets.new", "ticket");
      assert.deepEqual(await received(tickets, 1), ["ticket"]);
    } else {
      await assert.rejects(password("carol", "carol-pw"), /Authorization Violation/);
      const [r] = await since(from, 1);
      assert.ok(r);
      assert.deepEqual(outcome(r), ["deny", "outside_time_window"]);
    }
  });

  it("unknown user and wrong password: Authorization Violation", async () => {
    const from = results.length;
    await assert.rejects(password("mallory", "x"), /Authorization Violation/);
    await assert.rejects(password("alice", "not-her-password"), /Authorization Violation/);
    await assert.rejects(password("bob", ""), /Authorization Violation/);
    const got = (await since(from, 3)).map(outcome);
    assert.deepEqual(got, [
      ["deny", "unknown_user"],
      ["deny", "bad_credentials"],
      ["deny", "bad_credentials"],
    ]);
  });

  it("subject injection through the user name is refused: *, >, alice.>", async () => {
    const from = results.length;
    for (const user of ["*", ">", "alice.>"]) {
      await assert.rejects(
        connect({ servers: server.url, user, pass: "alice-pw", reconnect: false }),
        /Authorization Violation/,
        `user ${user}`,
      );
    }
    const got = (await since(from, 3)).map(outcome);
    assert.deepEqual(got, [
      ["deny", "invalid_username"],
      ["deny", "invalid_username"],
      ["deny", "invalid_username"],
    ]);
  });

  it("eve (locked) gets no reply at all: refused after the auth timeout", async () => {
    const from = results.length;
    await assert.rejects(password("eve", "eve-pw", { timeout: 20_000 }), /Authorization Violation/);
    const [r] = await since(from, 1);
    assert.ok(r);
    assert.deepEqual(outcome(r), ["abort", "user_locked"]);
    assert.equal(r.replied, false);
  });

  it("the service saw no errors and every allow went through validation", () => {
    const s = svc.status();
    assert.equal(s.errors, 0);
    assert.equal(s.served, results.length);
    for (const r of results) {
      if (r.result.outcome.kind === "allow") {
        assert.ok(r.result.issued, "allowed requests were issued a JWT");
        assert.ok(r.result.issued.pub.allow?.length, "explicit pub allow");
        assert.deepEqual(r.result.issued.pub.deny?.includes("$SYS.>"), true);
        assert.deepEqual(r.result.issued.sub.deny?.includes("$SYS.>"), true);
      } else {
        assert.notEqual(r.result.outcome.code, "handler_error");
        assert.notEqual(r.result.outcome.code, "decision_shape_error");
      }
    }
  });
}
