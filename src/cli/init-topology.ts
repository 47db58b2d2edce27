/**
 * `init` topologies: the nats-server configs for a routed cluster, a supercluster (clusters joined by
 * gateways) and a leaf node, on top of the single-server files `runInit` writes.
 *
 * Every shape keeps the one rule that makes the callout a policy and not a suggestion: **no listener admits
 * anyone the policy has not decided**.
 * - Hub members include the shared `nats-server.conf` (identical accounts and `auth_callout` everywhere) and
 *   override only their own addresses. Route and gateway listeners require a generated password (an open
 *   cluster port lets any server join and carry its own clients in).
 * - The hub's leafnode listener admits only the generated leaf user, bound to one target account.
 * - The leaf either runs its own `auth_callout` (fresh keys, served by a replica connected **at the leaf**: its
 *   callout account is never linked to the hub, which would put the leaf in the hub's callout account) or
 *   admits nobody: its only user is an nkey whose seed is never written. A leaf without auth is never
 *   generated: its clients would skip the policy.
 *
 * Outcomes: files written (0600 when they hold passwords), or a UsageError naming the flag before anything
 * is written. Operator mode supports clusters and gateways; leaf nodes are config mode only.
 */
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createUser } from "@nats-io/nkeys";
import { parseDocument } from "yaml";
import { UsageError, intFlag } from "./common.js";
import type { InitOptions, InitResult } from "./init.js";

export const TOPOLOGY_HELP = `Topologies (docs/operations.md#topologies; any of these flags switches them on):
  --cluster <n>          members per cluster (routed cluster; default 1 when only --leaf/--gateways)
  --members <h[:p],...>  hosts (optionally host:client-port) of all members, in order; members on
                         the same host get consecutive ports (default: every member on --host)
  --gateways <k>         join k clusters with gateways (a supercluster; default 1: no gateways)
  --cluster-name <name>  cluster name (with --gateways: <name>-1 … <name>-k; default: callout)
  --cluster-port <n>     route port of the first member on a host (default: 6222)
  --gateway-port <n>     gateway port of the first member on a host (default: 7222)
  --leaf <shape>         add a leaf node: "callout" (its own auth_callout, served by a replica
                         connected at the leaf) or "closed" (admits no client at all)
  --leaf-listen <h:p>    the leaf's client address (default: 127.0.0.1:4322)
  --leafnode-port <n>    the hub's leafnode port of the first member on a host (default: 7422)
  --leaf-account <name>  the hub account the leaf is bound to (default: the first of --accounts)
  Files: servers/<member>.conf per server (0600: link passwords), service-<cluster>.yaml per
  further cluster, leaf/nats-server.conf (+ leaf/service.yaml and keys with --leaf callout).`;

/** parseArgs option specs of the topology flags (merged into init's). */
export const TOPOLOGY_FLAGS = {
  cluster: { type: "string" },
  members: { type: "string" },
  gateways: { type: "string" },
  "cluster-name": { type: "string" },
  "cluster-port": { type: "string" },
  "gateway-port": { type: "string" },
  leaf: { type: "string" },
  "leaf-listen": { type: "string" },
  "leafnode-port": { type: "string" },
  "leaf-account": { type: "string" },
} as const;

export type LeafShape = "callout" | "closed";

/** One hub server: its name and every address it listens on. */
export interface Member {
  name: string;
  cluster: string;
  host: string;
  port: number;
  clusterPort: number;
  gatewayPort: number;
  leafnodePort: number;
  wsPort: number;
}

export interface TopologyOptions {
  /** Clusters (one, or several joined by gateways), each a list of members. */
  clusters: { name: string; members: Member[] }[];
  leaf?: { shape: LeafShape; host: string; port: number; account: string };
}

export interface TopologyResult {
  /** Config file of each hub member, in cluster order. */
  servers: { member: Member; file: string }[];
  /** Service config per cluster (replicas of a cluster connect to its members). */
  serviceFiles: { cluster: string; file: string }[];
  leaf?: { shape: LeafShape; configFile: string; serviceFile?: string; url: string };
  files: { path: string; secret: boolean }[];
  /** Generated passwords (route, gateway, leaf user) and the leaf's keys; never printed unless asked. */
  secrets: Record<string, string>;
}

const NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const q = (s: string): string => JSON.stringify(s);
const hostPort = (h: string, p: number): string => `${h.includes(":") ? `[${h}]` : h}:${p}`;
const password = (): string => randomBytes(24).toString("base64url");

/** `host` or `host:port` (IPv6 in brackets); the port is undefined when not given. */
function parseHostPort(flag: string, v: string): { host: string; port: number | undefined } {
  const m = /^(\[[^\]]+\]|[^:\s]+)(?::(\d+))?$/.exec(v.trim());
  const port = m?.[2] !== undefined ? Number(m[2]) : undefined;
  if (!m || (port !== undefined && (port < 1 || port > 65535))) {
    throw new UsageError(`--${flag}: "${v}" is not host or host:port`);
  }
  return { host: (m[1] as string).replace(/^\[|\]$/g, ""), port };
}

/** The topology the flags ask for, or undefined when no topology flag is given. Throws UsageError. */
export function topologyFromFlags(
  values: Record<string, string | boolean | undefined>,
  opts: InitOptions,
): TopologyOptions | undefined {
  const str = (k: keyof typeof TOPOLOGY_FLAGS): string | undefined => values[k] as string | undefined;
  if (!["cluster", "members", "gateways", "leaf"].some((k) => values[k] !== undefined)) return undefined;
  const k = intFlag("gateways", str("gateways"), 1, 1, 16);
  const hosts = (str("members") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((h) => parseHostPort("members", h));
  const perCluster = str("cluster") !== undefined ? intFlag("cluster", str("cluster"), 1, 1, 64) : undefined;
  let n = perCluster ?? (hosts.length > 0 ? hosts.length / k : 1);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`--members: ${hosts.length} members cannot be split into ${k} clusters`);
  }
  if (hosts.length > 0 && hosts.length !== n * k) {
    throw new UsageError(
      `--members: ${hosts.length} given, ${n * k} needed (--cluster ${n} × --gateways ${k})`,
    );
  }
  if (hosts.length === 0) n = perCluster ?? 1;
  const base = str("cluster-name") ?? "callout";
  if (!NAME_RE.test(base)) throw new UsageError(`--cluster-name: "${base}" is not a valid name`);
  const ports = {
    cluster: intFlag("cluster-port", str("cluster-port"), 6222, 1),
    gateway: intFlag("gateway-port", str("gateway-port"), 7222, 1),
    leafnode: intFlag("leafnode-port", str("leafnode-port"), 7422, 1),
  };
  const seen = new Map<string, number>();
  const clusters: TopologyOptions["clusters"] = [];
  for (let c = 0; c < k; c++) {
    const name = k === 1 ? base : `${base}-${c + 1}`;
    const members: Member[] = [];
    for (let i = 0; i < n; i++) {
      const given = hosts[c * n + i];
      const host = given?.host ?? opts.host;
      const off = seen.get(host) ?? 0;
      seen.set(host, off + 1);
      members.push({
        name: `${name}-s${i + 1}`,
        cluster: name,
        host,
        port: (given?.port ?? opts.port) + (given?.port !== undefined ? 0 : off),
        clusterPort: ports.cluster + off,
        gatewayPort: ports.gateway + off,
        leafnodePort: ports.leafnode + off,
        wsPort: opts.wsPort + off,
      });
    }
    clusters.push({ name, members });
  }
  const t: TopologyOptions = { clusters };
  const shape = str("leaf");
  if (shape !== undefined) {
    if (shape !== "callout" && shape !== "closed") {
      throw new UsageError(`--leaf: "${shape}" is not a supported shape (callout or closed)`);
    }
    if (opts.operator) throw new UsageError("--leaf: leaf nodes are generated in config mode only");
    const account = str("leaf-account") ?? opts.accounts[0] ?? "APP";
    if (!opts.accounts.includes(account)) {
      throw new UsageError(`--leaf-account: "${account}" is not one of --accounts`);
    }
    const l = parseHostPort("leaf-listen", str("leaf-listen") ?? "127.0.0.1:4322");
    t.leaf = { shape, host: l.host, port: l.port ?? 4322, account };
  }
  checkAddresses(t);
  return t;
}

