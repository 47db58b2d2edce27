/**
 * Small client-side helpers for integration tests against a real nats-server (shared): wait for a condition,
 * catch the first async error a connection reports (a permissions violation arrives as `-ERR` while the
 * connection stays up), and ask the server who the connection's user is.
 */
import type { NatsConnection, Status } from "@nats-io/transport-node";

/** Polls `pred` every 20 ms; throws after `timeoutMs`. */
export async function until(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The first async error the connection reports, as a promise. Call it before the action that fails. */
export function nextAsyncError(nc: NatsConnection): Promise<Error> {
  return (async () => {
    for await (const s of nc.status() as AsyncIterable<Status>) {
      if (s.type === "error") return s.error;
    }
    throw new Error("connection closed without an async error");
  })();
}

export interface UserInfo {
  data?: { user?: string; account?: string; expires?: string };
  error?: unknown;
}

/** `$SYS.REQ.USER.INFO` for the connection's own user (needs publish rights on that subject). */
export async function userInfo(nc: NatsConnection): Promise<UserInfo> {
  const m = await nc.request("$SYS.REQ.USER.INFO", "", { timeout: 5000 });
  return m.json<UserInfo>();
}
