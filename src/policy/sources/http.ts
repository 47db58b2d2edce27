/**
 * A bundle source that speaks OPA's bundle service protocol, so any OPA bundle server, object storage behind
 * HTTP(S), or CI pipeline that already serves OPA bundles works unchanged:
 *
 * - `GET <url>` of a `bundle.tar.gz`, with `If-None-Match: <etag>` once an ETag is known: 304 = unchanged,
 *   200 = a new bundle (its `ETag` remembered).
 * - Long polling: with `longPollSeconds` set the request carries `Prefer: wait=<s>`; a server that supports it
 *   answers `Content-Type: application/vnd.openpolicyagent.bundles` and holds the request until the bundle
 *   changes or the wait ends, and the next request follows at once. A server that does not is polled.
 * - Polling: after each answer, a random delay between `minDelayMs` and `maxDelayMs` (OPA: 60–120 s). After a
 *   failure, exponential backoff from 100 ms up to `maxDelayMs`, with jitter, so a down server is not hammered
 *   and a flapping one is picked up again quickly.
 * - Auth: a bearer token, and/or a TLS client certificate (PEM cert + key) with an optional CA bundle.
 *
 * Each new bundle goes through deliverBundle (checked, signature verified when configured, atomically written
 * to the bundle file the policy watcher loads). A failure of any kind keeps the last good bundle serving; the
 * source's status (last success, last error, consecutive failures) says so, and nothing flaps. Errors and
 * status never contain the token or the URL's credentials.
 */
import { EventEmitter } from "node:events";
import http from "node:http";
import https from "node:https";
import { maskUrlCredentials } from "../../config/url.js";
import { deliverBundle, type Delivered, type DeliverOptions } from "./deliver.js";

export const OPA_BUNDLE_CONTENT_TYPE = "application/vnd.openpolicyagent.bundles";

export interface HttpBundleSourceOptions extends DeliverOptions {
  /** Full URL of the bundle (e.g. https://bundles.example.com/bundles/authz/bundle.tar.gz). */
  url: string;
  /** Bearer token sent as `Authorization: Bearer …`. */
  token?: string;
  /** TLS: PEM CA bundle to trust, and a client certificate + key for mutual TLS. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Polling delay range after an answer (ms). Default 60 000–120 000, as OPA. */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Ask the server to hold the request up to this long (`Prefer: wait=`); 0/undefined = plain polling. */
  longPollSeconds?: number;
  /** Timeout of one request without long polling (ms, default 30 000). */
  requestTimeoutMs?: number;
  /** Largest download accepted (compressed bytes, default 64 MiB). */
  maxDownloadBytes?: number;
}

export interface SourceStatus {
  kind: "http";
  url: string;
  etag?: string;
  revision?: string;
  last_success?: string;
  last_error?: string;
  last_error_at?: string;
  consecutive_failures: number;
  long_polling: boolean;
}

export interface HttpSourceEvents {
  /** A new bundle was written to the target file. */
  delivered: [Delivered];
  /** A download or check failed; the last good bundle keeps serving. */
  failed: [Error];
  /** A check succeeded: a new bundle, the same bundle, or 304 Not Modified (ends a run of failures). */
  succeeded: [];
}

class HttpStatusError extends Error {}

export class HttpBundleSource extends EventEmitter<HttpSourceEvents> {
  readonly #o: Required<Pick<HttpBundleSourceOptions, "minDelayMs" | "maxDelayMs" | "requestTimeoutMs">> &
    HttpBundleSourceOptions;
  readonly #agent: http.Agent;
  #etag: string | undefined;
  #revision: string | undefined;
  #lastSuccess: Date | undefined;
  #lastError: { message: string; at: Date } | undefined;
  #failures = 0;
  #longPolling = false;
  #timer: NodeJS.Timeout | undefined;
  #request: http.ClientRequest | undefined;
  #stopped = true;
  #cycle: Promise<void> | undefined;

