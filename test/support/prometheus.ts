/**
 * Prometheus text exposition (format 0.0.4) parsed strictly for tests: every line must be a HELP, TYPE or
 * sample line, no family may be declared twice, no sample may repeat. Keys are label-order independent.
 */
import assert from "node:assert/strict";

export interface Scrape {
  /** `name{a="x",b="y"}` (labels sorted by name) → value. */
  samples: Map<string, number>;
  /** Metric family name → type. */
  types: Map<string, string>;
}

/** Label set in a canonical order, so a key does not depend on the order the exporter wrote the labels. */
export function key(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return parts.length ? `${name}{${parts.join(",")}}` : name;
}

/** Parses exposition text, checking every line's syntax and that no family is declared twice. */
export function parse(text: string): Scrape {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ")) continue;
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      assert.ok(name && type && ["counter", "gauge", "histogram", "summary"].includes(type), line);
      assert.ok(!types.has(name), `duplicate TYPE for ${name}`);
      types.set(name, type);
      continue;
    }
    const m =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)$/.exec(
        line,
      );
    assert.ok(m, `bad sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    const raw = m[3]!;
    const v = /^[+]?inf$/i.test(raw) ? Infinity : /^-inf$/i.test(raw) ? -Infinity : Number(raw);
    assert.ok(!Number.isNaN(v) || /^nan$/i.test(raw), line);
    const k = key(m[1]!, labels);
    assert.ok(!samples.has(k), `duplicate sample ${k}`);
    samples.set(k, v);
  }
  return { samples, types };
}
