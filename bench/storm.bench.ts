/**
 * End-to-end connect storm: the same storm (N connections at concurrency C, each connect →
 * authorized → close) against one local nats-server per target, in the same run:
 *
 *   no-callout   plain config users, no callout at all (the ceiling)
 *   ours         this service (the real CLI) with a trivial allow policy
 *   ours-xkey    the same with xkey-sealed requests
 *   ours-example this service with the example policy over 10k users (real password checks), xkey
 *   ours-shipped the same as `make run` ships it: plus the decision log to a file, the policy's
 *                decision-log mask (nats/authz/mask) and info-level logging (allows are summarised at
 *                debug, so the storm writes no per-login service-log line)
 *   ours-dlog    trivial policy with the decision log written to a file and info-level logging
 *   go-callout   bench/peers/go-callout (stands in for synadia-io/callout.go)
 *   go-callout-xkey  the same with xkey-sealed requests (like for like with ours-example)
 *   go-opa       bench/peers/go-opa-callout: a Go callout embedding OPA's Go SDK on the same example policy,
 *                with xkey like ours-example
 *   py-callout   the PyPI nats-callout library (bench/peers/py-callout)
 *
 * Every target's service process is measured the same way: utime+stime from /proc/<pid>/stat
 * before and after the storm. Rounds interleave the targets so drift hits them alike.
 */
import { join } from "node:path";
import {
  buildGo,
  newKeys,
  secret,
  calloutConf,
  plainConf,
  startNatsServer,
  type NatsServer,
  startOurs,
  examplePolicyDir,
  trivialPolicyDir,
  procCpuSeconds,
  tempDir,
  type Child,
  stormGo,
  type StormResult,
} from "../test/support/index.js";
import { ensurePyVenv, startGoCallout, startGoOpaCallout, startPyCallout } from "./lib/peers.js";

export type TargetName =
  | "no-callout"
  | "ours"
  | "ours-xkey"
  | "ours-example"
  | "ours-shipped"
  | "ours-dlog"
  | "go-callout"
  | "go-callout-xkey"
  | "go-opa"
  | "py-callout";

export interface StormRun extends StormResult {
  target: TargetName;
  round: number;
  /** CPU seconds of the callout service process during the storm (null for no-callout). */
  service_cpu_s: number | null;
  /** CPU seconds of nats-server during the storm. */
  server_cpu_s: number;
}

export interface TargetStatus {
  target: TargetName;
  ok: boolean;
  /** Why the target could not run (install/start failure), verbatim enough to act on. */
  why?: string;
  detail?: string;
}

export interface StormBenchResult {
  sizes: number[];
  concurrency: number;
  rounds: number;
  driver: string;
  targets: TargetStatus[];
  runs: StormRun[];
}

/**
 * Targets whose server seals requests with xkey. The goal compares the example policy with xkey; with xkey
 * nats-server itself spends more per login (it seals every request and opens every response), so like for like is
 * ours-example against go-callout-xkey and go-opa, which run with xkey too.
 */
const XKEYED: ReadonlySet<TargetName> = new Set([
  "ours-xkey",
  "ours-example",
  "ours-shipped",
  "go-callout-xkey",
  "go-opa",
]);
const xkeyed = (t: TargetName): boolean => XKEYED.has(t);

interface Target {
  name: TargetName;
  server: NatsServer;
  service?: Child;
  user: string;
  pass: string;
  /** > 0: user `${user}${i % users}`, "{i}" in pass replaced likewise. */
  users?: number;
}

