/**
 * A connect storm of 10,000 (reduced 1,000) connections at concurrency 50 under nats-server's
 * default auth timeout (no `authorization.timeout` in the config: 2 s). Expect 0 failures; on
 * failure the assertion message carries the measured count and the client-side causes, and the
 * service's own drop counters (queue_full / expired) from /status.
 *
 * The load generator is bench/storm-go (nats.go, lowest client CPU) when Go is available, else the
 * in-process TypeScript driver — the same contract either way.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import {
  buildGo,
  stormGo,
  stormTs,
  type StormResult,
  RELIABILITY_FULL as FULL,
  RELIABILITY_SCALE_NAME as SCALE_NAME,
  fileDir,
  getStatus,
  readDecisions,
  startStack,
  type Stack,
} from "../support/index.js";

const N = FULL ? 10_000 : 1_000;
const CONCURRENCY = 50;

let stack: Stack | undefined;
after(async () => {
  await stack?.close();
});

test(`storm of ${N} connections under the default 2 s auth timeout (${SCALE_NAME})`, async (t) => {
  const dir = fileDir("storm-timeout");
  stack = await startStack({ dir }); // timeoutS undefined: the server's default
  const s = stack;
  let driver = "go";
  let result: StormResult;
  let goBin: string | undefined;
  try {
    goBin = await buildGo("bench/storm-go", "storm");
  } catch {
    driver = "ts";
  }
  if (goBin) {
    result = await stormGo(goBin, {
      url: s.server.url,
      n: N,
      concurrency: CONCURRENCY,
      user: "storm",
      pass: s.clientPass,
    });
  } else {
    result = await stormTs({ url: s.server.url, n: N, concurrency: CONCURRENCY, creds: s.creds });
  }
  const status = await getStatus(s.statusUrl(0)).catch(() => ({}));
  await s.close();
  const events = readDecisions(s.decisionLog(0));
  t.diagnostic(
    `driver ${driver}: ${result.ok}/${result.n} ok, ${result.failed} failed ${JSON.stringify(result.errors)}, ` +
      `${result.rate.toFixed(0)} auths/s, p50 ${result.p50_ms.toFixed(0)} ms, p99 ${result.p99_ms.toFixed(0)} ms, ` +
      `max ${result.max_ms.toFixed(0)} ms; decision events ${events.length}`,
  );
  assert.equal(
    result.failed,
    0,
    `${result.failed} of ${N} connections failed: ${JSON.stringify(result.errors)}; service status ${JSON.stringify(
      (status as { service?: unknown }).service ?? null,
    )}`,
  );
  assert.equal(result.ok, N);
  assert.equal(events.length, N, "one decision event per connection");
  assert.ok(events.every((e) => e.outcome === "allow"));
});
