/**
 * Memory: the service's RSS over 100 reloads and 50,000 authorizations (reduced: 10 / 5,000), with the
 * example policy over 10,000 users (each reload builds a new wasm instance with its own memory; the old
 * one must be collected). Reloads alternate Rego edits (recompile) and data edits (module reused).
 * Stated bounds: final RSS < RSS_BOUND_MIB, and no growth trend — the mean of the second half of the
 * samples is at most the first half's mean × 1.25 + 32 MiB.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  buildGo,
  benchUser,
  examplePolicyDir,
  procRssBytes,
  stormGo,
  stormTs,
  type StormResult,
  RELIABILITY_FULL as FULL,
  RELIABILITY_SCALE_NAME as SCALE_NAME,
  atomicWrite,
  fileDir,
  policyStatus,
  startStack,
  waitUntil,
  type Stack,
} from "../support/index.js";

const RELOADS = FULL ? 100 : 10;
const AUTHS = FULL ? 50_000 : 5_000;
const USERS = 10_000;
const RSS_BOUND_MIB = 512;

let stack: Stack | undefined;
after(async () => {
  await stack?.close();
});

const mib = (b: number) => b / 2 ** 20;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test(`RSS after ${RELOADS} reloads and ${AUTHS} authorizations (${SCALE_NAME})`, async (t) => {
  const dir = fileDir("memory");
  const { dir: policyDir } = examplePolicyDir(join(dir, "policy"), USERS);
  stack = await startStack({ dir, policyDir, watch: true });
  const s = stack;
  const svc = s.services[0];
  assert.ok(svc);
  let goBin: string | undefined;
  try {
    goBin = await buildGo("bench/storm-go", "storm");
  } catch {
    goBin = undefined;
  }
  const storm = (n: number): Promise<StormResult> =>
    goBin
      ? stormGo(goBin, {
          url: s.server.url,
          n,
          concurrency: 50,
          user: "bench-u",
          pass: "bench-pw-{i}",
          users: USERS,
        })
      : stormTs({ url: s.server.url, n, concurrency: 50, creds: (i) => benchUser(i % USERS) });

  const authn = join(policyDir, "authz", "authn.rego");
  const regoBase = readFileSync(authn, "utf8");
  const dataPath = join(policyDir, "data.json");
  const dataBase = JSON.parse(readFileSync(dataPath, "utf8")) as {
    callout: { settings: Record<string, unknown> };
  };

  const warm = await storm(500);
  assert.equal(warm.failed, 0);
  const samples: number[] = [];
  const perStep = Math.ceil(AUTHS / RELOADS);
  let ok = 0;
  let failed = 0;
  for (let k = 0; k < RELOADS; k++) {
    const r = await storm(perStep);
    ok += r.ok;
    failed += r.failed;
    const before = await policyStatus(s.statusUrl(0));
    if (k % 2 === 0) {
      atomicWrite(authn, `${regoBase}\n# memory test edit ${k % 4}\n`);
    } else {
      dataBase.callout.settings.expires_in = 3000 + (k % 4);
      atomicWrite(dataPath, JSON.stringify(dataBase));
    }
    await waitUntil(
      `reload ${k + 1}`,
      async () => {
        const st = await policyStatus(s.statusUrl(0));
        return (st.reloads?.ok ?? 0) > (before.reloads?.ok ?? 0) ? st : undefined;
      },
      60_000,
    );
    samples.push(procRssBytes(svc.pid));
  }
  const final = await policyStatus(s.statusUrl(0));
  const rss = procRssBytes(svc.pid);
  await s.close();

  const half = Math.floor(samples.length / 2);
  const first = samples.slice(0, half);
  const second = samples.slice(half);
  t.diagnostic(
    `${ok} ok / ${failed} failed authorizations, reloads ok ${final.reloads?.ok} failed ${final.reloads?.failed}; ` +
      `RSS samples (MiB): ${samples.map((x) => mib(x).toFixed(0)).join(" ")}; final ${mib(rss).toFixed(0)} MiB; ` +
      `mean first half ${mib(mean(first)).toFixed(0)}, second half ${mib(mean(second)).toFixed(0)}`,
  );
  assert.equal(failed, 0, "no authorization failed");
  assert.ok(ok >= AUTHS, `ran ${ok} authorizations`);
  assert.ok((final.reloads?.ok ?? 0) >= RELOADS, "every reload was activated");
  assert.equal(final.reloads?.failed ?? 0, 0);
  assert.ok(mib(rss) < RSS_BOUND_MIB, `final RSS ${mib(rss).toFixed(0)} MiB >= ${RSS_BOUND_MIB} MiB`);
  assert.ok(
    mean(second) <= mean(first) * 1.25 + 32 * 2 ** 20,
    `RSS grows: first half mean ${mib(mean(first)).toFixed(0)} MiB, second half ${mib(mean(second)).toFixed(0)} MiB`,
  );
});
