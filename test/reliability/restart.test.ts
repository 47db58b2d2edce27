/**
 * nats-server restart mid-run: the service reconnects (reconnecting forever) and serves again. The
 * assertion is count-based: within 5 s of the server being back, at least one client connects
 * successfully (clients try every 100 ms). The time to the first success is reported.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  stormTs,
  RELIABILITY_FULL as FULL,
  RELIABILITY_SCALE_NAME as SCALE_NAME,
  fileDir,
  startStack,
  tryConnect,
  type Stack,
} from "../support/index.js";

const RESTARTS = FULL ? 5 : 2;
const WINDOW_MS = 5_000;

let stack: Stack | undefined;
after(async () => {
  await stack?.close();
});

test(`the service serves again within 5 s of a nats-server restart (${SCALE_NAME}: ${RESTARTS} restarts)`, async (t) => {
  const dir = fileDir("restart");
  stack = await startStack({ dir });
  const s = stack;
  for (let r = 1; r <= RESTARTS; r++) {
    // Load before the restart, so the service has work in flight when the server goes away.
    const before = await stormTs({ url: s.server.url, n: 300, concurrency: 20, creds: s.creds });
    assert.equal(before.failed, 0, `storm before restart ${r}: ${JSON.stringify(before.errors)}`);

    const load = stormTs({
      url: s.server.url,
      n: 1_000_000,
      concurrency: 10,
      creds: s.creds,
      signal: AbortSignal.timeout(500),
    });
    await sleep(200);
    await s.server.kill();
    await load; // attempts against a dead server fail; that is expected and not counted
    await sleep(1_000);
    await s.server.restart();
    const back = performance.now();

    // A new client every 100 ms, not waiting for the previous one (an attempt that reaches the server
    // before the service is back waits out the auth timeout). Count successes completed in the window.
    const attempts: Promise<void>[] = [];
    let successes = 0;
    let firstStartMs = -1;
    let firstDoneMs = -1;
    for (let k = 0; performance.now() - back < WINDOW_MS - 100; k++) {
      const startedMs = performance.now() - back;
      attempts.push(
        tryConnect(s.server.url, s.creds(k), WINDOW_MS).then((err) => {
          const doneMs = performance.now() - back;
          if (err === undefined && doneMs <= WINDOW_MS) {
            successes++;
            if (firstDoneMs < 0 || doneMs < firstDoneMs) firstDoneMs = doneMs;
            if (firstStartMs < 0 || startedMs < firstStartMs) firstStartMs = startedMs;
          }
        }),
      );
      await sleep(100);
    }
    await Promise.all(attempts);
    t.diagnostic(
      `restart ${r}: ${successes}/${attempts.length} clients connected within ${WINDOW_MS} ms; the first successful ` +
        `one started ${firstStartMs.toFixed(0)} ms and finished ${firstDoneMs.toFixed(0)} ms after the server was back`,
    );
    assert.ok(
      successes >= 1,
      `no successful connect within ${WINDOW_MS} ms of restart ${r}; service connection log:\n` +
        (s.services[0]?.output() ?? "")
          .split("\n")
          .filter(
            (l) => l.includes("nats connection") || l.includes("nats async") || l.includes('"level":"error"'),
          )
          .slice(-12)
          .join("\n"),
    );
    assert.ok(s.services[0]?.alive(), "the service survived the restart");
    const afterStorm = await stormTs({ url: s.server.url, n: 300, concurrency: 20, creds: s.creds });
    assert.equal(afterStorm.failed, 0, `storm after restart ${r}: ${JSON.stringify(afterStorm.errors)}`);
  }
});
