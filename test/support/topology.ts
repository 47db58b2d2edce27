/**
 * Shared pieces of the topology suite: scale, the replica process (the real CLI from source, configured
 * with the secrets `init` generated), a connect storm spread over several servers, and the per-server
 * split of decisions read back from each replica's decision log.
 *
 * TOPOLOGY_SCALE=full selects the full sizes; anything else the reduced ones (`make test`).
 */
import { join } from "node:path";
import { secretOf, type GeneratedTopology } from "./cluster.js";
import { trivialPolicyDir } from "./policies.js";
import { readDecisions } from "./reliability.js";
import { startOurs, type OursChild } from "./service.js";
import { stormTs, type Creds, type StormResult } from "./storm.js";

export const TOPOLOGY_FULL = process.env.TOPOLOGY_SCALE === "full";
export const TOPOLOGY_SCALE_NAME = TOPOLOGY_FULL ? "full" : "reduced";

export const CLIENT_PASS = "topology-client-pass";
/** Any user with CLIENT_PASS (the allow-all policy admits every login; the point here is routing). */
export const creds = (i: number): Creds => ({ user: `user${i % 100}`, pass: CLIENT_PASS });

/** A policy directory with the allow-all policy: `<dir>/policy`. */
export function topologyPolicyDir(dir: string): string {
  return trivialPolicyDir(join(dir, "policy"));
}

export interface Replica {
  label: string;
  child: OursChild;
  decisionLog: string;
}

/** A replica (the real CLI) connected to `url` only, with the hub's generated keys (or the leaf's, `prefix` "leaf_"). */
export async function startReplica(
  g: GeneratedTopology,
  label: string,
  url: string,
  policyDir: string,
  prefix = "",
): Promise<Replica> {
  const decisionLog = join(g.dir, `decisions-${label}.jsonl`);
  const child = await startOurs({
    url,
    calloutUser: "callout",
    calloutPass: secretOf(g, `${prefix}callout_password`),
    issuerSeed: secretOf(g, `${prefix}issuer_seed`),
    xkeySeed: secretOf(g, `${prefix}xkey_seed`),
    account: "APP",
    policyDir,
    decisionLog,
    logLevel: "info",
    workDir: join(g.dir, `svc-${label}`),
    fromSource: true,
  });
  return { label, child, decisionLog };
}

/** Server name → number of decisions, from a replica's decision log. */
export function decisionsByServer(r: Replica): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of readDecisions(r.decisionLog)) {
    const name = (e.server as { name?: string } | undefined)?.name ?? "?";
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

/** Requests a replica dropped unanswered (decision events with `dropped`), by reason. */
export function dropsOf(r: Replica): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of readDecisions(r.decisionLog)) {
    if (typeof e.dropped === "string") out[e.dropped] = (out[e.dropped] ?? 0) + 1;
  }
  return out;
}

export interface SpreadStorm {
  ok: number;
  failed: number;
  errors: Record<string, number>;
  results: StormResult[];
}

/** `n` logins at `concurrency`, spread evenly over `urls`; `onResult` sees every attempt. */
export async function spreadStorm(o: {
  urls: string[];
  n: number;
  concurrency: number;
  onResult?: (ok: boolean) => void;
}): Promise<SpreadStorm> {
  const k = o.urls.length;
  const results = await Promise.all(
    o.urls.map((url, i) =>
      stormTs({
        url,
        n: Math.floor(o.n / k) + (i < o.n % k ? 1 : 0),
        concurrency: Math.max(1, Math.floor(o.concurrency / k)),
        creds,
        timeoutMs: 15_000,
        onResult: (_i, ok) => o.onResult?.(ok),
      }),
    ),
  );
  const errors: Record<string, number> = {};
  for (const r of results) for (const [m, c] of Object.entries(r.errors)) errors[m] = (errors[m] ?? 0) + c;
  return {
    ok: results.reduce((a, r) => a + r.ok, 0),
    failed: results.reduce((a, r) => a + r.failed, 0),
    errors,
    results,
  };
}
