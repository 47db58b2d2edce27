/**
 * Go `time` semantics for OPA's `time.*` builtins: civil-date arithmetic (proleptic Gregorian, as Go),
 * IANA zones through `Intl`, Go layout strings (`time.Parse`/`Time.Format`) and `time.ParseDuration`.
 * Instants are (seconds, nanoseconds) pairs; nanoseconds since the epoch are `bigint`.
 */
import { BuiltinError, INT64_MAX, INT64_MIN } from "./util.js";

const NS = 1_000_000_000n;

// ---- civil dates ----

/** Days since 1970-01-01 of a proleptic Gregorian date (month 1..12; day may overflow linearly). */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const mp = (m + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

export function civilFromDays(z: number): { year: number; month: number; day: number } {
  const zz = z + 719468;
  const era = Math.floor(zz / 146097);
  const doe = zz - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

export function isLeap(y: number): boolean {
  return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
}

const DAYS_BEFORE = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

export function daysIn(month: number, year: number): number {
  if (month === 2 && isLeap(year)) return 29;
  return (DAYS_BEFORE[month] ?? 0) - (DAYS_BEFORE[month - 1] ?? 0);
}

function floorDiv(a: number, b: number): number {
  return Math.floor(a / b);
}
function mod(a: number, b: number): number {
  return a - Math.floor(a / b) * b;
}

// ---- zones ----

export type Zone =
  | { kind: "utc"; name: string }
  | { kind: "fixed"; name: string; offset: number }
  | { kind: "iana"; name: string; fmt: Intl.DateTimeFormat; abbr: Intl.DateTimeFormat };

export const UTC: Zone = { kind: "utc", name: "UTC" };

const zoneCache = new Map<string, Zone>();

/** Go's `time.LoadLocation` as OPA uses it ("", "UTC", "Local", IANA names; case-sensitive). */
export function loadZone(name: string): Zone {
  if (name === "" || name === "UTC") return UTC;
  const cached = zoneCache.get(name);
  if (cached) return cached;
  const ianaName = name === "Local" ? new Intl.DateTimeFormat().resolvedOptions().timeZone : name;
  let fmt: Intl.DateTimeFormat;
  try {
    fmt = new Intl.DateTimeFormat("en-US", {
      timeZone: ianaName,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
      era: "short",
    });
  } catch {
    throw new BuiltinError("unknown time zone");
  }
  const resolved = fmt.resolvedOptions().timeZone;
  // Intl matches names case-insensitively; Go's zoneinfo lookup does not.
  if (name !== "Local" && resolved !== name && resolved.toLowerCase() === name.toLowerCase()) {
    throw new BuiltinError("unknown time zone");
  }
  const abbr = new Intl.DateTimeFormat("en-US", { timeZone: ianaName, timeZoneName: "short" });
  const zone: Zone = { kind: "iana", name, fmt, abbr };
  if (zoneCache.size > 256) zoneCache.clear();
  zoneCache.set(name, zone);
  return zone;
}

/** UTC offset in seconds of `zone` at the instant `unixSec`. */
export function offsetAt(zone: Zone, unixSec: number): number {
  if (zone.kind === "utc") return 0;
  if (zone.kind === "fixed") return zone.offset;
  const parts = zone.fmt.formatToParts(new Date(unixSec * 1000));
  let y = 0;
  let mo = 1;
  let d = 1;
  let h = 0;
  let mi = 0;
  let s = 0;
  let bc = false;
  for (const p of parts) {
    switch (p.type) {
      case "year":
        y = Number(p.value);
        break;
      case "month":
        mo = Number(p.value);
        break;
      case "day":
        d = Number(p.value);
        break;
      case "hour":
        h = Number(p.value);
        break;
      case "minute":
        mi = Number(p.value);
        break;
      case "second":
        s = Number(p.value);
        break;
      case "era":
        bc = p.value.startsWith("B");
        break;
      default:
        break;
    }
  }
  if (bc) y = 1 - y;
  const local = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  return local - unixSec;
}

function zoneAbbr(zone: Zone, unixSec: number, offset: number): string {
  if (zone.kind === "utc") return "UTC";
  if (zone.kind === "fixed") return zone.name;
  const name = zone.abbr
    .formatToParts(new Date(unixSec * 1000))
    .find((p) => p.type === "timeZoneName")?.value;
  if (name && /^[A-Z]{3,5}$/.test(name) && !name.startsWith("GMT")) return name;
  if (name === "GMT" && offset === 0) return "GMT";
  // tzdata's numeric abbreviations ("+04", "+0530")
  const sign = offset < 0 ? "-" : "+";
  const a = Math.abs(offset);
  const hh = String(Math.floor(a / 3600)).padStart(2, "0");
  const mm = Math.floor((a % 3600) / 60);
  return mm === 0 ? `${sign}${hh}` : `${sign}${hh}${String(mm).padStart(2, "0")}`;
}

// ---- instants ----

/** A point in time: whole seconds since the epoch plus 0 ≤ nsec < 1e9, viewed in `zone`. */
export interface GoTime {
  sec: number;
  nsec: number;
  zone: Zone;
}

export function fromUnixNanos(ns: bigint, zone: Zone = UTC): GoTime {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    nsec += NS;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec), zone };
}

