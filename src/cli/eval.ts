/**
 * `nats-opa-callout eval`: an offline dry run of one authorization. Takes a decision-log event, a captured
 * request JWT, an input document or a decision case (auto-detected), runs it through the same handler, grant
 * validation and user-claims code as `serve`, and prints the (masked) input, the decision and the user claims
 * that would be issued — signed with the configured key (--config) or an ephemeral one.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { createAccount } from "@nats-io/nkeys";
import { CalloutError } from "../errors.js";
import { buildUserClaims } from "../callout/claims.js";
import { encodeJwt } from "../callout/jwt.js";
import { signerFromSeed, type Signer } from "../callout/keys.js";
import { CORE_DEFAULTS, denyReason, type CoreOptions } from "../callout/pipeline.js";
import { decide } from "../callout/decide.js";
import { coreOptionsFromConfig } from "../service.js";
import {
  isDecisionEvent,
  maskInput,
  maskLoggedInput,
  type DecisionEvent,
  type DecisionRecord,
} from "../audit.js";
import type { AuthorizationRequest } from "../types.js";
import { EXIT, UsageError, asUsage, err, out } from "./common.js";
import { openPolicyOrExit, policySettings } from "./policy.js";
import { requestFromInput, requestFromJwt } from "./request.js";
import { loadServeConfig } from "./serve.js";
import { parseNow } from "./check.js";

export const EVAL_HELP = `Usage: nats-opa-callout eval [policy options] [--event|--jwt|--input <file>] [<file>]

Dry run of one authorization, offline: print the input document, the policy's decision and the user
claims that would be issued. The source is auto-detected (or named with a flag); "-" reads stdin:
  - a decision-log event (one JSON line from the decision log; its time becomes --now),
  - a captured authorization request JWT (plaintext "eyJ…"; claims are used as sent),
  - a policy input document ({"version":1, "connect_opts":…, …}),
  - a decision case ({"input":…, "now":…, "expect":…}).

Decision-log events carry a MASKED input: passwords, tokens, JWTs and signatures read "[REDACTED]". A
decision that depended on them (a password check) cannot be replayed exactly from the event: it comes
out as a credential failure. Pass --input with the real input document to reproduce it.

Policy options:
  --config <file>        service config: policy, account allow-list and signing keys as in serve
  --policy-dir <dir>     Rego policy directory (default: ./policies unless --config)
  --bundle <file>        prebuilt wasm bundle
  --entrypoint <path>    decision entrypoint (default: nats/authz/decision)
  --opa <path>           opa binary (default: $OPA_BIN or "opa")
Input options:
  --event <file>         a decision-log event
  --jwt <file>           a request JWT
  --input <file>         an input document; with --event, replaces the event's (masked) input
  --now <time>           evaluation time, RFC 3339 or unix seconds (default: the event's/JWT's time, else now)
Output options:
  --expect <x>           exit 1 unless the outcome (allow|deny|abort) or reason equals x
  --json                 one JSON object instead of text
  --print-jwt            also print the signed user JWT
  -h, --help             show this help

Without --config the user JWT is signed with an ephemeral key (valid nowhere) and the decision's
own account is treated as allow-listed.

Examples:
  grep '"decision_id":"5f2c9a1e-1k"' decisions.log | nats-opa-callout eval --policy-dir policies -
  nats-opa-callout eval --config deploy/service.yaml --event event.json --input real-input.json
  nats-opa-callout eval --policy-dir policies policies/cases/password.json   # first case of the file

Exit codes: 0 evaluated (and --expect held); 1 --expect did not hold; 2 usage error; 3 policy error.
`;

function readSource(path: string): string {
  try {
    return path === "-" ? readFileSync(0, "utf8") : readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
}

type Source =
  | { kind: "event"; event: DecisionEvent }
  | { kind: "jwt"; token: string }
  | { kind: "input"; input: unknown }
  | { kind: "case"; input: unknown; now?: string; expect: unknown; name?: string };

/** Auto-detect what a file holds. */
export function detectSource(text: string, hint?: "event" | "jwt" | "input"): Source {
  const t = text.trim();
  if (hint === "jwt" || (hint === undefined && t.startsWith("eyJ"))) return { kind: "jwt", token: t };
  let doc: unknown;
  try {
    doc = JSON.parse(t);
  } catch {
    // A decision log holds one event per line: take the last one.
    const last =
      t
        .split("\n")
        .filter((l) => l.trim() !== "")
        .at(-1) ?? "";
    try {
      doc = JSON.parse(last);
    } catch {
      throw new UsageError("input is neither JSON nor a request JWT");
    }
  }
  if (isDecisionEvent(doc)) return { kind: "event", event: doc };
  if (hint === "event")
    throw new UsageError("--event: not a decision-log event (type nats_opa_callout.decision)");
  const o = doc as Record<string, unknown>;
  if (typeof doc === "object" && doc !== null && !Array.isArray(doc)) {
    if ("input" in o && "expect" in o) {
      const c: Source = { kind: "case", input: o.input, expect: o.expect };
      if (typeof o.now === "string") c.now = o.now;
      if (typeof o.name === "string") c.name = o.name;
      return c;
    }
    if ("connect_opts" in o || "client_info" in o || "version" in o) return { kind: "input", input: doc };
    // A cases file (object keyed by name): take the first case.
    const first = Object.values(o)[0] as Record<string, unknown> | undefined;
    if (first && typeof first === "object" && "input" in first && "expect" in first) {
      return detectSource(JSON.stringify(first));
    }
  }
  throw new UsageError(
    "cannot tell what this is: expected a decision-log event, a request JWT, an input or a case",
  );
}

