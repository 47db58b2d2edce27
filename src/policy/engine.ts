/**
 * The wasm policy engine: the only importer of @open-policy-agent/opa-wasm. One instance = one
 * compiled module + its own WebAssembly.Memory + the data document; a reload builds a new instance
 * (memory never shrinks) and lets the old one be collected.
 *
 * Everything opa-wasm throws (strings, `{ message }` objects, RangeErrors from Memory.grow) is
 * wrapped in PolicyLoadError / PolicyEvalError with its cause in the message (see ./faults.ts):
 * OPA's `file:line:col: message` aborts (conflicting outputs) keep their location, memory
 * exhaustion names the limit, strict host-builtin failures name the builtin.
 *
 * This is the synchronous, in-process engine: it runs inside the evaluation workers (./worker.ts)
 * and in tests of the engine itself. The service evaluates through ./pool.ts.
 */
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { PolicyEvalError, PolicyLoadError } from "../errors.js";
import { HOST_BUILTINS, JS_BUILTINS, createHostBuiltins, type BuiltinFailure } from "./builtins.js";
import { describeEvalFault, faultText, isOutOfMemory, mib } from "./faults.js";
import { POOL_DEFAULTS } from "./limits.js";
import { isWasmModule, wasmApi, type WasmInstance, type WasmMemory, type WasmModule } from "./wasm.js";

/** The part of opa-wasm's LoadedPolicy this engine uses. */
interface OpaPolicy {
  mem: WasmMemory;
  wasmInstance: WasmInstance | { instance: WasmInstance };
  entrypoints: Record<string, number>;
  evaluate(input: unknown, entrypoint: string): unknown;
  setData(data: unknown): void;
}

/** Wasm memory in 64 KiB pages. */
export interface MemoryLimits {
  initial?: number;
  maximum?: number;
}

/** 64 KiB wasm pages: 16 = 1 MiB initial, 4096 = 256 MiB maximum (policy.max_memory_mb). */
export const DEFAULT_MEMORY: Required<MemoryLimits> = {
  initial: 16,
  maximum: POOL_DEFAULTS.maxMemoryMb * 16,
};

export interface EngineOptions {
  memory?: MemoryLimits;
  /**
   * Host-builtin failures abort the evaluation with the builtin's error (OPA's --strict-builtin-errors).
   * Default true. False: the failing call's expression is undefined and the failure is only recorded
   * in `builtinErrors`.
   */
  strictBuiltinErrors?: boolean;
}

export interface EvaluateOptions {
  /** Frozen time for `time.now_ns()` (ns since the epoch); default: now, frozen for this call. */
  nowNs?: bigint;
}

export interface EvalResult {
  /** The entrypoint's value, or `undefined` when the result set was empty (undefined decision). */
  result: unknown;
  /** Builtin calls that failed (their expressions were undefined). */
  builtinErrors: readonly BuiltinFailure[];
}

/** Every builtin this host can supply to a module (opa-wasm's JS set + ours). */
export const SUPPORTED_HOST_BUILTINS: ReadonlySet<string> = new Set([...JS_BUILTINS, ...HOST_BUILTINS]);

interface WasmExports {
  builtins(): number;
  opa_json_dump(addr: number): number;
}

function readJson(mem: WasmMemory, exportsObj: WasmExports, addr: number): unknown {
  const raw = exportsObj.opa_json_dump(addr);
  const buf = new Uint8Array(mem.buffer);
  let end = raw;
  while (buf[end] !== 0) end++;
  return JSON.parse(new TextDecoder().decode(buf.subarray(raw, end)));
}

export class PolicyEngine {
  /** The compiled module (reusable for a new instance with other data). */
  readonly module: WasmModule;
  /** Entrypoint names the module exports. */
  readonly entrypoints: readonly string[];
  /** Builtins the module imports from the host. */
  readonly requiredBuiltins: readonly string[];
  private readonly policy: OpaPolicy;
  private readonly mem: WasmMemory;
  private now = 0n;
  private failures: BuiltinFailure[] = [];

  private constructor(
    module: WasmModule,
    policy: OpaPolicy,
    required: string[],
    private readonly maxPages: number,
  ) {
    this.module = module;
    this.policy = policy;
    this.mem = policy.mem;
    this.entrypoints = Object.keys(policy.entrypoints).sort();
    this.requiredBuiltins = required;
  }

