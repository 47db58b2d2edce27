/**
 * Bytes allocated per call on the main thread, for the per-login work the decision log and the service log add:
 * a decision-log record (masked input, event, line), the credential set it masks with, and the service log's
 * per-request summary line through pino. Allocation decides how often V8 scavenges, so it is what the shipped
 * configuration's extra CPU under a storm follows (docs/performance.md, lever 7); the in-process time is printed too.
 *
 *   node --expose-gc --max-semi-space-size=64 --import tsx bench/alloc.ts
 *
 * Method: `used_heap_size` before and after 600 calls, after a full GC, with a young generation large enough that
 * no scavenge runs in between; median of 5 batches. Inputs are real policy input documents (`buildInput` over
 * signed requests), distinct per call, as in the service.
 */
import v8 from "node:v8";
import { pino } from "pino";
import { createDecisionLog, type DecisionRecord } from "../src/audit.js";
import { decodeRequest, Verifier } from "../src/callout/index.js";
import { createLogger } from "../src/log.js";
import { buildInput } from "../src/policy/index.js";
import { credentialsOf, credentialValues } from "../src/secrets.js";
import { benchUser, fakeServer, makeRequest, newKeys } from "../test/support/index.js";
import { perOpUs } from "./lib/timing.js";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error("run with --expose-gc (and --max-semi-space-size=64): see the header");
  process.exit(2);
}
const BATCH = 600;

const keys = newKeys();
const server = fakeServer();
const verifier = new Verifier();
const requests = Array.from({ length: BATCH }, (_, i) =>
  decodeRequest(
    makeRequest({ server, issuer: keys.issuerPub, ...benchUser(i), ttlS: 3600 }).data,
    undefined,
    {
      verifier,
      expectedIssuer: keys.issuerPub,
    },
  ),
);

function records(): DecisionRecord[] {
  return requests.map((request, i) => ({
    decisionId: `d-${i}`,
    receivedAt: new Date(),
    outcome: "allow",
    reply: "sent",
    code: "ok",
    revision: "3f9a0c1d2b4e5f60",
    entrypoint: "nats/authz/decision",
    input: buildInput(request),
    request,
    timings: { decode_us: 30, eval_us: 120, sign_us: 40, reply_us: 100, total_us: 300 },
    issued: {
      account: "APP",
      user: request.user_nkey,
      name: request.connect_opts.user ?? "",
      pub: { allow: ["app.user.>", "_INBOX.>"] },
      sub: { allow: ["app.user.>", "_INBOX.>"] },
      exp: 1_800_000_000,
      resp: { max: 1, ttl: 5000 },
    },
  }));
}

function bytesPerCall(fn: (rec: DecisionRecord) => unknown): number {
  for (let w = 0; w < 5; w++) for (const r of records()) fn(r);
  const out: number[] = [];
  for (let b = 0; b < 5; b++) {
    const batch = records();
    gc!();
    const before = v8.getHeapStatistics().used_heap_size;
    for (const r of batch) fn(r);
    out.push((v8.getHeapStatistics().used_heap_size - before) / batch.length);
  }
  out.sort((x, y) => x - y);
  return out[2] as number;
}

const row = (what: string, fn: (rec: DecisionRecord) => unknown): void => {
  const bytes = bytesPerCall(fn);
  const pool = records();
  const us = perOpUs((i) => fn(pool[i % pool.length] as DecisionRecord), 20_000);
  console.log(`${what.padEnd(58)} ${bytes.toFixed(0).padStart(6)} bytes  ${us.toFixed(2).padStart(6)} µs`);
};

let written = 0;
const sink = (line: string) => {
  written += line.length;
};
const plain = createDecisionLog({ sink });
const masked = createDecisionLog({ sink, mask: () => ["/connect_opts/name", "/client_info/name"] });
// A service log like the runtime's (pino, our formatters), writing nowhere, so only formatting is counted.
const logger = createLogger({ level: "info", destination: { write: () => {} } as never });
const summary = (rec: DecisionRecord) =>
  logger.info(
    {
      decision_id: rec.decisionId,
      outcome: rec.outcome,
      account: rec.issued?.account,
      user: rec.issued?.name,
      revision: rec.revision,
      us: rec.timings?.total_us,
    },
    "decision",
  );

console.log(`per call, main thread (${BATCH} distinct requests; pino ${pino.version})`);
row("decision-log record, no policy mask", (r) => plain.record(r));
row("decision-log record, policy mask (2 paths)", (r) => masked.record(r));
row("credential set of an input document (uncached)", (r) => credentialsOf(credentialValues(r.request)));
row("service-log summary line (pino formatting, no write)", summary);
if (written === 0) throw new Error("nothing was written");
