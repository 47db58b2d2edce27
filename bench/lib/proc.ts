/**
 * Process and machine facts from /proc (Linux only): CPU seconds and RSS of a process, and the
 * machine description written at the top of docs/benchmarks.md.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on every Linux we run on). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, in seconds (own threads only, not reaped children). */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / CLK_TCK;
}

/** Resident set size of a process in bytes. */
export function procRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  go: string;
  natsServer: string;
  natsServer210: string;
  opa: string;
  python: string;
  date: string;
}

function tryRun(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch {
    return "not available";
  }
}

export function machineInfo(tools: {
  natsServer: string;
  natsServer210: string;
  opa: string;
  python?: string;
}): MachineInfo {
  let cpuModel = cpus()[0]?.model ?? "unknown";
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m?.[1]) cpuModel = m[1].trim();
  } catch {
    /* keep os.cpus() */
  }
  const opaVersion = /^Version:\s*(\S+)/m.exec(tryRun(tools.opa, ["version"]))?.[1] ?? "not available";
  return {
    nproc: Number(tryRun("nproc", [])) || cpus().length,
    cpuModel,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: tryRun("uname", ["-r"]),
    node: process.version,
    go: tryRun("go", ["version"]).replace(/^go version /, ""),
    natsServer: tryRun(tools.natsServer, ["--version"]),
    natsServer210: tryRun(tools.natsServer210, ["--version"]),
    opa: opaVersion,
    python: tools.python ? tryRun(tools.python, ["--version"]) : "not used",
    date: new Date().toISOString(),
  };
}
