/**
 * A reply's fate on a NATS connection, so the service records what happened rather than what it meant to do.
 *
 * The reply is published, then confirmed with a flush: the server answers PING with PONG only after processing
 * every command before it, and it reports a refused publish (`-ERR 'Permissions Violation for Publish to
 * "<subject>"'`) before that PONG. Outcomes:
 *
 * - `sent`: confirmed before the request's deadline and not refused;
 * - `failed`: the publish threw (larger than the server's max_payload, connection closed), the flush failed, or
 *   the server refused the reply subject (e.g. a callout user without `allow_responses`);
 * - `late`: not confirmed before the deadline: the server had given up on the request (the client saw a timeout),
 *   or, when this process stalled between writing the reply and reading the confirmation, may have. Never
 *   recorded as delivered on a guess.
 *
 * Replies published in the same tick share one flush. This module never logs.
 */
import type { NatsConnection, Status } from "@nats-io/transport-node";

export type ReplyFate = "sent" | "failed" | "late";

export interface ReplyReport {
  fate: ReplyFate;
  /** Why it failed: the publish or flush error, or the server's permissions violation. */
  error?: unknown;
}

export interface Replier {
  /**
   * Publish `data` to `subject` and wait for its fate: confirmed by `deadline` (performance.now() ms; when
   * undefined, `maxWaitMs` from now). Never throws.
   */
  send(subject: string, data: Uint8Array, deadline: number | undefined): Promise<ReplyReport>;
  /** Feed every connection status event here (the server's permissions violations arrive as `error`). */
  onStatus(s: Status): void;
}

/** How long a reply without a known deadline may wait for its confirmation, ms. */
export const DEFAULT_REPLY_WAIT_MS = 10_000;

interface Pending {
  refused?: unknown;
}

/** A refused publish: nats.js parses `-ERR 'Permissions Violation for Publish to "x"'` into this shape. */
function refusedSubject(err: unknown): string | undefined {
  const e = err as { name?: unknown; operation?: unknown; subject?: unknown } | undefined;
  if (e?.name === "PermissionViolationError" && e.operation === "publish" && typeof e.subject === "string") {
    return e.subject;
  }
  return undefined;
}

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A replier on the connection `conn()` returns (undefined before it connects: every send fails). */
export function createReplier(
  conn: () => NatsConnection | undefined,
  opts: { maxWaitMs?: number } = {},
): Replier {
  const maxWaitMs = opts.maxWaitMs ?? DEFAULT_REPLY_WAIT_MS;
  const pending = new Map<string, Set<Pending>>();
  let batch: Promise<void> | undefined;

  /** One flush for every publish made before it is sent (at the end of this tick). */
  const confirm = (): Promise<void> => {
    batch ??= new Promise<void>((resolve, reject) => {
      queueMicrotask(() => {
        batch = undefined;
        const nc = conn();
        if (nc === undefined) reject(new Error("not connected"));
        else nc.flush().then(resolve, reject);
      });
    });
    return batch;
  };

  return {
    onStatus(s) {
      if (s.type !== "error") return;
      const subject = refusedSubject(s.error);
      if (subject === undefined) return;
      for (const p of pending.get(subject) ?? []) p.refused = s.error;
    },

    async send(subject, data, deadline) {
      const entry: Pending = {};
      let set = pending.get(subject);
      if (!set) pending.set(subject, (set = new Set()));
      set.add(entry);
      const forget = () => {
        set.delete(entry);
        if (set.size === 0) pending.delete(subject);
      };
      try {
        const nc = conn();
        if (nc === undefined) throw new Error("not connected");
        nc.publish(subject, data);
      } catch (error) {
        forget();
        return { fate: "failed", error };
      }
      const limit = deadline ?? performance.now() + maxWaitMs;
      let timer: NodeJS.Timeout | undefined;
      let result: "confirmed" | "timeout" | { error: unknown };
      try {
        result = await Promise.race([
          confirm().then(
            () => (performance.now() <= limit ? ("confirmed" as const) : ("timeout" as const)),
            (error: unknown) => ({ error }),
          ),
          new Promise<"timeout">((r) => {
            timer = setTimeout(() => r("timeout"), Math.max(0, limit - performance.now()));
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
      // A refusal arrives before the PONG; let the status stream deliver what was read with it.
      if (result === "confirmed") await nextTurn();
      forget();
      if (entry.refused !== undefined) return { fate: "failed", error: entry.refused };
      if (result === "confirmed") return { fate: "sent" };
      if (result === "timeout") return { fate: "late" };
      return { fate: "failed", error: result.error };
    },
  };
}
