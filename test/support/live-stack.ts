/**
 * A live-revocation stack against real nats-servers, wired the way `serve` wires it: a config-mode server (or a
 * two-server cluster) whose SYS account has a least-privilege kicker user (publish `$SYS.REQ.SERVER.*.KICK`,
 * subscribe `_INBOX.>`) and one without the KICK right; a policy directory (users with password, account and
 * pub/sub allow lists in data.json) compiled by the real opa and watched; the callout service; and
 * startLiveRevocation with the service's onResult and the store's reload events as hooks. Operator mode: the
 * kicker is a SYS-account user JWT (creds) with the same two permissions; clients present the sentinel creds.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPolicyEngine, type PolicyEngineHandle, type ReloadEvent } from "../../src/policy/index.js";
import { startCallout, type CalloutService, type ResultEvent } from "../../src/service.js";
import { resolveConfig, type ServiceConfig } from "../../src/config.js";
import { startLiveRevocation, type LiveRevocationHandle } from "../../src/live/index.js";
import type { Logger } from "../../src/log.js";
import {
  credsAuthenticator,
  usernamePasswordAuthenticator,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import { encodeUser, fmtCreds } from "@nats-io/jwt";
import { createUser, fromSeed } from "@nats-io/nkeys";
import { KICK_PERMISSION } from "../../src/live/kicker.js";
import {
  configModeSetup,
  operatorModeSetup,
  startNatsServer,
  type ConfigModeSetup,
  type NatsServer,
} from "./nats-server.js";
import { OPA_BIN } from "./paths.js";
import { freePort } from "./ports.js";

export const KICKER = { user: "kicker", password: "kicker-pw-1" };
export const NO_KICK = { user: "nokick", password: "nokick-pw-1" };

export const POLICY = `package nats.authz

import rego.v1

default decision := {"allow": false, "reason": "bad_credentials"}

decision := {"allow": true, "account": u.account, "pub": {"allow": u.pub}, "sub": {"allow": u.sub}} if {
	u := data.users[input.connect_opts.user]
	u.password == input.connect_opts.pass
}
`;

export interface UserSpec {
  password: string;
  account: string;
  pub: string[];
  sub: string[];
}

/** Writes data.json atomically (write aside, rename), as an editor or a ConfigMap swap does. */
export function writeUsers(dir: string, users: Record<string, UserSpec>): void {
  const tmp = join(dir, ".data.json.tmp");
  writeFileSync(tmp, JSON.stringify({ users }, null, 1));
  renameSync(tmp, join(dir, "data.json"));
}

/** configModeSetup's config with SYS users for kicks (both bypass the callout via auth_users). */
function withSysUsers(cm: ConfigModeSetup): string {
  const kicker = `{ user: "${KICKER.user}", password: "${KICKER.password}", permissions: { publish: { allow: ["$SYS.REQ.SERVER.*.KICK"] }, subscribe: { allow: ["_INBOX.>"] } } }`;
  const nokick = `{ user: "${NO_KICK.user}", password: "${NO_KICK.password}", permissions: { publish: { allow: ["$SYS.REQ.SERVER.PING"] }, subscribe: { allow: ["_INBOX.>"] } } }`;
  return cm.config
    .replace("SYS {}", `SYS { users: [ ${kicker}, ${nokick} ] }`)
    .replace(
      `auth_users: [ "${cm.callout.user}" ]`,
      `auth_users: [ "${cm.callout.user}", "${KICKER.user}", "${NO_KICK.user}" ]`,
    );
}

export interface LiveStack {
  servers: NatsServer[];
  dir: string;
  engine: PolicyEngineHandle;
  svc: CalloutService;
  live: LiveRevocationHandle;
  results: ResultEvent[];
  reloads: ReloadEvent[];
  /** Connection options for a client logging in with user/password (operator mode: plus the sentinel creds). */
  clientAuth(user: string, password: string): Partial<NodeConnectionOptions>;
  stop(): Promise<void>;
}

