/**
 * The nkey proof (src/callout/nkey-proof.ts) in-process: signatures made with @nats-io/nkeys (tweetnacl, the
 * client side) verified with node:crypto, in both base64 alphabets; every forgery nats-server forwards unchecked
 * (garbage, another key's signature, none, a malformed nkey) is refused; and the pipeline hands a proven key to
 * handlers (`req.proven_nkey`) and policies (`derived.nkey`) and denies a forged proof before the handler runs.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createAccount, createUser } from "@nats-io/nkeys";
import {
  clientKeyVerifier,
  decodeSignature,
  noNonceReporter,
  nonceObserver,
  proveNkey,
} from "../../src/callout/nkey-proof.js";
import { createAuthorizer } from "../../src/callout/pipeline.js";
import { buildInput } from "../../src/policy/input.js";
import { requestFromInput, requestFromJwt } from "../../src/cli/request.js";
import type { AuthorizationRequest } from "../../src/types.js";
import { buildRequest, makeKeys } from "../support/index.js";

const te = new TextEncoder();
const NONCE = "a_E4fy2wh0AUgJ0";
const user = createUser();
const other = createUser();
const sign = (kp = user, nonce = NONCE) => kp.sign(te.encode(nonce));
const std = (b: Uint8Array) => Buffer.from(b).toString("base64");
const url = (b: Uint8Array) => Buffer.from(b).toString("base64url");

/** `nonce` null: the request carries none. */
function proof(co: Record<string, string>, nonce: string | null = NONCE) {
  const client_info = nonce === null ? {} : { nonce };
  return proveNkey({ client_info, connect_opts: co }, clientKeyVerifier());
}

describe("proveNkey", () => {
  const nkey = user.getPublicKey();

  test("a valid signature is proven: standard base64 with padding (nats.js) and base64url without (Go)", () => {
    assert.deepEqual(proof({ nkey, sig: std(sign()) }), { status: "proven", nkey });
    assert.deepEqual(proof({ nkey, sig: url(sign()) }), { status: "proven", nkey });
    assert.deepEqual(proof({ nkey, sig: url(sign()) + "==" }), { status: "proven", nkey });
    assert.deepEqual(proof({ nkey, sig: std(sign()).replace(/=+$/, "") }), { status: "proven", nkey });
  });

  test("forgeries are refused, naming the field", () => {
    const failed = (co: Record<string, string>, field: string) => {
      const p = proof(co);
      assert.equal(p.status, "failed", JSON.stringify(co));
      assert.equal(p.status === "failed" ? p.field : "", field);
    };
    failed({ nkey, sig: "Z2FyYmFnZQ==" }, "connect_opts.sig"); // garbage
    failed({ nkey, sig: std(sign(other)) }, "connect_opts.sig"); // another key's signature
    failed({ nkey, sig: std(sign(user, "another-nonce")) }, "connect_opts.sig"); // a replayed signature
    failed({ nkey }, "connect_opts.sig"); // none, although the server sent a nonce
    failed({ nkey, sig: "" }, "connect_opts.sig");
    const good = std(sign());
    failed({ nkey, sig: good.slice(0, 40) + "-_" + good.slice(42) }, "connect_opts.sig"); // mixed alphabets
    failed({ nkey: "UABC", sig: good }, "connect_opts.nkey"); // malformed
    failed({ nkey: nkey.slice(0, -1) + (nkey.endsWith("A") ? "B" : "A"), sig: good }, "connect_opts.nkey"); // CRC
    failed({ nkey: createAccount().getPublicKey(), sig: good }, "connect_opts.nkey"); // not a user key
    failed({ nkey: nkey.toLowerCase(), sig: good }, "connect_opts.nkey");
  });

  test("no nkey: nothing to prove; an nkey without a nonce: unprovable, whatever the sig", () => {
    assert.deepEqual(proof({ sig: std(sign()) }), { status: "none" });
    assert.deepEqual(proof({ nkey: "" }), { status: "none" });
    assert.deepEqual(proof({ nkey }, null), { status: "unprovable" });
    assert.deepEqual(proof({ nkey, sig: "garbage" }, null), { status: "unprovable" });
    assert.deepEqual(proof({ nkey, sig: std(sign()) }, ""), { status: "unprovable" });
  });

  test("decodeSignature accepts exactly 64 bytes of base64", () => {
    assert.equal(decodeSignature(std(sign()))?.byteLength, 64);
    assert.equal(decodeSignature(std(new Uint8Array(63))), undefined);
    assert.equal(decodeSignature(std(new Uint8Array(65))), undefined);
    assert.equal(decodeSignature(" " + std(sign())), undefined);
  });
});

