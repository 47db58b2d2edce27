/**
 * Per-authorization CPU cost in-process, split by stage, for the trivial policy and for the example
 * policy over a data document with 10k generated users:
 *
 *   request verify   decodeRequest on a plaintext request (parse, exp, iss, Ed25519 verify, fields)
 *   xkey open        opening a sealed request (cached box key)
 *   input build      buildInput (policy input document v1)
 *   policy eval      engine.evaluate + toDecision (wasm; time frozen per call)
 *   claim build+sign validateGrant + user claims + user JWT + signed response
 *   xkey seal        sealing the response
 *
 * plus the whole createAuthorizer() pipeline with the policy handler (plaintext and xkey), which is
 * what one request really costs the service's event loop (minus NATS I/O).
 */
import { join } from "node:path";
import {
  buildUserClaims,
  createAuthorizer,
  decodeRequest,
  encodeJwt,
  encodeResponse,
  signerFromSeed,
  Verifier,
  xkeyFromSeed,
} from "../src/callout/index.js";
import { decide } from "../src/callout/decide.js";
import { validateGrant } from "../src/grant.js";
import { buildInput, createPolicyEngine, toDecision } from "../src/policy/index.js";
import type { AuthorizationRequest, Grant } from "../src/types.js";
import {
  newKeys,
  OPA_BIN,
  tempDir,
  benchUser,
  examplePolicyDir,
  trivialPolicyDir,
  fakeServer,
  makeRequest,
} from "../test/support/index.js";
import { perOpUs, perOpUsAsync } from "./lib/timing.js";

export interface StageCosts {
  policy: string;
  users: number;
  request_verify_us: number;
  xkey_open_us: number;
  input_build_us: number;
  policy_eval_us: number;
  claims_sign_us: number;
  xkey_seal_us: number;
  /** Sum of the plaintext stages (verify + input + eval + claims/sign). */
  sum_plain_us: number;
  /** createAuthorizer + policy handler, plaintext and sealed, per call. */
  authorize_plain_us: number;
  authorize_xkey_us: number;
}

export async function stageBench(opts: {
  iterations: number;
  log: (m: string) => void;
}): Promise<StageCosts[]> {
  const keys = newKeys();
  const issuer = signerFromSeed(keys.issuerSeed, "account");
  const xkey = xkeyFromSeed(keys.xkeySeed);
  const server = fakeServer();
  const root = tempDir("noc-stages-");
  const n = opts.iterations;
  const out: StageCosts[] = [];

  const setups: { name: string; users: number; dir: string }[] = [
    { name: "trivial", users: 0, dir: trivialPolicyDir(join(root, "trivial")) },
    { name: "example", users: 10_000, dir: examplePolicyDir(join(root, "example-10k"), 10_000).dir },
  ];
  for (const setup of setups) {
    const engine = await createPolicyEngine({ dir: setup.dir, watch: false, opaBin: OPA_BIN });
    try {
      const active = engine.store.current();
      // A pool of distinct requests (distinct users for the example policy), plaintext and sealed.
      const pool = 256;
      const plain: Uint8Array[] = [];
      const sealed: { data: Uint8Array; header: string }[] = [];
      for (let i = 0; i < pool; i++) {
        const u = setup.users > 0 ? benchUser((i * 37) % setup.users) : { user: `user${i}`, pass: "x-pass" };
        const spec = { server, issuer: keys.issuerPub, ...u, ttlS: 3600 };
        plain.push(makeRequest(spec).data);
        const s = makeRequest({ ...spec, sealFor: xkey.publicKey });
        sealed.push({ data: s.data, header: s.header as string });
      }
      const verifier = new Verifier();
      const decodeOpts = { verifier, expectedIssuer: keys.issuerPub };
      const reqs: AuthorizationRequest[] = plain.map((d) => decodeRequest(d, undefined, decodeOpts));
      const inputs = reqs.map((r) => buildInput(r));
      const nowNs = BigInt(Date.now()) * 1_000_000n;
      // The grants the service would issue: the same decide stage as serve, eval and check.
      const grants: Grant[] = [];
      for (const [i, req] of reqs.entries()) {
        const { verdict } = await decide(
          req,
          { decisionId: `bench-${i}`, now: new Date() },
          { handler: engine.handler, accounts: ["APP"] },
        );
        if (verdict.kind !== "allow")
          throw new Error(`${setup.name}: bench request ${i} not allowed (${verdict.kind})`);
        grants.push(verdict.grant);
      }
      const responseBytes = plain[0] as Uint8Array;

      const at = <T>(xs: T[], i: number) => xs[i % xs.length] as T;
      const verifyUs = perOpUs((i) => decodeRequest(at(plain, i), undefined, decodeOpts), n);
      const openUs = perOpUs((i) => xkey.open(at(sealed, i).data, at(sealed, i).header), n);
      const inputUs = perOpUs((i) => buildInput(at(reqs, i)), n);
      // Through the worker pool, one at a time (includes the thread round trip the service pays).
      const evalUs = await perOpUsAsync(
        async (i) =>
          toDecision(
            (await active.policy.evaluate(at(inputs, i), active.entrypoint, { nowNs })).result,
            at(reqs, i).connect_opts,
          ),
        n,
      );
      const signUs = perOpUs((i) => {
        const req = at(reqs, i);
        const g = validateGrant(at(grants, i), req, { accounts: ["APP"] });
        const now = Date.now();
        const claims = buildUserClaims(g, req, {
          mode: "config",
          signer: issuer,
          defaultExpirySeconds: 3600,
          maxExpirySeconds: 86_400,
          nowMs: now,
        });
        const jwt = encodeJwt(claims, issuer, now);
        return encodeResponse(req, { jwt }, { signer: issuer, nowMs: now });
      }, n);
      const sealUs = perOpUs(() => xkey.seal(responseBytes, server.xkey.publicKey), n);

      const authPlain = createAuthorizer({ mode: "config", issuer, accounts: ["APP"] }, engine.handler);
      const authXkey = createAuthorizer({ mode: "config", issuer, accounts: ["APP"], xkey }, engine.handler);
      const check = await authPlain(at(plain, 0));
      if (check.outcome.kind !== "allow") throw new Error(`${setup.name}: authorize() did not allow`);
      const checkX = await authXkey(at(sealed, 0).data, at(sealed, 0).header);
      if (checkX.outcome.kind !== "allow") throw new Error(`${setup.name}: sealed authorize() did not allow`);
      const authPlainUs = await perOpUsAsync((i) => authPlain(at(plain, i)), n);
      const authXkeyUs = await perOpUsAsync((i) => authXkey(at(sealed, i).data, at(sealed, i).header), n);

      const row: StageCosts = {
        policy: setup.name,
        users: setup.users,
        request_verify_us: verifyUs,
        xkey_open_us: openUs,
        input_build_us: inputUs,
        policy_eval_us: evalUs,
        claims_sign_us: signUs,
        xkey_seal_us: sealUs,
        sum_plain_us: verifyUs + inputUs + evalUs + signUs,
        authorize_plain_us: authPlainUs,
        authorize_xkey_us: authXkeyUs,
      };
      opts.log(
        `  ${setup.name}: verify ${verifyUs.toFixed(1)} open ${openUs.toFixed(1)} input ${inputUs.toFixed(2)} ` +
          `eval ${evalUs.toFixed(1)} sign ${signUs.toFixed(1)} seal ${sealUs.toFixed(1)} | authorize ${authPlainUs.toFixed(1)} / xkey ${authXkeyUs.toFixed(1)} µs`,
      );
      out.push(row);
    } finally {
      await engine.close();
    }
  }
  return out;
}
