import { strict as assert } from "node:assert";
import { createServer, type Server } from "node:net";
import { describe, it } from "node:test";
import { freePort, freePorts } from "../../support/ports.js";

describe("test support: freePort", () => {
  it("never hands out a port twice in one process, even after it was freed again", async () => {
    // Nothing binds these ports, so the OS would happily return them again; freePort must not.
    const ports = await freePorts(200);
    assert.equal(new Set(ports).size, ports.length);
  });

  it("stays below the ephemeral range that outbound connections and port 0 use", async () => {
    for (const p of await freePorts(50)) assert.ok(p >= 20_000 && p < 32_768, `port ${p}`);
  });

  it("skips a port something else is listening on", async () => {
    // Occupy the next ports the walk would reach (it is sequential), then ask again.
    const probe = await freePort();
    const held: Server[] = [];
    for (let p = probe + 1; p <= probe + 3 && p < 32_768; p++) {
      const s = createServer();
      await new Promise<void>((r, j) => {
        s.once("error", j);
        s.listen({ host: "127.0.0.1", port: p, exclusive: true }, r);
      }).catch(() => undefined);
      held.push(s);
    }
    try {
      const next = await freePort();
      assert.ok(next > probe + 3 || next < probe, `got held port ${next} after ${probe}`);
    } finally {
      await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    }
  });
});
