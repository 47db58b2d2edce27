/**
 * Strict validation of a Grant — the one place every handler's and every policy's "allow" goes
 * through before a user JWT is built. Unknown keys, wrong types and bad values throw a
 * DecisionShapeError naming the field as a dotted path (e.g. `pub.allow[2]`), with a code:
 *
 * - `decision_shape_error`        unknown key, wrong type, invalid subject/CIDR/time/zone/limit
 * - `account_not_allowed`         account not in the service's allow-list (e.g. SYS)
 * - `subject_injection`           a client-controlled identity that is not a safe subject token
 *                                 appears inside a granted subject
 * - `source_not_allowed`          `src` given and `client_info.host` is in none of the CIDRs
 * - `connection_type_not_allowed` `allowed_connection_types` given and the connection's type is not listed
 * - `secret_in_grant`             the name, a tag or a subject contains a credential of the request, in any
 *                                 case or as a fragment (src/secrets.ts): it would be written into the user
 *                                 JWT, the server's connz and our logs
 *
 * Error messages never repeat the offending value (it may be derived from client secrets).
 */
import { BlockList, isIP } from "node:net";
import { DecisionShapeError } from "./errors.js";
import { requestCredentials, type Credentials } from "./secrets.js";
import type {
  AuthorizationRequest,
  ConnectionType,
  Grant,
  ResponsePermission,
  SubjectPermission,
  TimeRange,
} from "./types.js";

/** Every connection type a user JWT may list (nats-io/jwt v2). */
export const CONNECTION_TYPES: readonly ConnectionType[] = [
  "STANDARD",
  "WEBSOCKET",
  "LEAFNODE",
  "LEAFNODE_WS",
  "MQTT",
  "MQTT_WS",
  "IN_PROCESS",
];

/** The keys a Grant may carry (src/types.ts); anything else is rejected as unknown. */
export const GRANT_KEYS: ReadonlySet<string> = new Set([
  "account",
  "name",
  "pub",
  "sub",
  "resp",
  "expires_in",
  "subs",
  "data",
  "payload",
  "src",
  "times",
  "times_location",
  "allowed_connection_types",
  "bearer_token",
  "tags",
]);

/**
 * The connection type of a request, derived from `client_info` (policy input `derived.connection_type`):
 * kind "Leafnode" → LEAFNODE (LEAFNODE_WS over websocket); otherwise by type: nats → STANDARD,
 * websocket → WEBSOCKET, mqtt → MQTT; any other type → upper-cased; no type at all → "UNKNOWN".
 * (nats-server reports MQTT over websocket as type "mqtt", so MQTT_WS is never derived.)
 */
export function connectionType(req: Pick<AuthorizationRequest, "client_info">): ConnectionType | string {
  const kind = (req.client_info.kind ?? "").toLowerCase();
  const type = (req.client_info.type ?? "").toLowerCase();
  if (kind === "leafnode") return type === "websocket" ? "LEAFNODE_WS" : "LEAFNODE";
  switch (type) {
    case "nats":
      return "STANDARD";
    case "websocket":
      return "WEBSOCKET";
    case "mqtt":
      return "MQTT";
    case "":
      return "UNKNOWN";
    default:
      return type.toUpperCase();
  }
}

// eslint-disable-next-line no-control-regex
const UNSAFE_TOKEN_CHARS = /[.*>\s\u0000-\u001f\u007f]/u;

/**
 * True when `s` can be used as one subject token as-is: non-empty and free of ".", "*", ">",
 * whitespace and control characters. Identity strings that are not safe tokens must not be interpolated into subjects.
 */
export function isSafeToken(s: string): boolean {
  return typeof s === "string" && s.length > 0 && !UNSAFE_TOKEN_CHARS.test(s);
}

// eslint-disable-next-line no-control-regex
const WHITESPACE_OR_CONTROL = /[\s\u0000-\u001f\u007f]/u;

/**
 * True when `s` is a valid NATS subject (wildcards allowed): non-empty, no whitespace or control
 * characters, no empty tokens
 * (leading/trailing "." or ".."), "*" and ">" only as whole tokens, ">" only as the last token.
 */
export function isValidSubject(s: string): boolean {
  if (typeof s !== "string" || s.length === 0 || WHITESPACE_OR_CONTROL.test(s)) return false;
  const tokens = s.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) return false;
    if (t === ">") {
      if (i !== tokens.length - 1) return false;
      continue;
    }
    if (t === "*") continue;
    if (t.includes("*") || t.includes(">")) return false;
  }
  return true;
}

const TIME_OF_DAY = /^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$/;
const ZONE_NAME = /^[A-Z][A-Za-z0-9_+-]*(\/[A-Z][A-Za-z0-9_+-]*)*$/;

