/**
 * The example policy set served the way `serve` wires it, against a real nats-server: nats-server in
 * config mode (configModeSetup: accounts APP and OPS), the policy engine (createPolicyEngine on a policy
 * directory, by default policies/) and the callout service in-process (startCallout with the allow-list
 * [APP, OPS]). Used by test/integration/example-policy.test.ts and test/integration/reload.test.ts.
 */
import { join } from "node:path";
import { createPolicyEngine, type PolicyEngineHandle, type ReloadEvent } from "../../src/policy/index.js";
import { startCallout, type CalloutService, type ResultEvent } from "../../src/service.js";
import { configModeSetup, startNatsServer, type NatsServer } from "./nats-server.js";
import { OPA_BIN, REPO } from "./paths.js";

/** The example policy directory of the repository. */
export const EXAMPLE_POLICIES = join(REPO, "policies");

export interface ExampleStackOptions {
  /** nats-server binary. */
  bin: string;
  /** Policy directory; default EXAMPLE_POLICIES. */
  dir?: string;
  /** Serve the server's monitoring endpoints (/connz …). */
  monitor?: boolean;
  /** Watch the policy directory for changes; default false. */
  watch?: boolean;
  /** The engine's content-hash poll interval (only with `watch`). */
  pollMs?: number;
  /** Subscribed to the policy store's reload events before the service starts. */
  onReload?: (e: ReloadEvent) => void;
  /** Every decision the service takes. */
  onResult: (e: ResultEvent) => void;
}

export interface ExampleStack {
  readonly server: NatsServer;
  readonly engine: PolicyEngineHandle;
  readonly svc: CalloutService;
  /** Stops the service, closes the engine, stops the server (in that order). */
  stop(): Promise<void>;
}

/** Starts nats-server, the policy engine and the service; on a failure stops what was already started. */
export async function startExampleStack(o: ExampleStackOptions): Promise<ExampleStack> {
  const cm = configModeSetup();
  const server = await startNatsServer({ bin: o.bin, config: cm.config, monitor: o.monitor ?? false });
  let engine: PolicyEngineHandle | undefined;
  try {
    engine = await createPolicyEngine({
      dir: o.dir ?? EXAMPLE_POLICIES,
      opaBin: OPA_BIN ?? "opa",
      watch: o.watch ?? false,
      pollMs: o.pollMs,
    });
    if (o.onReload) engine.store.on("reload", o.onReload);
    const svc = await startCallout({
      config: {
        mode: "config",
        nats: { servers: server.url, user: cm.callout.user, password: cm.callout.password },
        issuer: { seed: cm.issuer.seed },
        accounts: ["APP", "OPS"],
        log: { level: "warn" },
      },
      handler: engine.handler,
      onResult: o.onResult,
    });
    const started = engine;
    return {
      server,
      engine: started,
      svc,
      async stop() {
        await svc.stop();
        await started.close();
        await server.stop();
      },
    };
  } catch (err) {
    await engine?.close().catch(() => {});
    await server.stop().catch(() => {});
    throw err;
  }
}