/** Go's `toSafeUnixNano`: the instant as int64 nanoseconds, or "time outside of valid range". */
export function unixNanos(t: { sec: number; nsec: number }): bigint {
  if (!Number.isSafeInteger(t.sec)) throw new BuiltinError("time outside of valid range");
  const ns = BigInt(t.sec) * NS + BigInt(t.nsec);
  if (ns < INT64_MIN || ns > INT64_MAX) throw new BuiltinError("time outside of valid range");
  return ns;
}

export interface Civil {
  year: number;
  month: number;
  day: number;
  hour: number;
  min: number;
  sec: number;
  nsec: number;
  yday: number;
  weekday: number; // 0 = Sunday
  offset: number;
}

export function civil(t: GoTime): Civil {
  const offset = offsetAt(t.zone, t.sec);
  const local = t.sec + offset;
  const days = floorDiv(local, 86400);
  const secOfDay = local - days * 86400;
  const { year, month, day } = civilFromDays(days);
  const yday = (DAYS_BEFORE[month - 1] ?? 0) + day + (isLeap(year) && month > 2 ? 1 : 0);
  return {
    year,
    month,
    day,
    hour: Math.floor(secOfDay / 3600),
    min: Math.floor((secOfDay % 3600) / 60),
    sec: secOfDay % 60,
    nsec: t.nsec,
    yday,
    weekday: mod(days + 4, 7),
    offset,
  };
}

/** Go's `time.Date`: normalises overflowing fields, then resolves the local time in `zone`. */
export function goDate(
  year: number,
  month: number,
  day: number,
  hour: number,
  min: number,
  sec: number,
  nsec: number,
  zone: Zone,
): GoTime {
  let m = month - 1;
  const y = year + floorDiv(m, 12);
  m = mod(m, 12);
  const carry = floorDiv(nsec, 1e9);
  const ns = nsec - carry * 1e9;
  const days = daysFromCivil(y, m + 1, 1) + day - 1;
  let unix = days * 86400 + hour * 3600 + min * 60 + sec + carry;
  if (zone.kind !== "utc") {
    let offset = offsetAt(zone, unix);
    if (offset !== 0) {
      const utc = unix - offset;
      const offset2 = offsetAt(zone, utc);
      if (offset2 !== offset) offset = offset2;
      unix -= offset;
    }
  }
  if (!Number.isFinite(unix)) throw new BuiltinError("time outside of valid range");
  return { sec: unix, nsec: ns, zone };
}

// ---- layouts (Go's nextStdChunk) ----

enum Std {
  None = 0,
  LongMonth,
  Month,
  NumMonth,
  ZeroMonth,
  LongWeekDay,
  WeekDay,
  Day,
  UnderDay,
  ZeroDay,
  UnderYearDay,
  ZeroYearDay,
  Hour,
  Hour12,
  ZeroHour12,
  Minute,
  ZeroMinute,
  Second,
  ZeroSecond,
  LongYear,
  Year,
  PM,
  pm,
  TZ,
  ISO8601TZ,
  ISO8601SecondsTZ,
  ISO8601ShortTZ,
  ISO8601ColonTZ,
  ISO8601ColonSecondsTZ,
  NumTZ,
  NumSecondsTz,
  NumShortTZ,
  NumColonTZ,
  NumColonSecondsTZ,
  FracSecond0,
  FracSecond9,
}

interface Chunk {
  prefix: string;
  std: Std;
  /** digits of a fractional-second token */
  digits: number;
  /** '.' or ',' of a fractional-second token */
  sep: string;
  suffix: string;
}

function startsWithLowerCase(s: string): boolean {
  if (s.length === 0) return false;
  const c = s.charCodeAt(0);
  return c >= 97 && c <= 122;
}

function isDigitAt(s: string, i: number): boolean {
  if (s.length <= i) return false;
  const c = s.charCodeAt(i);
  return c >= 48 && c <= 57;
}

const STD0X = [Std.ZeroMonth, Std.ZeroDay, Std.ZeroHour12, Std.ZeroMinute, Std.ZeroSecond, Std.Year];

