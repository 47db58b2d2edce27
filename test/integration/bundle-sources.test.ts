/**
 * Remote bundle sources end to end: the real `serve` CLI against a real nats-server, fed by
 * - an OPA bundle server (real HTTP, long polling) with signed bundles built by the real opa: a new revision is
 *   served, a tampered one is refused while the last good keeps serving, and a restart while the bundle server is
 *   down serves the last good copy from policy.bundle;
 * - the NATS Object Store: three replicas watch one object; an upload reaches all three (time measured).
 * Logins are checked with real nats.js clients: what the policy revision allows, and nothing more.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { createAccount } from "@nats-io/nkeys";
import { connect } from "@nats-io/transport-node";
import {
  startOurs,
  type OursChild,
  cleanupBundleHelpers,
  opaBundle,
  pemPair,
  startBundleServer,
  serverMatrix,
  startNatsServer,
  FIXTURES,
  OPA_BIN,
  REPO,
  skipWithoutOpa,
  tarGz,
} from "../support/index.js";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, readFileSync } from "node:fs";
import { promisify } from "node:util";
import { Objm } from "@nats-io/obj";
import { uploadBundle } from "../../src/policy/sources/object-store.js";
import { verifyBundleSignature } from "../../src/policy/signature.js";
import { takeSnapshot } from "../../src/policy/snapshot.js";
import { readTarGz } from "../../src/policy/tar.js";

const execFileP = promisify(execFile);
const CLI = path.join(REPO, "src", "cli.ts");
/** The real CLI from source; resolves with exit code and output (never rejects). */
async function cli(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await execFileP(process.execPath, ["--import", "tsx", CLI, ...args], {
      cwd: REPO,
      env: { ...process.env, OPA_BIN: OPA_BIN ?? "opa" },
    });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, out: `${x.stdout ?? ""}${x.stderr ?? ""}` };
  }
}

after(cleanupBundleHelpers);

const latest = serverMatrix()[0]!;
const td = new TextDecoder();
const USERS = {
  alice: {
    account: "APP",
    pass_sha256: "cefd4bcd86ca3d6d9d1064593870b4cd4fdb3fef0136b1c43684cb7f58a29036",
    pub: ["app.alice.>"],
    sub: ["_INBOX.>"],
  },
  bob: {
    account: "APP",
    pass_sha256: "a023c4e07c00f0beb6f452a7da3699d38b42c3527ff00d9a9c65a65f254e768f",
    pub: ["app.bob.>"],
    sub: ["_INBOX.>"],
  },
};
const dataWith = (...names: (keyof typeof USERS)[]) =>
  JSON.stringify({
    users: Object.fromEntries(names.map((n) => [n, USERS[n]])),
    blocked: [],
    policy: { valid_until_ns: 4102444800000000000 },
  });

/** nats-server config mode with JetStream in OPS and a policy-admin user that skips the callout. */
function serverConfig(issuerPub: string, calloutPass: string, store: string): string {
  return `
system_account: SYS
jetstream { store_dir: "${store}" }
accounts {
  AUTH { users: [ { user: callout, password: "${calloutPass}",
                    permissions: { subscribe: { allow: ["$SYS.REQ.USER.AUTH"] }, publish: { deny: [">"] }, allow_responses: true } } ] }
  APP {}
  OPS { jetstream: enabled, users: [ { user: policy, password: "policy-pw" } ] }
  SYS {}
}
authorization {
  timeout: 5
  auth_callout { issuer: "${issuerPub}", account: AUTH, auth_users: [ callout, policy ] }
}
`;
}

async function canLogin(url: string, user: string): Promise<boolean> {
  try {
    const nc = await connect({
      servers: url,
      user,
      pass: `${user}-pw`,
      maxReconnectAttempts: 0,
      timeout: 10_000,
    });
    await nc.close();
    return true;
  } catch {
    return false;
  }
}

async function status(
  svc: OursChild,
): Promise<{ policy: { revision: string } | null; policy_source?: Record<string, unknown> }> {
  return (await (await fetch(`${svc.http}/status`)).json()) as never;
}

