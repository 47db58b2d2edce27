#!/usr/bin/env node
/**
 * Demo client for `make run`: connects as the example users of policies/ and shows what each may do.
 *
 *   node examples/demo-client.mjs                          # TCP clients against nats://127.0.0.1:4222
 *   node examples/demo-client.mjs --server nats://127.0.0.1:4222 --ws ws://127.0.0.1:8080
 *   node --experimental-websocket examples/demo-client.mjs --ws ws://127.0.0.1:8080 --only ws   (Node 20)
 *
 * Every line is an expectation; the exit code is the number of expectations that did not hold. The demo
 * credentials (alice/alice-pw, bob/bob-pw, dave/dave-pw, token tok_5Vf8kQz2LmN7xR3c) are documented in
 * docs/policy-contract.md and exist only in the example policy data.
 */
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";

const { values } = parseArgs({
  options: {
    server: { type: "string", default: process.env.NATS_URL ?? "nats://127.0.0.1:4222" },
    ws: { type: "string" },
    only: { type: "string" },
    quiet: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "Usage: node examples/demo-client.mjs [--server nats://host:port] [--ws ws://host:port] [--only tcp|ws]",
  );
  process.exit(0);
}

let failures = 0;
const say = (ok, text) => {
  if (!ok) failures++;
  if (!values.quiet || !ok) console.log(`${ok ? "✔" : "✘"} ${text}`);
};

/** Watch a connection's async errors (permission violations arrive this way). */
function watchErrors(nc) {
  const errors = [];
  (async () => {
    for await (const s of nc.status()) if (s.type === "error") errors.push(s.error);
  })().catch(() => {});
  return errors;
}

/** Publish and report whether the server accepted it (a permission violation arrives before the PONG). */
async function tryPublish(nc, errors, subject) {
  const before = errors.length;
  nc.publish(subject, "hello from the demo client");
  await nc.flush();
  await new Promise((r) => setTimeout(r, 50));
  const errs = errors.slice(before).filter((e) => String(e?.message ?? e).includes(subject));
  return errs.length === 0;
}

async function tryConnect(connectFn, opts) {
  try {
    return { nc: await connectFn({ maxReconnectAttempts: 0, timeout: 5000, ...opts }) };
  } catch (e) {
    return { error: e };
  }
}

async function scenario(connectFn, label, opts, checks) {
  const { nc, error } = await tryConnect(connectFn, opts);
  if (checks.connect === false) {
    say(
      !nc,
      `${label}: connection refused (${error ? String(error.message ?? error) : "unexpectedly connected"})`,
    );
    if (nc) await nc.close();
    return;
  }
  if (!nc) {
    say(false, `${label}: connect failed: ${error?.message ?? error}`);
    return;
  }
  say(true, `${label}: connected`);
  const errors = watchErrors(nc);
  for (const subject of checks.allow ?? []) {
    say(await tryPublish(nc, errors, subject), `${label}: publish ${subject} allowed`);
  }
  for (const subject of checks.deny ?? []) {
    say(!(await tryPublish(nc, errors, subject)), `${label}: publish ${subject} denied`);
  }
  await nc.close();
}

const only = values.only;
if (only === undefined || only === "tcp") {
  const c = (o) => connect({ servers: values.server, ...o });
  console.log(`TCP clients → ${values.server}`);
  await scenario(
    c,
    "alice (orders clerk)",
    { user: "alice", pass: "alice-pw", inboxPrefix: "_INBOX.alice" },
    {
      allow: ["orders.create"],
      deny: ["orders.events.created", "admin.shutdown"],
    },
  );
  await scenario(
    c,
    "bob (read-only analyst)",
    { user: "bob", pass: "bob-pw", inboxPrefix: "_INBOX.bob" },
    {
      allow: ["orders.query.42"],
      deny: ["orders.create"],
    },
  );
  await scenario(
    c,
    "orders-svc (token)",
    { token: "tok_5Vf8kQz2LmN7xR3c", inboxPrefix: "_INBOX.orders-svc" },
    {
      allow: ["orders.events.created"],
      deny: ["orders.create"],
    },
  );
  await scenario(
    c,
    "alice with a wrong password",
    { user: "alice", pass: "not-her-password" },
    { connect: false },
  );
  await scenario(c, "unknown user mallory", { user: "mallory", pass: "x" }, { connect: false });
}

if (values.ws && (only === undefined || only === "ws")) {
  if (typeof globalThis.WebSocket !== "function") {
    console.log(
      "websocket: this Node has no global WebSocket; run with `node --experimental-websocket` (Node 20)",
    );
    failures++;
  } else {
    const { wsconnect } = await import("@nats-io/nats-core");
    const w = (o) => wsconnect({ servers: values.ws, ...o });
    console.log(`Browser-style websocket clients → ${values.ws}`);
    await scenario(
      w,
      "dave over websocket (browser role)",
      { user: "dave", pass: "dave-pw", inboxPrefix: "_INBOX.dave" },
      {
        allow: ["dashboard.dave.requests"],
        deny: ["orders.query.1", "dashboard.alice.requests"],
      },
    );
    await scenario(
      w,
      "bob over websocket (only his own KV keys)",
      { user: "bob", pass: "bob-pw", inboxPrefix: "_INBOX.bob" },
      {
        allow: ["$KV.prefs.bob.theme"],
        deny: ["orders.query.1", "$KV.prefs.alice.theme", "dashboard.bob.requests"],
      },
    );
    await scenario(
      w,
      "carol over websocket (no role allowed there)",
      { user: "carol", pass: "carol-pw" },
      { connect: false },
    );
  }
}

console.log(failures === 0 ? "all expectations held" : `${failures} expectation(s) failed`);
process.exit(failures === 0 ? 0 : 1);