export async function stormBench(opts: {
  sizes: number[];
  concurrency: number;
  rounds: number;
  warmup: number;
  targets?: TargetName[];
  log: (msg: string) => void;
}): Promise<StormBenchResult> {
  const { log } = opts;
  const wanted = opts.targets ?? [
    "no-callout",
    "ours",
    "ours-xkey",
    "ours-example",
    "ours-shipped",
    "ours-dlog",
    "go-callout",
    "go-callout-xkey",
    "go-opa",
    "py-callout",
  ];
  const stormBin = await buildGo("bench/storm-go", "storm");
  const keys = newKeys();
  const work = tempDir("noc-storm-");
  const policyDir = trivialPolicyDir(join(work, "policy-trivial"));
  // One generated example policy (10k users) shared by ours-example and go-opa: the same Rego and data.
  let example: string | undefined;
  const exampleDir = (): string => (example ??= examplePolicyDir(join(work, "policy-example"), 10_000).dir);

  const statuses: TargetStatus[] = [];
  const targets: Target[] = [];
  const common = {
    calloutUser: "callout",
    calloutPass: keys.calloutPass,
    issuerSeed: keys.issuerSeed,
    account: "APP",
  };
  const clientPass = secret("client");

  for (const name of wanted) {
    let server: NatsServer | undefined;
    try {
      if (name === "no-callout") {
        server = await startNatsServer({ config: plainConf([{ user: "bench", pass: clientPass }]) });
        targets.push({ name, server, user: "bench", pass: clientPass });
        statuses.push({ target: name, ok: true });
        continue;
      }
      server = await startNatsServer({
        config: calloutConf({
          issuer: keys.issuerPub,
          calloutUser: "callout",
          calloutPass: keys.calloutPass,
          ...(xkeyed(name) ? { xkey: keys.xkeyPub } : {}),
        }),
      });
      let service: Child;
      let detail: string | undefined;
      let creds: Pick<Target, "user" | "pass" | "users"> = { user: "bench", pass: clientPass };
      if (name.startsWith("ours")) {
        const example = name === "ours-example" || name === "ours-shipped";
        const dlog = name === "ours-dlog" || name === "ours-shipped";
        if (example) {
          creds = { user: "bench-u", pass: "bench-pw-{i}", users: 10_000 };
          detail = "policies/ with 10,000 generated password users, xkey";
        }
        if (name === "ours-shipped")
          detail += "; decision log to a file masked by nats/authz/mask + info log level (as `make run`)";
        if (name === "ours-dlog")
          detail = "decision log to a file (one JSON event per request) + info log level";
        service = await startOurs({
          ...common,
          url: server.url,
          policyDir: example ? exampleDir() : policyDir,
          workDir: join(work, name),
          logLevel: dlog ? "info" : "warn",
          decisionLog: dlog ? join(work, `decisions-${name}.jsonl`) : "off",
          ...(name === "ours-shipped" ? { maskEntrypoint: "nats/authz/mask" } : {}),
          ...(xkeyed(name) ? { xkeySeed: keys.xkeySeed } : {}),
        });
      } else if (name === "go-callout" || name === "go-callout-xkey") {
        const bin = await buildGo("bench/peers/go-callout", "go-callout");
        service = await startGoCallout(bin, {
          ...common,
          url: server.url,
          ...(xkeyed(name) ? { xkeySeed: keys.xkeySeed } : {}),
        });
        detail = `nats.go v1.55.0, jwt/v2 v2.8.3, nkeys v0.4.17${xkeyed(name) ? ", xkey" : ""}`;
      } else if (name === "go-opa") {
        const bin = await buildGo("bench/peers/go-opa-callout", "go-opa-callout");
        service = await startGoOpaCallout(bin, {
          ...common,
          url: server.url,
          policyDir: exampleDir(),
          ...(xkeyed(name) ? { xkeySeed: keys.xkeySeed } : {}),
        });
        creds = { user: "bench-u", pass: "bench-pw-{i}", users: 10_000 };
        detail = `OPA Go SDK v1.22.4 (rego.PrepareForEval), policies/ with 10,000 generated password users${xkeyed(name) ? ", xkey" : ""}`;
      } else {
        const venv = await ensurePyVenv();
        if (!venv.ok) throw new Error(`venv/pip: ${venv.why}`);
        service = await startPyCallout(venv.python, { ...common, url: server.url });
        detail = venv.versions;
      }
      targets.push({ name, server, service, ...creds });
      statuses.push({ target: name, ok: true, ...(detail ? { detail } : {}) });
    } catch (err) {
      const why = (err instanceof Error ? err.message : String(err)).slice(0, 600);
      log(`  ${name}: not run: ${why}`);
      statuses.push({ target: name, ok: false, why });
      await server?.stop();
    }
  }

  const measure = async (t: Target, n: number, round: number): Promise<StormRun> => {
    const svc0 = t.service ? procCpuSeconds(t.service.pid) : 0;
    const srv0 = procCpuSeconds(t.server.pid());
    const r = await stormGo(stormBin, {
      url: t.server.url,
      n,
      concurrency: opts.concurrency,
      user: t.user,
      pass: t.pass,
      users: t.users ?? 0,
    });
    const svc1 = t.service ? procCpuSeconds(t.service.pid) : 0;
    const srv1 = procCpuSeconds(t.server.pid());
    return {
      ...r,
      target: t.name,
      round,
      service_cpu_s: t.service ? svc1 - svc0 : null,
      server_cpu_s: srv1 - srv0,
    };
  };

  const runs: StormRun[] = [];
  try {
    for (const t of targets) {
      const w = await stormGo(stormBin, {
        url: t.server.url,
        n: opts.warmup,
        concurrency: opts.concurrency,
        user: t.user,
        pass: t.pass,
        users: t.users ?? 0,
      });
      log(`  warm-up ${t.name}: ${w.ok}/${w.n} ok`);
    }
    for (const n of opts.sizes) {
      for (let round = 1; round <= opts.rounds; round++) {
        for (const t of targets) {
          const r = await measure(t, n, round);
          runs.push(r);
          log(
            `  N=${n} round ${round} ${t.name}: ${r.rate.toFixed(0)}/s ok=${r.ok} failed=${r.failed} ` +
              `p50=${r.p50_ms.toFixed(1)}ms p99=${r.p99_ms.toFixed(1)}ms svc_cpu=${r.service_cpu_s?.toFixed(2) ?? "-"}s`,
          );
          if (t.service && !t.service.alive())
            throw new Error(`${t.name} died: ${t.service.output().slice(-1000)}`);
        }
      }
    }
  } finally {
    for (const t of targets) {
      await t.service?.stop();
      await t.server.stop();
    }
  }
  return {
    sizes: opts.sizes,
    concurrency: opts.concurrency,
    rounds: opts.rounds,
    driver: "bench/storm-go (nats.go v1.55.0)",
    targets: statuses,
    runs,
  };
}
