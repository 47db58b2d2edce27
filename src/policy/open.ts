/**
 * A policy engine from a resolved config section (`policy:`): the one createPolicyEngine() path for the runtime
 * (serve), `check` and `eval`, plus reload events for metrics, and the decision-log mask when
 * `policy.mask_entrypoint` is set.
 */
import type { ResolvedPolicy } from "../config.js";
import type { Handler } from "../callout/facts.js";
import type { Logger } from "../log.js";
import type { MaskFunction } from "../audit.js";
import { PolicyLoadError } from "../errors.js";
import { createPolicyEngine, type PolicyEngineHandle } from "./handler.js";
import { policyMask } from "./mask.js";
import type { PolicyStatus, ReloadEvent } from "./store.js";

export interface PolicyReload {
  ok: boolean;
  revision: string | undefined;
  at: Date;
}

export interface PolicyHandle {
  handler: Handler;
  engine: PolicyEngineHandle;
  status(): PolicyStatus;
  /** The decision-log mask (policy.mask_entrypoint evaluated on the deciding snapshot), when configured. */
  mask: MaskFunction | undefined;
  close(): Promise<void>;
}

/** The policy settings `check`/`eval` use when there is no service config. */
export function policySettings(
  p: { dir?: string; bundle?: string; entrypoint?: string; opaBinary?: string },
  watch = false,
): ResolvedPolicy {
  const out: ResolvedPolicy = {
    entrypoint: p.entrypoint ?? "nats/authz/decision",
    watch,
    pollSeconds: 0,
    opaBinary: p.opaBinary ?? process.env.OPA_BIN ?? "opa",
  };
  if (p.dir !== undefined) out.dir = p.dir;
  if (p.bundle !== undefined) out.bundle = p.bundle;
  return out;
}

/**
 * Load the policy exactly as `serve` does (throws PolicyLoadError with file:line when it does not compile or
 * verify). `onReload` sees the initial load and every later reload.
 */
export async function openPolicy(
  p: ResolvedPolicy,
  opts: { logger?: Logger; onReload?: (ev: PolicyReload) => void; watch?: boolean } = {},
): Promise<PolicyHandle> {
  const maskEp = p.maskEntrypoint;
  let engine: PolicyEngineHandle;
  try {
    engine = await createPolicyEngine({
      ...(p.dir !== undefined ? { dir: p.dir } : { bundle: p.bundle as string }),
      entrypoint: p.entrypoint,
      ...(maskEp !== undefined ? { extraEntrypoints: [maskEp] } : {}),
      opaBin: p.opaBinary,
      ...(p.evaluation !== undefined
        ? {
            workers: p.evaluation.workers,
            evalTimeoutMs: p.evaluation.timeoutMs,
            maxDataBytes: p.evaluation.maxDataBytes,
            memory: { maximum: p.evaluation.maxMemoryMb * 16 },
          }
        : {}),
      watch: opts.watch ?? p.watch,
      pollMs: p.pollSeconds * 1000,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
  } catch (e) {
    // opa says `entrypoint "nats/authz/mask" does not refer to a rule …`: name the setting that asked for it.
    if (
      maskEp !== undefined &&
      e instanceof PolicyLoadError &&
      e.message.includes(maskEp) &&
      /does not refer to a rule|does not list entrypoint|is not in the policy module/.test(e.message)
    ) {
      e.message = `${e.message} (policy.mask_entrypoint: define the rule or unset the setting)`;
    }
    throw e;
  }
  if (opts.onReload) {
    const f = opts.onReload;
    // The initial load happened inside createPolicyEngine; report it, then follow later reloads.
    const st = engine.store.status();
    f({ ok: true, revision: st.revision, at: st.loadedAt ? new Date(st.loadedAt) : new Date() });
    engine.store.on("reload", (e: ReloadEvent) =>
      f({ ok: e.result === "ok", revision: e.revision, at: new Date() }),
    );
  }
  return {
    handler: engine.handler,
    engine,
    status: () => engine.store.status(),
    mask: maskEp !== undefined ? policyMask(engine.store, maskEp) : undefined,
    close: () => engine.close(),
  };
}
