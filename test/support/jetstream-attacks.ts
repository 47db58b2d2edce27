/**
 * The attack table for policies/lib/jetstream.rego, written once and run for every library function by
 * every client (nats.js here, nats.go through test/clients/go-jetstream): each attack is a raw NATS operation
 * (a JetStream API request, a publish or a subscription) by the attacker alice against the victim bob's data
 * (a KV key, an object store bucket, stream messages, bob's consumer, bob's inbox). An attack is refused when
 * the server answers with a permissions violation, a JetStream API error or a status (404/408), and nothing
 * of the victim's data comes back. Plus the nats.js runner for raw operations (same outcomes as the Go one).
 */
import { errors, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { compareVersions } from "./nats-server.js";

/** What an attack aims at: the victim's stream/subject/consumer and the attacker's own scope. */
export interface Target {
  /** "kv" | "obj" | "stream" */
  kind: string;
  /** The victim's stream (for KV and streams shared with the attacker; for objects bob's own bucket). */
  victimStream: string;
  /** One of the victim's stored subjects, and a filter covering them. */
  victimSubject: string;
  victimFilter: string;
  /** Stream sequence of victimSubject's message (filled in after seeding). */
  victimSeq: number;
  /** A pull consumer of the victim on victimStream (created by the admin). */
  victimConsumer: string;
  /** The attacker's own stream, one of its stored subjects, and its scope. */
  ownStream: string;
  ownSubject: string;
  ownFilter: string;
  /** An own subject whose stored message is a purge request for the victim's subject ({"filter": …}). */
  injectSubject: string;
  /** Bytes of the victim's data that must never come back to the attacker. */
  secret: string;
}

export type OpKind = "request" | "publish" | "subscribe" | "watch";

/** One raw operation, as the Go prober reads it from stdin. */
export interface RawOp {
  name: string;
  kind: OpKind;
  subject: string;
  body?: string;
  headers?: Record<string, string>;
  stream?: string;
}

export type Outcome = "ok" | "permission" | "api_error" | "status" | "timeout" | "error";

export interface OpResult {
  name: string;
  outcome: Outcome;
  detail: string;
}

export interface Attack {
  name: string;
  /** What it would reveal or reach if it were allowed. */
  threat: string;
  op(t: Target, api: string): RawOp;
}

const req = (name: string, subject: string, body?: unknown): RawOp => ({
  name,
  kind: "request",
  subject,
  ...(body === undefined ? {} : { body: JSON.stringify(body) }),
});

const pushConfig = (
  stream: string,
  name: string,
  filter: Record<string, unknown>,
  deliver: string,
): unknown => ({
  stream_name: stream,
  config: { name, ack_policy: "none", deliver_policy: "all", deliver_subject: deliver, ...filter },
});

/** The attacks, in the order docs/jetstream.md lists them. */
export const ATTACKS: readonly Attack[] = [
  {
    name: "direct_get_last_by_subject",
    threat: "read the victim's latest value (DIRECT.GET with the victim's subject)",
    op: (t, a) => req("direct_get_last_by_subject", `${a}.DIRECT.GET.${t.victimStream}.${t.victimSubject}`),
  },
  {
    name: "direct_get_by_sequence",
    threat: "read any message by sequence (DIRECT.GET with a body)",
    op: (t, a) => req("direct_get_by_sequence", `${a}.DIRECT.GET.${t.victimStream}`, { seq: t.victimSeq }),
  },
  {
    name: "direct_get_body_smuggling",
    threat: "an allowed last-by-subject DIRECT.GET carrying a {seq} body for the victim's message",
    op: (t, a) =>
      req("direct_get_body_smuggling", `${a}.DIRECT.GET.${t.ownStream}.${t.ownSubject}`, {
        seq: t.victimSeq,
      }),
  },
  {
    name: "direct_get_batch",
    threat: "batch/multi-last DIRECT.GET over the victim's filter",
    op: (t, a) =>
      req("direct_get_batch", `${a}.DIRECT.GET.${t.victimStream}`, {
        multi_last: [t.victimFilter],
        batch: 10,
      }),
  },
  {
    name: "stream_msg_get",
    threat: "read the victim's value via STREAM.MSG.GET last_by_subj",
    op: (t, a) =>
      req("stream_msg_get", `${a}.STREAM.MSG.GET.${t.victimStream}`, { last_by_subj: t.victimSubject }),
  },
  {
    name: "stream_info_subjects_filter",
    threat: "list every key/subject of the stream (STREAM.INFO with subjects_filter)",
    op: (t, a) =>
      req("stream_info_subjects_filter", `${a}.STREAM.INFO.${t.victimStream}`, { subjects_filter: ">" }),
  },
  {
    name: "stream_list",
    threat: "list all streams with their configs and state",
    op: (_t, a) => req("stream_list", `${a}.STREAM.LIST`, {}),
  },
  {
    name: "stream_names",
    threat: "list all stream (bucket) names",
    op: (_t, a) => req("stream_names", `${a}.STREAM.NAMES`, {}),
  },
  {
    name: "consumer_create_victim_filter",
    threat: "watch/list/history the victim's keys (consumer on the victim's filter)",
    op: (t, a) =>
      req(
        "consumer_create_victim_filter",
        `${a}.CONSUMER.CREATE.${t.victimStream}.evil.${t.victimFilter}`,
        pushConfig(t.victimStream, "evil", { filter_subject: t.victimFilter }, "_INBOX.alice.evil"),
      ),
  },
  {
    name: "consumer_create_wider_filter",
    threat: "an allowed create subject with a wider filter_subject in the config",
    op: (t, a) =>
      req(
        "consumer_create_wider_filter",
        `${a}.CONSUMER.CREATE.${t.ownStream}.evil.${t.ownFilter}`,
        pushConfig(t.ownStream, "evil", { filter_subject: ">" }, "_INBOX.alice.evil"),
      ),
  },
  {
    name: "consumer_create_filter_subjects",
    threat: "an allowed create subject with filter_subjects naming the victim's filter",
    op: (t, a) =>
      req(
        "consumer_create_filter_subjects",
        `${a}.CONSUMER.CREATE.${t.ownStream}.evil.${t.ownFilter}`,
        pushConfig(t.ownStream, "evil", { filter_subjects: [t.victimFilter] }, "_INBOX.alice.evil"),
      ),
  },
  {
    name: "consumer_create_unfiltered_subject",
    threat: "the create subject without a filter token (any filter in the body)",
    op: (t, a) =>
      req(
        "consumer_create_unfiltered_subject",
        `${a}.CONSUMER.CREATE.${t.victimStream}`,
        pushConfig(t.victimStream, "evil", { filter_subject: t.victimFilter }, "_INBOX.alice.evil"),
      ),
  },
  {
    name: "consumer_durable_create_legacy",
    threat: "the legacy durable create API (no filter in the subject)",
    op: (t, a) =>
      req("consumer_durable_create_legacy", `${a}.CONSUMER.DURABLE.CREATE.${t.victimStream}.evil`, {
        config: { durable_name: "evil", ack_policy: "explicit", filter_subject: t.victimFilter },
      }),
  },
  {
    name: "deliver_subject_injection",
    threat: "a push consumer on own data whose deliver_subject is a JetStream API subject (purge the victim)",
    op: (t, a) =>
      req(
        "deliver_subject_injection",
        `${a}.CONSUMER.CREATE.${t.ownStream}.evil2.${t.ownSubject}`,
        pushConfig(
          t.ownStream,
          "evil2",
          { filter_subject: t.ownSubject },
          `${a}.STREAM.PURGE.${t.victimStream}`,
        ),
      ),
  },
  {
    name: "consumer_next_victim",
    threat: "pull (steal) messages from the victim's consumer",
    op: (t, a) =>
      req("consumer_next_victim", `${a}.CONSUMER.MSG.NEXT.${t.victimStream}.${t.victimConsumer}`, {
        batch: 1,
        no_wait: true,
      }),
  },
  {
    name: "consumer_info_victim",
    threat: "read the victim's consumer config (its filter) and pending counts",
    op: (t, a) => req("consumer_info_victim", `${a}.CONSUMER.INFO.${t.victimStream}.${t.victimConsumer}`),
  },
  {
    name: "consumer_delete_victim",
    threat: "delete the victim's consumer",
    op: (t, a) => req("consumer_delete_victim", `${a}.CONSUMER.DELETE.${t.victimStream}.${t.victimConsumer}`),
  },
  {
    name: "consumer_names",
    threat: "list consumer names (to reach them by name)",
    op: (t, a) => req("consumer_names", `${a}.CONSUMER.NAMES.${t.victimStream}`, {}),
  },
  {
    name: "stream_purge",
    threat: "purge the victim's messages",
    op: (t, a) => req("stream_purge", `${a}.STREAM.PURGE.${t.victimStream}`, { filter: t.victimSubject }),
  },
  {
    name: "stream_msg_delete",
    threat: "delete the victim's message by sequence",
    op: (t, a) => req("stream_msg_delete", `${a}.STREAM.MSG.DELETE.${t.victimStream}`, { seq: t.victimSeq }),
  },
  {
    name: "stream_update",
    threat: "change the stream (subjects, limits, deny_delete ...)",
    op: (t, a) => req("stream_update", `${a}.STREAM.UPDATE.${t.victimStream}`, { name: t.victimStream }),
  },
  {
    name: "stream_delete",
    threat: "delete the whole stream or bucket",
    op: (t, a) => req("stream_delete", `${a}.STREAM.DELETE.${t.victimStream}`),
  },
  {
    name: "publish_victim_subject",
    threat: "overwrite/delete the victim's key or message",
    op: (t) => ({ name: "publish_victim_subject", kind: "publish", subject: t.victimSubject, body: "owned" }),
  },
  {
    name: "subscribe_victim_subject",
    threat: "see the victim's writes live (core subscription on the stream's subjects)",
    op: (t) => ({ name: "subscribe_victim_subject", kind: "subscribe", subject: t.victimFilter }),
  },
  {
    name: "subscribe_victim_inbox",
    threat: "snoop the victim's replies (API answers, pushed messages)",
    op: () => ({ name: "subscribe_victim_inbox", kind: "subscribe", subject: "_INBOX.bob.>" }),
  },
  {
    name: "subscribe_all_inboxes",
    threat: "snoop every reply in the account",
    op: () => ({ name: "subscribe_all_inboxes", kind: "subscribe", subject: "_INBOX.>" }),
  },
];

/** Outcomes that count as refused by the server. */
export const REFUSED: ReadonlySet<Outcome> = new Set(["permission", "api_error", "status"]);

const dec = new TextDecoder();

function isPermission(err: unknown): boolean {
  const e = err as { cause?: unknown };
  return (
    err instanceof errors.PermissionViolationError || e?.cause instanceof errors.PermissionViolationError
  );
}

/** Runs one raw operation with nats.js; same outcomes as test/clients/go-jetstream. */
export async function runRawOp(nc: NatsConnection, op: RawOp, timeoutMs = 5000): Promise<OpResult> {
  const r = (outcome: Outcome, detail: string): OpResult => ({ name: op.name, outcome, detail });
  if (op.kind === "request") {
    try {
      const m = await nc.request(op.subject, op.body ?? "", { timeout: timeoutMs });
      if (m.headers && m.headers.code !== 0) return r("status", `${m.headers.code} ${m.headers.description}`);
      const text = dec.decode(m.data);
      try {
        const j = JSON.parse(text) as { error?: { err_code?: number; description?: string } };
        if (j.error) return r("api_error", `${j.error.err_code} ${j.error.description}`);
      } catch {
        // not JSON: a message body
      }
      return r("ok", text);
    } catch (err) {
      if (isPermission(err)) return r("permission", String(err));
      return r(err instanceof errors.TimeoutError ? "timeout" : "error", String(err));
    }
  }
  if (op.kind === "publish") {
    try {
      const ack = await jetstream(nc).publish(op.subject, op.body ?? "");
      return r("ok", `${ack.stream} seq ${ack.seq}`);
    } catch (err) {
      if (isPermission(err)) return r("permission", String(err));
      return r("error", String(err));
    }
  }
  if (op.kind === "subscribe") {
    let refused: unknown;
    const sub = nc.subscribe(op.subject, {
      callback: (err) => {
        if (err) refused = err;
      },
    });
    // The server answers a refused SUB with -ERR before the PONG of this flush.
    await nc.flush();
    sub.unsubscribe();
    return refused
      ? r(isPermission(refused) ? "permission" : "error", String(refused))
      : r("ok", "subscribed");
  }
  return r("error", `kind ${op.kind} is run by the Go client only`);
}

/** Library functions that let a client create consumers on its own data (push consumers with a deliver subject). */
const CREATES_CONSUMERS = new Set([
  "kv_watch",
  "kv_list",
  "kv_read",
  "kv_read_write",
  "obj_read",
  "obj_read_write",
  "stream_ordered",
]);

/**
 * Whether `attack` succeeds for a client holding `granted` library functions on a server of `version`: the
 * documented exceptions (docs/jetstream.md), asserted so the docs stay true; every other attack must be refused.
 * - deliver_subject_injection before 2.11: the server accepts a JetStream API subject as deliver subject (2.11+
 *   refuses it) and creates the consumer; whether its delivery executes the purge is checked afterwards on the
 *   victim's data;
 * - consumer_info_victim with kv_list: CONSUMER.INFO.<stream>.* answers for a consumer whose name is known.
 */
export function attackSucceeds(attack: string, version: string, granted: readonly string[]): boolean {
  if (attack === "deliver_subject_injection") {
    return compareVersions(version, "2.11.0") < 0 && granted.some((f) => CREATES_CONSUMERS.has(f));
  }
  return attack === "consumer_info_victim" && granted.includes("kv_list");
}

/** What is wrong with `r`: a leak of the victim's data, or an outcome other than the expected one. */
export function attackProblem(r: OpResult, t: Target, succeeds: boolean): string | undefined {
  const leaked = r.detail.includes(t.secret);
  const ok = succeeds ? r.outcome === "ok" : REFUSED.has(r.outcome);
  return leaked || !ok ? `${r.name}: ${r.outcome} ${r.detail.slice(0, 160)}` : undefined;
}

/** The same attacks through @nats-io/kv's own calls, on the victim "bob" of bucket `kv`. */
export async function kvClientAttacks(kv: KV): Promise<string[]> {
  const attempts: [string, () => Promise<unknown>][] = [
    ["kv.get(bob.secret)", () => kv.get("bob.secret")],
    [
      "kv.keys()",
      async () => {
        for await (const k of await kv.keys()) return k;
      },
    ],
    ["kv.watch(bob.>)", () => kv.watch({ key: "bob.>" })],
    ["kv.history(bob.secret)", () => kv.history({ key: "bob.secret" })],
    ["kv.put(bob.secret)", () => kv.put("bob.secret", "owned")],
    ["kv.delete(bob.secret)", () => kv.delete("bob.secret")],
  ];
  const wrong: string[] = [];
  for (const [name, f] of attempts) {
    const res = await f().then(
      (v) => `resolved ${JSON.stringify(v)?.slice(0, 80)}`,
      (e: unknown) => String(e),
    );
    if (!/Permissions Violation/.test(res)) wrong.push(`${name}: ${res}`);
  }
  return wrong;
}
