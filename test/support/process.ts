/**
 * Child processes for tests and benchmarks: start, wait for a ready line, capture all output (stdout and
 * stderr, for error messages and the secrets scan), stop by pid; CPU and RSS of a process from /proc.
 * Nothing here kills anything it did not start.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  readonly alive: () => boolean;
  /** SIGTERM, then SIGKILL after `graceMs`. Resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL now; resolves once the process is gone. */
  kill(): Promise<void>;
  /** Wait until `re` matches the output (from `fromOffset`), or throw after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs: number, fromOffset?: number): Promise<void>;
}

export interface ProcessOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve start() only once this matches stdout/stderr. */
  ready?: RegExp;
  readyTimeoutMs?: number;
  /** Keep at most this many characters of output (oldest dropped); default 64 MiB. */
  maxOutput?: number;
}

const live = new Set<Child>();

/** Start a process; with `ready`, wait for its ready line (throws with the output on timeout/exit). */
export async function startProcess(
  name: string,
  cmd: string,
  args: string[],
  opts: ProcessOptions = {},
): Promise<Child> {
  const proc = spawn(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (proc.pid === undefined) {
    await new Promise((r) => proc.once("error", r));
    throw new Error(`${name}: could not start ${cmd}`);
  }
  const pid = proc.pid;
  const max = opts.maxOutput ?? 64 * 2 ** 20;
  let buf = "";
  let dropped = 0;
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    buf += d.toString("utf8");
    if (buf.length > max) {
      dropped += buf.length - max;
      buf = buf.slice(buf.length - max);
    }
    for (const w of waiters) w();
  };
  proc.stdout?.on("data", onData);
  proc.stderr?.on("data", onData);
  let isAlive = true;
  const exited = new Promise<number | string>((resolve) => {
    proc.once("exit", (code, signal) => {
      isAlive = false;
      live.delete(child);
      for (const w of waiters) w();
      resolve(code ?? signal ?? "unknown");
    });
  });

  const child: Child = {
    name,
    pid,
    proc,
    output: () => buf,
    exited,
    alive: () => isAlive,
    async stop(graceMs = 5000) {
      if (!isAlive) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => {
        if (isAlive) proc.kill("SIGKILL");
      }, graceMs);
      await exited;
      clearTimeout(t);
    },
    async kill() {
      if (!isAlive) return;
      proc.kill("SIGKILL");
      await exited;
    },
    waitFor(re: RegExp, timeoutMs: number, fromOffset = 0) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          const start = Math.max(0, fromOffset - dropped);
          if (re.test(buf.slice(start))) {
            done();
            resolve();
          } else if (!isAlive) {
            done();
            reject(new Error(`${name} exited before ${re}: ${tail(buf)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no ${re} within ${timeoutMs} ms: ${tail(buf)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
  live.add(child);
  if (opts.ready) {
    try {
      await child.waitFor(opts.ready, opts.readyTimeoutMs ?? 30_000);
    } catch (err) {
      await child.kill();
      throw err;
    }
  }
  return child;
}

function tail(s: string): string {
  return s.slice(-2000);
}

/** Stop every process started through this module that is still running (test teardown). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop(2000)));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const tempDirs = new Set<string>();
process.once("exit", () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A temp directory removed when this process exits. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on every Linux we run on). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, in seconds (own threads only, not reaped children). Linux only. */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / CLK_TCK;
}

/** Resident set size of a process in bytes. Linux only. */
export function procRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}
