/**
 * Micro-benchmark of the protocol core (not a test): CPU cost of one authorization —
 * decode + verify → trivial handler → validateGrant → user JWT + signed response — with and
 * without xkey, in-process, no NATS. Plus the two primitives that dominate it.
 *
 * Run: `node --import tsx bench/core.bench.ts [iterations] [--json]`.
 * A runner can `import { runCoreBench }` instead.
 */
import { performance } from "node:perf_hooks";
import os from "node:os";
import { pathToFileURL } from "node:url";
import { createAuthorizer, type Handler } from "../src/callout/pipeline.js";
import { encodeJwt } from "../src/callout/jwt.js";
import { decodeRequest } from "../src/callout/decode.js";
import { Verifier } from "../src/callout/keys.js";
import { buildRequest, makeKeys, type BuiltRequest, type TestKeys } from "../test/support/index.js";

/** One authorize() variant. Times in microseconds. */
export interface AuthorizeFigures {
  label: string;
  iterations: number;
  mean_us: number;
  p50_us: number;
  p99_us: number;
  decode_us: number;
  handler_us: number;
  /** Includes grant validation and claims building. */
  sign_us: number;
  auths_per_s: number;
}

export interface CoreBenchResult {
  node: string;
  cpu: string;
  cpus: number;
  authorize: AuthorizeFigures[];
  /** Primitive costs, µs per op. */
  primitives: { decode_verify_us: number; encode_jwt_us: number };
}

const handler: Handler = (req) => ({
  account: "APP",
  pub: { allow: [`app.${req.connect_opts.user ?? "anon"}.>`] },
  sub: { allow: ["_INBOX.>"] },
  resp: { max: 1, ttl_ms: 5000 },
});

function requests(keys: TestKeys, sealed: boolean, n = 32): BuiltRequest[] {
  // Long exp so the run never outlives its requests; distinct user nkeys like real connects.
  return Array.from({ length: n }, () => buildRequest(keys, { sealed, timeoutSeconds: 3600 }));
}

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
const r1 = (n: number) => Math.round(n * 10) / 10;

async function benchAuthorize(
  keys: TestKeys,
  label: string,
  sealed: boolean,
  iterations: number,
  warmup: number,
): Promise<AuthorizeFigures> {
  const auth = createAuthorizer(
    {
      mode: "config",
      issuer: keys.issuer.signer,
      accounts: ["APP"],
      ...(sealed ? { xkey: keys.xkey.xkey } : {}),
    },
    handler,
  );
  const reqs = requests(keys, sealed);
  for (let i = 0; i < warmup; i++) {
    const r = reqs[i % reqs.length]!;
    const res = await auth(r.data, r.header);
    if (res.outcome.kind !== "allow") throw new Error(`unexpected outcome ${res.outcome.kind}`);
  }
  const per: number[] = [];
  const stage = { decode_us: 0, handler_us: 0, sign_us: 0 };
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    const r = reqs[i % reqs.length]!;
    const s = performance.now();
    const res = await auth(r.data, r.header);
    per.push((performance.now() - s) * 1000);
    stage.decode_us += res.timings.decode_us;
    stage.handler_us += res.timings.handler_us;
    stage.sign_us += res.timings.sign_us;
  }
  const mean = ((performance.now() - t0) * 1000) / iterations;
  per.sort((a, b) => a - b);
  return {
    label,
    iterations,
    mean_us: r1(mean),
    p50_us: r1(pct(per, 50)),
    p99_us: r1(pct(per, 99)),
    decode_us: r1(stage.decode_us / iterations),
    handler_us: r1(stage.handler_us / iterations),
    sign_us: r1(stage.sign_us / iterations),
    auths_per_s: Math.round(1e6 / mean),
  };
}

function benchPiece(fn: () => void, iterations: number, warmup: number): number {
  for (let i = 0; i < warmup; i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) fn();
  return r1(((performance.now() - t0) * 1000) / iterations);
}

/** Runs the whole core benchmark. */
export async function runCoreBench(iterations = 5000): Promise<CoreBenchResult> {
  const warmup = Math.min(1000, Math.ceil(iterations / 5));
  const keys = makeKeys();
  const authorize = [
    await benchAuthorize(keys, "authorize (plaintext)", false, iterations, warmup),
    await benchAuthorize(keys, "authorize (xkey sealed)", true, iterations, warmup),
  ];
  const plain = requests(keys, false, 1)[0]!;
  const verifier = new Verifier();
  const decode_verify_us = benchPiece(
    () => decodeRequest(plain.data, undefined, { verifier, expectedIssuer: keys.issuer.publicKey }),
    iterations,
    warmup,
  );
  const encode_jwt_us = benchPiece(
    () =>
      encodeJwt(
        { sub: plain.userNkey, exp: 2_000_000_000, nats: { type: "user", version: 2 } },
        keys.issuer.signer,
      ),
    iterations,
    warmup,
  );
  return {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? "unknown",
    cpus: os.cpus().length,
    authorize,
    primitives: { decode_verify_us, encode_jwt_us },
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const iterations = Number(args.find((a) => /^\d+$/.test(a)) ?? 5000);
  const res = await runCoreBench(iterations);
  if (args.includes("--json")) {
    console.log(JSON.stringify(res));
  } else {
    console.log(`core bench: node ${res.node}, ${res.cpu} x${res.cpus}, ${iterations} iterations`);
    for (const a of res.authorize) {
      console.log(
        `${a.label.padEnd(24)} ${a.mean_us.toFixed(1).padStart(7)} µs/auth  p50 ${a.p50_us}  p99 ${a.p99_us}  ` +
          `(decode ${a.decode_us}, handler ${a.handler_us}, validate+sign ${a.sign_us})  ≈ ${a.auths_per_s} auths/s/core`,
      );
    }
    console.log(
      `${"decode+verify request".padEnd(24)} ${res.primitives.decode_verify_us.toFixed(1).padStart(7)} µs/op`,
    );
    console.log(
      `${"encodeJwt (1 signature)".padEnd(24)} ${res.primitives.encode_jwt_us.toFixed(1).padStart(7)} µs/op`,
    );
  }
}
