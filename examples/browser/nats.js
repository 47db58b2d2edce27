// The nats.js pieces the demo page uses. npm ships nats.js as CommonJS, so serve.mjs bundles this file into one
// browser ES module with esbuild (platform "browser": a Node builtin anywhere in the graph fails the build).
export { wsconnect } from "@nats-io/nats-core";
export { Kvm } from "@nats-io/kv";