function nextStdChunk(layout: string): Chunk {
  const done = (i: number, std: Std, len: number, digits = 0, sep = "."): Chunk => ({
    prefix: layout.slice(0, i),
    std,
    digits,
    sep,
    suffix: layout.slice(i + len),
  });
  for (let i = 0; i < layout.length; i++) {
    const c = layout[i];
    switch (c) {
      case "J":
        if (layout.startsWith("Jan", i)) {
          if (layout.startsWith("January", i)) return done(i, Std.LongMonth, 7);
          if (!startsWithLowerCase(layout.slice(i + 3))) return done(i, Std.Month, 3);
        }
        break;
      case "M":
        if (layout.startsWith("Mon", i)) {
          if (layout.startsWith("Monday", i)) return done(i, Std.LongWeekDay, 6);
          if (!startsWithLowerCase(layout.slice(i + 3))) return done(i, Std.WeekDay, 3);
        }
        if (layout.startsWith("MST", i)) return done(i, Std.TZ, 3);
        break;
      case "0": {
        const n = layout.charCodeAt(i + 1);
        if (n >= 49 && n <= 54) return done(i, STD0X[n - 49] as Std, 2);
        if (layout[i + 1] === "0" && layout[i + 2] === "2") return done(i, Std.ZeroYearDay, 3);
        break;
      }
      case "1":
        if (layout[i + 1] === "5") return done(i, Std.Hour, 2);
        return done(i, Std.NumMonth, 1);
      case "2":
        if (layout.startsWith("2006", i)) return done(i, Std.LongYear, 4);
        return done(i, Std.Day, 1);
      case "_":
        if (layout[i + 1] === "2") {
          // _2006 is really a literal _, followed by stdLongYear
          if (layout.startsWith("_2006", i)) return done(i + 1, Std.LongYear, 4);
          return done(i, Std.UnderDay, 2);
        }
        if (layout[i + 1] === "_" && layout[i + 2] === "2") return done(i, Std.UnderYearDay, 3);
        break;
      case "3":
        return done(i, Std.Hour12, 1);
      case "4":
        return done(i, Std.Minute, 1);
      case "5":
        return done(i, Std.Second, 1);
      case "P":
        if (layout[i + 1] === "M") return done(i, Std.PM, 2);
        break;
      case "p":
        if (layout[i + 1] === "m") return done(i, Std.pm, 2);
        break;
      case "-":
        if (layout.startsWith("-070000", i)) return done(i, Std.NumSecondsTz, 7);
        if (layout.startsWith("-07:00:00", i)) return done(i, Std.NumColonSecondsTZ, 9);
        if (layout.startsWith("-0700", i)) return done(i, Std.NumTZ, 5);
        if (layout.startsWith("-07:00", i)) return done(i, Std.NumColonTZ, 6);
        if (layout.startsWith("-07", i)) return done(i, Std.NumShortTZ, 3);
        break;
      case "Z":
        if (layout.startsWith("Z070000", i)) return done(i, Std.ISO8601SecondsTZ, 7);
        if (layout.startsWith("Z07:00:00", i)) return done(i, Std.ISO8601ColonSecondsTZ, 9);
        if (layout.startsWith("Z0700", i)) return done(i, Std.ISO8601TZ, 5);
        if (layout.startsWith("Z07:00", i)) return done(i, Std.ISO8601ColonTZ, 6);
        if (layout.startsWith("Z07", i)) return done(i, Std.ISO8601ShortTZ, 3);
        break;
      case ".":
      case ",": {
        const n = layout[i + 1];
        if (n === "0" || n === "9") {
          let j = i + 1;
          while (j < layout.length && layout[j] === n) j++;
          if (!isDigitAt(layout, j)) {
            return done(i, n === "0" ? Std.FracSecond0 : Std.FracSecond9, j - i, j - (i + 1), c);
          }
        }
        break;
      }
      default:
        break;
    }
  }
  return { prefix: layout, std: Std.None, digits: 0, sep: ".", suffix: "" };
}

/** Named layouts OPA accepts in place of a layout string. */
export const NAMED_LAYOUTS: Record<string, string> = {
  ANSIC: "Mon Jan _2 15:04:05 2006",
  UnixDate: "Mon Jan _2 15:04:05 MST 2006",
  RubyDate: "Mon Jan 02 15:04:05 -0700 2006",
  RFC822: "02 Jan 06 15:04 MST",
  RFC822Z: "02 Jan 06 15:04 -0700",
  RFC850: "Monday, 02-Jan-06 15:04:05 MST",
  RFC1123: "Mon, 02 Jan 2006 15:04:05 MST",
  RFC1123Z: "Mon, 02 Jan 2006 15:04:05 -0700",
  RFC3339: "2006-01-02T15:04:05Z07:00",
  RFC3339Nano: "2006-01-02T15:04:05.999999999Z07:00",
};

