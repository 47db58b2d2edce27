/**
 * The one test-support library of test/ (unit, property, integration, reliability, topology) and bench/.
 * Everything is imported from here; the modules are split by concern:
 *
 * - paths: repository, pinned tools (nats-server 2.15.3 and 2.10.27, opa), build caches
 * - ports, nats-server: free loopback ports; a real nats-server (spawn, config builders, binary matrix)
 * - process: child processes with captured output, temp dirs, /proc CPU and RSS
 * - service: the real CLI as a process (startOurs), dist/ build-if-stale
 * - keys, requests: key material; authorization request JWT builders
 * - clients: client-side helpers against a real server
 * - opa, bundles, policies: the opa binary, wasm fixtures, bundles and bundle servers, policy directories
 * - prometheus: strict exposition parser
 * - jetstream, jetstream-attacks: JetStream stacks and the attack catalogue
 * - live-stack, example-stack: in-process service stacks
 * - storm: connect storms (in process, and the Go driver)
 * - go-build: Go programs built into the cache
 * - reliability, cluster, topology: the reliability stack, init-generated topologies, replicas on them
 */
export * from "./paths.js";
export * from "./ports.js";
export * from "./nats-server.js";
export * from "./process.js";
export * from "./service.js";
export * from "./keys.js";
export * from "./requests.js";
export * from "./clients.js";
export * from "./opa.js";
export * from "./bundles.js";
export * from "./policies.js";
export * from "./prometheus.js";
export * from "./jetstream.js";
export * from "./jetstream-attacks.js";
export * from "./live-stack.js";
export * from "./example-stack.js";
export * from "./storm.js";
export * from "./go-build.js";
export * from "./reliability.js";
export * from "./cluster.js";
export * from "./topology.js";