/** Two listeners on one host:port would fail at start; say which. */
function checkAddresses(t: TopologyOptions): void {
  const used = new Map<string, string>();
  const claim = (addr: string, what: string) => {
    const prev = used.get(addr);
    if (prev) throw new UsageError(`address ${addr} is used twice: ${prev} and ${what}`);
    used.set(addr, what);
  };
  const many = t.clusters.length > 1;
  const clustered = t.clusters.some((c) => c.members.length > 1);
  for (const c of t.clusters) {
    for (const m of c.members) {
      claim(hostPort(m.host, m.port), `${m.name} client port`);
      if (clustered) claim(hostPort(m.host, m.clusterPort), `${m.name} route port`);
      if (many) claim(hostPort(m.host, m.gatewayPort), `${m.name} gateway port`);
      if (t.leaf) claim(hostPort(m.host, m.leafnodePort), `${m.name} leafnode port`);
    }
  }
  if (t.leaf) claim(hostPort(t.leaf.host, t.leaf.port), "leaf client port");
}

/** Files the topology will write (relative to the init dir), for the collision check before writing. */
export function topologyFiles(t: TopologyOptions): string[] {
  const files = t.clusters.flatMap((c) => c.members.map((m) => join("servers", `${m.name}.conf`)));
  if (t.clusters.length > 1) for (const c of t.clusters.slice(1)) files.push(`service-${c.name}.yaml`);
  if (t.leaf) files.push(join("leaf", "nats-server.conf"));
  if (t.leaf?.shape === "callout") files.push(join("leaf", "service.yaml"));
  return files;
}

/** A server's authorization user for routes, gateways or leaf nodes: clear password and bcrypt hash. */
interface LinkUser {
  user: string;
  password: string;
  hash: string;
}

/** The hub member's own config: include the shared file, then its name, addresses and links. */
function memberConfig(
  m: Member,
  t: TopologyOptions,
  o: { routes?: LinkUser; gateways?: LinkUser; leaf?: LinkUser; websocket: boolean },
): string {
  const cluster = t.clusters.find((c) => c.name === m.cluster)!;
  const lines = [
    `# ${m.name}: member of cluster ${m.cluster}, generated by nats-opa-callout init.`,
    `# Accounts and auth_callout come from the shared file, identical on every member; this file only`,
    `# overrides the addresses (a later key wins) and adds the links. Holds link passwords: keep it 0600.`,
    `include "../nats-server.conf"`,
    "",
    `server_name: ${q(m.name)}`,
    `listen: ${q(hostPort(m.host, m.port))}`,
  ];
  if (o.websocket) {
    lines.push(`websocket {`, `  listen: ${q(hostPort(m.host, m.wsPort))}`, `  no_tls: true`, `}`);
  }
  if (o.routes) {
    const r = o.routes;
    const urls = cluster.members
      .filter((x) => x !== m)
      .map((x) => q(`nats-route://${r.user}:${r.password}@${hostPort(x.host, x.clusterPort)}`));
    lines.push(
      "",
      `# Routes: only servers with the route password may join (an open route port admits any server).`,
      `cluster {`,
      `  name: ${q(m.cluster)}`,
      `  listen: ${q(hostPort(m.host, m.clusterPort))}`,
      `  authorization { user: ${q(r.user)}, password: ${q(r.hash)} }`,
      `  routes: [`,
      ...urls.map((u) => `    ${u}`),
      `  ]`,
      `}`,
    );
  }
  if (o.gateways) {
    const g = o.gateways;
    lines.push(
      "",
      `# Gateways: this cluster's name is its gateway name; only gateways with the password connect.`,
      `gateway {`,
      `  name: ${q(m.cluster)}`,
      `  listen: ${q(hostPort(m.host, m.gatewayPort))}`,
      `  authorization { user: ${q(g.user)}, password: ${q(g.hash)} }`,
      `  gateways: [`,
      ...t.clusters.map(
        (c) =>
          `    { name: ${q(c.name)}, urls: [ ${c.members
            .map((x) => q(`nats://${g.user}:${g.password}@${hostPort(x.host, x.gatewayPort)}`))
            .join(", ")} ] }`,
      ),
      `  ]`,
      `}`,
    );
  }
  if (o.leaf && t.leaf) {
    lines.push(
      "",
      `# Leaf nodes: only the generated leaf user, placed in ${t.leaf.account}. It does not go through the`,
      `# callout; the leaf authenticates its own clients (its own auth_callout, or nobody).`,
      `leafnodes {`,
      `  listen: ${q(hostPort(m.host, m.leafnodePort))}`,
      `  authorization { user: ${q(o.leaf.user)}, password: ${q(o.leaf.hash)}, account: ${q(t.leaf.account)} }`,
      `}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** The leaf's remote (appended to the leaf's config): every hub member's leafnode port. */
function leafRemote(t: TopologyOptions, leaf: LinkUser, account: string): string {
  const urls = t.clusters
    .flatMap((c) => c.members)
    .map((m) => q(`nats-leaf://${leaf.user}:${leaf.password}@${hostPort(m.host, m.leafnodePort)}`));
  return `
# The leaf's only link: a remote to the hub, binding this server's ${account} to the hub's ${account}.
# There is no leafnodes.listen: no other leaf can attach here.
leafnodes {
  remotes: [
    { urls: [ ${urls.join(", ")} ], account: ${q(account)} }
  ]
}
`;
}

