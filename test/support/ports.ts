/**
 * Free loopback ports for test servers. Never binds anything but 127.0.0.1.
 *
 * Ports come from below Linux's ephemeral range (32768–60999), walked in order from a start derived from the
 * process id, each checked by binding it, and never handed out twice in one process. Asking the OS for port 0
 * instead raced twice over: it hands out ports already given to a server that had not bound them yet (a
 * topology run once got its monitor port equal to a route port it had allocated earlier), and the same range
 * serves the local ends of every outbound connection the tests make.
 */
import { createServer, createConnection } from "node:net";

const LOW = 20_000;
const HIGH = 32_767;
const SPAN = HIGH - LOW + 1;
const handedOut = new Set<number>();
let cursor = (process.pid * 7919) % SPAN;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen({ host: "127.0.0.1", port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A port on 127.0.0.1 that is free now and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (let tried = 0; tried < SPAN; tried++) {
    const port = LOW + cursor;
    cursor = (cursor + 1) % SPAN;
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port left in ${LOW}–${HIGH}`);
}

/** Several distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) ports.push(await freePort());
  return ports;
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: "127.0.0.1", port });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}