  /**
   * Instantiate a module, refuse it if it needs a builtin this host lacks, then load `data`
   * (an object, or raw JSON bytes as an ArrayBuffer). Throws PolicyLoadError.
   */
  static async load(
    wasm: Uint8Array | WasmModule,
    data: unknown,
    opts: EngineOptions = {},
  ): Promise<PolicyEngine> {
    let module: WasmModule;
    try {
      module = isWasmModule(wasm) ? wasm : await wasmApi.compile(wasm);
    } catch (err) {
      throw new PolicyLoadError(`invalid wasm module: ${faultText(err)}`, { cause: err });
    }
    const memory = {
      initial: opts.memory?.initial ?? DEFAULT_MEMORY.initial,
      maximum: opts.memory?.maximum ?? DEFAULT_MEMORY.maximum,
    };
    // The builtins close over `holder`, filled in once the engine exists.
    const holder: { engine?: PolicyEngine } = {};
    const builtins = createHostBuiltins({
      now: () => holder.engine?.now ?? 0n,
      onError: (f) => holder.engine?.failures.push(f),
      strict: opts.strictBuiltinErrors ?? true,
    });
    let policy: OpaPolicy;
    try {
      policy = (await loadPolicy(module as never, memory, builtins)) as unknown as OpaPolicy;
    } catch (err) {
      throw new PolicyLoadError(`cannot instantiate policy module: ${faultText(err)}`, { cause: err });
    }
    const instance = "instance" in policy.wasmInstance ? policy.wasmInstance.instance : policy.wasmInstance;
    let required: string[];
    try {
      const exportsObj = instance.exports as unknown as WasmExports;
      required = Object.keys(readJson(policy.mem, exportsObj, exportsObj.builtins()) as object).sort();
    } catch (err) {
      throw new PolicyLoadError(`cannot read the module's builtins: ${faultText(err)}`, { cause: err });
    }
    const missing = required.filter((b) => !SUPPORTED_HOST_BUILTINS.has(b));
    if (missing.length > 0) {
      throw new PolicyLoadError(`policy needs builtins this host does not provide: ${missing.join(", ")}`);
    }
    const engine = new PolicyEngine(module, policy, required, memory.maximum);
    holder.engine = engine;
    engine.setData(data);
    return engine;
  }

  /** Replace the whole data document (object, or raw JSON bytes as an ArrayBuffer). */
  setData(data: unknown): void {
    try {
      this.policy.setData(data ?? {});
    } catch (err) {
      if (isOutOfMemory(err)) {
        const size = data instanceof ArrayBuffer ? `${mib(data.byteLength)} of JSON` : "the data document";
        throw new PolicyLoadError(
          `cannot load data: ${size} does not fit in the wasm memory limit of ${mib(this.maxPages * 65536)} ` +
            `(${this.maxPages} pages; policy.max_memory_mb)`,
          { cause: err },
        );
      }
      throw new PolicyLoadError(`cannot load data: ${faultText(err)}`, { cause: err });
    }
  }

  hasEntrypoint(name: string): boolean {
    return Object.hasOwn(this.policy.entrypoints, name);
  }

  /** Current size of the instance's memory in bytes (it never shrinks). */
  memoryBytes(): number {
    return this.mem.buffer.byteLength;
  }

  /**
   * Evaluate one entrypoint, synchronously, with `input` as a JSON value (or raw JSON bytes in an
   * ArrayBuffer, e.g. to pass integers beyond 2^53 exactly). `time.now_ns()` is frozen for the call.
   * Throws PolicyEvalError for any failure (unknown entrypoint, conflicting outputs, memory limit,
   * strict builtin errors) and for a result set with more than one result. Wasm-native builtins
   * (division by zero, `to_number("x")`, …) report nothing: their expression is simply undefined.
   */
  evaluate(input: unknown, entrypoint: string, opts: EvaluateOptions = {}): EvalResult {
    if (!this.hasEntrypoint(entrypoint)) {
      throw new PolicyEvalError(`entrypoint ${entrypoint} is not in the policy module`);
    }
    this.now = opts.nowNs ?? BigInt(Date.now()) * 1_000_000n;
    this.failures = [];
    let rs: unknown;
    try {
      rs = this.policy.evaluate(input, entrypoint);
    } catch (err) {
      const f = describeEvalFault(err, this.maxPages);
      throw new PolicyEvalError(`policy evaluation failed: ${f.message}`, {
        cause: err,
        ...(f.file !== undefined ? { file: f.file } : {}),
        ...(f.line !== undefined ? { line: f.line } : {}),
      });
    }
    const builtinErrors = this.failures;
    this.failures = [];
    if (!Array.isArray(rs)) throw new PolicyEvalError("policy evaluation returned no result set");
    if (rs.length === 0) return { result: undefined, builtinErrors };
    if (rs.length > 1) throw new PolicyEvalError(`policy returned ${rs.length} results, expected one`);
    const first = rs[0] as { result?: unknown } | undefined;
    if (typeof first !== "object" || first === null || !("result" in first)) {
      throw new PolicyEvalError("policy result has no value");
    }
    return { result: first.result, builtinErrors };
  }
}
