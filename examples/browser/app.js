// The demo page's logic: log in over WebSocket (user/password go to the callout), open the KV bucket "prefs"
// with direct gets, read/write/watch your own keys, and try someone else's. Every refusal shown is the server's.
import { wsconnect, Kvm } from "./nats.js";

const BUCKET = "prefs";
const $ = (id) => document.getElementById(id);
const show = (id, text, ok) => {
  $(id).textContent = text;
  $(id).className = ok ? "ok" : "error";
};
// The server's own error text (e.g. 'Permissions Violation for Publish to "…"'), not a paraphrase.
const reason = (err) => {
  const msg = String(err?.message ?? err);
  const cause = err?.cause?.message;
  return cause && cause !== msg ? `${msg}: ${cause}` : msg;
};

const { wsUrl } = await (await fetch("./config.json")).json();
let kv;

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user = $("user").value.trim();
  show("login-status", "connecting…", true);
  try {
    const nc = await wsconnect({
      servers: wsUrl,
      user,
      pass: $("password").value,
      // The policy grants each user a private inbox _INBOX.<user>.> for replies and watch deliveries.
      inboxPrefix: `_INBOX.${user}`,
      maxReconnectAttempts: 0,
    });
    // Bind without looking the stream up (no STREAM.INFO right needed); reads use DIRECT.GET on your keys.
    kv = await new Kvm(nc).open(BUCKET, { allow_direct: true });
    show("login-status", `logged in as ${user}`, true);
    $("login-btn").disabled = true;
    $("key").value = `${user}.theme`;
    $("other-key").value = `${user === "bob" ? "alice" : "bob"}.theme`;
    $("app").hidden = false;
    nc.closed().then((err) => show("login-status", `disconnected${err ? ": " + reason(err) : ""}`, false));
    void watchOwnKeys(user);
  } catch (err) {
    show("login-status", `login failed: ${reason(err)}`, false);
  }
});

async function watchOwnKeys(user) {
  try {
    // An ordered consumer filtered to your keys: the only consumer the policy lets you create.
    const updates = await kv.watch({ key: `${user}.>` });
    show("watch-status", `watching ${user}.>`, true);
    for await (const e of updates) {
      const li = document.createElement("li");
      li.textContent = `${e.key} = ${e.operation === "PUT" ? e.string() : `(${e.operation})`} (revision ${e.revision})`;
      $("watch").append(li);
    }
  } catch (err) {
    show("watch-status", `watch refused: ${reason(err)}`, false);
  }
}

/** Runs put or get on the key in `keyId`; the result or the server's refusal goes to `outId`. */
async function kvOp(op, keyId, outId) {
  const key = $(keyId).value.trim();
  try {
    if (op === "put") {
      const rev = await kv.put(key, $("value").value);
      show(outId, `put ${key}: revision ${rev}`, true);
    } else {
      const e = await kv.get(key);
      show(outId, e ? `get ${key} = ${e.string()}` : `get ${key}: no such key`, true);
    }
  } catch (err) {
    show(outId, `${op} ${key} refused: ${reason(err)}`, false);
  }
}

for (const [form, keyId, outId] of [
  ["own", "key", "own-result"],
  ["other", "other-key", "other-result"],
]) {
  $(form).addEventListener("submit", (ev) => {
    ev.preventDefault();
    void kvOp(ev.submitter?.dataset.op ?? "get", keyId, outId);
  });
}
