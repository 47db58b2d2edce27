/**
 * Starts the configured remote bundle source (policy.source.*) for a service: an OPA bundle server over HTTP(S)
 * or a NATS Object Store object. Either one writes each verified bundle to policy.bundle, which the policy watcher
 * loads like any bundle file; the file is also the last good copy, so a restart while the source is down still
 * serves.
 *
 * At start the first download is awaited: when it fails and no earlier copy exists, start fails with the
 * source's error (nothing to serve); when an earlier copy exists, the service starts on it and the source keeps
 * retrying. Logs: one line per new bundle, the first failure of a run of failures (warn) and the recovery (info)
 * — a source that stays down does not flood the log.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import type { ResolvedNats, ResolvedPolicy, ResolvedSigning } from "../../config/types.js";
import { PolicyLoadError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { SigningAlgorithm, VerificationConfig } from "../signature.js";
import { readTarGz } from "../tar.js";
import { HttpBundleSource, type SourceStatus } from "./http.js";
import { ObjectStoreBundleSource, type ObjectStoreSourceStatus } from "./object-store.js";

export type PolicySourceStatus = SourceStatus | ObjectStoreSourceStatus;

export interface PolicySourceHandle {
  status(): PolicySourceStatus;
  /**
   * The watcher activated `revision`: when policy.bundle still holds that revision, keep a copy as
   * `<policy.bundle>.last-good` (a downloaded bundle can pass its signature check yet fail the smoke evaluation; the
   * file then holds it, and a restart must not depend on it).
   */
  rememberActivated(revision: string): Promise<void>;
  /** Put the last activated copy back into policy.bundle; false when there is none (or it is already there). */
  restoreLastGood(): Promise<boolean>;
  stop(): Promise<void>;
}

/** The revision the policy loader gives a bundle file: its manifest revision, else a hash of the bytes. */
function bundleRevision(bytes: Buffer): string {
  try {
    const m = JSON.parse(readTarGz(bytes).get("/.manifest")?.toString("utf8") ?? "{}") as {
      revision?: unknown;
    };
    if (typeof m.revision === "string" && m.revision !== "") return m.revision;
  } catch {
    /* not readable: no manifest revision */
  }
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

/** Atomically write `bytes` to `file` (temporary sibling + rename). */
async function replaceFile(file: string, bytes: Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, bytes, { mode: 0o600 });
  await rename(tmp, file);
}

/** The verification settings for the signature checker. */
export function verificationConfig(s: ResolvedSigning): VerificationConfig {
  return {
    keys: { [s.keyId]: { algorithm: s.algorithm as SigningAlgorithm, key: s.key.reveal() } },
    keyId: s.keyId,
    ...(s.scope !== undefined ? { scope: s.scope } : {}),
    excludeFiles: s.excludeFiles,
  };
}

type Source = HttpBundleSource | ObjectStoreBundleSource;

/** Logs deliveries, the start and the end of a run of failures; returns a function that stops observing. */
function observe(source: Source, logger: Logger, describe: () => Record<string, unknown>): () => void {
  let failing = false;
  source.on("delivered", (d) => {
    logger.info(
      { event: "bundle_downloaded", ...describe(), revision: d.revision, sha256: d.sha256 },
      "new policy bundle",
    );
  });
  source.on("failed", (e) => {
    if (!failing)
      logger.warn(
        { event: "bundle_source_failed", ...describe(), error: e.message },
        "policy source failing; keeping the last good bundle",
      );
    failing = true;
  });
  // Any success ends a run of failures, including one that brought no new bundle (304, same object).
  source.on("succeeded", () => {
    if (failing) logger.info({ event: "bundle_source_recovered", ...describe() }, "policy source recovered");
    failing = false;
  });
  return () => source.removeAllListeners();
}

/**
 * nats.js options of the policy source's own Object Store connection: its servers (default: nats.servers), auth and
 * the handshake timeout of nats.connect_timeout_ms (nats.js's own default is 20 s). It waits for a first connect
 * only when policy.bundle already holds a copy to serve meanwhile.
 */
