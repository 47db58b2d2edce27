/**
 * The operator HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (process up), `/readyz` (200 only when
 * connected to NATS AND a policy is loaded; else 503 with the reasons as JSON) and `/status` (JSON detail).
 * Nothing here carries a secret: bodies are built from status values, never from requests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { formatListenAddress, parseListenAddress, type ListenAddress } from "./config/listen.js";
import { CONTENT_TYPE } from "./metrics.js";

export interface Readiness {
  ready: boolean;
  /** Why the service is not ready (empty when ready), e.g. ["nats: disconnected", "policy: not loaded"]. */
  reasons: string[];
  [key: string]: unknown;
}

export interface HttpServerOptions {
  /** "host:port", "[v6]:port" or ":port" (all IPv4 interfaces), or a parsed address. Port 0 picks a free port. */
  listen: string | ListenAddress;
  /** Prometheus text; omitted → /metrics answers 404. */
  metrics?: () => string | Promise<string>;
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

/** Split a listen address into host and port (src/config/listen.ts); throws TypeError naming the problem. */
export function parseListen(listen: string): ListenAddress {
  const a = parseListenAddress(listen);
  if (a === null) throw new TypeError(`listen address ${JSON.stringify(listen)} turns the listener off`);
  return a;
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
  const { host, port } = typeof opts.listen === "string" ? parseListen(opts.listen) : opts.listen;
  let address = formatListenAddress({ host, port });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
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
          send(res, 200, CONTENT_TYPE, await opts.metrics(), head);
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
          json(res, 200, { ...(opts.status?.() ?? {}), listen: address, readiness: opts.readiness() }, head);
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
  const server: Server = createServer((req, res) => void handle(req, res));
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
  address = formatListenAddress({ host: addr.address, port: addr.port });
  return {
    address,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
