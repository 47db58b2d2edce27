/**
 * Live revocation figures (reported, not asserted; not part of `make bench`):
 *
 * 1. memory: heap and RSS growth for 10,000 realistic live grants (a verified request with password, a grant of a few
 *    subjects), measured after a forced GC;
 * 2. revocation: 1,000 nats.js clients connected through the callout to a real nats-server (latest, config mode);
 *    a data.json edit revokes 100 (50 removed, 50 narrowed). Reports the time from the file save to each revoked
 *    client's disconnect (p50/p99/max), how many unrevoked clients saw a disconnect, and the reconnect outcomes.
 *
 *   node --expose-gc --import tsx bench/live-revocation.ts [--clients 1000] [--revoke 100] [--rate 200]
 */
import { parseArgs } from "node:util";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { LiveGrant, LiveGrantRegistry } from "../src/live/registry.js";
import type { AuthorizationRequest } from "../src/types.js";
import { serverMatrix, startLiveStack, writeUsers, type UserSpec } from "../test/support/index.js";

const { values } = parseArgs({
  options: { clients: { type: "string" }, revoke: { type: "string" }, rate: { type: "string" } },
});
const CLIENTS = Number(values.clients ?? 1000);
const REVOKE = Number(values.revoke ?? 100);
const RATE = Number(values.rate ?? 200);
const gc = (globalThis as { gc?: () => void }).gc;

function memory(): void {
  if (!gc) console.log("memory: run with --expose-gc for a meaningful figure");
  const reg = new LiveGrantRegistry({ maxEntries: 1_000_000 });
  const mk = (i: number): LiveGrant => {
    const req: AuthorizationRequest = {
      server_id: {
        name: "nats-0",
        host: "0.0.0.0",
        id: "NDJXL5SP7RSTGBZ4V5ZJ6WZNDBV6GP4YUKQ2CDW3HYBXMNGBK53HWVEQ",
        version: "2.15.3",
        cluster: "prod",
      },
      user_nkey: `UAB${String(i).padStart(53, "X")}`,
      client_info: {
        host: `10.0.${(i >> 8) & 255}.${i & 255}`,
        id: i + 1,
        user: `user-${i}`,
        name: `orders-worker-${i}`,
        kind: "Client",
        type: "nats",
      },
      connect_opts: {
        user: `user-${i}`,
        pass: `p-${i}-${"s".repeat(20)}`,
        name: `orders-worker-${i}`,
        lang: "nats.js",
        version: "3.4.0",
        protocol: 1,
      },
      request_issuer: "ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA",
      issued_at: 1_700_000_000,
      expires_at: 1_700_000_002,
      encrypted: false,
    };
    return new LiveGrant({
      request: req,
      grant: {
        account: "APP",
        name: `user-${i}`,
        pub: { allow: [`orders.${i}.>`, "_INBOX.>"] },
        sub: { allow: [`orders.${i}.>`, "_INBOX.>"], deny: ["orders.secret.>"] },
        exp: 4_000_000_000,
        subs: -1,
        data: -1,
        payload: -1,
      },
      decisionId: `a1b2c3d4-${i.toString(36)}`,
      revision: "sha256:0123456789abcdef",
    });
  };
  gc?.();
  const h0 = process.memoryUsage();
  for (let i = 0; i < 10_000; i++) reg.add(mk(i));
  gc?.();
  const h1 = process.memoryUsage();
  const mb = (n: number) => (n / 1024 / 1024).toFixed(2);
  console.log(
    `memory: 10,000 live grants: heapUsed +${mb(h1.heapUsed - h0.heapUsed)} MB, rss +${mb(h1.rss - h0.rss)} MB ` +
      `(${Math.round((h1.heapUsed - h0.heapUsed) / 10_000)} bytes/grant; size ${reg.size})`,
  );
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};

