/**
 * A bundle source on the NATS Object Store: the service watches one object (bucket + name) and activates each
 * new version — the natural fleet transport for NATS users, with nothing else to run. Every replica watching
 * the object gets the upload within one round trip of JetStream's push (no polling delay).
 *
 * Start order avoids a lost update: the watch for *new* versions is opened first, then the current version is
 * read; a version seen twice is delivered once (deliverBundle compares content). The object's SHA-256 digest is
 * checked by the Object Store client on every read; the bundle itself is then checked like any download
 * (archive, manifest, signature when configured — src/policy/sources/deliver.ts) and atomically replaces the
 * bundle file the policy watcher loads.
 *
 * The connection is the caller's (a NATS connection whose user may read the bucket: `$JS.API.STREAM.INFO`,
 * consumer create and `$O.<bucket>.>` reads — not the callout user, whose rights are only the auth subject).
 * A missing bucket or object, a lost connection or a bad upload keep the last good bundle; the source retries
 * with backoff and reports its state in status().
 */
import { EventEmitter } from "node:events";
import type { NatsConnection } from "@nats-io/nats-core";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { deliverBundle, type Delivered, type DeliverOptions } from "./deliver.js";

export interface ObjectStoreSourceOptions extends DeliverOptions {
  nc: NatsConnection;
  bucket: string;
  name: string;
  /** Longest wait between retries after a failure (ms, default 30 000). */
  maxRetryMs?: number;
}

export interface ObjectStoreSourceStatus {
  kind: "object_store";
  bucket: string;
  name: string;
  revision?: string;
  /** The Object Store's version id (nuid) of the last delivered object. */
  nuid?: string;
  last_success?: string;
  last_error?: string;
  last_error_at?: string;
  consecutive_failures: number;
  watching: boolean;
}

export interface ObjectStoreSourceEvents {
  delivered: [Delivered];
  failed: [Error];
  /** A fetch succeeded, whether or not the object changed (ends a run of failures). */
  succeeded: [];
}

export class ObjectStoreBundleSource extends EventEmitter<ObjectStoreSourceEvents> {
  readonly #o: ObjectStoreSourceOptions;
  #stopped = true;
  #watching = false;
  #failures = 0;
  #revision: string | undefined;
  #nuid: string | undefined;
  #lastSuccess: Date | undefined;
  #lastError: { message: string; at: Date } | undefined;
  #stopWatch: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  constructor(opts: ObjectStoreSourceOptions) {
    super();
    this.#o = opts;
  }

  /** Open the bucket, deliver the current object, keep watching. Resolves after the first attempt. */
  async start(): Promise<void> {
    this.#stopped = false;
    let first!: () => void;
    const firstDone = new Promise<void>((r) => (first = r));
    this.#loop = this.#run(first);
    await firstDone;
  }

  async #run(firstDone: () => void): Promise<void> {
    while (!this.#stopped) {
      try {
        const os = await new Objm(this.#o.nc).open(this.#o.bucket);
        const watch = await os.watch({ includeHistory: false, ignoreDeletes: true });
        this.#stopWatch = () => watch.stop();
        this.#watching = true;
        await this.#fetch(os);
        firstDone();
        for await (const info of watch) {
          if (this.#stopped) break;
          if (info.name !== this.#o.name || info.deleted) continue;
          await this.#fetch(os);
        }
        if (!this.#stopped) throw new Error(`object store ${this.#o.bucket}: the watch ended`);
      } catch (err) {
        this.#watching = false;
        if (this.#stopped) break;
        this.#fail(err);
        firstDone();
        await this.#sleep(Math.min(this.#o.maxRetryMs ?? 30_000, 100 * 2 ** Math.min(this.#failures, 20)));
      }
    }
    this.#watching = false;
  }

  /** Read the object and deliver it; a bad upload is reported, the watch goes on. */
  async #fetch(os: ObjectStore): Promise<void> {
    try {
      const info = await os.info(this.#o.name);
      if (info === null || info.deleted) {
        throw new Error(`object store ${this.#o.bucket}: no object ${JSON.stringify(this.#o.name)}`);
      }
      const bytes = await os.getBlob(this.#o.name);
      if (bytes === null) throw new Error(`object store ${this.#o.bucket}: object ${this.#o.name} vanished`);
      const delivered = await deliverBundle(Buffer.from(bytes), this.#o);
      this.#failures = 0;
      this.#lastSuccess = new Date();
      this.#revision = delivered.revision;
      this.#nuid = info.nuid;
      this.emit("succeeded");
      if (delivered.changed) this.emit("delivered", delivered);
    } catch (err) {
      this.#fail(err);
    }
  }

  #fail(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.#failures++;
    this.#lastError = { message: e.message, at: new Date() };
    this.emit("failed", e);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  status(): ObjectStoreSourceStatus {
    return {
      kind: "object_store",
      bucket: this.#o.bucket,
      name: this.#o.name,
      ...(this.#revision !== undefined ? { revision: this.#revision } : {}),
      ...(this.#nuid !== undefined ? { nuid: this.#nuid } : {}),
      ...(this.#lastSuccess ? { last_success: this.#lastSuccess.toISOString() } : {}),
      ...(this.#lastError
        ? { last_error: this.#lastError.message, last_error_at: this.#lastError.at.toISOString() }
        : {}),
      consecutive_failures: this.#failures,
      watching: this.#watching,
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopWatch?.();
    this.#wake?.();
    await this.#loop;
  }
}

/** Upload a bundle as `name` in `bucket` (created when missing, with `history` versions kept). */
export async function uploadBundle(
  nc: NatsConnection,
  o: { bucket: string; name: string; bytes: Uint8Array; description?: string; history?: number },
): Promise<{ nuid: string; size: number; digest: string }> {
  const objm = new Objm(nc);
  let os: ObjectStore;
  try {
    os = await objm.open(o.bucket);
  } catch {
    os = await objm.create(o.bucket, { description: o.description ?? "nats-opa-callout policy bundles" });
  }
  const info = await os.putBlob({ name: o.name, description: o.description }, o.bytes);
  return { nuid: info.nuid, size: info.size, digest: info.digest };
}
