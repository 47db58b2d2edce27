/**
 * The trust model of docs/operations.md ("Trust model"), measured on real nats-server 2.15 and 2.10 in config
 * mode with the real service:
 *
 * - a client's publish on `$SYS.REQ.USER.AUTH` in the callout account is refused by the server, even from an
 *   auth user explicitly allowed to publish there: the service never sees it;
 * - a stream import mapped onto that subject does reach the service: a request forged with the attacker's own
 *   server key is answered (the service cannot pin server keys), but the answer is addressed to the forger's key,
 *   and a captured real request replayed that way is answered addressed to the original server and `user_nkey` —
 *   neither admits anybody;
 * - so the barrier is the callout account's subject permissions, imports and exports, as documented.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { createAccount } from "@nats-io/nkeys";
import { startCallout, type CalloutService, type ResultEvent } from "../../src/service.js";
import { signerFromSeed } from "../../src/callout/keys.js";
import {
  serverMatrix,
  startNatsServer,
  type NatsServer,
  buildRequest,
  newServerKey,
  newXKey,
  peekClaims,
  until,
} from "../support/index.js";

const dec = new TextDecoder();

for (const sb of serverMatrix()) {
  describe(
    `trust model (nats-server ${sb.version || sb.label})`,
    { skip: sb.missing ? "missing" : false },
    () => {
      let server: NatsServer;
      let svc: CalloutService;
      let spy: NatsConnection;
      const results: ResultEvent[] = [];
      const captured: Msg[] = [];
      const issuer = createAccount();
      const issuerSeed = dec.decode(issuer.getSeed());

      before(async () => {
        const config = `
accounts {
  AUTH {
    users: [
      { user: callout, password: pw, permissions: { subscribe: { allow: ["$SYS.REQ.USER.AUTH"] }, publish: { deny: [">"] }, allow_responses: true } },
      # explicitly allowed to publish on the callout subject (the server still refuses it)
      { user: prober, password: pw, permissions: { publish: { allow: ["$SYS.REQ.USER.AUTH"] }, subscribe: { allow: ["_INBOX.>"] } } },
      # reads requests and replies (stands for any subscriber an operator let into the account)
      { user: spy, password: pw, permissions: { subscribe: { allow: ["$SYS.REQ.USER.AUTH", "_INBOX.>"] }, publish: { deny: [">"] } } }
    ]
    # the misconfiguration: an import that maps another account's stream onto the callout subject
    imports: [ { stream: { account: EVIL, subject: "forge" }, to: "$SYS.REQ.USER.AUTH" } ]
  }
  EVIL { users: [ { user: evil, password: pw } ], exports: [ { stream: "forge" } ] }
  APP {}
}
authorization {
  timeout: 5
  auth_callout { issuer: "${issuer.getPublicKey()}", account: AUTH, auth_users: [ callout, prober, spy, evil ] }
}
`;
        server = await startNatsServer({ bin: sb.bin, config });
        svc = await startCallout({
          config: {
            mode: "config",
            nats: { servers: server.url, user: "callout", password: "pw" },
            issuer: { seed: issuerSeed },
            accounts: ["APP"],
          },
          // Allows anything: the point is what reaches the service and what its answers are good for.
          handler: () => ({ account: "APP", pub: { allow: ["app.>"] } }),
          onResult: (e) => void results.push(e),
        });
        spy = await connect({ servers: server.url, user: "spy", pass: "pw" });
        spy.subscribe("$SYS.REQ.USER.AUTH", { callback: (_e, m) => void captured.push(m) });
        await spy.flush();
      });
      after(async () => {
        await spy?.close();
        await svc?.stop();
        await server?.stop();
      });

      test("a client's publish on the callout subject is refused, even when its permissions allow it", async () => {
        const nc = await connect({ servers: server.url, user: "prober", pass: "pw" });
        const errors: string[] = [];
        void (async () => {
          for await (const s of nc.status()) if (s.type === "error") errors.push(String(s.error?.message));
        })();
        const before = results.length;
        nc.publish("$SYS.REQ.USER.AUTH", "eyJ", { reply: "_INBOX.probe" });
        await nc.flush();
        await until(() => errors.length > 0, "a permissions violation");
        assert.match(errors[0]!, /Permissions Violation for Publish to "\$SYS\.REQ\.USER\.AUTH"/);
        await nc.close();
        assert.equal(results.length, before, "the service saw nothing");
      });

      test("through an import, a forged request is answered — addressed to the forger's own key, not a server", async () => {
        const fake = {
          server: newServerKey(),
          issuer: { ...signerFromSeedKey(issuerSeed) },
          xkey: newXKey(),
          serverXkey: newXKey(),
        };
        const forged = buildRequest(fake, { connect_opts: { user: "alice", pass: "guess" } });
        const resp = await forge(forged.data, "_INBOX.forge");
        assert.equal(
          resp.aud,
          fake.server.publicKey,
          "addressed to the forger's key: every real server refuses it",
        );
        assert.notEqual(resp.aud, (await serverId()).id);
        assert.equal(resp.sub, forged.userNkey);
      });

      test("a captured real request replayed through the import is answered for the original server and login", async () => {
        const n = captured.length;
        const client = await connect({ servers: server.url, user: "alice", pass: "pw", reconnect: false });
        await client.close();
        await until(() => captured.length > n, "the spy captured the request");
        const original = peekClaims(dec.decode(captured[n]!.data)) as {
          iss: string;
          nats: { user_nkey: string };
        };
        const resp = await forge(captured[n]!.data, "_INBOX.replay");
        assert.equal(resp.aud, original.iss, "the real server's id");
        assert.equal(resp.sub, original.nats.user_nkey, "the original attempt's one-time user_nkey");
      });

      /**
       * Publishes `data` as EVIL on the imported subject. A stream import does not carry replies back to EVIL: the
       * service's answer goes to the reply subject inside the callout account, where the spy reads it.
       */
      async function forge(data: Uint8Array, reply: string): Promise<Record<string, unknown>> {
        const sub = spy.subscribe(reply, { max: 1 });
        await spy.flush();
        const evil = await connect({ servers: server.url, user: "evil", pass: "pw" });
        evil.publish("forge", data, { reply });
        await evil.flush();
        let answer: Msg | undefined;
        for await (const m of sub) answer = m;
        await evil.close();
        assert.ok(answer, "the service answered");
        return peekClaims(dec.decode(answer.data));
      }

      async function serverId(): Promise<{ id: string }> {
        const nc = await connect({ servers: server.url, user: "evil", pass: "pw" });
        const id = nc.info?.server_id ?? "";
        await nc.close();
        return { id };
      }
    },
  );
}

/** The issuer as a TestKey-like object for buildRequest (`sub` = the configured issuer). */
function signerFromSeedKey(seed: string) {
  const signer = signerFromSeed(seed, "account");
  return { seed, publicKey: signer.publicKey, signer, kp: undefined as never };
}
