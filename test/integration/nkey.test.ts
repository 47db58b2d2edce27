/**
 * Proof before trust, against real nats-server (2.15 and 2.10) with real nats.js clients:
 *
 * - config mode as `init` writes it (its unusable nkey user makes the server send nonces) with the example
 *   policy: the audit service's nkey (nkeyAuthenticator) and a creds file with the same key are admitted by the
 *   PROVEN key (derived.nkey); its public key with a garbage signature, with another key's signature, with no
 *   signature, and a malformed nkey are refused, and so is a login as the nonce user itself;
 * - config mode without any nkey user: no nonce, so the same valid client is refused (unproven_nkey) and the
 *   service warns once that the server sends no nonce;
 * - operator mode: what the server sends (nonce, sentinel JWT, nkey, sig) and that the service proves the
 *   sentinel's key the same way; forged sentinel signatures never reach the callout.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type Authenticator,
  type NatsConnection,
  type NKeyAuth,
} from "@nats-io/transport-node";
import { createAccount, createUser, fromSeed } from "@nats-io/nkeys";
import { encodeUser, fmtCreds } from "@nats-io/jwt";
import { runInit } from "../../src/cli/init.js";
import { loadServeConfig } from "../../src/cli/serve.js";
import { createPolicyEngine, type PolicyEngineHandle } from "../../src/policy/index.js";
import { startCallout, type CalloutService, type ResultEvent } from "../../src/service.js";
import { createLogger } from "../../src/log.js";
import { AuthError } from "../../src/errors.js";
import type { AuthorizationRequest } from "../../src/types.js";
import {
  operatorModeSetup,
  serverMatrix,
  startNatsServer,
  type NatsServer,
  until,
  freePort,
  OPA_BIN,
  REPO,
  EXAMPLE_POLICIES,
  startExampleStack,
  type ExampleStack,
} from "../support/index.js";

const te = new TextEncoder();
/** The example policy's nkey service user (policies/callout/nkeys/data.json). */
const AUDIT_SEED = readFileSync(join(REPO, "policies", "testdata", "audit-svc.TEST-ONLY.nk"), "utf8").trim();
const audit = fromSeed(te.encode(AUDIT_SEED));
const AUDIT_KEY = audit.getPublicKey();
const other = createUser();
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** A client that claims `nkey` and signs the nonce with `signer` (or sends `sig` as given). */
function forged(nkey: string, sig: ((nonce: string) => string) | string | undefined): Authenticator {
  return (nonce?: string) => {
    const s = typeof sig === "function" ? (nonce ? sig(nonce) : undefined) : sig;
    // NKeyAuth types sig as required; a hostile client simply leaves it out.
    return (s === undefined ? { nkey } : { nkey, sig: s }) as NKeyAuth;
  };
}

/** Connects once (no reconnect); returns undefined on success (and closes), else the error message. */
async function tryConnect(url: string, authenticator: Authenticator): Promise<string | undefined> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ servers: url, authenticator, reconnect: false, timeout: 10_000 });
    await nc.flush();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await nc?.close();
  }
}

interface Collected {
  results: ResultEvent[];
  log: string[];
}

function collector(): Collected & {
  onResult: (e: ResultEvent) => void;
  logger: ReturnType<typeof createLogger>;
} {
  const results: ResultEvent[] = [];
  const log: string[] = [];
  return {
    results,
    log,
    onResult: (e) => void results.push(e),
    logger: createLogger({ level: "info", destination: { write: (s: string) => void log.push(s) } }),
  };
}

const last = (c: Collected) => c.results[c.results.length - 1]!;
/** Results arrive once the reply's fate is known, just after the client saw it: wait for the one after `n`. */
const decided = (c: Collected, n: number) => until(() => c.results.length > n, "the login's decision");
const outcomeOf = (e: ResultEvent) => {
  const o = e.result.outcome;
  return o.kind === "allow" ? "allow" : `${o.kind}:${o.code}:${o.reason}`;
};

