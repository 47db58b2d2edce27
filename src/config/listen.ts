/**
 * Listen addresses: the one parser behind `metrics.listen`, `--metrics-listen` and `startHttpServer`.
 *
 *   "127.0.0.1:9464", "localhost:9464"  host:port
 *   "[::1]:9464"                        IPv6 literal in brackets
 *   ":9464"                             every IPv4 interface (0.0.0.0)
 *   "127.0.0.1:0"                       a free port the OS picks (logged, and shown in /status)
 *   "off"                               no listener ("" and "0" mean the same)
 *
 * Anything else is rejected with a message that quotes the value (an address carries no secret).
 */
import { isIPv6 } from "node:net";

export interface ListenAddress {
  host: string;
  port: number;
}

/** Values that mean "no listener"; "off" is the documented spelling. */
const OFF = new Set(["off", "", "0"]);

export const LISTEN_FORMS = '"host:port", "[v6]:port", ":port" (port 0: any free port) or "off"';

/** Parses a listen address; null means no listener. Throws TypeError naming the value and the forms. */
export function parseListenAddress(value: string): ListenAddress | null {
  const s = value.trim();
  if (OFF.has(s.toLowerCase())) return null;
  const m = /^(?:\[([^\]\s]*)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(s);
  const bad = (why: string) => new TypeError(`${why}: ${JSON.stringify(value)}; expected ${LISTEN_FORMS}`);
  if (!m) throw bad("not a listen address");
  const port = Number(m[3]);
  if (port > 65535) throw bad("port out of range (0-65535)");
  if (m[1] !== undefined) {
    if (!isIPv6(m[1])) throw bad("not an IPv6 address in brackets");
    return { host: m[1], port };
  }
  return { host: m[2] === "" || m[2] === undefined ? "0.0.0.0" : m[2], port };
}

/** The address as one string, IPv6 hosts in brackets: "127.0.0.1:9464", "[::1]:9464". */
export function formatListenAddress(a: ListenAddress): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Why a listener could not bind, for the metrics.listen config error (with a hint for a busy port). */
export function listenErrorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code ?? "error";
  if (code === "EADDRINUSE") {
    return `${code} (another replica on this host? give each its own port with --metrics-listen, or use port 0)`;
  }
  return code;
}
