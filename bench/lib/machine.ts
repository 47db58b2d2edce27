/**
 * The machine description written at the top of docs/benchmarks.md (Linux only). CPU and RSS of a process
 * are in test/support/process.ts.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";

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
