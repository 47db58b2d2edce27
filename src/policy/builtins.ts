/**
 * Host builtins: the OPA builtins a wasm policy calls back into the host for, implemented in
 * TypeScript with OPA's semantics (checked against `opa eval` by test/unit/policy/builtins-diff.test.ts).
 *
 * The vetted set (anything else that is not compiled into the module is refused at build time by
 * policies/capabilities.json and at load time by the engine):
 *
 * - time: now_ns (frozen once per evaluation), parse_rfc3339_ns, parse_ns, parse_duration_ns, date,
 *   clock, weekday, add_date, diff, format
 * - crypto: sha256, sha1, md5, hmac.sha256/sha512/sha1/md5, hmac.equal (constant time)
 * - io.jwt: decode, decode_verify (HS*, RS*, PS*, ES*, EdDSA; cert = PEM certificate / public key or
 *   JWK / JWKS JSON), verify_hs256..512, verify_rs256..512, verify_ps256..512,
 *   verify_es256..512, verify_eddsa
 * - hex.encode, hex.decode, units.parse_bytes
 *
 * Errors follow OPA's default (non-strict) mode: a failing builtin makes its expression undefined.
 * Each failure is recorded (builtin name and a message that never contains argument values) so the
 * caller can log it; `strict: true` turns it into an evaluation error instead.
 *
 * Precision: results that are int64 nanoseconds are handed to the module as exact JSON. Arguments
 * arrive as doubles (opa-wasm parses them with JSON.parse): nanosecond timestamps beyond 2^53 are
 * snapped to the nearest microsecond (see util.ts `nanosOperand`). Time zone abbreviations in
 * `time.format` ("MST" layout element) come from ICU and may differ from Go's tzdata for some zones
 * (e.g. ICU "GMT+1" → we print "+01" where Go prints "CET"); numeric offsets are exact.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { hexDecode, hexEncode } from "./builtins/encoding.js";
import {
  NAMED_LAYOUTS,
  UTC,
  addDate,
  civil,
  diff,
  formatTime,
  fromUnixNanos,
  loadZone,
  parseDuration,
  parseTime,
  unixNanos,
  weekdayName,
  type GoTime,
} from "./builtins/gotime.js";
import { jwtDecode, jwtDecodeVerify, jwtVerifyAsym, jwtVerifyHS } from "./builtins/jwt.js";
import { parseBytes } from "./builtins/units.js";
import {
  BuiltinError,
  bytesToString,
  intOperand,
  intResult,
  nanosOperand,
  stringOperand,
  utf8,
} from "./builtins/util.js";

export { BuiltinError } from "./builtins/util.js";

/** The builtins opa-wasm itself implements in JavaScript (they win on a name clash). */
export const JS_BUILTINS: readonly string[] = [
  "sprintf",
  "regex.split",
  "json.is_valid",
  "yaml.is_valid",
  "yaml.marshal",
  "yaml.unmarshal",
];

export type BuiltinFn = (...args: unknown[]) => unknown;

export interface BuiltinFailure {
  builtin: string;
  message: string;
}

export interface HostBuiltinOptions {
  /** The frozen evaluation time in nanoseconds (the engine sets it before each evaluation). */
  now: () => bigint;
  /** Called for each failing builtin call (the call's expression becomes undefined). */
  onError?: (failure: BuiltinFailure) => void;
  /** Throw instead of returning undefined (OPA's `--strict-builtin-errors`). */
  strict?: boolean;
}

/** A `time.*` operand: ns, or [ns, zone], or [ns, zone, layout] (OPA's tzTime). */
function tzTime(a: unknown): { t: GoTime; layout: string } {
  if (Array.isArray(a)) {
    if (a.length === 0)
      throw new BuiltinError("operand 1 must be either number (ns) or [number (ns), string (tz)]");
    const ns = nanosOperand(a[0], 1);
    const zone = a.length > 1 ? loadZone(stringOperand(a[1], 1)) : UTC;
    const layout = a.length > 2 ? stringOperand(a[2], 1) : "";
    return { t: fromUnixNanos(ns, zone), layout };
  }
  if (typeof a === "number") return { t: fromUnixNanos(nanosOperand(a, 1)), layout: "" };
  throw new BuiltinError("operand 1 must be either number (ns) or [number (ns), string (tz)]");
}

function hashHex(alg: string, v: unknown): string {
  return createHash(alg)
    .update(utf8(stringOperand(v, 1)))
    .digest("hex");
}

function hmacHex(alg: string, msg: unknown, key: unknown): string {
  const m = stringOperand(msg, 1);
  const k = stringOperand(key, 2);
  return createHmac(alg, utf8(k)).update(utf8(m)).digest("hex");
}

