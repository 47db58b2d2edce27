/**
 * A real nats-server on a random loopback port, with the two setups the benchmarks and the
 * reliability suite use: plain config users (no callout at all) and config-mode auth callout.
 * The server can be stopped and started again on the same port (restart tests).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { NATS_SERVER_BIN } from "./paths.js";
import { freePort, startProcess, tempDir, type Child } from "./process.js";

export interface NatsServer {
  readonly port: number;
  readonly url: string;
  readonly confPath: string;
  /** The current server process (changes after restart). */
  child(): Child;
  /** All output of every incarnation so far. */
  output(): string;
  stop(): Promise<void>;
  /** Start again on the same port with the same config (after stop()). */
  start(): Promise<void>;
}

export interface CalloutServerOptions {
  /** Public key (A…) of the issuer account whose seed the callout service holds. */
  issuer: string;
  calloutUser: string;
  calloutPass: string;
  /** Public xkey (X…) to make the server seal requests. */
  xkey?: string;
  /** authorization.timeout in seconds (server default 2). Omitted = server default. */
  timeoutS?: number;
  /** Extra config appended at the end. */
  extra?: string;
  /**
   * A second auth user (skips the callout) allowed to PUBLISH on $SYS.REQ.USER.AUTH, to inject raw
   * bytes into the service's subscription (bad-input tests). Never used by benchmarks.
   */
  prober?: { user: string; pass: string };
}

/** Quote a value for the nats-server config format. */
function q(s: string): string {
  return JSON.stringify(s);
}

/** Config with plain users in account APP (no callout). */
export function plainConf(port: number, users: { user: string; pass: string }[]): string {
  const list = users.map((u) => `{ user: ${q(u.user)}, password: ${q(u.pass)} }`).join(",\n      ");
  return `listen: "127.0.0.1:${port}"
max_connections: 1000000
system_account: SYS
accounts {
  APP { users: [
      ${list}
  ] }
  SYS {}
}
`;
}

/** Config-mode auth callout: every client except the callout user goes to the callout. */
export function calloutConf(port: number, o: CalloutServerOptions): string {
  return `listen: "127.0.0.1:${port}"
max_connections: 1000000
system_account: SYS
accounts {
  AUTH { users: [ { user: ${q(o.calloutUser)}, password: ${q(o.calloutPass)},
                    permissions: { subscribe: { allow: ["$SYS.REQ.USER.AUTH"] },
                                   publish: { deny: [">"] },
                                   allow_responses: true } }${
                                     o.prober
                                       ? `,
                  { user: ${q(o.prober.user)}, password: ${q(o.prober.pass)},
                    permissions: { publish: { allow: ["$SYS.REQ.USER.AUTH"] }, subscribe: { allow: ["_INBOX.>"] } } }`
                                       : ""
                                   } ] }
  APP {}
  SYS {}
}
authorization {
  ${o.timeoutS !== undefined ? `timeout: ${o.timeoutS}` : "# timeout: server default (2 s)"}
  auth_callout {
    issuer: ${q(o.issuer)}
    account: AUTH
    auth_users: [ ${q(o.calloutUser)}${o.prober ? `, ${q(o.prober.user)}` : ""} ]
    ${o.xkey ? `xkey: ${q(o.xkey)}` : ""}
  }
}
${o.extra ?? ""}
`;
}

/** Start nats-server with `conf(port)` on a free loopback port. */
export async function startNatsServer(
  conf: (port: number) => string,
  opts: {
    bin?: string;
    port?: number;
    /**
     * Raise the open-files limit of the server process to this (via util-linux `prlimit`, which execs the server
     * in place). Needs root to go past the hard limit; the caller checks `canRaiseNofile()` first.
     */
    nofile?: number;
  } = {},
): Promise<NatsServer> {
  const port = opts.port ?? (await freePort());
  const dir = tempDir("noc-bench-nats-");
  const confPath = join(dir, "server.conf");
  writeFileSync(confPath, conf(port));
  const bin = opts.bin ?? NATS_SERVER_BIN;
  let current: Child | undefined;
  let history = "";
  const launch = async () => {
    const [cmd, args] =
      opts.nofile !== undefined
        ? ["prlimit", [`--nofile=${opts.nofile}:${opts.nofile}`, "--", bin, "-c", confPath]]
        : [bin, ["-c", confPath]];
    current = await startProcess("nats-server", cmd, args, {
      ready: /Server is ready/,
      readyTimeoutMs: 15_000,
    });
  };
  await launch();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    confPath,
    child: () => {
      if (!current) throw new Error("nats-server not started");
      return current;
    },
    output: () => history + (current?.output() ?? ""),
    async stop() {
      if (!current) return;
      await current.stop();
      history += current.output();
      current = undefined;
    },
    async start() {
      if (current?.alive()) return;
      // The port may sit in TIME_WAIT briefly; nats-server sets SO_REUSEADDR, so retry a little.
      for (let i = 0; ; i++) {
        try {
          await launch();
          return;
        } catch (err) {
          if (i >= 20) throw err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    },
  };
}
