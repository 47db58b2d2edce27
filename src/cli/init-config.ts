/**
 * The service config (YAML document) that `init` writes, in the shape src/config.ts reads.
 * Paths are written relative to the config file's directory (serve resolves them from there).
 */
import { isAbsolute, relative } from "node:path";
import type { ServiceConfig } from "../config.js";

interface Common {
  /** Directory the service config is written to (paths are made relative to it). */
  dir: string;
  natsUrl: string;
  xkeySeedFile: string | undefined;
  accounts: string[];
  policyDir: string;
  metricsListen: string;
  websocketUrl: string | undefined;
}

export type InitLayout =
  | (Common & {
      mode: "config";
      user: string;
      password: string;
      issuerSeedFile: string;
      issuerPublicKey: string;
    })
  | (Common & {
      mode: "operator";
      credsFile: string;
      calloutAccountSeedFile: string;
      calloutAccountPublicKey: string;
      targetAccounts: { name: string; publicKey: string; seedFile: string }[];
      sentinelCredsFile: string;
    });

export function serviceConfigDoc(l: InitLayout): ServiceConfig {
  const rel = (p: string) => {
    const r = relative(l.dir, p) || ".";
    return r.startsWith("../..") || isAbsolute(r) ? p : r;
  };
  const doc: ServiceConfig = { mode: l.mode };
  if (l.mode === "config") {
    doc.nats = { servers: [l.natsUrl], user: l.user, password: l.password };
    doc.issuer = { seed_file: rel(l.issuerSeedFile) };
    doc.accounts = l.accounts;
  } else {
    doc.nats = { servers: [l.natsUrl], creds_file: rel(l.credsFile) };
    doc.callout_account = { public_key: l.calloutAccountPublicKey, seed_file: rel(l.calloutAccountSeedFile) };
    doc.accounts = Object.fromEntries(
      l.targetAccounts.map((t) => [
        t.name,
        { public_key: t.publicKey, signing_key_seed_file: rel(t.seedFile) },
      ]),
    );
  }
  if (l.xkeySeedFile) doc.xkey = { seed_file: rel(l.xkeySeedFile) };
  doc.policy = { dir: rel(l.policyDir), watch: true };
  doc.log = { level: "info", format: "json" };
  doc.decision_log = { destination: "stdout" };
  doc.metrics = { listen: l.metricsListen };
  return doc;
}