function implementations(now: () => bigint): Record<string, BuiltinFn> {
  const nowNumber = (): number => Number(now());
  return {
    "time.now_ns": () => intResult(now()),
    "time.parse_rfc3339_ns": (v) =>
      intResult(unixNanos(parseTime(NAMED_LAYOUTS.RFC3339 as string, stringOperand(v, 1)))),
    "time.parse_ns": (layout, value) => {
      const l = stringOperand(layout, 1);
      const s = stringOperand(value, 2);
      return intResult(unixNanos(parseTime(NAMED_LAYOUTS[l] ?? l, s)));
    },
    "time.parse_duration_ns": (v) => intResult(parseDuration(stringOperand(v, 1))),
    "time.date": (a) => {
      const c = civil(tzTime(a).t);
      return [c.year, c.month, c.day];
    },
    "time.clock": (a) => {
      const c = civil(tzTime(a).t);
      return [c.hour, c.min, c.sec];
    },
    "time.weekday": (a) => weekdayName(tzTime(a).t),
    "time.add_date": (a, years, months, days) => {
      const { t } = tzTime(a);
      const y = intOperand(years, 2);
      const m = intOperand(months, 3);
      const d = intOperand(days, 4);
      return intResult(unixNanos(addDate(t, y, m, d)));
    },
    "time.diff": (a, b) => diff(tzTime(a).t, tzTime(b).t),
    "time.format": (a) => {
      const { t, layout } = tzTime(a);
      const l = layout === "" ? (NAMED_LAYOUTS.RFC3339Nano as string) : (NAMED_LAYOUTS[layout] ?? layout);
      return formatTime(t, l);
    },

    "crypto.sha256": (v) => hashHex("sha256", v),
    "crypto.sha1": (v) => hashHex("sha1", v),
    "crypto.md5": (v) => hashHex("md5", v),
    "crypto.hmac.sha256": (m, k) => hmacHex("sha256", m, k),
    "crypto.hmac.sha512": (m, k) => hmacHex("sha512", m, k),
    "crypto.hmac.sha1": (m, k) => hmacHex("sha1", m, k),
    "crypto.hmac.md5": (m, k) => hmacHex("md5", m, k),
    "crypto.hmac.equal": (a, b) => {
      const x = utf8(stringOperand(a, 1));
      const y = utf8(stringOperand(b, 2));
      return x.length === y.length && timingSafeEqual(x, y);
    },

    "io.jwt.decode": (t) => jwtDecode(t),
    "io.jwt.decode_verify": (t, c) => jwtDecodeVerify(t, c, nowNumber),
    "io.jwt.verify_hs256": (t, k) => jwtVerifyHS("256", t, k),
    "io.jwt.verify_hs384": (t, k) => jwtVerifyHS("384", t, k),
    "io.jwt.verify_hs512": (t, k) => jwtVerifyHS("512", t, k),
    "io.jwt.verify_rs256": (t, k) => jwtVerifyAsym("RS", "256", t, k),
    "io.jwt.verify_rs384": (t, k) => jwtVerifyAsym("RS", "384", t, k),
    "io.jwt.verify_rs512": (t, k) => jwtVerifyAsym("RS", "512", t, k),
    "io.jwt.verify_ps256": (t, k) => jwtVerifyAsym("PS", "256", t, k),
    "io.jwt.verify_ps384": (t, k) => jwtVerifyAsym("PS", "384", t, k),
    "io.jwt.verify_ps512": (t, k) => jwtVerifyAsym("PS", "512", t, k),
    "io.jwt.verify_es256": (t, k) => jwtVerifyAsym("ES", "256", t, k),
    "io.jwt.verify_es384": (t, k) => jwtVerifyAsym("ES", "384", t, k),
    "io.jwt.verify_es512": (t, k) => jwtVerifyAsym("ES", "512", t, k),
    "io.jwt.verify_eddsa": (t, k) => jwtVerifyAsym("EdDSA", "256", t, k),

    "hex.encode": (v) => hexEncode(utf8(stringOperand(v, 1))),
    "hex.decode": (v) => bytesToString(hexDecode(stringOperand(v, 1))),
    "units.parse_bytes": (v) => intResult(parseBytes(stringOperand(v, 1))),
  };
}

/** Names of every host builtin this service implements (sorted). */
export const HOST_BUILTINS: readonly string[] = Object.keys(implementations(() => 0n)).sort();

/** Host builtins for one engine instance, wrapped with OPA's error semantics. */
export function createHostBuiltins(opts: HostBuiltinOptions): Record<string, BuiltinFn> {
  const impls = implementations(opts.now);
  const out: Record<string, BuiltinFn> = {};
  for (const [name, fn] of Object.entries(impls)) {
    out[name] = (...args: unknown[]) => {
      try {
        return fn(...args);
      } catch (err) {
        const message = err instanceof BuiltinError ? err.message : "internal error";
        opts.onError?.({ builtin: name, message });
        if (opts.strict) throw new BuiltinError(`${name}: ${message}`);
        return undefined;
      }
    };
  }
  return out;
}