export function objectStoreConnectionOptions(
  src: Extract<NonNullable<ResolvedPolicy["source"]>, { kind: "object_store" }>,
  nats: ResolvedNats,
  haveCopy: boolean,
): NodeConnectionOptions {
  const auth =
    src.auth.kind === "creds"
      ? { authenticator: credsAuthenticator(new TextEncoder().encode(src.auth.creds.reveal())) }
      : src.auth.kind === "user"
        ? { user: src.auth.user, pass: src.auth.password.reveal() }
        : {};
  return {
    servers: src.servers ?? nats.servers,
    name: `${nats.name}-policy-source`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    timeout: nats.connectTimeoutMs,
    waitOnFirstConnect: haveCopy,
    ...(nats.tls ? { tls: { ...nats.tls } } : {}),
    ...auth,
  };
}

/**
 * Start `policy.source` (undefined when none is configured). Throws PolicyLoadError when the first download
 * failed and policy.bundle holds no earlier copy.
 */
export async function startPolicySource(
  p: ResolvedPolicy,
  nats: ResolvedNats,
  logger: Logger,
): Promise<PolicySourceHandle | undefined> {
  const src = p.source;
  if (src === undefined || p.bundle === undefined) return undefined;
  const target = p.bundle;
  const signing = p.signing !== undefined ? verificationConfig(p.signing) : undefined;
  let source: Source;
  let nc: NatsConnection | undefined;
  if (src.kind === "http") {
    source = new HttpBundleSource({
      url: src.url,
      target,
      ...(signing ? { signing } : {}),
      ...(src.token ? { token: src.token.reveal() } : {}),
      ...(src.tls
        ? {
            tls: {
              ...(src.tls.ca ? { ca: src.tls.ca } : {}),
              ...(src.tls.cert ? { cert: src.tls.cert } : {}),
              ...(src.tls.key ? { key: src.tls.key.reveal() } : {}),
            },
          }
        : {}),
      minDelayMs: src.minDelaySeconds * 1000,
      maxDelayMs: src.maxDelaySeconds * 1000,
      longPollSeconds: src.longPollSeconds,
    });
  } else {
    try {
      nc = await connect(objectStoreConnectionOptions(src, nats, existsSync(target)));
    } catch (err) {
      throw new PolicyLoadError(
        `policy.source.object_store: cannot connect to NATS (${err instanceof Error ? err.message : String(err)}) and policy.bundle ${target} holds no earlier copy`,
        { cause: err },
      );
    }
    source = new ObjectStoreBundleSource({
      nc,
      bucket: src.bucket,
      name: src.name,
      target,
      ...(signing ? { signing } : {}),
    });
  }
  const describe = () => {
    const st = source.status();
    return st.kind === "http"
      ? { source: "http", url: st.url }
      : { source: "object_store", bucket: st.bucket, name: st.name };
  };
  const unobserve = observe(source, logger, describe);
  await source.start();
  const first = source.status();
  if (first.consecutive_failures > 0 && !existsSync(target)) {
    unobserve();
    await source.stop();
    await nc?.close();
    throw new PolicyLoadError(
      `policy.bundle ${target} does not exist yet and the first download failed: ${first.last_error ?? "unknown error"}`,
    );
  }
  const lastGood = `${target}.last-good`;
  return {
    status: () => source.status(),
    async rememberActivated(revision) {
      try {
        const bytes = await readFile(target);
        if (bundleRevision(bytes) !== revision) return; // a newer download is already waiting for the watcher
        const kept = await readFile(lastGood).catch(() => undefined);
        if (kept === undefined || !kept.equals(bytes)) await replaceFile(lastGood, bytes);
      } catch (err) {
        logger.warn(
          { event: "bundle_last_good", error: (err as Error).message },
          "cannot keep the last good bundle copy",
        );
      }
    },
    async restoreLastGood() {
      const kept = await readFile(lastGood).catch(() => undefined);
      if (kept === undefined) return false;
      const current = await readFile(target).catch(() => undefined);
      if (current !== undefined && current.equals(kept)) return false;
      await replaceFile(target, kept);
      return true;
    },
    async stop() {
      unobserve();
      await source.stop();
      await nc?.close();
    },
  };
}