export interface EvalReport {
  source: string;
  now: string;
  revision: string;
  notes: string[];
  input: unknown;
  outcome: { kind: "allow" | "deny" | "abort"; reason?: string; code?: string };
  decision?: unknown;
  claims?: Record<string, unknown>;
  signed_by?: string;
  jwt?: string;
  logged?: { outcome: string; reason?: string; code?: string; revision?: string };
  eval_us?: number;
  /** Why the evaluation failed (policy_eval_error, policy_timeout): OPA's text and file:line, scrubbed of secrets. */
  eval_error?: { code: string; message: string; file?: string; line?: number };
}

export async function evalCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: "string" },
        "policy-dir": { type: "string" },
        bundle: { type: "string" },
        entrypoint: { type: "string" },
        opa: { type: "string" },
        event: { type: "string" },
        jwt: { type: "string" },
        input: { type: "string" },
        now: { type: "string" },
        expect: { type: "string" },
        json: { type: "boolean" },
        "print-jwt": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    asUsage(e);
  }
  if (values.help) {
    out(EVAL_HELP);
    return EXIT.OK;
  }
  if (positionals.length > 1) throw new UsageError("at most one source file");
  const named = (["event", "jwt"] as const).filter((k) => values[k] !== undefined);
  if (named.length + positionals.length > 1)
    throw new UsageError("give one source: --event, --jwt or a file");
  const inputOverride = values.input as string | undefined;
  const srcPath = (values.event ?? values.jwt ?? positionals[0]) as string | undefined;
  if (srcPath === undefined && inputOverride === undefined) {
    throw new UsageError("nothing to evaluate: give a decision-log event, a request JWT or --input");
  }

  // ---- what to evaluate ----
  const notes: string[] = [];
  let source: Source | undefined;
  if (srcPath !== undefined) {
    const hint = values.event !== undefined ? "event" : values.jwt !== undefined ? "jwt" : undefined;
    source = detectSource(readSource(srcPath), hint);
  }
  let now: Date | undefined = values.now !== undefined ? parseNow(values.now as string) : undefined;
  let req: AuthorizationRequest;
  let sourceLabel: string;
  let logged: EvalReport["logged"];
  const overrideDoc =
    inputOverride !== undefined
      ? (() => {
          const s = detectSource(readSource(inputOverride), "input");
          if (s.kind === "jwt" || s.kind === "event")
            throw new UsageError("--input: expected an input document");
          return s.input;
        })()
      : undefined;
  if (source?.kind === "event") {
    const ev = source.event;
    now ??= new Date(ev.time);
    sourceLabel = `decision-log event ${ev.decision_id} (${ev.time})`;
    logged = { outcome: ev.outcome };
    if (ev.reason !== undefined) logged.reason = ev.reason;
    if (ev.code !== undefined) logged.code = ev.code;
    if (ev.revision !== undefined) logged.revision = ev.revision;
    let doc = overrideDoc ?? ev.input;
    if (doc === undefined) {
      throw new UsageError(
        `the event has no input (input_dropped: ${ev.input_dropped ?? "unknown"}); pass it with --input`,
      );
    }
    if (overrideDoc === undefined && ev.masked?.length) {
      notes.push(
        `the logged input is masked (${ev.masked.join(", ")}): decisions that depend on these values ` +
          `cannot be reproduced exactly; pass the real input with --input`,
      );
    }
    if (overrideDoc === undefined) doc = ev.input;
    req = requestFromInput(doc, now, notes);
  } else if (source?.kind === "jwt") {
    const r = requestFromJwt(source.token);
    if (r.note !== undefined) notes.push(r.note);
    now ??= r.issuedAt;
    sourceLabel = "request JWT";
    req = overrideDoc !== undefined ? requestFromInput(overrideDoc, now, notes) : r.req;
  } else if (source?.kind === "case") {
    now ??= source.now !== undefined ? parseNow(source.now) : new Date();
    sourceLabel = `decision case${source.name ? ` ${source.name}` : ""}`;
    req = requestFromInput(overrideDoc ?? source.input, now, notes);
  } else {
    now ??= new Date();
    sourceLabel = "input document";
    req = requestFromInput(overrideDoc ?? (source as { input: unknown } | undefined)?.input, now, notes);
  }

  // ---- policy and keys ----
  let core: CoreOptions | undefined;
  let settings;
  if (values.config !== undefined) {
    const overrides: [string, string][] = [];
    if (values["policy-dir"] !== undefined) overrides.push(["policy-dir", values["policy-dir"] as string]);
    if (values.bundle !== undefined) overrides.push(["bundle", values.bundle as string]);
    if (values.entrypoint !== undefined) overrides.push(["entrypoint", values.entrypoint as string]);
    const cfg = loadServeConfig({ config: values.config as string, overrides }, process.env);
    settings = { ...cfg.policy!, watch: false };
    core = coreOptionsFromConfig(cfg);
  } else {
    const p: { dir?: string; bundle?: string; entrypoint?: string; opaBinary?: string } = {};
    if (values.bundle !== undefined) p.bundle = resolve(values.bundle as string);
    else p.dir = resolve((values["policy-dir"] as string | undefined) ?? "policies");
    if (values.entrypoint !== undefined) p.entrypoint = values.entrypoint as string;
    settings = policySettings(p);
  }
  if (values.opa !== undefined) settings.opaBinary = values.opa as string;

  const policy = await openPolicyOrExit(settings);
  if (policy === EXIT.POLICY) return EXIT.POLICY;

  const report: EvalReport = {
    source: sourceLabel,
    now: now.toISOString(),
    revision: policy.status().revision ?? "",
    notes,
    input: undefined,
    outcome: { kind: "deny" },
  };
  if (logged) report.logged = logged;
  try {
    // The same decide stage as serve (src/callout/decide.ts): handler, grant validation, injection check.
    const accounts =
      core === undefined
        ? undefined
        : core.mode === "config"
          ? [...core.accounts]
          : Object.keys(core.accounts);
    const { verdict, facts } = await decide(
      req,
      { decisionId: "eval", now },
      { handler: policy.handler, ...(accounts !== undefined ? { accounts } : {}) },
    );
    if (verdict.kind === "abort") {
      report.outcome = { kind: "abort", reason: verdict.error.message, code: verdict.error.code };
    } else if (verdict.kind === "deny") {
      report.outcome = { kind: "deny", reason: denyReason(verdict.error), code: verdict.error.code };
    }
    const raw = facts.input ?? {};
    if (policy.mask) {
      // The same masking as the decision log: built-in masks, then policy.mask_entrypoint on this snapshot.
      const rec: DecisionRecord = { decisionId: "eval", receivedAt: now, outcome: report.outcome.kind };
      if (facts.evaluate !== undefined) rec.evaluate = facts.evaluate;
      const logged = maskLoggedInput(raw, policy.mask, rec);
      if (logged) {
        report.input = logged.input;
      } else {
        report.input = null;
        notes.push(
          "the policy mask (policy.mask_entrypoint) failed: the decision log would leave the input out",
        );
      }
    } else {
      report.input = maskInput(raw).input;
    }
    if (facts.decision !== undefined) report.decision = maskInput(facts.decision).input;
    if (facts.eval_us !== undefined) report.eval_us = facts.eval_us;
    if (facts.eval_error !== undefined) report.eval_error = facts.eval_error;
    if (verdict.kind === "allow") {
      // Then the pipeline's signing steps: user claims, signed user JWT (an ephemeral key without --config).
      const mode = core?.mode ?? "config";
      try {
        const valid = verdict.grant;
        let signer: Signer;
        let accountPublicKey: string | undefined;
        if (core === undefined) {
          signer = signerFromSeed(new TextDecoder().decode(createAccount().getSeed()), "account");
          notes.push("signed with an ephemeral account key (no --config): the JWT is valid nowhere");
        } else if (core.mode === "config") {
          signer = core.issuer;
        } else {
          const a = core.accounts[valid.account];
          if (!a) throw new CalloutError("account_not_allowed", `no signer for account ${valid.account}`);
          signer = a.signer;
          accountPublicKey = a.publicKey;
        }
        const nowMs = now.getTime();
        const claims = buildUserClaims(valid, req, {
          mode,
          signer,
          accountPublicKey,
          defaultExpirySeconds: core?.defaultExpirySeconds ?? CORE_DEFAULTS.defaultExpirySeconds,
          maxExpirySeconds: core?.maxExpirySeconds ?? CORE_DEFAULTS.maxExpirySeconds,
          nowMs,
        });
        const jwt = encodeJwt(claims, signer, nowMs);
        report.claims = { ...claims, iss: signer.publicKey, iat: Math.floor(nowMs / 1000) };
        report.signed_by = signer.publicKey;
        if (values["print-jwt"]) report.jwt = jwt;
        report.outcome = { kind: "allow" };
        if (verdict.reason !== undefined) report.outcome.reason = verdict.reason;
      } catch (e) {
        const code = e instanceof CalloutError ? e.code : "handler_error";
        report.outcome = { kind: "deny", reason: e instanceof CalloutError ? denyReason(e) : code, code };
      }
    }
  } finally {
    await policy.close();
  }

  if (values.json) {
    out(JSON.stringify(report, null, 2));
  } else {
    out(`source    ${report.source}`);
    out(`policy    ${settings.dir ?? settings.bundle}  revision ${report.revision}`);
    out(`now       ${report.now}`);
    for (const n of report.notes) out(`note      ${n}`);
    out(`input     (masked as in the decision log)`);
    out(indent(JSON.stringify(report.input, null, 2)));
    if (report.decision !== undefined) {
      out(`decision`);
      out(indent(JSON.stringify(report.decision, null, 2)));
    }
    const o = report.outcome;
    out(
      `outcome   ${o.kind.toUpperCase()}${o.reason ? `  reason=${o.reason}` : ""}${o.code && o.kind !== "allow" ? `  code=${o.code}` : ""}${report.eval_us !== undefined ? `  (eval ${report.eval_us} µs)` : ""}`,
    );
    if (report.eval_error) {
      const e = report.eval_error;
      const at = e.file !== undefined ? `  at ${e.file}${e.line !== undefined ? `:${e.line}` : ""}` : "";
      out(`error     ${e.code}: ${e.message}${at}`);
    }
    if (report.logged) {
      const same =
        report.logged.outcome === o.kind &&
        (o.kind === "allow" || report.logged.reason === undefined || report.logged.reason === o.reason);
      out(
        `logged    ${report.logged.outcome}${report.logged.reason ? ` reason=${report.logged.reason}` : ""}` +
          `${report.logged.revision ? ` revision ${report.logged.revision}` : ""} → ${same ? "reproduced" : "DIFFERENT"}` +
          (report.logged.revision && report.logged.revision !== report.revision
            ? " (policy revision differs)"
            : ""),
      );
    }
    if (report.claims) {
      out(`user JWT claims (signed by ${report.signed_by})`);
      out(indent(JSON.stringify(report.claims, null, 2)));
    }
    if (report.jwt) out(`jwt       ${report.jwt}`);
  }
  const expect = values.expect as string | undefined;
  if (expect !== undefined) {
    const o = report.outcome;
    const held = expect === o.kind || expect === o.reason || expect === o.code;
    if (!held) {
      err(`expected ${expect}, got ${o.kind}${o.reason ? ` (${o.reason})` : ""}`);
      return EXIT.RUNTIME;
    }
  }
  return EXIT.OK;
}

function indent(s: string): string {
  return s
    .split("\n")
    .map((l) => "  " + l)
    .join("\n");
}
