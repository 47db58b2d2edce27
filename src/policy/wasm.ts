/**
 * A minimal typed view of the WebAssembly JS API. This project compiles without lib "dom" (and
 * @types/node 20 does not declare WebAssembly), so the few pieces used here are typed locally
 * instead of adding a global declaration. `WasmModule` is opaque to callers.
 */

declare const wasmModuleBrand: unique symbol;
/** A compiled WebAssembly module (opaque). */
export interface WasmModule {
  readonly [wasmModuleBrand]: true;
}

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

interface WebAssemblyApi {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  Module: (new (bytes: Uint8Array) => WasmModule) & { prototype: object };
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance;
}

export const wasmApi: WebAssemblyApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

export function isWasmModule(v: unknown): v is WasmModule {
  return v instanceof (wasmApi.Module as unknown as new () => object);
}
