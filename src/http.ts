/**
 * The operator HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (process up), `/readyz` (200 only when
 * connected to NATS AND a policy is loaded; else 503 with the reasons as JSON) and `/status` (JSON detail).
 * Nothing here carries a secret: bodies are built from status values, never from requests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CONTENT_TYPE } from "./metrics.js";

export interface Readiness {
  ready: boolean;
  /** Why the service is not ready (empty when ready), e.g. ["nats: disconnected", "policy: not loaded"]. */
  reasons: string[];
  [key: string]: unknown;
}

export interface HttpServerOptions {
  /** "host:port", "[v6]:port" or ":port" (all interfaces). Port 0 picks a free port. */
  listen: string;
  /** Prometheus text; omitted → /metrics answers 404. */
  metrics?: () => string;
  readiness: () => Readiness;
  /** Extra JSON for /status (revision, reload times, …). */
  status?: () => Record<string, unknown>;
}

export interface HttpServer {
  /** The bound address, e.g. "127.0.0.1:9464". */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Split a listen address into host and port; throws TypeError naming the problem. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen.trim());
  if (!m) throw new TypeError(`listen address "${listen}" must be host:port, [v6]:port or :port`);
  const port = Number(m[3]);
  if (port > 65535) throw new TypeError(`listen address "${listen}": port out of range`);
  const host = m[1] ?? (m[2] === "" || m[2] === undefined ? "0.0.0.0" : m[2]);
  return { host, port };
}

function send(res: ServerResponse, code: number, type: string, body: string, head: boolean): void {
  res.writeHead(code, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(head ? undefined : body);
}

function json(res: ServerResponse, code: number, obj: unknown, head: boolean): void {
  send(res, code, "application/json; charset=utf-8", JSON.stringify(obj) + "\n", head);
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const { host, port } = parseListen(opts.listen);
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const head = req.method === "HEAD";
    if (req.method !== "GET" && !head) {
      res.setHeader("allow", "GET, HEAD");
      json(res, 405, { error: "method not allowed" }, false);
      return;
    }
    const path = (req.url ?? "/").split("?")[0];
    try {
      switch (path) {
        case "/metrics":
          if (!opts.metrics) {
            json(res, 404, { error: "metrics disabled" }, head);
            return;
          }
          send(res, 200, CONTENT_TYPE, opts.metrics(), head);
          return;
        case "/healthz":
        case "/livez":
          json(res, 200, { status: "ok" }, head);
          return;
        case "/readyz": {
          const r = opts.readiness();
          json(res, r.ready ? 200 : 503, r, head);
          return;
        }
        case "/status":
          json(res, 200, { ...(opts.status?.() ?? {}), readiness: opts.readiness() }, head);
          return;
        case "/":
          json(res, 200, { endpoints: ["/metrics", "/healthz", "/readyz", "/status"] }, head);
          return;
        default:
          json(res, 404, { error: "not found" }, head);
      }
    } catch (err) {
      // Never echo the error (it could in theory carry request data): a fixed body, the code for operators.
      json(res, 500, { error: "internal error", code: (err as { code?: unknown })?.code ?? "unknown" }, head);
    }
  };
  const server: Server = createServer(handle);
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === "IPv6" ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
  return {
    address: shown,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
