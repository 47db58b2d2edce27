/**
 * The CLI's view of the policy engine (src/policy/open.ts): `check` and `eval` open it once, without watching, and
 * exit with EXIT.POLICY when it does not load.
 */
import type { ResolvedPolicy } from "../config.js";
import { PolicyLoadError } from "../errors.js";
import { EXIT, err } from "./common.js";
import { openPolicy, type PolicyHandle } from "../policy/open.js";

export { openPolicy, policySettings, type PolicyHandle, type PolicyReload } from "../policy/open.js";

/**
 * openPolicy for the one-shot commands (`check`, `eval`; no watching): when the policy does not compile or load,
 * print the error with its file:line to stderr and return EXIT.POLICY instead of a handle. Other errors are thrown.
 */
export async function openPolicyOrExit(p: ResolvedPolicy): Promise<PolicyHandle | typeof EXIT.POLICY> {
  try {
    return await openPolicy(p, { watch: false });
  } catch (e) {
    if (e instanceof PolicyLoadError) {
      err(`policy error${e.file ? ` in ${e.file}${e.line !== undefined ? `:${e.line}` : ""}` : ""}:`);
      err(e.message);
      return EXIT.POLICY;
    }
    throw e;
  }
}
