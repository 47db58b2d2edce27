/**
 * A policy served the way `serve` wires it, against a real nats-server: nats-server in config mode
 * (configModeSetup: accounts APP and OPS), the policy engine (createPolicyEngine on a policy directory, by
 * default the example policy set policies/, or on a prebuilt bundle) and the callout service in-process
 * (startCallout, by default with the allow-list [APP, OPS]).
 */
import { join } from "node:path";
import { createPolicyEngine, type PolicyEngineHandle, type ReloadEvent } from "../../src/policy/index.js";
import { startCallout, type CalloutService, type ResultEvent } from "../../src/service.js";
import type { ServiceConfig } from "../../src/config.js";
import type { Logger } from "../../src/log.js";
import { configModeSetup, startNatsServer, type NatsServer } from "./nats-server.js";
import { OPA_BIN, REPO } from "./paths.js";

/** The example policy directory of the repository. */
export const EXAMPLE_POLICIES = join(REPO, "policies");

export interface ExampleStackOptions {
  /** nats-server binary. */
  bin: string;
  /** Policy directory; default EXAMPLE_POLICIES (unless `bundle`). */
  dir?: string;
  /** A prebuilt wasm bundle instead of a directory, with its entrypoint. */
  bundle?: { path: string; entrypoint: string };
  /** Serve the server's monitoring endpoints (/connz …). */
  monitor?: boolean;
  /** Also listen for websocket clients. */
  websocket?: boolean;
  /** The service's account allow-list; default [APP, OPS]. */
  accounts?: string[];
  /** The service's log config; default level warn. `null`: none (the service default). */
  log?: ServiceConfig["log"] | null;
  /** The service's logger. */
  logger?: Logger;
  /** Watch the policy directory for changes; default false. */
  watch?: boolean;
  /** The engine's content-hash poll interval (only with `watch`). */
  pollMs?: number;
  /** Subscribed to the policy store's reload events before the service starts. */
  onReload?: (e: ReloadEvent) => void;
  /** Every decision the service takes. */
  onResult: (e: ResultEvent) => void;
  /** The server's authorization.timeout, seconds (default authTimeoutSeconds()). */
  authTimeoutS?: number;
  /** The engine's evaluation deadline, ms (default: the engine's, 500). */
  evalTimeoutMs?: number;
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
  const cm = configModeSetup(o.authTimeoutS !== undefined ? { timeout: o.authTimeoutS } : {});
  const server = await startNatsServer({
    bin: o.bin,
    config: cm.config,
    monitor: o.monitor ?? false,
    websocket: o.websocket ?? false,
  });
  let engine: PolicyEngineHandle | undefined;
  try {
    engine = o.bundle
      ? await createPolicyEngine({
          bundle: o.bundle.path,
          entrypoint: o.bundle.entrypoint,
          watch: o.watch ?? false,
          pollMs: o.pollMs,
          ...(o.evalTimeoutMs !== undefined ? { evalTimeoutMs: o.evalTimeoutMs } : {}),
        })
      : await createPolicyEngine({
          dir: o.dir ?? EXAMPLE_POLICIES,
          opaBin: OPA_BIN ?? "opa",
          watch: o.watch ?? false,
          pollMs: o.pollMs,
          ...(o.evalTimeoutMs !== undefined ? { evalTimeoutMs: o.evalTimeoutMs } : {}),
        });
    if (o.onReload) engine.store.on("reload", o.onReload);
    const log: ServiceConfig["log"] | null = o.log === undefined ? { level: "warn" } : o.log;
    const svc = await startCallout({
      config: {
        mode: "config",
        nats: { servers: server.url, user: cm.callout.user, password: cm.callout.password },
        issuer: { seed: cm.issuer.seed },
        accounts: o.accounts ?? ["APP", "OPS"],
        ...(log === null ? {} : { log }),
      },
      handler: engine.handler,
      onResult: o.onResult,
      ...(o.logger ? { logger: o.logger } : {}),
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
