/**
 * `init` topology generation: the flags (ports, members, errors naming the flag), and the safety rule over
 * every shape it can generate — no listener admits anyone the policy has not decided:
 * every hub member includes the shared config with the callout; routes, gateways and the hub's leafnode
 * listener require a password; a leaf has its own auth_callout or admits nobody, and accepts no other leaf;
 * operator-mode configs carry the operator JWT inline (portable), no absolute path.
 * Then an operator-mode cluster boots from the generated files: a replica on one member serves a sentinel
 * login on the other (both server versions).
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import { parse } from "yaml";
import { bcryptHash, initCommand, runInit, type InitOptions } from "../../src/cli/init.js";
import { topologyFromFlags, writeTopology, type TopologyResult } from "../../src/cli/init-topology.js";
import { UsageError } from "../../src/cli/common.js";
import {
  startProcess,
  type Child,
  waitReady,
  generateTopology,
  removeTopology,
  startHub,
  waitForReplicas,
  authTimeoutSeconds,
  serverMatrix,
  REPO,
  skipWithoutOpa,
  CLIENT_PASS,
  topologyPolicyDir,
} from "../support/index.js";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function baseOpts(over: Partial<InitOptions> = {}): InitOptions {
  const dir = mkdtempSync(join(tmpdir(), "init-topo-"));
  dirs.push(dir);
  return {
    dir,
    operator: false,
    websocket: false,
    wsPort: 8080,
    host: "127.0.0.1",
    port: 4222,
    accounts: ["APP"],
    xkey: true,
    policyDir: "policies",
    metricsListen: "127.0.0.1:9464",
    timeout: 2,
    force: false,
    bcryptCost: 4,
    ...over,
  };
}

/** init with topology flags, in-process, as `initCommand` runs it. */
async function initWith(flags: Record<string, string>, over: Partial<InitOptions> = {}) {
  const opts = baseOpts(over);
  const t = topologyFromFlags(flags, opts);
  assert.ok(t, "a topology flag switches topologies on");
  const res = await runInit(opts);
  const topo = await writeTopology(t, res, opts, { runInit, bcryptHash });
  return { opts, t, res, topo };
}

const read = (p: string) => readFileSync(p, "utf8");

/** The text of a top-level `name { … }` block (balanced braces), or undefined. */
function block(text: string, name: string): string | undefined {
  const m = new RegExp(`^${name}\\s*\\{`, "m").exec(text);
  if (!m) return undefined;
  let depth = 0;
  for (let i = m.index + m[0].length - 1; i < text.length; i++) {
    if (text[i] === "{") depth++;
    if (text[i] === "}" && --depth === 0) return text.slice(m.index, i + 1);
  }
  return undefined;
}

