/**
 * The `policy` section: policy.dir or policy.bundle (exactly one, or none for library use), entrypoints,
 * watch and poll.
 */
import { resolve as resolvePath } from "node:path";
import { checkFile } from "./paths.js";
import { resolvePolicySource } from "./resolve-policy-source.js";
import type { FieldReader, ResolvedPolicy, ResolveOptions } from "./types.js";

const ENTRYPOINT = /^[A-Za-z_][A-Za-z0-9_]*(\/[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Resolves `policy.*` (undefined when neither dir nor bundle is set); problems go to `r.problems`. */
export function resolvePolicy(r: FieldReader, options: ResolveOptions): ResolvedPolicy | undefined {
  const { values, get, given, baseDir, problems } = r;
  let policy: ResolvedPolicy | undefined;
  const dir = values.get("policy.dir") as string | undefined;
  const bundle = values.get("policy.bundle") as string | undefined;
  if (dir !== undefined && bundle !== undefined) {
    problems.push({ field: "policy.dir", message: "set either policy.dir or policy.bundle, not both" });
  } else if (dir !== undefined || bundle !== undefined) {
    policy = {
      entrypoint: get<string>("policy.entrypoint"),
      watch: get<boolean>("policy.watch"),
      pollSeconds: get<number>("policy.poll_seconds"),
      opaBinary: get<string>("policy.opa_binary"),
    };
    const mask = values.get("policy.mask_entrypoint") as string | undefined;
    if (mask !== undefined) policy.maskEntrypoint = mask;
    policy.evaluation = {
      workers: get<number>("policy.eval_workers"),
      timeoutMs: get<number>("policy.eval_timeout_ms"),
      maxDataBytes: get<number>("policy.max_data_bytes"),
      maxMemoryMb: get<number>("policy.max_memory_mb"),
    };
    if (dir !== undefined) policy.dir = checkFile(dir, "policy.dir", baseDir, problems, true);
    // A downloaded bundle (policy.source) need not exist yet: the first download writes it.
    const downloaded =
      values.get("policy.source.http.url") !== undefined ||
      values.get("policy.source.object_store.bucket") !== undefined;
    if (bundle !== undefined) {
      policy.bundle = downloaded
        ? resolvePath(baseDir, bundle)
        : checkFile(bundle, "policy.bundle", baseDir, problems);
    }
  } else if (options.requirePolicy) {
    problems.push({ field: "policy.dir", message: "required: policy.dir or policy.bundle" });
  } else {
    for (const f of [
      "policy.entrypoint",
      "policy.mask_entrypoint",
      "policy.watch",
      "policy.poll_seconds",
      "policy.opa_binary",
      "policy.eval_workers",
      "policy.eval_timeout_ms",
      "policy.max_data_bytes",
      "policy.max_memory_mb",
    ]) {
      if (given(f)) problems.push({ field: f, message: "needs policy.dir or policy.bundle" });
    }
  }
  if (!ENTRYPOINT.test(get<string>("policy.entrypoint"))) {
    problems.push({ field: "policy.entrypoint", message: 'expected a path like "nats/authz/decision"' });
  }
  const maskEp = values.get("policy.mask_entrypoint") as string | undefined;
  if (maskEp !== undefined) {
    if (!ENTRYPOINT.test(maskEp)) {
      problems.push({ field: "policy.mask_entrypoint", message: 'expected a path like "nats/authz/mask"' });
    } else if (maskEp === get<string>("policy.entrypoint")) {
      problems.push({ field: "policy.mask_entrypoint", message: "must differ from policy.entrypoint" });
    }
  }

  const { source, signing } = resolvePolicySource(r, { ...(policy ?? {}) });
  if (policy !== undefined && source !== undefined) policy.source = source;
  if (policy !== undefined && signing !== undefined) policy.signing = signing;
  return policy;
}