const LONG_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const SHORT_DAYS = LONG_DAYS.map((d) => d.slice(0, 3));
const LONG_MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
const SHORT_MONTHS = LONG_MONTHS.map((m) => m.slice(0, 3));

export function weekdayName(t: GoTime): string {
  return LONG_DAYS[civil(t).weekday] as string;
}

// ---- formatting (Go's Time.AppendFormat) ----

function pad(n: number, width: number): string {
  if (n < 0) return "-" + pad(-n, width);
  return String(n).padStart(width, "0");
}

export function formatTime(t: GoTime, layoutIn: string): string {
  const c = civil(t);
  let out = "";
  let layout = layoutIn;
  while (layout !== "") {
    const ch = nextStdChunk(layout);
    out += ch.prefix;
    if (ch.std === Std.None) break;
    layout = ch.suffix;
    switch (ch.std) {
      case Std.Year:
        out += pad(c.year % 100, 2);
        break;
      case Std.LongYear:
        out += pad(c.year, 4);
        break;
      case Std.Month:
        out += SHORT_MONTHS[c.month - 1];
        break;
      case Std.LongMonth:
        out += LONG_MONTHS[c.month - 1];
        break;
      case Std.NumMonth:
        out += String(c.month);
        break;
      case Std.ZeroMonth:
        out += pad(c.month, 2);
        break;
      case Std.WeekDay:
        out += SHORT_DAYS[c.weekday];
        break;
      case Std.LongWeekDay:
        out += LONG_DAYS[c.weekday];
        break;
      case Std.Day:
        out += String(c.day);
        break;
      case Std.UnderDay:
        out += (c.day < 10 ? " " : "") + String(c.day);
        break;
      case Std.ZeroDay:
        out += pad(c.day, 2);
        break;
      case Std.UnderYearDay:
        out += String(c.yday).padStart(3, " ");
        break;
      case Std.ZeroYearDay:
        out += pad(c.yday, 3);
        break;
      case Std.Hour:
        out += pad(c.hour, 2);
        break;
      case Std.Hour12:
        out += String(c.hour % 12 === 0 ? 12 : c.hour % 12);
        break;
      case Std.ZeroHour12:
        out += pad(c.hour % 12 === 0 ? 12 : c.hour % 12, 2);
        break;
      case Std.Minute:
        out += String(c.min);
        break;
      case Std.ZeroMinute:
        out += pad(c.min, 2);
        break;
      case Std.Second:
        out += String(c.sec);
        break;
      case Std.ZeroSecond:
        out += pad(c.sec, 2);
        break;
      case Std.PM:
        out += c.hour >= 12 ? "PM" : "AM";
        break;
      case Std.pm:
        out += c.hour >= 12 ? "pm" : "am";
        break;
      case Std.ISO8601TZ:
      case Std.ISO8601ColonTZ:
      case Std.ISO8601SecondsTZ:
      case Std.ISO8601ShortTZ:
      case Std.ISO8601ColonSecondsTZ:
      case Std.NumTZ:
      case Std.NumColonTZ:
      case Std.NumSecondsTz:
      case Std.NumShortTZ:
      case Std.NumColonSecondsTZ: {
        const iso =
          ch.std === Std.ISO8601TZ ||
          ch.std === Std.ISO8601ColonTZ ||
          ch.std === Std.ISO8601SecondsTZ ||
          ch.std === Std.ISO8601ShortTZ ||
          ch.std === Std.ISO8601ColonSecondsTZ;
        if (c.offset === 0 && iso) {
          out += "Z";
          break;
        }
        let zone = Math.trunc(c.offset / 60);
        let abs = c.offset;
        if (zone < 0) {
          out += "-";
          zone = -zone;
          abs = -abs;
        } else {
          out += "+";
        }
        out += pad(Math.trunc(zone / 60), 2);
        const colon =
          ch.std === Std.ISO8601ColonTZ ||
          ch.std === Std.NumColonTZ ||
          ch.std === Std.ISO8601ColonSecondsTZ ||
          ch.std === Std.NumColonSecondsTZ;
        if (colon) out += ":";
        if (ch.std !== Std.NumShortTZ && ch.std !== Std.ISO8601ShortTZ) out += pad(zone % 60, 2);
        if (
          ch.std === Std.ISO8601SecondsTZ ||
          ch.std === Std.NumSecondsTz ||
          ch.std === Std.NumColonSecondsTZ ||
          ch.std === Std.ISO8601ColonSecondsTZ
        ) {
          if (ch.std === Std.NumColonSecondsTZ || ch.std === Std.ISO8601ColonSecondsTZ) out += ":";
          out += pad(abs % 60, 2);
        }
        break;
      }
      case Std.TZ:
        out += zoneAbbr(t.zone, t.sec, c.offset);
        break;
      case Std.FracSecond0:
      case Std.FracSecond9: {
        const trim = ch.std === Std.FracSecond9;
        if (trim && (ch.digits === 0 || c.nsec === 0)) break;
        let frac = pad(c.nsec, 9);
        if (ch.digits < 9) frac = frac.slice(0, ch.digits);
        let piece = ch.sep + frac;
        if (trim) {
          piece = piece.replace(/0+$/, "");
          if (piece === ch.sep) piece = "";
        }
        out += piece;
        break;
      }
      default:
        break;
    }
  }
  return out;
}

