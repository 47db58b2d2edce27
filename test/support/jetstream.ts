/**
 * JetStream test stacks for the policy library policies/lib/jetstream.rego: a JetStream-enabled nats-server
 * (config mode: account APP with `jetstream: enabled`; operator mode: APP's account JWT re-signed by the
 * operator with JetStream limits), the policy engine on a policy directory (a fixture directory that uses the
 * library, or the example policies/) and the callout service in-process. Plus the client side: connection
 * options for a demo user in either mode (custom inbox prefix `_INBOX.<user>`), and the nats.go prober
 * (test/clients/go-jetstream) built with `go build` into build/ (skipped with a reason when Go is missing).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeAccount } from "@nats-io/jwt";
import { fromSeed } from "@nats-io/nkeys";
import type { NodeConnectionOptions } from "@nats-io/transport-node";
import { UNLIMITED_ACCOUNT_LIMITS } from "../../src/cli/init.js";
import { createPolicyEngine, type PolicyEngineHandle } from "../../src/policy/index.js";
import { startCallout, type CalloutService } from "../../src/service.js";
import type { ServiceConfig } from "../../src/config.js";
import {
  configModeSetup,
  operatorClientAuth,
  operatorModeSetup,
  operatorServiceConfig,
  startNatsServer,
  type NatsServer,
} from "./nats-server.js";
import { OPA_BIN, REPO } from "./paths.js";

const enc = new TextEncoder();

export type JsMode = "config" | "operator";

/** JetStream limits for an account JWT (-1 = unlimited; setting storage enables JetStream for the account). */
export const JETSTREAM_ACCOUNT_LIMITS = Object.freeze({
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
});

export interface JsStack {
  readonly mode: JsMode;
  readonly server: NatsServer;
  readonly engine: PolicyEngineHandle;
  readonly svc: CalloutService;
  /** Connect options for `user` logging in with `password` (auth + inbox prefix `_INBOX.<user>`). */
  clientOptions(user: string, password: string): NodeConnectionOptions;
  /** Sentinel creds file (operator mode only), for non-JS clients. */
  readonly sentinelCredsFile?: string;
  stop(): Promise<void>;
}

/** The jetstream block, in JetStream domain "hub" (so $JS.hub.API works too); the store lives in the stack's temp dir. */
function jetstreamBlock(dir: string): string {
  return `jetstream { store_dir: "${join(dir, "js")}", domain: hub, max_memory_store: 64MB, max_file_store: 256MB }`;
}

/**
 * Starts nats-server with JetStream (config or operator mode), the policy engine on `policyDir` and the
 * service (target accounts APP and OPS). On a failure stops what was already started.
 */
export async function startJetStreamStack(o: {
  bin: string;
  mode: JsMode;
  policyDir: string;
}): Promise<JsStack> {
  const dir = mkdtempSync(join(tmpdir(), "nats-js-"));
  let server: NatsServer | undefined;
  let engine: PolicyEngineHandle | undefined;
  try {
    let serviceConfig: ServiceConfig;
    let auth: (user: string, password: string) => Partial<NodeConnectionOptions>;
    let sentinelCredsFile: string | undefined;
    if (o.mode === "config") {
      const cm = configModeSetup();
      const config = cm.config.replace("APP {}", "APP { jetstream: enabled }");
      if (config === cm.config) throw new Error("configModeSetup no longer declares `APP {}`");
      server = await startNatsServer({ bin: o.bin, config: `${config}\n${jetstreamBlock(dir)}`, dir });
      serviceConfig = {
        mode: "config",
        nats: { servers: server.url, user: cm.callout.user, password: cm.callout.password },
        issuer: { seed: cm.issuer.seed },
        accounts: ["APP", "OPS"],
      };
      auth = (user, pass) => ({ user, pass });
    } else {
      const op = await operatorModeSetup({ signingKeys: true });
      // Re-sign APP's account JWT with JetStream limits (same keys, same signing key).
      const appJwt = await encodeAccount(
        "APP",
        fromSeed(enc.encode(op.app.key.seed)),
        {
          limits: { ...UNLIMITED_ACCOUNT_LIMITS, ...JETSTREAM_ACCOUNT_LIMITS },
          signing_keys: [op.app.signing.pub],
        },
        { signer: fromSeed(enc.encode(op.operator.seed)) },
      );
      const config = op.config.replace(op.app.jwt, appJwt);
      if (config === op.config) throw new Error("operator config does not preload APP's JWT");
      server = await startNatsServer({ bin: o.bin, config: `${config}\n${jetstreamBlock(dir)}`, dir });
      const calloutCreds = join(dir, "callout.creds");
      writeFileSync(calloutCreds, op.calloutCreds);
      sentinelCredsFile = join(dir, "sentinel.creds");
      writeFileSync(sentinelCredsFile, op.sentinelCreds);
      serviceConfig = operatorServiceConfig(op, server.url, calloutCreds);
      auth = operatorClientAuth(op);
    }
    engine = await createPolicyEngine({ dir: o.policyDir, opaBin: OPA_BIN ?? "opa", watch: false });
    const svc = await startCallout({
      config: {
        ...serviceConfig,
        log: { level: "warn" },
        expiry: { default_seconds: 600, max_seconds: 3600 },
      },
      handler: engine.handler,
    });
    const started = { server, engine };
    const stack: JsStack = {
      mode: o.mode,
      server,
      engine,
      svc,
      clientOptions: (user, password) => ({
        servers: started.server.url,
        name: user,
        inboxPrefix: `_INBOX.${user}`,
        reconnect: false,
        ...auth(user, password),
      }),
      async stop() {
        await svc.stop();
        await started.engine.close();
        await started.server.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    if (sentinelCredsFile) Object.assign(stack, { sentinelCredsFile });
    return stack;
  } catch (err) {
    await engine?.close().catch(() => {});
    await server?.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * A policy directory for tests: the library (policies/lib/subject.rego and jetstream.rego, copied, not the
 * tests) plus `files` (relative path → content), in a fresh temp dir. Returns its path.
 */
export function libraryPolicyDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "js-policy-"));
  mkdirSync(join(dir, "lib"));
  for (const f of ["subject.rego", "jetstream.rego"]) {
    copyFileSync(join(REPO, "policies", "lib", f), join(dir, "lib", f));
  }
  for (const [rel, content] of Object.entries(files)) writeFileSync(join(dir, rel), content);
  return dir;
}

// ---- the nats.go prober ----

export const GO_CLIENT_DIR = join(REPO, "test", "clients", "go-jetstream");

/** Builds the nats.go prober into build/go-jetstream once; a reason string when that is impossible. */
let goClient: { bin: string } | { skip: string } | undefined;

export function buildGoClient(): { bin: string } | { skip: string } {
  goClient ??= buildGoClientOnce();
  return goClient;
}

function buildGoClientOnce(): { bin: string } | { skip: string } {
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  if (go.status !== 0) return { skip: "go not found on PATH: the nats.go client tests are skipped" };
  const out = join(REPO, "build", "go-jetstream");
  mkdirSync(join(REPO, "build"), { recursive: true });
  execFileSync("go", ["build", "-o", out, "."], { cwd: GO_CLIENT_DIR, stdio: ["ignore", "pipe", "pipe"] });
  if (!existsSync(out)) throw new Error(`go build did not produce ${out}`);
  return { bin: out };
}
