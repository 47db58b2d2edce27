/**
 * Topology warnings: what the service can tell, from the verified requests it decides, about paths around
 * the policy. Boundary: reads `server_id` and `client_info.kind` of each decided request; writes log lines
 * only (never credentials, user names or client addresses), each at most once per server.
 *
 * - A **leafnode connection** reaching the callout (`client_info.kind` = `Leafnode`) means a leaf server is
 *   logging in through this policy. Once admitted, that leaf's own clients are authenticated by the leaf,
 *   never by this service: allowed → WARN (a bypass unless the leaf runs its own auth_callout or admits no
 *   client); denied → INFO (harmless, but someone runs a leaf against this server).
 * - A server **without `server_name`** (name = its id, which changes at every start) → WARN once: warnings,
 *   logs and decision events cannot name it across restarts, and clusters need unique names anyway.
 * - Each **new server** and **new cluster** seen → INFO once, so an unexpected server (a rogue route, a
 *   gateway nobody planned) shows up in the log; requests from a second cluster mean gateways route logins
 *   here from a cluster without a replica of its own.
 *
 * Memory is bounded: at most MAX_SERVERS servers are remembered (then new ones are no longer announced).
 */
import type { AuthResult } from "./callout/pipeline.js";
import type { Logger } from "./log.js";

export const MAX_SERVERS = 1024;

export interface TopologyWatch {
  /** Looks at one decided request; logs what is new about the topology. Never throws. */
  observe(result: AuthResult): void;
}

export function createTopologyWatch(log: Logger): TopologyWatch {
  const servers = new Set<string>();
  const clusters = new Set<string>();
  const leafWarned = new Set<string>();
  return {
    observe(result) {
      try {
        look(result);
      } catch {
        // A request without the expected fields teaches nothing about the topology.
      }
    },
  };
  function look(result: AuthResult): void {
    const req = result.request;
    if (!req) return;
    const s = req.server_id;
    const key = s.name || s.id;
    const server = { server_name: s.name, cluster: s.cluster || undefined, version: s.version };
    if (!servers.has(key) && servers.size < MAX_SERVERS) {
      servers.add(key);
      log.info(server, "first authorization request from this server");
      if (!s.name || s.name === s.id) {
        log.warn(
          server,
          "this server has no server_name: it gets a new identity at every start; set server_name on every server",
        );
      }
      const c = s.cluster ?? "";
      if (c && !clusters.has(c)) {
        clusters.add(c);
        if (clusters.size > 1) {
          log.info(
            { ...server, clusters: [...clusters] },
            "requests arrive from more than one cluster (gateways): a cluster without its own replica sends its logins here",
          );
        }
      }
    }
    if (req.client_info?.kind === "Leafnode" && !leafWarned.has(key) && leafWarned.size < MAX_SERVERS) {
      leafWarned.add(key);
      const kind = result.outcome.kind;
      if (kind === "allow") {
        log.warn(
          { ...server, account: result.outcome.grant.account },
          "a leafnode connection was admitted through the callout: the clients of that leaf are authenticated by the leaf, not by this policy; the leaf must run its own auth_callout or admit no client (docs/operations.md#topologies)",
        );
      } else {
        log.info({ ...server, outcome: kind }, "a leafnode connection reached the callout and was refused");
      }
    }
  }
}