// ---- parsing (Go's time.Parse) ----

const BAD = "bad";

function cutspace(s: string): string {
  let i = 0;
  while (i < s.length && s[i] === " ") i++;
  return s.slice(i);
}

function skip(value: string, prefix: string): string {
  let p = prefix;
  let v = value;
  while (p.length > 0) {
    if (p[0] === " ") {
      if (v.length > 0 && v[0] !== " ") throw new BuiltinError(BAD);
      p = cutspace(p);
      v = cutspace(v);
      continue;
    }
    if (v.length === 0 || v[0] !== p[0]) throw new BuiltinError(BAD);
    p = p.slice(1);
    v = v.slice(1);
  }
  return v;
}

/** Go's atoi: optional sign, then decimal digits (leadingInt, overflow-checked). */
function atoi(s: string): number {
  let neg = false;
  let t = s;
  if (t !== "" && (t[0] === "-" || t[0] === "+")) {
    neg = t[0] === "-";
    t = t.slice(1);
  }
  const [x, rem] = leadingInt(t);
  if (rem !== "" || t === "") throw new BuiltinError(BAD);
  if (x > 2n ** 63n) throw new BuiltinError(BAD);
  return neg ? -Number(x) : Number(x);
}

function leadingInt(s: string): [bigint, string] {
  let i = 0;
  let x = 0n;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    if (x > 2n ** 63n / 10n) throw new BuiltinError("overflow");
    x = x * 10n + BigInt(c - 48);
    if (x > 2n ** 63n) throw new BuiltinError("overflow");
  }
  return [x, s.slice(i)];
}

function getnum(s: string, fixed: boolean): [number, string] {
  if (!isDigitAt(s, 0)) throw new BuiltinError(BAD);
  if (!isDigitAt(s, 1)) {
    if (fixed) throw new BuiltinError(BAD);
    return [s.charCodeAt(0) - 48, s.slice(1)];
  }
  return [(s.charCodeAt(0) - 48) * 10 + (s.charCodeAt(1) - 48), s.slice(2)];
}

function getnum3(s: string, fixed: boolean): [number, string] {
  let n = 0;
  let i = 0;
  for (; i < 3 && isDigitAt(s, i); i++) n = n * 10 + (s.charCodeAt(i) - 48);
  if (i === 0 || (fixed && i !== 3)) throw new BuiltinError(BAD);
  return [n, s.slice(i)];
}

function lookupName(tab: readonly string[], val: string): [number, string] {
  // Go's match(): ASCII letters compare case-insensitively, everything else exactly
  for (let i = 0; i < tab.length; i++) {
    const v = tab[i] as string;
    if (val.length < v.length) continue;
    let ok = true;
    for (let k = 0; k < v.length && ok; k++) {
      const a = val.charCodeAt(k);
      const b = v.charCodeAt(k);
      if (a !== b && ((a | 0x20) !== (b | 0x20) || (a | 0x20) < 97 || (a | 0x20) > 122)) ok = false;
    }
    if (ok) return [i, val.slice(v.length)];
  }
  throw new BuiltinError(BAD);
}

function commaOrPeriod(c: string | undefined): boolean {
  return c === "." || c === ",";
}

function parseNanoseconds(value: string, nbytes: number): number {
  if (!commaOrPeriod(value[0])) throw new BuiltinError(BAD);
  let n = nbytes;
  let v = value;
  if (n > 10) {
    v = v.slice(0, 10);
    n = 10;
  }
  let ns = atoi(v.slice(1, n));
  if (ns < 0) throw new BuiltinError("fractional second out of range");
  for (let i = 0; i < 10 - n; i++) ns *= 10;
  return ns;
}

function parseSignedOffset(value: string): number {
  const sign = value[0];
  if (sign !== "-" && sign !== "+") return 0;
  let x: bigint;
  let rem: string;
  try {
    [x, rem] = leadingInt(value.slice(1));
  } catch {
    return 0;
  }
  if (value.slice(1) === rem) return 0;
  if (x > 12n) return 0;
  return value.length - rem.length;
}

