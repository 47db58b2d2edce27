/**
 * The kicker: disconnects one client of one server through `$SYS.REQ.SERVER.<server_id>.KICK` `{"cid": N}` over
 * its own NATS connection, as a system-account user (see docs/operations.md "Running a fleet"). nats-server closes
 * the socket; the client reconnects through the callout and gets whatever the policy now says.
 *
 * Outcomes of `kick()` (never throws):
 * - `kicked`  the server replied without an error;
 * - `gone`    "no such client": the connection has already closed (the caller drops its entry);
 *             No responders also counts as gone: the start-up probe proved the right, so that server id has gone
 *             (a restarted nats-server has a new id, and none of the old clients);
 * - `failed`  Permissions Violation (the user may not publish the KICK subject), a timeout, an unexpected reply or a
 *             closed connection. Each kind is logged once, at error level, naming the missing right.
 *
 * Pacing: a token bucket (`ratePerSecond`, burst of a tenth of a second's worth, at least 1) so a revision that
 * revokes 10k connections reconnects them at a rate the servers and this service can absorb.
 *
 * `probe()` proves the right without disconnecting anyone: a KICK for cid 0 on the server this connection is on
 * (nats-server numbers clients from 1) must come back as "no such client".
 */
import type { NatsConnection, NodeConnectionOptions } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import { CalloutError } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import type { ConnectionKey } from "./registry.js";

export type KickOutcome = "kicked" | "gone" | "failed";

/** Why a kick (or the start-up probe) failed: a stable code for logs and metrics. */
export type KickFailure = "no_responders" | "permission_denied" | "timeout" | "bad_reply" | "closed";

export const KICK_SUBJECT = (serverId: string): string => `$SYS.REQ.SERVER.${serverId}.KICK`;
/** The subject a least-privilege kicker user must be allowed to publish. */
export const KICK_PERMISSION = "$SYS.REQ.SERVER.*.KICK";

/** The kicker could not prove it may kick (start-up probe) — names the missing right. */
export class RevocationError extends CalloutError {
  readonly reason: KickFailure | "connect";
  constructor(reason: KickFailure | "connect", message: string, options?: { cause?: unknown }) {
    super("config_error", message, options);
    this.name = "RevocationError";
    this.reason = reason;
  }
}

/** What each failure means for the operator (no secrets, no subjects beyond the KICK pattern). */
export function failureText(f: KickFailure | "connect"): string {
  switch (f) {
    case "no_responders":
      return `no responders on ${KICK_PERMISSION}: revocation.nats must be a user of the server's system_account (or the target server is gone)`;
    case "permission_denied":
      return `Permissions Violation: the revocation.nats user may not publish ${KICK_PERMISSION} (allow it, and subscribe on _INBOX.> for the replies)`;
    case "timeout":
      return "no reply to the KICK request in time";
    case "bad_reply":
      return "the KICK reply was not understood";
    case "closed":
      return "the revocation connection is closed";
    case "connect":
      return "cannot connect with the revocation.nats credential";
  }
}

