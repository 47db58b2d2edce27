/**
 * Mode, keys and the target-account allow-list: the issuer (config mode) or callout account (operator mode),
 * each allow-listed account (operator mode: with its public key and signing key), and the xkey.
 */
import { checkAccountPublicKey, seedFrom } from "./keys.js";
import {
  isPlainObject,
  typeName,
  type FieldReader,
  type Mode,
  type ResolvedAccount,
  type ResolvedConfig,
  type ResolvedKey,
} from "./types.js";

const ACCOUNT_NAME = /^[A-Za-z0-9_$][A-Za-z0-9_$-]*$/;
const SYSTEM_NAMES = new Set(["SYS", "$SYS"]);

export type ResolvedIdentity = Pick<
  ResolvedConfig,
  "mode" | "issuer" | "calloutAccount" | "xkey" | "accounts"
>;

/** Resolves `mode`, `issuer`, `callout_account`, `accounts` and `xkey`; problems go to `r.problems`. */
export function resolveIdentity(r: FieldReader): ResolvedIdentity {
  const { values, get, given, baseDir, problems, warnings } = r;
  const mode = get<Mode>("mode");
  let issuer: ResolvedKey | undefined;
  let calloutAccount: ResolvedConfig["calloutAccount"];
  const accounts: ResolvedAccount[] = [];

  if (mode === "config") {
    const k = seedFrom(values, "issuer", "seed", "seed_file", "SA", baseDir, problems);
    if (k === null)
      problems.push({ field: "issuer.seed", message: "required in config mode (or issuer.seed_file)" });
    else if (k) issuer = k;
    for (const f of ["callout_account.public_key", "callout_account.seed", "callout_account.seed_file"]) {
      if (given(f)) problems.push({ field: f, message: "only used in operator mode" });
    }
  } else {
    for (const f of ["issuer.seed", "issuer.seed_file"]) {
      if (given(f))
        problems.push({ field: f, message: "only used in config mode (operator mode: callout_account)" });
    }
    const pub = values.get("callout_account.public_key") as string | undefined;
    if (pub === undefined)
      problems.push({ field: "callout_account.public_key", message: "required in operator mode" });
    const pubOk = pub !== undefined && checkAccountPublicKey(pub, "callout_account.public_key", problems);
    const k = seedFrom(values, "callout_account", "seed", "seed_file", "SA", baseDir, problems);
    if (k === null) {
      problems.push({
        field: "callout_account.seed",
        message: "required in operator mode (or callout_account.seed_file)",
      });
    } else if (k && pubOk && pub !== undefined) {
      calloutAccount = { publicKey: pub, signingKey: k };
    }
  }

  const rawAccounts = values.get("accounts");
  if (rawAccounts === undefined) {
    if (!problems.some((p) => p.field.startsWith("accounts"))) {
      problems.push({ field: "accounts", message: "required: the allow-list of target accounts" });
    }
  } else if (mode === "config") {
    if (!Array.isArray(rawAccounts)) {
      problems.push({ field: "accounts", message: "in config mode, a list of account names" });
    } else {
      if (rawAccounts.length === 0)
        problems.push({ field: "accounts", message: "must name at least one account" });
      const seen = new Set<string>();
      rawAccounts.forEach((name: string, i) => {
        const field = `accounts[${i}]`;
        if (!ACCOUNT_NAME.test(name))
          problems.push({ field, message: `not an account name: ${JSON.stringify(name)}` });
        else if (seen.has(name)) problems.push({ field, message: `duplicate account ${name}` });
        else {
          seen.add(name);
          accounts.push({ name });
          if (SYSTEM_NAMES.has(name)) {
            warnings.push(
              `${field}: the system account ${name} is allow-listed: handlers can place users in it`,
            );
          }
        }
      });
    }
  } else {
    if (!isPlainObject(rawAccounts)) {
      problems.push({
        field: "accounts",
        message: "in operator mode, a map name → {public_key, signing_key_seed}",
      });
    } else {
      const entries = Object.entries(rawAccounts);
      if (entries.length === 0)
        problems.push({ field: "accounts", message: "must name at least one account" });
      const seenKeys = new Map<string, string>();
      for (const [name, entry] of entries) {
        const base = `accounts.${name}`;
        if (!ACCOUNT_NAME.test(name)) problems.push({ field: base, message: `not an account name` });
        if (!isPlainObject(entry)) {
          if (!problems.some((p) => p.field === base)) {
            problems.push({
              field: base,
              message: `expected {public_key, signing_key_seed}, got ${typeName(entry)}`,
            });
          }
          continue;
        }
        const pub = values.get(`${base}.public_key`) as string | undefined;
        let pubOk = false;
        if (pub === undefined) {
          if (!problems.some((p) => p.field === `${base}.public_key`)) {
            problems.push({ field: `${base}.public_key`, message: "required" });
          }
        } else if (checkAccountPublicKey(pub, `${base}.public_key`, problems)) {
          pubOk = true;
          const other = seenKeys.get(pub);
          if (other !== undefined) {
            problems.push({ field: `${base}.public_key`, message: `same key as accounts.${other}` });
            pubOk = false;
          } else seenKeys.set(pub, name);
          if (calloutAccount && pub === calloutAccount.publicKey) {
            problems.push({
              field: `${base}.public_key`,
              message: "is the callout account: users must not be placed in it",
            });
            pubOk = false;
          }
        }
        const k = seedFrom(
          values,
          base,
          "signing_key_seed",
          "signing_key_seed_file",
          "SA",
          baseDir,
          problems,
        );
        if (k === null)
          problems.push({
            field: `${base}.signing_key_seed`,
            message: "required (or signing_key_seed_file)",
          });
        if (pubOk && pub !== undefined && k) {
          accounts.push({ name, publicKey: pub, signingKey: k });
          if (SYSTEM_NAMES.has(name)) {
            warnings.push(
              `${base}: the system account ${name} is allow-listed: handlers can place users in it`,
            );
          }
        }
      }
    }
  }

  let xkey: ResolvedKey | undefined;
  const xk = seedFrom(values, "xkey", "seed", "seed_file", "SX", baseDir, problems);
  if (xk) xkey = xk;

  const out: ResolvedIdentity = { mode, accounts };
  if (issuer) out.issuer = issuer;
  if (calloutAccount) out.calloutAccount = calloutAccount;
  if (xkey) out.xkey = xkey;
  return out;
}