for (const sb of serverMatrix()) {
  const skip = sb.missing ? `nats-server ${sb.label} missing (make tools)` : OPA_BIN ? false : "opa missing";

  describe(
    `nkey proof, config mode as init writes it (nats-server ${sb.version || sb.label})`,
    { skip },
    () => {
      let dir: string;
      let server: NatsServer;
      let engine: PolicyEngineHandle;
      let svc: CalloutService;
      let nonceUser: string;
      const c = collector();

      before(async () => {
        dir = mkdtempSync(join(tmpdir(), "nkey-init-"));
        const port = await freePort();
        const init = await runInit({
          dir,
          operator: false,
          websocket: false,
          wsPort: 0,
          host: "127.0.0.1",
          port,
          accounts: ["APP", "OPS"],
          xkey: true,
          policyDir: EXAMPLE_POLICIES,
          metricsListen: "127.0.0.1:0",
          timeout: 5,
          force: false,
          bcryptCost: 4,
        });
        const conf = readFileSync(join(dir, "nats-server.conf"), "utf8");
        nonceUser = /nkey: "(U[A-Z0-9]{55})"/.exec(conf)?.[1] ?? "";
        assert.ok(nonceUser, "init writes an nkey user");
        assert.match(
          conf,
          /auth_users: \[ callout \]/,
          "the nkey user is not an auth user (never skips the callout)",
        );
        assert.ok(
          !Object.values(init.secrets).some((s) => s.startsWith("SU")),
          "its seed is not kept anywhere",
        );
        // startNatsServer writes its own listen line on the same port.
        server = await startNatsServer({ bin: sb.bin, config: conf.replace(/^listen: .*$/m, "") });
        const cfg = loadServeConfig({ config: join(dir, "service.yaml"), overrides: [] }, {});
        engine = await createPolicyEngine({ dir: EXAMPLE_POLICIES, opaBin: OPA_BIN ?? "opa", watch: false });
        svc = await startCallout({
          config: { ...cfg, nats: { ...cfg.nats, servers: [server.url] } },
          handler: engine.handler,
          onResult: c.onResult,
          logger: c.logger,
        });
      });
      after(async () => {
        await svc?.stop();
        await engine?.close();
        await server?.stop();
        rmSync(dir, { recursive: true, force: true });
      });

      test("the server sends nonces: no no_nonce warning", () => {
        assert.ok(!c.log.join("").includes('"no_nonce"'), c.log.join(""));
      });

      test("password logins are unaffected by the nonce", async () => {
        const n = c.results.length;
        const nc = await connect({ servers: server.url, user: "bob", pass: "bob-pw", reconnect: false });
        await nc.close();
        await decided(c, n);
        assert.equal(outcomeOf(last(c)), "allow");
        assert.equal(
          last(c).result.request?.client_info.nonce,
          undefined,
          "no signature, so no nonce forwarded",
        );
      });

      test("nkeyAuthenticator with the audit service's seed is admitted by its proven key", async () => {
        const n = c.results.length;
        assert.equal(await tryConnect(server.url, nkeyAuthenticator(te.encode(AUDIT_SEED))), undefined);
        await decided(c, n);
        const ev = last(c);
        assert.equal(outcomeOf(ev), "allow");
        assert.equal(ev.result.request?.proven_nkey, AUDIT_KEY);
        assert.equal((ev.result.facts.input as { derived: { nkey?: string } }).derived.nkey, AUDIT_KEY);
        assert.equal(ev.result.issued?.name, "audit-svc");
      });

      test("a creds file with the same key is admitted (its JWT is discarded in config mode)", async () => {
        const jwt = await encodeUser("audit-svc", audit, createAccount());
        const n = c.results.length;
        assert.equal(await tryConnect(server.url, credsAuthenticator(fmtCreds(jwt, audit))), undefined);
        await decided(c, n);
        assert.equal(outcomeOf(last(c)), "allow");
        assert.equal(last(c).result.request?.connect_opts.jwt, undefined, "config mode drops the client JWT");
      });

      test("base64url signatures (Go and Python clients) are proven too", async () => {
        const url = forged(AUDIT_KEY, (n) => Buffer.from(audit.sign(te.encode(n))).toString("base64url"));
        const n = c.results.length;
        assert.equal(await tryConnect(server.url, url), undefined);
        await decided(c, n);
        assert.equal(outcomeOf(last(c)), "allow");
      });

      const refusals: [string, Authenticator, string][] = [
        [
          "its public key with a garbage signature",
          forged(AUDIT_KEY, "Z2FyYmFnZQ=="),
          "deny:nkey_proof_failed:nkey_proof_failed: connect_opts.sig",
        ],
        [
          "its public key with another key's signature",
          forged(AUDIT_KEY, (n) => b64(other.sign(te.encode(n)))),
          "deny:nkey_proof_failed:nkey_proof_failed: connect_opts.sig",
        ],
        ["its public key with no signature", forged(AUDIT_KEY, undefined), "deny:auth_denied:unproven_nkey"],
        [
          "a malformed nkey",
          forged("UABC", (n) => b64(audit.sign(te.encode(n)))),
          "deny:nkey_proof_failed:nkey_proof_failed: connect_opts.nkey",
        ],
      ];
      for (const [what, auth, expected] of refusals) {
        test(`refused: ${what}`, async () => {
          const n = c.results.length;
          assert.match((await tryConnect(server.url, auth)) ?? "admitted", /Authorization Violation/i);
          await decided(c, n);
          assert.equal(c.results.length, n + 1, "one decision");
          assert.equal(outcomeOf(last(c)), expected);
          assert.equal(last(c).result.request?.proven_nkey, undefined);
        });
      }

      test("the nonce user's own key cannot log in without its (discarded) seed", async () => {
        assert.match(
          (await tryConnect(server.url, forged(nonceUser, "Z2FyYmFnZQ=="))) ?? "admitted",
          /Authorization Violation/i,
        );
        assert.match(
          (await tryConnect(server.url, forged(nonceUser, undefined))) ?? "admitted",
          /Authorization Violation/i,
        );
      });
    },
  );

  describe(`config mode without an nkey user (nats-server ${sb.version || sb.label})`, { skip }, () => {
    let server: NatsServer;
    let stack: ExampleStack;
    const c = collector();
    before(async () => {
      stack = await startExampleStack({ bin: sb.bin, log: null, logger: c.logger, onResult: c.onResult });
      server = stack.server;
    });
    after(async () => {
      await stack?.stop();
    });

    test("no nonce: a genuine nkey client cannot prove its key and is refused; the service said why, once", async () => {
      for (let i = 0; i < 2; i++) {
        const n = c.results.length;
        assert.match(
          (await tryConnect(server.url, nkeyAuthenticator(te.encode(AUDIT_SEED)))) ?? "admitted",
          /Authorization Violation/i,
        );
        await decided(c, n);
        assert.equal(outcomeOf(last(c)), "deny:auth_denied:unproven_nkey");
        assert.equal(last(c).result.request?.client_info.nonce, undefined);
      }
      const warnings = c.log.filter((l) => l.includes('"no_nonce"'));
      assert.equal(warnings.length, 1, c.log.join(""));
      assert.match(warnings[0]!, /sends no nonce/);
    });
  });

  describe(
    `operator mode (nats-server ${sb.version || sb.label})`,
    { skip: sb.missing ? "missing" : false },
    () => {
      let server: NatsServer;
      let svc: CalloutService;
      let dir: string;
      let sentinelKey: string;
      let sentinelCreds: string;
      const seen: AuthorizationRequest[] = [];
      const c = collector();
      before(async () => {
        const op = await operatorModeSetup({ signingKeys: true });
        sentinelCreds = op.sentinelCreds;
        const jwt = /-----BEGIN NATS USER JWT-----\n(.+)\n/.exec(sentinelCreds)![1]!;
        sentinelKey = (JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as { sub: string })
          .sub;
        server = await startNatsServer({ bin: sb.bin, config: op.config });
        dir = mkdtempSync(join(tmpdir(), "nkey-op-"));
        writeFileSync(join(dir, "callout.creds"), op.calloutCreds, { mode: 0o600 });
        svc = await startCallout({
          config: {
            mode: "operator",
            nats: { servers: server.url, creds_file: join(dir, "callout.creds") },
            callout_account: { public_key: op.auth.key.pub, seed: op.auth.signing.seed },
            accounts: { APP: { public_key: op.app.key.pub, signing_key_seed: op.app.signing.seed } },
          },
          handler: (req) => {
            seen.push(req);
            if (req.proven_nkey !== sentinelKey) throw new AuthError("sentinel_not_proven");
            return { account: "APP", pub: { allow: ["x"] } };
          },
          onResult: c.onResult,
          logger: c.logger,
        });
      });
      after(async () => {
        await svc?.stop();
        await server?.stop();
        rmSync(dir, { recursive: true, force: true });
      });

      test("the server always sends a nonce, the sentinel JWT, its nkey and signature: the key is proven", async () => {
        assert.equal(await tryConnect(server.url, credsAuthenticator(te.encode(sentinelCreds))), undefined);
        const req = seen[seen.length - 1]!;
        assert.equal(typeof req.client_info.nonce, "string");
        assert.match(req.connect_opts.jwt ?? "", /^eyJ/);
        assert.equal(req.connect_opts.nkey, sentinelKey);
        assert.equal(req.proven_nkey, sentinelKey);
        assert.ok(!c.log.join("").includes('"no_nonce"'));
      });

      test("a forged sentinel signature is refused by the server itself: it never reaches the callout", async () => {
        const jwt = /-----BEGIN NATS USER JWT-----\n(.+)\n/.exec(sentinelCreds)![1]!;
        const n = seen.length;
        const auth: Authenticator = () => ({ jwt, nkey: sentinelKey, sig: "Z2FyYmFnZQ==" });
        assert.match((await tryConnect(server.url, auth)) ?? "admitted", /Authorization Violation/i);
        assert.equal(seen.length, n);
      });
    },
  );
}