export interface LiveStackOptions {
  bin: string;
  users: Record<string, UserSpec>;
  /** Two routed servers (the service and the kicker connect to the first). */
  cluster?: boolean;
  /** The revocation credential (default KICKER). */
  kicker?: { user: string; password: string };
  rateMax?: number;
  logger?: Logger;
  expirySeconds?: number;
  /** Operator mode (one server; the kicker is a SYS user JWT). */
  operator?: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A SYS-account user JWT allowed only to KICK and read the replies, as creds. */
async function sysKickerCreds(sysSeed: string): Promise<string> {
  const user = createUser();
  const jwt = await encodeUser("revocation", user, fromSeed(enc.encode(sysSeed)), {
    pub: { allow: [KICK_PERMISSION] },
    sub: { allow: ["_INBOX.>"] },
  });
  return dec.decode(fmtCreds(jwt, user));
}

export async function startLiveStack(o: LiveStackOptions): Promise<LiveStack> {
  const cm = configModeSetup();
  const op = o.operator ? await operatorModeSetup({ signingKeys: true }) : undefined;
  const base = op ? op.config : withSysUsers(cm);
  const servers: NatsServer[] = [];
  const dir = mkdtempSync(join(tmpdir(), "live-policy-"));
  const cleanup: (() => Promise<void>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const stopAll = async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  };
  try {
    if (o.cluster) {
      const ports = [await freePort(), await freePort()];
      for (const i of [0, 1]) {
        const routes = `nats://127.0.0.1:${ports[1 - i]}`;
        const config = base.replace(
          "server_name: callout_test",
          `server_name: live_${i}\ncluster { name: live, listen: "127.0.0.1:${ports[i]}", routes: ["${routes}"] }`,
        );
        const s = await startNatsServer({ bin: o.bin, config });
        servers.push(s);
        cleanup.push(() => s.stop());
      }
      for (const s of servers) await s.waitForLog(/Route connection created/, { timeoutMs: 15_000 });
    } else {
      const s = await startNatsServer({ bin: o.bin, config: base });
      servers.push(s);
      cleanup.push(() => s.stop());
    }
    writeFileSync(join(dir, "policy.rego"), POLICY);
    writeUsers(dir, o.users);
    const engine = await createPolicyEngine({
      dir,
      opaBin: OPA_BIN ?? "opa",
      watch: true,
      pollMs: 0,
      debounceMs: 50,
    });
    cleanup.push(() => engine.close());
    const kicker = o.kicker ?? KICKER;
    const url = servers[0]!.url;
    let identity: ServiceConfig;
    let revocationNats: NonNullable<NonNullable<ServiceConfig["revocation"]>["nats"]>;
    if (op) {
      writeFileSync(join(dir, "callout.creds"), op.calloutCreds, { mode: 0o600 });
      writeFileSync(join(dir, "revocation.creds"), await sysKickerCreds(op.sys.signing.seed), {
        mode: 0o600,
      });
      identity = {
        mode: "operator",
        nats: { servers: url, creds_file: join(dir, "callout.creds") },
        callout_account: { public_key: op.auth.key.pub, seed: op.auth.signing.seed },
        accounts: {
          APP: { public_key: op.app.key.pub, signing_key_seed: op.app.signing.seed },
          OPS: { public_key: op.ops.key.pub, signing_key_seed: op.ops.signing.seed },
        },
      };
      revocationNats = { creds_file: join(dir, "revocation.creds") };
    } else {
      identity = {
        mode: "config",
        nats: { servers: url, user: cm.callout.user, password: cm.callout.password },
        issuer: { seed: cm.issuer.seed },
        accounts: ["APP", "OPS"],
      };
      revocationNats = { user: kicker.user, password: kicker.password };
    }
    const input: ServiceConfig = {
      ...identity,
      log: { level: "warn" },
      ...(o.expirySeconds
        ? { expiry: { default_seconds: o.expirySeconds, max_seconds: o.expirySeconds } }
        : {}),
      revocation: {
        enabled: true,
        nats: revocationNats,
        rate_per_second: o.rateMax ?? 1000,
      },
    };
    const cfg = resolveConfig(input);
    const results: ResultEvent[] = [];
    const reloads: ReloadEvent[] = [];
    const live = (await startLiveRevocation(cfg, {
      handler: engine.handler,
      ...(o.logger ? { logger: o.logger } : {}),
    }))!;
    cleanup.push(() => live.close());
    // The hooks, as serve wires them.
    engine.store.on("reload", (e) => {
      reloads.push(e);
      live.onReload(e.result === "ok", e.revision);
    });
    const svc = await startCallout({
      config: cfg,
      handler: engine.handler,
      onResult: (ev) => {
        live.onResult(ev);
        results.push(ev);
      },
    });
    cleanup.push(() => svc.stop());
    const clientAuth = (user: string, password: string): Partial<NodeConnectionOptions> =>
      op
        ? {
            authenticator: [
              credsAuthenticator(enc.encode(op.sentinelCreds)),
              usernamePasswordAuthenticator(user, password),
            ],
          }
        : { user, pass: password };
    return { servers, dir, engine, svc, live, results, reloads, clientAuth, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