function parseTimeZone(value: string): number {
  if (value.length < 3) return 0;
  if (value.startsWith("ChST") || value.startsWith("MeST")) return 4;
  if (value.startsWith("GMT")) {
    const rest = value.slice(3);
    if (rest.length === 0) return 3;
    return 3 + parseSignedOffset(rest);
  }
  if (value[0] === "+" || value[0] === "-") return parseSignedOffset(value);
  let nUpper = 0;
  for (; nUpper < 6; nUpper++) {
    if (nUpper >= value.length) break;
    const c = value.charCodeAt(nUpper);
    if (c < 65 || c > 90) break;
  }
  switch (nUpper) {
    case 5:
      return value[4] === "T" ? 5 : 0;
    case 4:
      return value[3] === "T" || value.startsWith("WITA") ? 4 : 0;
    case 3:
      return 3;
    default:
      return 0;
  }
}

/**
 * Go's `time.Parse(layout, value)` with UTC as the default zone. A zone abbreviation (`MST` in the
 * layout) does not move the instant (Go: unless it names the host's local zone; hosts run in UTC).
 */
export function parseTime(layoutIn: string, valueIn: string): GoTime {
  let layout = layoutIn;
  let value = valueIn;
  let amSet = false;
  let pmSet = false;
  let year = 0;
  let month = -1;
  let day = -1;
  let yday = -1;
  let hour = 0;
  let min = 0;
  let sec = 0;
  let nsec = 0;
  let utc = false;
  let zoneOffset: number | undefined;
  for (;;) {
    const ch = nextStdChunk(layout);
    value = skip(value, ch.prefix);
    if (ch.std === Std.None) {
      if (value.length !== 0) throw new BuiltinError("extra text");
      break;
    }
    layout = ch.suffix;
    let range = "";
    switch (ch.std) {
      case Std.Year: {
        if (value.length < 2) throw new BuiltinError(BAD);
        const p = value.slice(0, 2);
        value = value.slice(2);
        year = atoi(p);
        year += year >= 69 ? 1900 : 2000;
        break;
      }
      case Std.LongYear: {
        if (value.length < 4 || !isDigitAt(value, 0)) throw new BuiltinError(BAD);
        const p = value.slice(0, 4);
        value = value.slice(4);
        year = atoi(p);
        break;
      }
      case Std.Month:
        [month, value] = lookupName(SHORT_MONTHS, value);
        month++;
        break;
      case Std.LongMonth:
        [month, value] = lookupName(LONG_MONTHS, value);
        month++;
        break;
      case Std.NumMonth:
      case Std.ZeroMonth:
        [month, value] = getnum(value, ch.std === Std.ZeroMonth);
        if (month <= 0 || month > 12) range = "month";
        break;
      case Std.WeekDay:
        [, value] = lookupName(SHORT_DAYS, value);
        break;
      case Std.LongWeekDay:
        [, value] = lookupName(LONG_DAYS, value);
        break;
      case Std.Day:
      case Std.UnderDay:
      case Std.ZeroDay:
        if (ch.std === Std.UnderDay && value[0] === " ") value = value.slice(1);
        [day, value] = getnum(value, ch.std === Std.ZeroDay);
        break;
      case Std.UnderYearDay:
      case Std.ZeroYearDay:
        for (let i = 0; i < 2; i++) {
          if (ch.std === Std.UnderYearDay && value[0] === " ") value = value.slice(1);
        }
        [yday, value] = getnum3(value, ch.std === Std.ZeroYearDay);
        break;
      case Std.Hour:
        [hour, value] = getnum(value, false);
        if (hour < 0 || hour >= 24) range = "hour";
        break;
      case Std.Hour12:
      case Std.ZeroHour12:
        [hour, value] = getnum(value, ch.std === Std.ZeroHour12);
        if (hour < 0 || hour > 12) range = "hour";
        break;
      case Std.Minute:
      case Std.ZeroMinute:
        [min, value] = getnum(value, ch.std === Std.ZeroMinute);
        if (min < 0 || min >= 60) range = "minute";
        break;
      case Std.Second:
      case Std.ZeroSecond: {
        [sec, value] = getnum(value, ch.std === Std.ZeroSecond);
        if (sec < 0 || sec >= 60) {
          range = "second";
          break;
        }
        // a fractional second in the value but not in the layout
        if (value.length >= 2 && commaOrPeriod(value[0]) && isDigitAt(value, 1)) {
          const next = nextStdChunk(layout).std;
          if (next === Std.FracSecond0 || next === Std.FracSecond9) break;
          let n = 2;
          while (n < value.length && isDigitAt(value, n)) n++;
          nsec = parseNanoseconds(value, n);
          value = value.slice(n);
        }
        break;
      }
      case Std.PM:
      case Std.pm: {
        if (value.length < 2) throw new BuiltinError(BAD);
        const p = value.slice(0, 2);
        value = value.slice(2);
        const [am, pm] = ch.std === Std.PM ? ["AM", "PM"] : ["am", "pm"];
        if (p === pm) pmSet = true;
        else if (p === am) amSet = true;
        else throw new BuiltinError(BAD);
        break;
      }
      case Std.ISO8601TZ:
      case Std.ISO8601ShortTZ:
      case Std.ISO8601ColonTZ:
      case Std.ISO8601SecondsTZ:
      case Std.ISO8601ColonSecondsTZ:
      case Std.NumTZ:
      case Std.NumShortTZ:
      case Std.NumColonTZ:
      case Std.NumSecondsTz:
      case Std.NumColonSecondsTZ: {
        const iso =
          ch.std === Std.ISO8601TZ ||
          ch.std === Std.ISO8601ShortTZ ||
          ch.std === Std.ISO8601ColonTZ ||
          ch.std === Std.ISO8601SecondsTZ ||
          ch.std === Std.ISO8601ColonSecondsTZ;
        if (iso && value[0] === "Z") {
          value = value.slice(1);
          utc = true;
          break;
        }
        let sign: string;
        let hh: string;
        let mm: string;
        let ss: string;
        if (ch.std === Std.ISO8601ColonTZ || ch.std === Std.NumColonTZ) {
          if (value.length < 6 || value[3] !== ":") throw new BuiltinError(BAD);
          [sign, hh, mm, ss, value] = [
            value.slice(0, 1),
            value.slice(1, 3),
            value.slice(4, 6),
            "00",
            value.slice(6),
          ];
        } else if (ch.std === Std.NumShortTZ || ch.std === Std.ISO8601ShortTZ) {
          if (value.length < 3) throw new BuiltinError(BAD);
          [sign, hh, mm, ss, value] = [value.slice(0, 1), value.slice(1, 3), "00", "00", value.slice(3)];
        } else if (ch.std === Std.ISO8601ColonSecondsTZ || ch.std === Std.NumColonSecondsTZ) {
          if (value.length < 9 || value[3] !== ":" || value[6] !== ":") throw new BuiltinError(BAD);
          [sign, hh, mm, ss, value] = [
            value.slice(0, 1),
            value.slice(1, 3),
            value.slice(4, 6),
            value.slice(7, 9),
            value.slice(9),
          ];
        } else if (ch.std === Std.ISO8601SecondsTZ || ch.std === Std.NumSecondsTz) {
          if (value.length < 7) throw new BuiltinError(BAD);
          [sign, hh, mm, ss, value] = [
            value.slice(0, 1),
            value.slice(1, 3),
            value.slice(3, 5),
            value.slice(5, 7),
            value.slice(7),
          ];
        } else {
          if (value.length < 5) throw new BuiltinError(BAD);
          [sign, hh, mm, ss, value] = [
            value.slice(0, 1),
            value.slice(1, 3),
            value.slice(3, 5),
            "00",
            value.slice(5),
          ];
        }
        const [hr] = getnum(hh, true);
        const [mi] = getnum(mm, true);
        const [se] = getnum(ss, true);
        if (hr > 24) range = "time zone offset hour";
        if (mi > 60) range = "time zone offset minute";
        if (se > 60) range = "time zone offset second";
        let off = (hr * 60 + mi) * 60 + se;
        if (sign === "-") off = -off;
        else if (sign !== "+") throw new BuiltinError(BAD);
        zoneOffset = off;
        break;
      }
      case Std.TZ: {
        if (value.startsWith("UTC")) {
          utc = true;
          value = value.slice(3);
          break;
        }
        const n = parseTimeZone(value);
        if (n === 0) throw new BuiltinError(BAD);
        value = value.slice(n);
        break;
      }
      case Std.FracSecond0: {
        const ndigit = 1 + ch.digits;
        if (value.length < ndigit) throw new BuiltinError(BAD);
        nsec = parseNanoseconds(value, ndigit);
        value = value.slice(ndigit);
        break;
      }
      case Std.FracSecond9: {
        if (value.length < 2 || !commaOrPeriod(value[0]) || !isDigitAt(value, 1)) break;
        let i = 0;
        while (i + 1 < value.length && isDigitAt(value, i + 1)) i++;
        nsec = parseNanoseconds(value, 1 + i);
        value = value.slice(1 + i);
        break;
      }
      default:
        break;
    }
    if (range !== "") throw new BuiltinError(`${range} out of range`);
  }
  if (pmSet && hour < 12) hour += 12;
  else if (amSet && hour === 12) hour = 0;

  if (yday >= 0) {
    let d = 0;
    let m = 0;
    if (isLeap(year)) {
      if (yday === 31 + 29) {
        m = 2;
        d = 29;
      } else if (yday > 31 + 29) {
        yday--;
      }
    }
    if (yday < 1 || yday > 365) throw new BuiltinError("day-of-year out of range");
    if (m === 0) {
      m = Math.floor((yday - 1) / 31) + 1;
      if ((DAYS_BEFORE[m] ?? 0) < yday) m++;
      d = yday - (DAYS_BEFORE[m - 1] ?? 0);
    }
    if (month >= 0 && month !== m) throw new BuiltinError("day-of-year does not match month");
    month = m;
    if (day >= 0 && day !== d) throw new BuiltinError("day-of-year does not match day");
    day = d;
  } else {
    if (month < 0) month = 1;
    if (day < 0) day = 1;
  }
  if (day < 1 || day > daysIn(month, year)) throw new BuiltinError("day out of range");

  const t = goDate(year, month, day, hour, min, sec, nsec, UTC);
  if (utc) return t;
  if (zoneOffset !== undefined) return { sec: t.sec - zoneOffset, nsec: t.nsec, zone: UTC };
  // A zone abbreviation only shifts the instant when it names the host's zone; otherwise Go labels
  // the wall time with a fixed zone of that name and the instant stays as if UTC.
  return t;
}

