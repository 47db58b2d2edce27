/**
 * Preloaded into the service by `bench/profile-storm.ts --heap` (`node --import …/heap-sample.mjs`): samples the
 * main thread's allocations from start to exit, INCLUDING objects the GC has already collected (Node's own
 * `--heap-prof` keeps only the survivors, which says nothing about how much a login allocates), and writes the
 * sampling profile to $NOC_HEAP_SAMPLE at exit.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";

const out = process.env.NOC_HEAP_SAMPLE;
if (out) {
  const session = new Session();
  session.connect();
  session.post("HeapProfiler.enable");
  session.post("HeapProfiler.startSampling", {
    samplingInterval: 2048,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  process.on("exit", () => {
    // Session.post calls back synchronously on the main thread, so this completes before the process ends.
    session.post("HeapProfiler.stopSampling", (err, res) => {
      if (!err) writeFileSync(out, JSON.stringify(res.profile));
    });
  });
}