/** True for an IANA zone name that both Intl and Go's time.LoadLocation accept (e.g. "Europe/Berlin", "UTC"). */
export function isValidTimeZone(zone: string): boolean {
  if (typeof zone !== "string" || !ZONE_NAME.test(zone) || zone === "Local") return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Parses "addr/prefix" like Go's net.ParseCIDR; returns undefined when invalid. */
export function parseCidr(
  cidr: string,
): { address: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  if (typeof cidr !== "string") return undefined;
  const slash = cidr.indexOf("/");
  if (slash < 0 || cidr.indexOf("/", slash + 1) >= 0) return undefined;
  const address = cidr.slice(0, slash);
  const bits = cidr.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(bits)) return undefined;
  const v = isIP(address);
  if (v === 0) return undefined;
  const prefix = Number(bits);
  if (prefix > (v === 4 ? 32 : 128)) return undefined;
  return { address, prefix, family: v === 4 ? "ipv4" : "ipv6" };
}

/** True when `host` (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of `cidrs` (already validated). */
export function hostInCidrs(host: string | undefined, cidrs: readonly string[]): boolean {
  if (typeof host !== "string") return false;
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const v = isIP(bare);
  if (v === 0) return false;
  const list = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (p !== undefined) list.addSubnet(p.address, p.prefix, p.family);
  }
  if (list.check(bare, v === 4 ? "ipv4" : "ipv6")) return true;
  // An IPv4 client seen through a dual-stack socket.
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(bare);
  return mapped !== null && isIP(mapped[1]!) === 4 && list.check(mapped[1]!, "ipv4");
}

function fail(
  field: string,
  message: string,
  code?: ConstructorParameters<typeof DecisionShapeError>[2],
): never {
  throw new DecisionShapeError(field, message, code);
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function expectObject(v: unknown, field: string, keys: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(v)) fail(field === "" ? "grant" : field, `must be an object, got ${typeName(v)}`);
  for (const k of Object.keys(v)) {
    if (!keys.includes(k)) fail(field === "" ? k : `${field}.${k}`, "unknown field");
  }
  return v;
}

function expectString(v: unknown, field: string): string {
  if (typeof v !== "string") fail(field, `must be a string, got ${typeName(v)}`);
  return v;
}

function expectStringArray(v: unknown, field: string, nonEmpty = false): string[] {
  if (!Array.isArray(v)) fail(field, `must be an array, got ${typeName(v)}`);
  if (nonEmpty && v.length === 0) fail(field, "must not be empty (omit the field instead)");
  return v.map((item, i) => expectString(item, `${field}[${i}]`));
}

function expectInteger(v: unknown, field: string, min: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v))
    fail(field, `must be an integer, got ${typeName(v)}`);
  if (v < min) fail(field, `must be >= ${min}`);
  return v;
}

/** Client-controlled identity strings that policies are tempted to interpolate into subjects. */
function unsafeIdentities(req: AuthorizationRequest): string[] {
  const candidates = [
    req.connect_opts.user,
    req.connect_opts.name,
    req.client_info.user,
    req.client_info.name,
    req.client_info.name_tag,
  ];
  const out: string[] = [];
  for (const c of candidates) {
    // Empty strings cannot be detected inside a subject (and are never granted anything by being empty).
    if (typeof c === "string" && c.length > 0 && !isSafeToken(c)) out.push(c);
  }
  return out;
}

/** Throws secret_in_grant when `value` contains a credential of the request (src/secrets.ts defines both). */
function refuseSecret(value: string, field: string, secrets: Credentials): void {
  if (secrets.contains(value)) fail(field, "carries a credential from the request", "secret_in_grant");
}

function validatePermission(
  v: unknown,
  field: string,
  unsafe: readonly string[],
  secrets: Credentials,
): SubjectPermission {
  const o = expectObject(v, field, ["allow", "deny"]);
  const out: SubjectPermission = {};
  for (const side of ["allow", "deny"] as const) {
    if (o[side] === undefined) continue;
    const list = expectStringArray(o[side], `${field}.${side}`);
    list.forEach((s, i) => {
      const path = `${field}.${side}[${i}]`;
      if (unsafe.some((u) => s.includes(u))) {
        fail(
          path,
          "contains a client-supplied identity that is not a safe subject token",
          "subject_injection",
        );
      }
      if (!isValidSubject(s)) fail(path, "is not a valid subject");
      refuseSecret(s, path, secrets);
    });
    out[side] = list;
  }
  return out;
}