// ---- durations (Go's time.ParseDuration) ----

const UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1000n,
  "\u00b5s": 1000n,
  "\u03bcs": 1000n,
  ms: 1_000_000n,
  s: NS,
  m: 60n * NS,
  h: 3600n * NS,
};

const TWO63 = 2n ** 63n;

export function parseDuration(input: string): bigint {
  let s = input;
  let d = 0n;
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0n;
  if (s === "") throw new BuiltinError("invalid duration");
  while (s !== "") {
    let f = 0n;
    let scale = 1;
    if (!(s[0] === "." || isDigitAt(s, 0))) throw new BuiltinError("invalid duration");
    const pl = s.length;
    let v: bigint;
    try {
      [v, s] = leadingInt(s);
    } catch {
      throw new BuiltinError("invalid duration");
    }
    const pre = pl !== s.length;
    let post = false;
    if (s !== "" && s[0] === ".") {
      s = s.slice(1);
      const pl2 = s.length;
      let i = 0;
      let overflow = false;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c < 48 || c > 57) break;
        if (overflow) continue;
        if (f > (TWO63 - 1n) / 10n) {
          overflow = true;
          continue;
        }
        const y = f * 10n + BigInt(c - 48);
        if (y > TWO63) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      s = s.slice(i);
      post = pl2 !== s.length;
    }
    if (!pre && !post) throw new BuiltinError("invalid duration");
    let i = 0;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === "." || isDigitAt(s, i)) break;
    }
    if (i === 0) throw new BuiltinError("missing unit in duration");
    const u = s.slice(0, i);
    s = s.slice(i);
    const unit = UNITS[u];
    if (unit === undefined) throw new BuiltinError("unknown unit in duration");
    if (v > TWO63 / unit) throw new BuiltinError("invalid duration");
    v *= unit;
    if (f > 0n) {
      // float64, as Go: nanosecond-accurate for fractions of hours
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > TWO63) throw new BuiltinError("invalid duration");
    }
    d += v;
    if (d > TWO63) throw new BuiltinError("invalid duration");
  }
  if (neg) return -d;
  if (d > TWO63 - 1n) throw new BuiltinError("invalid duration");
  return d;
}