  constructor(opts: HttpBundleSourceOptions) {
    super();
    this.#o = { minDelayMs: 60_000, maxDelayMs: 120_000, requestTimeoutMs: 30_000, ...opts };
    if (this.#o.maxDelayMs < this.#o.minDelayMs) throw new RangeError("maxDelayMs must be >= minDelayMs");
    const u = new URL(opts.url);
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new RangeError("bundle url must be http(s)");
    this.#agent =
      u.protocol === "https:"
        ? new https.Agent({ keepAlive: true, ca: opts.tls?.ca, cert: opts.tls?.cert, key: opts.tls?.key })
        : new http.Agent({ keepAlive: true });
  }

  /** Start polling; the first request goes out at once. Resolves after that first attempt (success or not). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#poll();
  }

  /** Download once now (also used by start). Never throws: failures are in status() and the `failed` event. */
  async #poll(): Promise<void> {
    const run = this.#once().then(
      (next) => this.#schedule(next),
      () => this.#schedule(this.#backoff()),
    );
    this.#cycle = run;
    await run;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#poll(), ms);
  }

  #randomDelay(): number {
    const { minDelayMs, maxDelayMs } = this.#o;
    return minDelayMs + Math.random() * (maxDelayMs - minDelayMs);
  }

  #backoff(): number {
    const base = Math.min(this.#o.maxDelayMs, 100 * 2 ** Math.min(this.#failures, 20));
    return Math.max(50, base * (0.5 + Math.random() / 2));
  }

  /** One request; returns the delay before the next. */
  async #once(): Promise<number> {
    try {
      const res = await this.#get();
      if (res.status === 304) {
        this.#ok();
        return this.#longPolling ? 0 : this.#randomDelay();
      }
      const delivered = await deliverBundle(res.body, this.#o);
      if (res.etag !== undefined) this.#etag = res.etag;
      this.#revision = delivered.revision;
      this.#ok();
      if (delivered.changed) this.emit("delivered", delivered);
      return this.#longPolling ? 0 : this.#randomDelay();
    } catch (err) {
      if (this.#stopped) return 0;
      const e = err instanceof Error ? err : new Error(String(err));
      this.#failures++;
      this.#lastError = { message: e.message, at: new Date() };
      this.emit("failed", e);
      throw e;
    }
  }

  #ok(): void {
    this.#failures = 0;
    this.#lastSuccess = new Date();
    this.emit("succeeded");
  }

  #get(): Promise<{ status: number; body: Buffer; etag?: string }> {
    const o = this.#o;
    const headers: Record<string, string> = { "User-Agent": "nats-opa-callout" };
    if (this.#etag !== undefined) headers["If-None-Match"] = this.#etag;
    if (o.token !== undefined) headers.Authorization = `Bearer ${o.token}`;
    const wait = o.longPollSeconds ?? 0;
    if (wait > 0) headers.Prefer = `wait=${wait}`;
    const timeout = wait > 0 ? wait * 1000 + o.requestTimeoutMs : o.requestTimeoutMs;
    const limit = o.maxDownloadBytes ?? 64 * 2 ** 20;
    const mod = o.url.startsWith("https:") ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.get(o.url, { headers, agent: this.#agent, timeout }, (res) => {
        const status = res.statusCode ?? 0;
        this.#longPolling =
          wait > 0 && (res.headers["content-type"] ?? "").startsWith(OPA_BUNDLE_CONTENT_TYPE);
        if (status === 304) {
          res.resume();
          resolve({ status });
          return;
        }
        if (status !== 200) {
          res.resume();
          reject(new HttpStatusError(`bundle download from ${this.url}: HTTP ${status}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > limit) {
            req.destroy(new Error(`bundle download from ${this.url}: larger than ${limit} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on("end", () => {
          const etag = res.headers.etag;
          resolve({ status, body: Buffer.concat(chunks), ...(etag !== undefined ? { etag } : {}) });
        });
        res.on("error", reject);
      });
      this.#request = req;
      req.on("timeout", () => req.destroy(new Error(`bundle download from ${this.url}: timed out`)));
      req.on("error", (err) =>
        reject(
          err.message.startsWith("bundle download")
            ? err
            : new Error(`bundle download from ${this.url}: ${err.message}`),
        ),
      );
    }).finally(() => {
      this.#request = undefined;
    }) as Promise<{ status: number; body: Buffer; etag?: string }>;
  }

  /** The URL without credentials (for logs and status). */
  get url(): string {
    return maskUrlCredentials(this.#o.url);
  }

  status(): SourceStatus {
    return {
      kind: "http",
      url: this.url,
      ...(this.#etag !== undefined ? { etag: this.#etag } : {}),
      ...(this.#revision !== undefined ? { revision: this.#revision } : {}),
      ...(this.#lastSuccess ? { last_success: this.#lastSuccess.toISOString() } : {}),
      ...(this.#lastError
        ? { last_error: this.#lastError.message, last_error_at: this.#lastError.at.toISOString() }
        : {}),
      consecutive_failures: this.#failures,
      long_polling: this.#longPolling,
    };
  }

  /** Stop polling and abort a request in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#request?.destroy();
    await this.#cycle?.catch(() => undefined);
    this.#agent.destroy();
  }
}
