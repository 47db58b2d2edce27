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

/**
 * The part of opa-wasm's LoadedPolicy this engine uses (all declared in its typings). opa-wasm instantiates the
 * module, wires the builtins and loads data; evaluation calls the module's `opa_eval` directly (see `evaluate`).
 */
interface OpaPolicy {
  mem: WasmMemory;
  wasmInstance: WasmInstance | { instance: WasmInstance };
  entrypoints: Record<string, number>;
  /** The parsed data document. */
  dataAddr: number;
  /** First free heap address above the data document: where each evaluation's input goes. */
  dataHeapPtr: number;
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
  /**
   * ABI 1.2: reset the heap to `heapAddr`, parse `inputLen` bytes of JSON at `inputAddr`, evaluate entrypoint `ep`
   * against the data at `dataAddr`, and return the address of the result set as NUL-terminated JSON (format 0).
   */
  opa_eval(
    reserved: 0,
    ep: number,
    dataAddr: number,
    inputAddr: number,
    inputLen: number,
    heapAddr: number,
    format: 0,
  ): number;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** The NUL-terminated JSON text at `addr` in `buf`, parsed. */
function parseCString(buf: Uint8Array, addr: number): unknown {
  const end = buf.indexOf(0, addr);
  return JSON.parse(utf8Decoder.decode(buf.subarray(addr, end < 0 ? buf.length : end)));
}

function readJson(mem: WasmMemory, exportsObj: WasmExports, addr: number): unknown {
  const raw = exportsObj.opa_json_dump(addr);
  return parseCString(new Uint8Array(mem.buffer), raw);
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
  private readonly exports: WasmExports;
  /** A view of `mem`; replaced when the memory grows (growing detaches the old buffer). */
  private bytes: Uint8Array;
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
    const instance = "instance" in policy.wasmInstance ? policy.wasmInstance.instance : policy.wasmInstance;
    this.exports = instance.exports as unknown as WasmExports;
    this.bytes = new Uint8Array(policy.mem.buffer);
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
    if (typeof (instance.exports as Partial<WasmExports>).opa_eval !== "function") {
      throw new PolicyLoadError(
        "policy module predates wasm ABI 1.2 (no opa_eval export); rebuild it with a current opa",
      );
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
   * ArrayBuffer or Uint8Array: pre-serialised input, or integers beyond 2^53 exactly; `undefined`: no input).
   * `time.now_ns()` is frozen for the call.
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
      rs = this.run(input, this.policy.entrypoints[entrypoint] as number);
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

  /** The memory view, renewed after a grow. */
  private view(): Uint8Array {
    if (this.bytes.byteLength === 0 || this.bytes.buffer !== this.mem.buffer) {
      this.bytes = new Uint8Array(this.mem.buffer);
    }
    return this.bytes;
  }

  /**
   * One `opa_eval` call: the input's JSON is written straight into wasm memory just above the data document (no
   * intermediate buffer), the heap restarts right after it, and the result set is read back from the returned
   * address. Nothing evaluated before survives in the heap, so the memory does not grow from one call to the next.
   * A memory that cannot grow to fit the input throws the RangeError of Memory.grow (the memory limit).
   */
  private run(input: unknown, ep: number): unknown {
    const at = this.policy.dataHeapPtr;
    let len = 0;
    if (input instanceof ArrayBuffer || input instanceof Uint8Array) {
      const src = input instanceof ArrayBuffer ? new Uint8Array(input) : input;
      this.reserve(at + src.byteLength);
      this.view().set(src, at);
      len = src.byteLength;
    } else if (input !== undefined) {
      const text = JSON.stringify(input) as string | undefined;
      if (text !== undefined) {
        let r = utf8Encoder.encodeInto(text, this.view().subarray(at));
        if (r.read < text.length) {
          this.reserve(at + Buffer.byteLength(text, "utf8"));
          r = utf8Encoder.encodeInto(text, this.view().subarray(at));
        }
        len = r.written;
      }
    }
    const addr = this.exports.opa_eval(0, ep, this.policy.dataAddr, at, len, at + len, 0);
    return parseCString(this.view(), addr);
  }

  /** Grow the memory to at least `end` bytes (throws RangeError beyond the maximum). */
  private reserve(end: number): void {
    const short = end - this.mem.buffer.byteLength;
    if (short > 0) this.mem.grow(Math.ceil(short / 65536));
  }
}