/** Go's Time.AddDate in the time's zone. */
export function addDate(t: GoTime, years: number, months: number, days: number): GoTime {
  const c = civil(t);
  return goDate(c.year + years, c.month + months, c.day + days, c.hour, c.min, c.sec, t.nsec, t.zone);
}

/** OPA's time.diff: [years, months, days, hours, minutes, seconds] between two times. */
export function diff(a: GoTime, b0: GoTime): number[] {
  let t1 = a;
  let t2: GoTime = { ...b0, zone: a.zone };
  if (t1.sec > t2.sec || (t1.sec === t2.sec && t1.nsec > t2.nsec)) [t1, t2] = [t2, t1];
  const c1 = civil(t1);
  const c2 = civil(t2);
  let year = c2.year - c1.year;
  let month = c2.month - c1.month;
  let day = c2.day - c1.day;
  let hour = c2.hour - c1.hour;
  let minute = c2.min - c1.min;
  let second = c2.sec - c1.sec;
  if (second < 0) {
    second += 60;
    minute--;
  }
  if (minute < 0) {
    minute += 60;
    hour--;
  }
  if (hour < 0) {
    hour += 24;
    day--;
  }
  if (day < 0) {
    // days in c1's month: Go normalises day 32 of that month
    const spill = civilFromDays(daysFromCivil(c1.year, c1.month, 32)).day;
    day += 32 - spill;
    month--;
  }
  if (month < 0) {
    month += 12;
    year--;
  }
  return [year, month, day, hour, minute, second];
}
