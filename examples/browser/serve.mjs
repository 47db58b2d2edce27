/**
 * The browser demo's HTTP server (used by scripts/run.mjs and test/integration/browser.test.ts): serves
 * index.html, app.js, config.json ({ wsUrl }) and nats.js — the nats.js modules the page imports, bundled once
 * at start into a single browser ES module (npm ships nats.js as CommonJS only; esbuild's "browser" platform
 * fails the build if anything reaches a Node builtin). Loopback only; GET and HEAD only; nothing else is served.
 */
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const HERE = dirname(fileURLToPath(import.meta.url));

/** The page's nats.js bundle (ESM, browser platform). */
export async function bundleNats() {
  const r = await build({
    entryPoints: [join(HERE, "nats.js")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
    legalComments: "none",
  });
  return r.outputFiles[0].text;
}

/**
 * Starts the page server on host:port (0 = any free port). Resolves { url, close() }.
 * @param {{ host?: string, port?: number, wsUrl: string }} o
 */
export async function startDemoPage(o) {
  const host = o.host ?? "127.0.0.1";
  const files = {
    "/": ["text/html; charset=utf-8", readFileSync(join(HERE, "index.html"))],
    "/app.js": ["text/javascript; charset=utf-8", readFileSync(join(HERE, "app.js"))],
    "/nats.js": ["text/javascript; charset=utf-8", await bundleNats()],
    "/config.json": ["application/json", JSON.stringify({ wsUrl: o.wsUrl })],
  };
  files["/index.html"] = files["/"];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const f = files[path];
    if (!f || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res
      .writeHead(200, { "content-type": f[0], "cache-control": "no-store" })
      .end(req.method === "HEAD" ? undefined : f[1]);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, host, resolve);
  });
  const { port } = server.address();
  return {
    url: `http://${host}:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