async function until(cond: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe(
  `remote bundle sources, nats-server ${latest.version}`,
  {
    skip: latest.missing ? "nats-server not built (make tools)" : skipWithoutOpa,
  },
  () => {
    test("OPA bundle server: signed revisions activate, a tampered one is refused, a restart serves the last good", async () => {
      const work = mkdtempSync(path.join(tmpdir(), "bundle-src-e2e-"));
      const issuer = createAccount();
      const calloutPass = "callout-pw-" + Math.random().toString(36).slice(2);
      await using ns = await startNatsServer({
        bin: latest.bin,
        config: serverConfig(issuer.getPublicKey(), calloutPass, path.join(work, "js")),
      });
      const key = pemPair("rsa");
      writeFileSync(path.join(work, "pub.pem"), key.pub);
      const sign = { alg: "RS256", key: key.privPath };
      const v1 = opaBundle({ data: dataWith("alice"), revision: "rev-1", signing: sign });
      const v2 = opaBundle({ data: dataWith("bob"), revision: "rev-2", signing: sign });
      const files = readTarGz(v2);
      const tampered = tarGz(
        Object.fromEntries(
          [...files].map(([k, v]) => [k, k === "/data.json" ? Buffer.from(dataWith("alice", "bob")) : v]),
        ),
      );

      const bundles = await startBundleServer({ longPoll: true });
      bundles.publish(v1);
      const policy = {
        bundle: path.join(work, "bundle.tar.gz"),
        watch: true,
        opa_binary: OPA_BIN ?? "opa", // a Rego bundle is compiled on arrival
        source: {
          http: {
            url: bundles.url,
            long_polling_timeout_seconds: 20,
            min_delay_seconds: 1,
            max_delay_seconds: 2,
          },
        },
        signing: { key_file: path.join(work, "pub.pem") },
      };
      const common = {
        url: ns.url,
        calloutUser: "callout",
        calloutPass,
        issuerSeed: td.decode(issuer.getSeed()),
        account: "APP",
        workDir: work,
        extra: { policy },
      };
      let svc: OursChild | undefined = await startOurs(common);
      try {
        assert.equal((await status(svc)).policy?.revision, "rev-1");
        assert.equal(await canLogin(ns.url, "alice"), true);
        assert.equal(await canLogin(ns.url, "bob"), false);

        bundles.publish(v2);
        await until(async () => (await status(svc!)).policy?.revision === "rev-2", "rev-2 serving");
        assert.equal(await canLogin(ns.url, "bob"), true);
        assert.equal(await canLogin(ns.url, "alice"), false);

        // A signed Rego bundle (no policy.wasm): compiled on arrival like a directory.
        bundles.publish(
          opaBundle({ data: dataWith("bob"), revision: "rev-3-rego", signing: sign, wasm: false }),
        );
        await until(
          async () => (await status(svc!)).policy?.revision === "rev-3-rego",
          "the Rego bundle serving",
        ).catch(async (e: Error) => {
          throw new Error(`${e.message}: ${JSON.stringify(await status(svc!))}`);
        });
        assert.equal(await canLogin(ns.url, "bob"), true);
        assert.equal(await canLogin(ns.url, "alice"), false);

        bundles.publish(tampered);
        await until(
          async () =>
            /data\.json: digest mismatch/.test(String((await status(svc!)).policy_source?.last_error)),
          "the tampered bundle refused",
        );
        assert.equal((await status(svc)).policy?.revision, "rev-3-rego");
        assert.equal(
          await canLogin(ns.url, "alice"),
          false,
          "the tampered data (alice re-added) never served",
        );
        assert.equal(await canLogin(ns.url, "bob"), true);

        // Signed, but its policy fails the smoke evaluation (the smoke user is both allowed and blocked: conflicting
        // outputs). The watcher refuses it; the file now holds it, so a restart must fall back to the last good copy.
        const smokeSha = createHash("sha256").update("smoke-test-password").digest("hex");
        const broken = opaBundle({
          data: JSON.stringify({
            users: { "smoke-test": { ...USERS.bob, pass_sha256: smokeSha } },
            blocked: ["smoke-test"],
            policy: { valid_until_ns: 4102444800000000000 },
          }),
          revision: "rev-broken",
          signing: sign,
        });
        bundles.publish(broken);
        await until(
          async () => /smoke evaluation/.test(JSON.stringify((await status(svc!)).policy)),
          "the broken revision refused by the watcher",
        );
        assert.equal((await status(svc)).policy?.revision, "rev-3-rego");
        assert.equal(await canLogin(ns.url, "bob"), true);

        // Restart while the bundle server is down: policy.bundle holds the broken bundle; the last good copy serves.
        await svc.stop();
        svc = undefined;
        await bundles.stop();
        svc = await startOurs(common);
        const st = await status(svc);
        assert.equal(st.policy?.revision, "rev-3-rego");
        assert.ok(Number(st.policy_source?.consecutive_failures) >= 1);
        assert.equal(await canLogin(ns.url, "bob"), true);
        const metrics = await (await fetch(`${svc.http}/metrics`)).text();
        assert.match(
          metrics,
          /^nats_opa_callout_policy_source_consecutive_failures\{source="http"\} [1-9]\d*$/m,
        );
        assert.doesNotMatch(svc.output(), /BEGIN (RSA )?PRIVATE KEY|policy-pw/);
      } finally {
        await svc?.stop();
        await bundles.stop().catch(() => undefined);
      }
    });

    test(
      "NATS Object Store: one upload reaches three replicas",
      { skip: OPA_BIN ? false : "opa missing" },
      async () => {
        const work = mkdtempSync(path.join(tmpdir(), "bundle-os-e2e-"));
        const issuer = createAccount();
        const calloutPass = "callout-pw-" + Math.random().toString(36).slice(2);
        await using ns = await startNatsServer({
          bin: latest.bin,
          config: serverConfig(issuer.getPublicKey(), calloutPass, path.join(work, "js")),
        });
        const admin = await connect({ servers: ns.url, user: "policy", pass: "policy-pw" });
        const replicas: OursChild[] = [];
        try {
          await uploadBundle(admin, {
            bucket: "policy",
            name: "authz",
            bytes: opaBundle({ data: dataWith("alice"), revision: "os-1" }),
          });
          for (let i = 0; i < 3; i++) {
            replicas.push(
              await startOurs({
                url: ns.url,
                calloutUser: "callout",
                calloutPass,
                issuerSeed: td.decode(issuer.getSeed()),
                account: "APP",
                workDir: path.join(work, `r${i}`),
                extra: {
                  policy: {
                    bundle: path.join(work, `r${i}`, "bundle.tar.gz"),
                    watch: true,
                    source: {
                      object_store: {
                        bucket: "policy",
                        name: "authz",
                        user: "policy",
                        password: "policy-pw",
                      },
                    },
                  },
                },
              }),
            );
          }
          for (const r of replicas) assert.equal((await status(r)).policy?.revision, "os-1");
          assert.equal(await canLogin(ns.url, "bob"), false);
          const v2 = opaBundle({ data: dataWith("alice", "bob"), revision: "os-2" });
          const t0 = performance.now();
          await uploadBundle(admin, { bucket: "policy", name: "authz", bytes: v2 });
          await until(async () => {
            const revs = await Promise.all(replicas.map(async (r) => (await status(r)).policy?.revision));
            return revs.every((v) => v === "os-2");
          }, "all replicas on os-2");
          console.log(
            `  Object Store upload → all 3 replicas serving the new revision: ${(performance.now() - t0).toFixed(0)} ms`,
          );
          for (let i = 0; i < 6; i++) assert.equal(await canLogin(ns.url, "bob"), true);
        } finally {
          for (const r of replicas) await r.stop();
          await admin.close();
        }
      },
    );

    test("bundle build and bundle push: the service's revision, signed as OPA signs, uploaded for the fleet", async () => {
      const work = mkdtempSync(path.join(tmpdir(), "bundle-cli-"));
      const issuer = createAccount();
      await using ns = await startNatsServer({
        bin: latest.bin,
        config: serverConfig(issuer.getPublicKey(), "x", path.join(work, "js")),
      });
      const key = pemPair("ec");
      const dir = path.join(work, "policy");
      cpSync(path.join(FIXTURES, "basic"), dir, { recursive: true });
      const revision = (await takeSnapshot(dir)).revision;
      const signing = { keys: { default: { algorithm: "ES256" as const, key: key.pub } } };

      const out = path.join(work, "out.tar.gz");
      const built = await cli([
        "bundle",
        "build",
        "--policy-dir",
        dir,
        "-o",
        out,
        "--signing-key",
        key.privPath,
        "--signing-alg",
        "ES256",
      ]);
      assert.equal(built.code, 0, built.out);
      assert.match(built.out, new RegExp(`revision ${revision}.*signed ES256`));
      const files = readTarGz(readFileSync(out));
      await verifyBundleSignature(files, signing);
      assert.equal(JSON.parse(files.get("/.manifest")!.toString()).revision, revision);

      writeFileSync(path.join(work, "pw"), "policy-pw\n");
      const pushed = await cli([
        "bundle",
        "push",
        "--policy-dir",
        dir,
        "--bucket",
        "fleet",
        "--name",
        "authz",
        "--server",
        ns.url,
        "--user",
        "policy",
        "--password-file",
        path.join(work, "pw"),
        "--signing-key",
        key.privPath,
        "--signing-alg",
        "ES256",
      ]);
      assert.equal(pushed.code, 0, pushed.out);
      assert.doesNotMatch(pushed.out, /policy-pw/);
      const nc = await connect({ servers: ns.url, user: "policy", pass: "policy-pw" });
      try {
        const blob = await (await new Objm(nc).open("fleet")).getBlob("authz");
        assert.ok(blob);
        await verifyBundleSignature(readTarGz(Buffer.from(blob)), signing);
      } finally {
        await nc.close();
      }

      writeFileSync(path.join(dir, "authz.rego"), "package nats.authz\n\ndecision := {\n");
      const broken = await cli(["bundle", "build", "--policy-dir", dir, "-o", out]);
      assert.equal(broken.code, 3, broken.out);
      assert.match(broken.out, /authz\.rego:\d+/);
      const wrong = await cli(["bundle", "push", "--policy-dir", dir]);
      assert.equal(wrong.code, 2);
      assert.match(wrong.out, /--bucket/);
    });
  },
);
