/**
 * The `revocation` section: off unless `revocation.enabled`; then a system-account credential is required
 * (revocation.nats.*, one method), servers default to nats.servers, and the pacing/bounds come from the table.
 * Fields given while disabled are reported, so a half-written section is not silently ignored.
 */
import { checkServerUrl, resolveNatsAuth } from "./resolve-nats.js";
import { CONFIG_FIELDS } from "./schema.js";
import type { FieldReader, ResolvedNats, ResolvedRevocation } from "./types.js";

/** Resolves `revocation.*` (undefined when disabled); problems go to `r.problems`. */
export function resolveRevocation(r: FieldReader, nats: ResolvedNats): ResolvedRevocation | undefined {
  const { get, given, problems } = r;
  if (!get<boolean>("revocation.enabled")) {
    for (const f of CONFIG_FIELDS) {
      if (f.path.startsWith("revocation.") && f.path !== "revocation.enabled" && given(f.path)) {
        problems.push({ field: f.path, message: "needs revocation.enabled: true" });
      }
    }
    return undefined;
  }
  let servers = nats.servers;
  if (given("revocation.nats.servers")) {
    const raw = get<string | string[]>("revocation.nats.servers");
    servers = (typeof raw === "string" ? [raw] : raw)
      .map((s, i) => checkServerUrl(s.trim(), `revocation.nats.servers[${i}]`, problems))
      .filter((s): s is string => s !== undefined);
  }
  const auth = resolveNatsAuth(r, "revocation.nats");
  if (auth.kind === "none" && !problems.some((p) => p.field.startsWith("revocation.nats"))) {
    problems.push({
      field: "revocation.nats",
      message:
        "revocation.enabled needs a system-account credential (user/password, token, nkey_seed_file or creds_file) allowed to publish $SYS.REQ.SERVER.*.KICK",
    });
  }
  return {
    servers,
    auth,
    ratePerSecond: get<number>("revocation.rate_per_second"),
    periodicSeconds: get<number>("revocation.periodic_seconds"),
    maxLiveGrants: get<number>("revocation.max_live_grants"),
    concurrency: get<number>("revocation.concurrency"),
  };
}