function closedLeafConfig(t: TopologyOptions, leaf: LinkUser): string {
  const l = t.leaf!;
  // An nkey user whose seed is discarded here: no client can sign the server's nonce, so nobody logs in.
  const nobody = createUser().getPublicKey();
  return `# A closed leaf node, generated by nats-opa-callout init: it admits no client at all. Its only user is
# an nkey whose seed was never written, so no client can log in; the remote to the hub is its one link.
# Never remove the authorization block: a leaf without auth lets every client skip the policy.
# Holds the leaf link password: keep it 0600.
server_name: "leaf"
listen: ${q(hostPort(l.host, l.port))}
accounts {
  ${l.account} {
    users: [ { nkey: ${q(nobody)} } ]
  }
}
${leafRemote(t, leaf, l.account).trimStart()}`;
}

/** What writeTopology needs from init.ts (passed in, so the two modules do not import each other). */
export interface InitParts {
  runInit: (opts: InitOptions) => Promise<InitResult>;
  bcryptHash: (password: string, cost?: number) => string;
}

/**
 * Writes the topology's files next to `base` (what runInit wrote). `runInit` generates the leaf's own
 * callout setup (fresh keys) in `<dir>/leaf`. Checks every target before writing.
 */
export async function writeTopology(
  t: TopologyOptions,
  base: InitResult,
  opts: InitOptions,
  parts: InitParts,
): Promise<TopologyResult> {
  const dir = base.dir;
  const res: TopologyResult = { servers: [], serviceFiles: [], files: [], secrets: {} };
  const write = (rel: string, content: string, secret: boolean) => {
    const p = join(dir, rel);
    mkdirSync(join(p, ".."), { recursive: true });
    writeFileSync(p, content, { mode: secret ? 0o600 : 0o644 });
    res.files.push({ path: p, secret });
    return p;
  };
  const cost = opts.bcryptCost ?? 11;
  const link = (user: string, key: string): LinkUser => {
    const pw = password();
    res.secrets[key] = pw;
    return { user, password: pw, hash: parts.bcryptHash(pw, cost) };
  };
  const clustered = t.clusters.some((c) => c.members.length > 1);
  const routes = clustered ? link("route", "route_password") : undefined;
  const gateways = t.clusters.length > 1 ? link("gateway", "gateway_password") : undefined;
  const leaf = t.leaf ? link("leaf", "leaf_password") : undefined;
  for (const c of t.clusters) {
    for (const m of c.members) {
      const links = { websocket: opts.websocket } as Parameters<typeof memberConfig>[2];
      if (c.members.length > 1 && routes) links.routes = routes;
      if (gateways) links.gateways = gateways;
      if (leaf) links.leaf = leaf;
      res.servers.push({
        member: m,
        file: write(join("servers", `${m.name}.conf`), memberConfig(m, t, links), true),
      });
    }
  }
  // Replicas of each cluster connect to that cluster's members (discovered URLs cover the rest).
  const serviceYaml = readFileSync(join(dir, "service.yaml"), "utf8");
  t.clusters.forEach((c, i) => {
    const doc = parseDocument(serviceYaml);
    doc.setIn(
      ["nats", "servers"],
      c.members.map((m) => `nats://${hostPort(m.host, m.port)}`),
    );
    const name = i === 0 ? "service.yaml" : `service-${c.name}.yaml`;
    const p = join(dir, name);
    writeFileSync(p, doc.toString({ lineWidth: 0 }), { mode: base.layout.mode === "config" ? 0o600 : 0o644 });
    if (i > 0) res.files.push({ path: p, secret: base.layout.mode === "config" });
    res.serviceFiles.push({ cluster: c.name, file: p });
  });
  if (t.leaf && leaf) {
    const url = `nats://${hostPort(t.leaf.host, t.leaf.port)}`;
    const leafDir = join(dir, "leaf");
    if (t.leaf.shape === "callout") {
      // The replica at the leaf gets the next metrics port, so both replicas can run on one host.
      const mp = /^(.*):(\d+)$/.exec(opts.metricsListen);
      const sub = await parts.runInit({
        ...opts,
        metricsListen: mp ? `${mp[1]}:${Number(mp[2]) + 1}` : opts.metricsListen,
        dir: leafDir,
        host: t.leaf.host,
        port: t.leaf.port,
        websocket: false,
        operator: false,
      });
      const conf = join(leafDir, "nats-server.conf");
      appendFileSync(conf, `server_name: "leaf"\n` + leafRemote(t, leaf, t.leaf.account));
      res.files.push(...sub.files);
      for (const [key, v] of Object.entries(sub.secrets)) res.secrets[`leaf_${key}`] = v;
      res.leaf = { shape: "callout", configFile: conf, serviceFile: join(leafDir, "service.yaml"), url };
    } else {
      const conf = write(join("leaf", "nats-server.conf"), closedLeafConfig(t, leaf), true);
      res.leaf = { shape: "closed", configFile: conf, url };
    }
  }
  return res;
}

