/**
 * Using nats-opa-callout as a library with a plain TypeScript handler instead of the policy engine.
 *
 *   node --import tsx examples/library-handler.ts      # needs the service config of `make run` in .run/
 *
 * The handler gets the verified request and returns a grant, or throws AuthError (deny, the reason is
 * logged by the server) / AbortAuth (no reply: the client waits out the auth timeout). Verification,
 * xkey, deny-by-default permissions, the account allow-list, expiry caps and signing are the library's.
 */
import { timingSafeEqual, createHash } from "node:crypto";
import {
  AbortAuth,
  AuthError,
  callout,
  createLogger,
  resolveConfig,
  type AuthorizationRequest,
  type Grant,
} from "../src/index.js";

/** sha256 of each user's password (a real service would use a slow KDF or an identity provider). */
const USERS: Record<string, { sha256: string; grant: (user: string) => Grant }> = {
  alice: {
    sha256: createHash("sha256").update("alice-pw").digest("hex"),
    grant: (user) => ({
      account: "APP",
      pub: { allow: ["orders.>"] },
      sub: { allow: [`_INBOX.${user}.>`, "orders.events.>"] },
      expires_in: 3600,
    }),
  },
};
const LOCKED = new Set(["eve"]);

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function handler(req: AuthorizationRequest): Promise<Grant> {
  const user = req.connect_opts.user ?? "";
  if (LOCKED.has(user)) throw new AbortAuth("user_locked");
  const entry = USERS[user];
  const digest = createHash("sha256")
    .update(req.connect_opts.pass ?? "")
    .digest("hex");
  if (!entry || !sameSecret(digest, entry.sha256)) throw new AuthError("bad_credentials");
  return entry.grant(user);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // The keys and NATS credentials `make run` generated; for your own deployment use `nats-opa-callout init`.
  const { readFileSync } = await import("node:fs");
  const { parse } = await import("yaml");
  const config = parse(readFileSync(".run/service.yaml", "utf8")) as Record<string, unknown>;
  delete config.policy; // the handler replaces the policy engine
  // Relative key-file paths in the YAML are relative to its folder, as with `nats-opa-callout serve`.
  const resolved = resolveConfig(config, { baseDir: ".run" });
  const service = await callout(handler, resolved, { logger: createLogger({ format: "pretty" }) });
  process.once("SIGINT", () => void service.stop());
  await service.closed();
}