function validateResp(v: unknown): ResponsePermission {
  const o = expectObject(v, "resp", ["max", "ttl_ms"]);
  const max = expectInteger(o.max, "resp.max", -1);
  const ttl = expectInteger(o.ttl_ms, "resp.ttl_ms", 0);
  // ttl travels as nanoseconds (Go time.Duration): keep that a safe integer.
  if (!Number.isSafeInteger(ttl * 1_000_000)) fail("resp.ttl_ms", "is too large");
  return { max, ttl_ms: ttl };
}

function validateTimes(v: unknown): TimeRange[] {
  if (!Array.isArray(v)) fail("times", `must be an array, got ${typeName(v)}`);
  if (v.length === 0) fail("times", "must not be empty (omit the field instead)");
  return v.map((item, i) => {
    const o = expectObject(item, `times[${i}]`, ["start", "end"]);
    const start = expectString(o.start, `times[${i}].start`);
    const end = expectString(o.end, `times[${i}].end`);
    if (!TIME_OF_DAY.test(start)) fail(`times[${i}].start`, 'must be "HH:MM:SS"');
    if (!TIME_OF_DAY.test(end)) fail(`times[${i}].end`, 'must be "HH:MM:SS"');
    return { start, end };
  });
}

/**
 * Validates a grant returned by a handler or a policy against the request it answers, and returns a
 * fresh, normalised Grant (only known fields, arrays copied). Throws DecisionShapeError.
 */
export function validateGrant(
  grant: unknown,
  req: AuthorizationRequest,
  opts: { accounts: readonly string[] },
): Grant {
  const g = expectObject(grant, "", [...GRANT_KEYS]);

  if (g.account === undefined) fail("account", "is required");
  const account = expectString(g.account, "account");
  if (!opts.accounts.includes(account))
    fail("account", "is not an allowed target account", "account_not_allowed");
  const out: Grant = { account };

  const secrets = requestCredentials(req);
  if (g.name !== undefined) {
    out.name = expectString(g.name, "name");
    refuseSecret(out.name, "name", secrets);
  }

  const unsafe = unsafeIdentities(req);
  if (g.pub !== undefined) out.pub = validatePermission(g.pub, "pub", unsafe, secrets);
  if (g.sub !== undefined) out.sub = validatePermission(g.sub, "sub", unsafe, secrets);
  if (g.resp !== undefined) out.resp = validateResp(g.resp);

  if (g.expires_in !== undefined) {
    const e = g.expires_in;
    if (typeof e !== "number" || !Number.isFinite(e))
      fail("expires_in", `must be a number, got ${typeName(e)}`);
    if (e <= 0) fail("expires_in", "must be > 0");
    out.expires_in = e;
  }

  for (const k of ["subs", "data", "payload"] as const) {
    if (g[k] !== undefined) out[k] = expectInteger(g[k], k, -1);
  }

  if (g.times !== undefined) out.times = validateTimes(g.times);
  if (g.times_location !== undefined) {
    const tz = expectString(g.times_location, "times_location");
    if (!isValidTimeZone(tz)) fail("times_location", "is not a valid IANA time zone");
    out.times_location = tz;
  }

  if (g.bearer_token !== undefined) {
    if (typeof g.bearer_token !== "boolean")
      fail("bearer_token", `must be a boolean, got ${typeName(g.bearer_token)}`);
    out.bearer_token = g.bearer_token;
  }
  if (g.tags !== undefined) {
    const tags = expectStringArray(g.tags, "tags");
    tags.forEach((t, i) => refuseSecret(t, `tags[${i}]`, secrets));
    out.tags = tags;
  }

  // Service-side enforcement last, so shape errors win over policy-visible denials.
  if (g.src !== undefined) {
    const src = expectStringArray(g.src, "src", true);
    src.forEach((c, i) => {
      if (parseCidr(c) === undefined) fail(`src[${i}]`, "is not a valid CIDR (addr/prefix)");
    });
    out.src = src;
  }
  if (g.allowed_connection_types !== undefined) {
    const types = expectStringArray(g.allowed_connection_types, "allowed_connection_types", true);
    types.forEach((t, i) => {
      if (!(CONNECTION_TYPES as readonly string[]).includes(t)) {
        fail(`allowed_connection_types[${i}]`, "is not a known connection type");
      }
    });
    out.allowed_connection_types = types as ConnectionType[];
  }
  if (out.src !== undefined && !hostInCidrs(req.client_info.host, out.src)) {
    fail("src", "client host is not in any allowed CIDR", "source_not_allowed");
  }
  if (
    out.allowed_connection_types !== undefined &&
    !(out.allowed_connection_types as readonly string[]).includes(connectionType(req))
  ) {
    fail("allowed_connection_types", "connection type is not allowed", "connection_type_not_allowed");
  }
  return out;
}