/** A token bucket: `take()` resolves when a token is available; waiters are served in order. */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(ratePerSecond: number, burst = Math.max(1, Math.ceil(ratePerSecond / 10))) {
    if (!(ratePerSecond > 0)) throw new RangeError("ratePerSecond must be > 0");
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = performance.now();
  }

  take(): Promise<void> {
    const next = this.#chain.then(async () => {
      for (;;) {
        if (this.#closed) return;
        const now = performance.now();
        this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
        this.#last = now;
        if (this.#tokens >= 1) {
          this.#tokens -= 1;
          return;
        }
        await new Promise((r) => setTimeout(r, Math.ceil(((1 - this.#tokens) / this.#rate) * 1000)));
      }
    });
    this.#chain = next;
    return next;
  }

  /** Every waiting and later take() resolves at once (shutdown: the callers check why). */
  close(): void {
    this.#closed = true;
  }
}

export interface KickerOptions {
  /** Connection options with the system-account credential (servers, auth, TLS). */
  connection: NodeConnectionOptions;
  /** Kicks per second (token bucket). */
  ratePerSecond: number;
  /** Reply timeout per KICK, ms (default 2000). */
  timeoutMs?: number;
  logger?: Logger;
  /** Metrics hook: one call per kick attempt. */
  onKick?: (outcome: KickOutcome, failure?: KickFailure) => void;
}

const dec = new TextDecoder();

/** Classifies a request error from nats.js (no responders, permissions, timeout, closed). */
function classify(err: unknown): KickFailure {
  const text = `${(err as Error)?.name ?? ""} ${(err as Error)?.message ?? ""} ${String((err as { cause?: unknown })?.cause ?? "")}`;
  if (/no responders/i.test(text)) return "no_responders";
  if (/permissions violation/i.test(text)) return "permission_denied";
  if (/timeout/i.test(text)) return "timeout";
  if (/closed/i.test(text)) return "closed";
  return "bad_reply";
}

/** Reads a KICK reply: success, "no such client", or something else. */
export function parseKickReply(data: Uint8Array): "kicked" | "gone" | "bad_reply" {
  let doc: unknown;
  try {
    doc = JSON.parse(dec.decode(data));
  } catch {
    return "bad_reply";
  }
  if (typeof doc !== "object" || doc === null) return "bad_reply";
  const error = (doc as { error?: { description?: unknown } }).error;
  if (error === undefined) return "server" in doc ? "kicked" : "bad_reply";
  return typeof error.description === "string" && /no such client/i.test(error.description)
    ? "gone"
    : "bad_reply";
}

export class Kicker {
  readonly #nc: NatsConnection;
  readonly #bucket: TokenBucket;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  readonly #onKick: KickerOptions["onKick"];
  readonly #reported = new Set<KickFailure>();
  #closing = false;

  private constructor(nc: NatsConnection, o: KickerOptions) {
    this.#nc = nc;
    this.#bucket = new TokenBucket(o.ratePerSecond);
    this.#timeoutMs = o.timeoutMs ?? 2000;
    this.#log = (o.logger ?? silentLogger).child({ component: "revocation" });
    this.#onKick = o.onKick;
  }

  /** Connects and probes the right; throws RevocationError naming what is missing (the connection is closed). */
  static async start(o: KickerOptions): Promise<Kicker> {
    let nc: NatsConnection;
    try {
      nc = await connect({ maxReconnectAttempts: -1, reconnectTimeWait: 250, ...o.connection });
    } catch (e) {
      throw new RevocationError(
        "connect",
        `${failureText("connect")}: ${(e as Error)?.message ?? String(e)}`,
        {
          cause: e,
        },
      );
    }
    const k = new Kicker(nc, o);
    const failure = await k.probe();
    if (failure !== undefined) {
      await nc.close().catch(() => {});
      throw new RevocationError(failure, failureText(failure));
    }
    return k;
  }

  /** KICK cid 0 on this connection's server: undefined when the reply proves the right, else the failure. */
  async probe(): Promise<KickFailure | undefined> {
    const sid = this.#nc.info?.server_id;
    if (sid === undefined) return "closed";
    try {
      const m = await this.#nc.request(KICK_SUBJECT(sid), JSON.stringify({ cid: 0 }), {
        timeout: this.#timeoutMs,
      });
      return parseKickReply(m.data) === "gone" ? undefined : "bad_reply";
    } catch (e) {
      return classify(e);
    }
  }

  /** Disconnect one client (paced). Never throws. */
  async kick(target: ConnectionKey): Promise<KickOutcome> {
    await this.#bucket.take();
    if (this.#closing) return "failed"; // shutting down: not sent, not a fault worth a log line
    if (this.#nc.isClosed()) return this.#done("failed", "closed");
    try {
      const m = await this.#nc.request(KICK_SUBJECT(target.serverId), JSON.stringify({ cid: target.cid }), {
        timeout: this.#timeoutMs,
      });
      const r = parseKickReply(m.data);
      return r === "bad_reply" ? this.#done("failed", "bad_reply") : this.#done(r);
    } catch (e) {
      const f = classify(e);
      // The probe proved the right at start: no responders now means that server is gone, and its clients with it.
      if (f === "no_responders") return this.#done("gone");
      return this.#done("failed", f);
    }
  }

  #done(outcome: KickOutcome, failure?: KickFailure): KickOutcome {
    if (failure !== undefined && !this.#reported.has(failure)) {
      // Once per kind: a missing right would otherwise log once per connection of a large revision.
      this.#reported.add(failure);
      this.#log.error({ code: `kick_${failure}` }, `cannot kick: ${failureText(failure)}`);
    }
    try {
      this.#onKick?.(outcome, failure);
    } catch {
      // a metric must not break revocation
    }
    return outcome;
  }

  /** Stops sending: queued kicks return `failed` at once (unlogged), then the connection drains. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#bucket.close();
    if (!this.#nc.isClosed()) await this.#nc.drain().catch(() => this.#nc.close().catch(() => {}));
  }
}