async function revocation(): Promise<void> {
  const bin = serverMatrix()[0]!;
  const users: Record<string, UserSpec> = {};
  for (let i = 0; i < CLIENTS; i++)
    users[`u${i}`] = { password: `pw${i}`, account: "APP", pub: [`u${i}.>`, "_INBOX.>"], sub: ["_INBOX.>"] };
  const stack = await startLiveStack({ bin: bin.bin, users, rateMax: RATE });
  try {
    const url = stack.servers[0]!.url;
    const clients: {
      i: number;
      nc: NatsConnection;
      disconnectAt?: number;
      reconnected: boolean;
      closed?: string;
    }[] = [];
    const t0 = performance.now();
    for (let i = 0; i < CLIENTS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, CLIENTS - i) }, (_, k) =>
          connect({
            servers: url,
            user: `u${i + k}`,
            pass: `pw${i + k}`,
            reconnectTimeWait: 50,
            maxReconnectAttempts: 20,
          }),
        ),
      );
      batch.forEach((nc, k) => {
        const c: (typeof clients)[number] = { i: i + k, nc, reconnected: false };
        clients.push(c);
        void (async () => {
          for await (const s of nc.status()) {
            if (s.type === "disconnect" && c.disconnectAt === undefined) c.disconnectAt = performance.now();
            if (s.type === "reconnect") c.reconnected = true;
          }
        })();
        void nc.closed().then((e) => (c.closed = e ? e.message : "closed"));
      });
    }
    console.log(
      `revocation: ${CLIENTS} clients connected in ${Math.round(performance.now() - t0)} ms; live grants ${stack.live.status().liveGrants}`,
    );
    // Revoke REVOKE clients: the first half removed from data, the second half narrowed.
    const removed = new Set<number>();
    const narrowed = new Set<number>();
    for (let k = 0; k < REVOKE; k++)
      (k < REVOKE / 2 ? removed : narrowed).add(k * Math.floor(CLIENTS / REVOKE));
    const next: Record<string, UserSpec> = {};
    for (let i = 0; i < CLIENTS; i++) {
      if (removed.has(i)) continue;
      next[`u${i}`] = narrowed.has(i)
        ? { ...users[`u${i}`]!, pub: [`u${i}.a`, "_INBOX.>"] }
        : users[`u${i}`]!;
    }
    const n = stack.reloads.length;
    const saved = performance.now();
    writeUsers(stack.dir, next);
    const revoked = clients.filter((c) => removed.has(c.i) || narrowed.has(c.i));
    const deadline = Date.now() + 120_000;
    let reloadSeenAt: number | undefined;
    void (async () => {
      while (stack.reloads.length <= n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      reloadSeenAt = performance.now();
    })();
    while (
      revoked.some(
        (c) => c.disconnectAt === undefined || (narrowed.has(c.i) ? !c.reconnected : c.closed === undefined),
      ) &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await stack.live.revocation!.idle();
    await new Promise((r) => setTimeout(r, 500));
    const reload = stack.reloads[n];
    const lat = revoked.filter((c) => c.disconnectAt !== undefined).map((c) => c.disconnectAt! - saved);
    const others = clients.filter((c) => !removed.has(c.i) && !narrowed.has(c.i));
    console.log(
      `revocation: reload ${reload?.result} in ${reload?.duration_ms} ms (compiled: ${reload?.compiled}), active ${reloadSeenAt !== undefined ? Math.round(reloadSeenAt - saved) : "?"} ms after the save; ` +
        `save → revoked disconnect p50 ${pct(lat, 50).toFixed(0)} ms, p99 ${pct(lat, 99).toFixed(0)} ms, max ${Math.max(...lat).toFixed(0)} ms ` +
        `(${lat.length}/${revoked.length} disconnected; rate ${RATE}/s)`,
    );
    console.log(
      `revocation: unrevoked clients disconnected: ${others.filter((c) => c.disconnectAt !== undefined).length} of ${others.length}; ` +
        `removed → closed with auth error: ${revoked.filter((c) => removed.has(c.i) && /Authorization/i.test(c.closed ?? "")).length}/${removed.size}; ` +
        `narrowed → reconnected and open: ${revoked.filter((c) => narrowed.has(c.i) && c.reconnected && c.closed === undefined).length}/${narrowed.size}`,
    );
    await Promise.all(clients.filter((c) => !c.nc.isClosed()).map((c) => c.nc.close()));
  } finally {
    await stack.stop();
  }
}

memory();
await revocation();
