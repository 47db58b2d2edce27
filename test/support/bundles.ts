/**
 * Test support for remote bundle sources:
 * - `opaBundle`: a policy directory built by the real `opa build --bundle -t wasm`, optionally signed
 *   (`--signing-key`, `--signing-alg`, `--claims-file`), with per-call data so each revision differs;
 * - `pemPair` / `testPki`: keys and certificates (node:crypto for keys, the openssl CLI for X.509);
 * - `startBundleServer`: a real HTTP(S) server speaking OPA's bundle service protocol — ETag / If-None-Match
 *   (304), long polling (`Prefer: wait=N` answered with `Content-Type: application/vnd.openpolicyagent.bundles`,
 *   held until the bundle changes or the wait ends), bearer-token auth, mutual TLS.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { keyPair } from "./keys.js";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { CAPABILITIES, FIXTURES } from "./opa.js";
import { OPA_BIN } from "./paths.js";

const roots: string[] = [];
/** A temporary directory removed by `cleanupBundleHelpers()`. */
export function tmpDir(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  roots.push(d);
  return d;
}
export function cleanupBundleHelpers(): void {
  for (const d of roots.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface OpaBundleOptions {
  /** data.json content (default: the basic fixture's). */
  data?: string;
  /** Fixture directory under test/fixtures/policies (default "basic"). */
  fixture?: string;
  entrypoints?: string[];
  revision?: string;
  signing?: { alg: string; key: string; claims?: object };
  extraFiles?: Record<string, string>;
  /** false: a Rego bundle (no policy.wasm), as OPA bundle servers usually serve. Default true. */
  wasm?: boolean;
}

/** Build a wasm bundle of a fixture directory with the real opa (bundle mode, so it can be signed). */
export function opaBundle(o: OpaBundleOptions = {}): Buffer {
  if (!OPA_BIN) throw new Error("opa not found");
  const dir = tmpDir("bundle-src-");
  cpSync(path.join(FIXTURES, o.fixture ?? "basic"), dir, { recursive: true });
  if (o.data !== undefined) writeFileSync(path.join(dir, "data.json"), o.data);
  for (const [n, c] of Object.entries(o.extraFiles ?? {})) writeFileSync(path.join(dir, n), c);
  const work = tmpDir("bundle-out-");
  const out = path.join(work, "bundle.tar.gz");
  const args = ["build", "-b"];
  if (o.wasm !== false) {
    args.push("-t", "wasm", "--capabilities", CAPABILITIES);
    for (const e of o.entrypoints ?? ["nats/authz/decision"]) args.push("-e", e);
  }
  if (o.revision !== undefined) args.push("-r", o.revision);
  if (o.signing) {
    args.push("--signing-alg", o.signing.alg, "--signing-key", o.signing.key);
    if (o.signing.claims) {
      const claims = path.join(work, "claims.json");
      writeFileSync(claims, JSON.stringify(o.signing.claims));
      args.push("--claims-file", claims);
    }
  }
  execFileSync(OPA_BIN, [...args, "-o", out, "."], { cwd: dir, stdio: "pipe" });
  return readFileSync(out);
}

/** A fresh RSA or EC key pair: the private key as a PEM file (for opa), the public key as PEM text. */
export function pemPair(type: "rsa" | "ec"): { privPath: string; pub: string } {
  const kp = keyPair(type === "rsa" ? { rsa: 2048 } : { ec: "P-256" });
  const privPath = path.join(tmpDir("bundle-key-"), "key.pem");
  writeFileSync(privPath, kp.priv.export({ type: "pkcs8", format: "pem" }));
  return { privPath, pub: kp.pub.export({ type: "spki", format: "pem" }).toString() };
}

export interface TestPki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI. */
export function testPki(): TestPki {
  const d = tmpDir("bundle-pki-");
  const ossl = (...args: string[]) => execFileSync("openssl", args, { cwd: d, stdio: "pipe" });
  ossl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=test-ca",
  );
  writeFileSync(path.join(d, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  for (const who of ["server", "client"]) {
    ossl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${who}.key`,
      "-out",
      `${who}.csr`,
      "-subj",
      `/CN=${who}`,
    );
    ossl(
      "x509",
      "-req",
      "-in",
      `${who}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${who}.pem`,
      "-days",
      "2",
      ...(who === "server" ? ["-extfile", "san.ext"] : []),
    );
  }
  const r = (f: string) => readFileSync(path.join(d, f), "utf8");
  return {
    ca: r("ca.pem"),
    serverCert: r("server.pem"),
    serverKey: r("server.key"),
    clientCert: r("client.pem"),
    clientKey: r("client.key"),
  };
}

export interface BundleServer {
  url: string;
  /** Serve these bytes from now on (wakes long-polling requests). */
  publish(bytes: Buffer): void;
  /** Make every request fail with this status (undefined = serve normally). */
  failWith(status: number | undefined): void;
  /** Request headers seen, in order. */
  readonly requests: http.IncomingHttpHeaders[];
  stop(): Promise<void>;
}

export async function startBundleServer(
  o: { token?: string; longPoll?: boolean; tls?: TestPki; path?: string; port?: number } = {},
): Promise<BundleServer> {
  let current: { bytes: Buffer; etag: string } | undefined;
  let failing: number | undefined;
  const waiters = new Set<() => void>();
  const requests: http.IncomingHttpHeaders[] = [];
  const route = o.path ?? "/bundles/authz/bundle.tar.gz";

  const handler: http.RequestListener = (req, res) => {
    requests.push(req.headers);
    if (req.url !== route) return void res.writeHead(404).end();
    if (o.token !== undefined && req.headers.authorization !== `Bearer ${o.token}`) {
      return void res.writeHead(401).end("unauthorized");
    }
    if (failing !== undefined) return void res.writeHead(failing).end();
    const ct = o.longPoll ? { "Content-Type": "application/vnd.openpolicyagent.bundles" } : {};
    const answer = () => {
      if (current === undefined) return void res.writeHead(404, ct).end();
      if (req.headers["if-none-match"] === current.etag)
        return void res.writeHead(304, { ...ct, ETag: current.etag }).end();
      res
        .writeHead(200, { ...ct, ETag: current.etag, "Content-Length": current.bytes.length })
        .end(current.bytes);
    };
    const wait = /wait=(\d+)/.exec(String(req.headers.prefer ?? ""));
    if (o.longPoll && wait && current !== undefined && req.headers["if-none-match"] === current.etag) {
      const timer = setTimeout(done, Number(wait[1]) * 1000);
      function done(): void {
        clearTimeout(timer);
        waiters.delete(done);
        if (!res.writableEnded && !res.destroyed) answer();
      }
      waiters.add(done);
      req.on("close", () => {
        clearTimeout(timer);
        waiters.delete(done);
      });
      return;
    }
    answer();
  };

  const server = o.tls
    ? https.createServer(
        {
          cert: o.tls.serverCert,
          key: o.tls.serverKey,
          ca: o.tls.ca,
          requestCert: true,
          rejectUnauthorized: true,
        },
        handler,
      )
    : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls ? "https" : "http"}://127.0.0.1:${port}${route}`,
    publish(bytes) {
      current = { bytes, etag: `"${createHash("sha256").update(bytes).digest("hex").slice(0, 32)}"` };
      for (const w of [...waiters]) w();
    },
    failWith(status) {
      failing = status;
    },
    requests,
    async stop() {
      for (const w of [...waiters]) w();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
