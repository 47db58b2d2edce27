/**
 * Maps the service's per-request result (ResultEvent) to what the decision log and the metrics need. Both record
 * what the client got (`ev.outcome`: an allow or deny only when its reply reached the server in time), never just
 * what was decided; the decided outcome rides along as `decided` when the two differ.
 */
import type { DecisionRecord, IssuedEvent } from "./audit.js";
import type { CalloutMetrics, DecisionSample } from "./metrics.js";
import type { ResultEvent } from "./service.js";

/** The metric/log code of a result: "ok" for allows, else the outcome's code. */
export function resultCode(ev: ResultEvent): string {
  const o = ev.outcome;
  return o.kind === "allow" ? "ok" : o.code;
}

export function decisionSampleFromResult(ev: ResultEvent, entrypoint: string): DecisionSample {
  const o = ev.outcome;
  const s: DecisionSample = {
    outcome: o.kind,
    // A policy deny carries its reason code (e.g. bad_credentials); faults carry their error code.
    code:
      o.kind === "allow" ? "ok" : o.code === "auth_denied" || o.code === "auth_aborted" ? o.reason : o.code,
    total_us: ev.result.timings.total_us + ev.queue_us + (ev.reply_us ?? 0),
  };
  if (ev.result.issued) s.account = ev.result.issued.account; // labelled only if allow-listed (metrics.ts)
  const evalUs = ev.result.facts.eval_us;
  if (evalUs !== undefined) {
    s.eval_us = evalUs;
    s.entrypoint = ev.result.facts.entrypoint ?? entrypoint;
  }
  return s;
}

/**
 * Counts one result in the metrics: requests_total by what the client got, and requests_dropped_total by reason
 * for requests answered with silence (shed from the queue, queue full, stopping, …, or expired before handling).
 */
export function observeResult(metrics: CalloutMetrics, ev: ResultEvent, entrypoint: string): void {
  metrics.observeDecision(decisionSampleFromResult(ev, entrypoint));
  if (ev.dropped) metrics.observeDropped(ev.dropped);
  else if (ev.result.error?.code === "request_expired") metrics.observeDropped("expired");
}

export function decisionRecordFromResult(ev: ResultEvent, entrypoint: string): DecisionRecord {
  const r = ev.result;
  const o = ev.outcome;
  const facts = r.facts;
  const rec: DecisionRecord = {
    decisionId: ev.decisionId,
    receivedAt: ev.receivedAt,
    outcome: o.kind,
    timings: {
      decode_us: r.timings.decode_us,
      eval_us: facts.eval_us ?? r.timings.handler_us,
      sign_us: r.timings.sign_us,
      total_us: r.timings.total_us + ev.queue_us + (ev.reply_us ?? 0),
    },
  };
  if (ev.queue_us > 0) rec.timings!.queue_us = ev.queue_us;
  if (ev.reply_us !== undefined) rec.timings!.reply_us = ev.reply_us;
  rec.reply = ev.reply;
  const d = r.outcome;
  if (o !== d && d.kind !== "abort")
    rec.decided = { outcome: d.kind, code: d.kind === "allow" ? "ok" : d.code };
  if (o.kind === "allow") {
    rec.code = "ok";
    const reason = o.reason ?? facts.reason;
    if (reason !== undefined) rec.reason = reason;
  } else {
    rec.code = o.code;
    rec.reason = o.reason;
  }
  if (ev.error !== undefined || (o.kind !== "allow" && !["auth_denied", "auth_aborted"].includes(o.code))) {
    rec.error = true;
  }
  if (facts.eval_error !== undefined) rec.eval_error = facts.eval_error;
  if (facts.revision !== undefined) rec.revision = facts.revision;
  rec.entrypoint = facts.entrypoint ?? entrypoint;
  if (facts.input !== undefined) rec.input = facts.input;
  // Set by the policy handler only when a mask entrypoint is configured: the mask runs on the deciding snapshot.
  if (facts.evaluate !== undefined) rec.evaluate = facts.evaluate;
  if (r.request) rec.request = r.request;
  if (r.issued) {
    const i = r.issued;
    const issued: IssuedEvent = {
      account: i.account,
      user: i.user_nkey,
      name: i.name,
      pub: i.pub,
      sub: i.sub,
      exp: i.exp,
    };
    if (i.resp) issued.resp = { max: i.resp.max, ttl: i.resp.ttl_ms };
    if (i.tags) issued.tags = i.tags;
    if (i.account_public_key) issued.account_public_key = i.account_public_key;
    if (i.allowed_connection_types) issued.allowed_connection_types = i.allowed_connection_types;
    if (i.src) issued.src = i.src;
    rec.issued = issued;
  }
  if (ev.dropped) rec.dropped = ev.dropped;
  return rec;
}