describe("noNonceReporter and nonceObserver", () => {
  test("the first connect without a nonce is reported, once; connects with one never", () => {
    let reports = 0;
    const check = noNonceReporter(() => reports++);
    check("n0nce");
    assert.equal(reports, 0);
    check(undefined);
    check("");
    check(undefined);
    assert.equal(reports, 1);
  });

  test("the observer rides along the connection's authenticators and adds nothing to the CONNECT", () => {
    const seen: (string | undefined)[] = [];
    const userPass = () => ({ user: "u", pass: "p" });
    const list = nonceObserver(userPass, (n) => seen.push(n));
    assert.equal(list.length, 2);
    assert.equal(list[0], userPass);
    assert.equal((list[1] as (n?: string) => unknown)("abc"), undefined);
    assert.deepEqual(seen, ["abc"]);
    assert.equal(nonceObserver(undefined, () => {}).length, 1);
    assert.equal(nonceObserver([userPass, userPass], () => {}).length, 3);
  });
});

describe("the pipeline", () => {
  const keys = makeKeys();
  const opts = { mode: "config" as const, issuer: keys.issuer.signer, accounts: ["APP"] };

  test("a proven nkey reaches the handler as req.proven_nkey and the policy input as derived.nkey", async () => {
    let seen: AuthorizationRequest | undefined;
    const auth = createAuthorizer(opts, (rq) => {
      seen = rq;
      return { account: "APP" };
    });
    const nkey = user.getPublicKey();
    const r = await auth(
      buildRequest(keys, { client_info: { nonce: NONCE }, connect_opts: { nkey, sig: std(sign()) } }).data,
    );
    assert.equal(r.outcome.kind, "allow");
    assert.equal(seen?.proven_nkey, nkey);
    const input = buildInput(seen!);
    assert.equal(input.derived.nkey, nkey);
    // eval replays an event's input with the same fact
    assert.equal(buildInput(requestFromInput(input, new Date())).derived.nkey, nkey);
  });

  test("an unproven nkey is a bare claim: no proven_nkey, no derived.nkey", async () => {
    let seen: AuthorizationRequest | undefined;
    const auth = createAuthorizer(opts, (rq) => {
      seen = rq;
      return { account: "APP" };
    });
    await auth(buildRequest(keys, { connect_opts: { nkey: user.getPublicKey() } }).data);
    assert.ok(seen);
    assert.equal(seen.proven_nkey, undefined);
    assert.equal("nkey" in buildInput(seen).derived, false);
  });

  test("a forged proof is denied nkey_proof_failed before the handler runs", async () => {
    let calls = 0;
    const auth = createAuthorizer(opts, () => {
      calls++;
      return { account: "APP" };
    });
    const nkey = user.getPublicKey();
    for (const [co, field] of [
      [{ nkey, sig: std(sign(other)) }, "connect_opts.sig"],
      [{ nkey, sig: "Z2FyYmFnZQ==" }, "connect_opts.sig"],
      [{ nkey }, "connect_opts.sig"],
      [{ nkey: "UABC", sig: std(sign()) }, "connect_opts.nkey"],
    ] as const) {
      const r = await auth(
        buildRequest(keys, { client_info: { nonce: NONCE }, connect_opts: { ...co } }).data,
      );
      assert.deepEqual(r.outcome, {
        kind: "deny",
        code: "nkey_proof_failed",
        reason: `nkey_proof_failed: ${field}`,
      });
      assert.ok(r.reply, "a signed deny, so the client is not left waiting");
    }
    assert.equal(calls, 0);
  });
});

describe("eval's captured request JWTs", () => {
  const keys = makeKeys();
  test("are proven the same way: a valid proof sets proven_nkey, a failed one is noted", () => {
    const nkey = user.getPublicKey();
    const good = buildRequest(keys, {
      client_info: { nonce: NONCE },
      connect_opts: { nkey, sig: std(sign()) },
    });
    const ok = requestFromJwt(good.token);
    assert.equal(ok.req.proven_nkey, nkey);
    assert.equal(ok.note, undefined);
    const bad = buildRequest(keys, {
      client_info: { nonce: NONCE },
      connect_opts: { nkey, sig: std(sign(other)) },
    });
    const r = requestFromJwt(bad.token);
    assert.equal(r.req.proven_nkey, undefined);
    assert.match(r.note ?? "", /nkey_proof_failed/);
  });
});
