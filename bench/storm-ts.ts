/**
 * The TypeScript storm driver as a command (same flags and JSON output as bench/storm-go), so the
 * runner can measure its client-side CPU against the Go driver's. Password from STORM_PASS.
 *   node --import tsx bench/storm-ts.ts --url nats://127.0.0.1:4222 --n 2000 --c 50 --user bench
 */
import { parseArgs } from "node:util";
import { stormTs } from "../test/support/index.js";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "nats://127.0.0.1:4222" },
    n: { type: "string", default: "2000" },
    c: { type: "string", default: "50" },
    user: { type: "string", default: "bench" },
    users: { type: "string", default: "0" },
    timeout: { type: "string", default: "10000ms" },
  },
});
const pass = process.env.STORM_PASS ?? "";
const users = Number(values.users);
const cpu0 = process.cpuUsage();
const r = await stormTs({
  url: values.url,
  n: Number(values.n),
  concurrency: Number(values.c),
  timeoutMs: parseInt(values.timeout, 10),
  creds: (i) =>
    users > 0
      ? { user: `${values.user}${i % users}`, pass: pass.replaceAll("{i}", String(i % users)) }
      : { user: values.user, pass },
});
const cpu = process.cpuUsage(cpu0);
r.driver_cpu_s = (cpu.user + cpu.system) / 1e6;
console.log(JSON.stringify(r));
