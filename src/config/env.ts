/**
 * Environment overrides (called by the CLI; the library never reads env itself): the NATS client
 * conventions (NATS_URL, NATS_CREDS, …) applied to a config document before flags.
 */
import type { ServiceConfig } from "./types.js";

/**
 * Returns a copy of `cfg` with the NATS client conventions from `env` applied:
 * NATS_URL (comma-separated list) → nats.servers; NATS_CREDS → nats.creds_file;
 * NATS_NKEY or NATS_NKEY_SEED (a seed file path) → nats.nkey_seed_file;
 * NATS_USER + NATS_PASSWORD → nats.user/nats.password; NATS_TOKEN → nats.token.
 * When env names any authentication method, the config file's methods are dropped (env wins);
 * two methods in env stay conflicting and resolveConfig() reports them.
 */
export function applyEnvOverrides(
  cfg: ServiceConfig,
  env: Record<string, string | undefined>,
): ServiceConfig {
  const val = (k: string): string | undefined => {
    const v = env[k];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const nats: NonNullable<ServiceConfig["nats"]> = { ...(cfg.nats ?? {}) };
  const url = val("NATS_URL");
  if (url !== undefined)
    nats.servers = url
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");

  const creds = val("NATS_CREDS");
  const nkey = val("NATS_NKEY_SEED") ?? val("NATS_NKEY");
  const user = val("NATS_USER");
  const password = env["NATS_PASSWORD"];
  const token = val("NATS_TOKEN");
  if (creds !== undefined || nkey !== undefined || user !== undefined || token !== undefined) {
    delete nats.user;
    delete nats.password;
    delete nats.token;
    delete nats.nkey_seed_file;
    delete nats.creds_file;
    if (creds !== undefined) nats.creds_file = creds;
    if (nkey !== undefined) nats.nkey_seed_file = nkey;
    if (user !== undefined) {
      nats.user = user;
      if (password !== undefined) nats.password = password;
    }
    if (token !== undefined) nats.token = token;
  } else if (password !== undefined && nats.user !== undefined) {
    nats.password = password;
  }
  return { ...cfg, nats };
}

/** Environment variables `serve` reads (applied by applyEnvOverrides, before flags). */
export const ENV_OVERRIDES: readonly { name: string; path: string; description: string }[] = [
  { name: "NATS_URL", path: "nats.servers", description: "comma-separated server URLs" },
  { name: "NATS_CREDS", path: "nats.creds_file", description: "creds file" },
  {
    name: "NATS_NKEY_SEED / NATS_NKEY",
    path: "nats.nkey_seed_file",
    description: "file holding an SU… seed",
  },
  { name: "NATS_USER + NATS_PASSWORD", path: "nats.user / nats.password", description: "user and password" },
  { name: "NATS_TOKEN", path: "nats.token", description: "token" },
  {
    name: "OPA_BIN",
    path: "policy.opa_binary",
    description: "opa executable, when the file does not set one",
  },
];