/** The safety rule, checked on every generated server config. */
function assertNoPathAroundThePolicy(dir: string, topo: TopologyResult, operator: boolean): void {
  const shared = read(join(dir, "nats-server.conf"));
  if (operator) {
    assert.match(shared, /^operator: "eyJ/m, "operator JWT inline");
    assert.doesNotMatch(shared, /^operator: "\//m, "no absolute operator path");
  } else {
    assert.match(block(shared, "authorization") ?? "", /auth_callout/);
  }
  for (const { member, file } of topo.servers) {
    const text = read(file);
    assert.match(
      text,
      /^include "\.\.\/nats-server\.conf"$/m,
      `${member.name} includes the shared callout config`,
    );
    assert.doesNotMatch(
      text,
      /^(authorization|accounts|no_auth_user)\b/m,
      `${member.name} overrides no auth`,
    );
    for (const b of ["cluster", "gateway", "leafnodes"]) {
      const body = block(text, b);
      if (body)
        assert.match(body, /authorization \{ user: "[a-z]+", password: "\$2a\$/, `${member.name} ${b}`);
    }
    const leafBlock = block(text, "leafnodes");
    if (leafBlock) assert.match(leafBlock, /account: "APP"/, "the leaf user is bound to one target account");
  }
  if (topo.leaf) {
    const text = read(topo.leaf.configFile);
    assert.doesNotMatch(text, /no_auth_user/);
    assert.doesNotMatch(block(text, "leafnodes") ?? "", /listen/, "the leaf accepts no other leaf");
    if (topo.leaf.shape === "callout") {
      assert.match(block(text, "authorization") ?? "", /auth_callout/);
      assert.notEqual(
        /issuer: "(A[A-Z2-7]+)"/.exec(text)?.[1],
        /issuer: "(A[A-Z2-7]+)"/.exec(shared)?.[1],
        "the leaf has its own issuer",
      );
    } else {
      const users = [...text.matchAll(/\{ (\w+): "([^"]+)" \}/g)];
      assert.deepEqual(
        users.map((u) => u[1]),
        ["nkey"],
        "the closed leaf's only user is an nkey",
      );
      assert.doesNotMatch(text, /S[U][A-Z2-7]{56}/, "and its seed is nowhere");
    }
  }
}

describe("init topology flags", () => {
  test("--cluster 3 on one host: consecutive ports; service.yaml lists every member", async () => {
    const { topo, opts } = await initWith({ cluster: "3" });
    assert.deepEqual(
      topo.servers.map((s) => [s.member.name, s.member.port, s.member.clusterPort]),
      [
        ["callout-s1", 4222, 6222],
        ["callout-s2", 4223, 6223],
        ["callout-s3", 4224, 6224],
      ],
    );
    const svc = parse(read(join(opts.dir, "service.yaml"))) as { nats: { servers: string[] } };
    assert.deepEqual(svc.nats.servers, [
      "nats://127.0.0.1:4222",
      "nats://127.0.0.1:4223",
      "nats://127.0.0.1:4224",
    ]);
    assertNoPathAroundThePolicy(opts.dir, topo, false);
  });

  test("--members on three hosts: the same ports on each; routes name the peers", async () => {
    const { topo } = await initWith({ members: "10.0.0.1,10.0.0.2,10.0.0.3:4300" });
    assert.deepEqual(
      topo.servers.map((s) => `${s.member.host}:${s.member.port}/${s.member.clusterPort}`),
      ["10.0.0.1:4222/6222", "10.0.0.2:4222/6222", "10.0.0.3:4300/6222"],
    );
    const s1 = read(topo.servers[0]!.file);
    assert.match(s1, /@10\.0\.0\.2:6222"/);
    assert.match(s1, /@10\.0\.0\.3:6222"/);
    assert.doesNotMatch(s1, /@10\.0\.0\.1:6222"/, "no route to itself");
  });

  test("--members naming one host twice: consecutive ports there too", async () => {
    const { topo } = await initWith({ members: "127.0.0.1,127.0.0.1,10.0.0.9" });
    assert.deepEqual(
      topo.servers.map((s) => `${s.member.host}:${s.member.port}/${s.member.clusterPort}`),
      ["127.0.0.1:4222/6222", "127.0.0.1:4223/6223", "10.0.0.9:4222/6222"],
    );
  });

  test("--gateways 2 --cluster 2 --leaf callout: every shape at once stays closed", async () => {
    const { topo, opts } = await initWith({ gateways: "2", cluster: "2", leaf: "callout" });
    assert.deepEqual(
      topo.servers.map((s) => s.member.name),
      ["callout-1-s1", "callout-1-s2", "callout-2-s1", "callout-2-s2"],
    );
    assert.deepEqual(
      topo.serviceFiles.map((s) => s.cluster),
      ["callout-1", "callout-2"],
    );
    assertNoPathAroundThePolicy(opts.dir, topo, false);
  });

  test("--websocket with --cluster 2 on one host: each member gets its own websocket port", async () => {
    const { topo } = await initWith({ cluster: "2" }, { websocket: true, wsPort: 8080 });
    assert.deepEqual(
      topo.servers.map((s) => /websocket \{\s*listen: "([^"]+)"/.exec(read(s.file))?.[1]),
      ["127.0.0.1:8080", "127.0.0.1:8081"],
    );
  });

  test("--leaf closed", async () => {
    const { topo, opts } = await initWith({ leaf: "closed" });
    assert.equal(topo.servers.length, 1);
    assertNoPathAroundThePolicy(opts.dir, topo, false);
  });

  test("operator mode: clusters and gateways, the operator JWT inline", async () => {
    const { topo, opts } = await initWith({ cluster: "2", gateways: "2" }, { operator: true });
    assertNoPathAroundThePolicy(opts.dir, topo, true);
  });

  test("the CLI: init --cluster 2 --leaf closed writes every file, prints the steps, never a secret", async () => {
    const dir = baseOpts().dir;
    const printed: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (
      printed.push(String(chunk)),
      true
    )) as typeof process.stdout.write;
    let code: number;
    try {
      code = await initCommand(["--dir", dir, "--cluster", "2", "--leaf", "closed", "--bcrypt-cost", "4"]);
    } finally {
      process.stdout.write = write;
    }
    assert.equal(code, 0);
    const text = printed.join("");
    for (const f of ["servers/callout-s1.conf", "servers/callout-s2.conf", "leaf/nats-server.conf"]) {
      assert.ok(existsSync(join(dir, f)), f);
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} holds link passwords`);
      assert.ok(text.includes(`nats-server -c ${join(dir, f)}`), `next steps name ${f}`);
    }
    const routePw = /nats-route:\/\/route:([^@]+)@/.exec(read(join(dir, "servers/callout-s1.conf")))?.[1];
    assert.ok(routePw && !text.includes(routePw), "the route password is not printed");
  });

  test("the CLI refuses to overwrite a topology file, before writing anything", async () => {
    const dir = baseOpts().dir;
    mkdirSync(join(dir, "servers"));
    writeFileSync(join(dir, "servers", "callout-s2.conf"), "mine");
    await assert.rejects(
      initCommand(["--dir", dir, "--cluster", "2", "--bcrypt-cost", "4"]),
      (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.match(e.message, /callout-s2\.conf exists; use --force/);
        return true;
      },
    );
    assert.deepEqual(readdirSync(dir), ["servers"], "nothing else written");
    assert.equal(read(join(dir, "servers", "callout-s2.conf")), "mine");
  });

  test("bad flags name the flag, before anything is written", () => {
    const cases: [Record<string, string>, Partial<InitOptions>, RegExp][] = [
      [{ leaf: "open" }, {}, /--leaf: "open" is not a supported shape/],
      [{ leaf: "callout" }, { operator: true }, /--leaf: leaf nodes are generated in config mode only/],
      [{ leaf: "closed", "leaf-account": "OPS" }, {}, /--leaf-account: "OPS" is not one of --accounts/],
      [{ members: "a,b,c", gateways: "2" }, {}, /--members: 3 members cannot be split into 2 clusters/],
      [{ members: "a,b", cluster: "3" }, {}, /--members: 2 given, 3 needed/],
      [{ members: "a:99999" }, {}, /--members: "a:99999" is not host or host:port/],
      [{ cluster: "2", "cluster-port": "4223" }, {}, /address 127\.0\.0\.1:4223 is used twice/],
      [{ cluster: "0" }, {}, /--cluster must be an integer between 1 and 64/],
      [{ "cluster-name": "a b", cluster: "2" }, {}, /--cluster-name: "a b" is not a valid name/],
    ];
    for (const [flags, over, re] of cases) {
      assert.throws(
        () => topologyFromFlags(flags, baseOpts(over)),
        (e: unknown) => {
          assert.ok(e instanceof UsageError);
          assert.match(e.message, re);
          return true;
        },
      );
    }
    assert.equal(topologyFromFlags({}, baseOpts()), undefined, "no topology flag: no topology");
  });
});

for (const server of serverMatrix()) {
  const skip = server.missing ? `nats-server ${server.label} missing` : skipWithoutOpa;
  describe(`operator-mode cluster from init (${server.label} ${server.version})`, { skip }, () => {
    test("one replica (serve --config service.yaml as generated) serves sentinel logins on every member", async () => {
      const policyDir = topologyPolicyDir(mkdtempSync(join(tmpdir(), "init-topo-policy-")));
      dirs.push(join(policyDir, ".."));
      const g = await generateTopology({
        clusters: [2],
        operator: true,
        timeout: authTimeoutSeconds(),
        policyDir,
      });
      const hub = await startHub(server.bin, g);
      let serve: Child | undefined;
      try {
        const svcFile = join(g.dir, "service.yaml");
        const svc = parse(read(svcFile)) as { metrics: { listen: string }; nats: { servers: string[] } };
        assert.equal(svc.nats.servers.length, 2);
        serve = await startProcess(
          "serve",
          process.execPath,
          ["--import", "tsx", join(REPO, "src", "cli.ts"), "serve", "--config", svcFile],
          {
            cwd: REPO,
            env: { ...process.env, OPA_BIN: process.env.OPA_BIN ?? join(REPO, ".tools", "bin", "opa") },
          },
        );
        await waitReady(serve, `http://${svc.metrics.listen}/readyz`, 60_000);
        await waitForReplicas(
          hub,
          g.init.layout.mode === "operator" ? g.init.layout.calloutAccountPublicKey : "AUTH",
          "$SYS.REQ.USER.AUTH",
          1,
        );
        const sentinel = credsAuthenticator(readFileSync(join(g.dir, "sentinel.creds")));
        for (const s of hub) {
          const nc = await connect({
            servers: s.url,
            authenticator: sentinel,
            user: "alice",
            pass: CLIENT_PASS,
            reconnect: false,
            maxReconnectAttempts: 0,
            timeout: 10_000,
          });
          await nc.close();
        }
      } finally {
        await serve?.stop(2000);
        await Promise.all(hub.map((s) => s.kill()));
        removeTopology(g);
      }
    });
  });
}