/** Refuses to overwrite the topology's files without --force (called before anything is written). */
export function checkTopologyTargets(t: TopologyOptions, dir: string, force: boolean): void {
  if (force) return;
  const targets = topologyFiles(t);
  if (t.leaf?.shape === "callout") targets.push(join("leaf", "issuer.nk"), join("leaf", "xkey.nk"));
  for (const f of targets) {
    if (existsSync(join(dir, f))) throw new UsageError(`${join(dir, f)} exists; use --force to overwrite`);
  }
}

/** The "Next:" lines for a topology. */
export function topologyNextSteps(r: TopologyResult, rel: (p: string) => string): string[] {
  const lines = r.servers.map(({ member, file }) => `  nats-server -c ${rel(file)}      # ${member.name}`);
  for (const s of r.serviceFiles) {
    lines.push(`  nats-opa-callout serve --config ${rel(s.file)}      # replicas for ${s.cluster}`);
  }
  if (r.leaf) {
    lines.push(`  nats-server -c ${rel(r.leaf.configFile)}      # the leaf (${r.leaf.shape})`);
    if (r.leaf.serviceFile) {
      lines.push(
        `  nats-opa-callout serve --config ${rel(r.leaf.serviceFile)}      # replica AT the leaf (serves its callout)`,
      );
    }
  }
  return lines;
}
