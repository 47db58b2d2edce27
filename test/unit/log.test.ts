/**
 * The logger's own redaction (src/log.ts redactSecrets, which replaced pino's path redaction for speed): every
 * secret key at every level the old paths covered and deeper, in a child's bindings, in an error's own properties,
 * `client_info.user`; the caller's object is left untouched.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger, REDACTED, redactPaths, redactSecrets, SECRET_KEYS } from "../../src/log.js";

function capture() {
  const lines: string[] = [];
  const logger = createLogger({
    level: "trace",
    destination: { write: (s: string) => void lines.push(s) } as never,
  });
  return { logger, lines };
}

test("every path pino's redaction covered is still redacted", () => {
  const { logger, lines } = capture();
  for (const path of redactPaths()) {
    const keys = path.split(".").map((k, i) => (k === "*" ? `k${i}` : k));
    const obj: Record<string, unknown> = {};
    let cur = obj;
    for (const k of keys.slice(0, -1)) cur = (cur[k] = {}) as Record<string, unknown>;
    cur[keys.at(-1)!] = "s3cret-value";
    logger.info(obj, "m");
    const line = lines.at(-1)!;
    assert.ok(!line.includes("s3cret-value"), `${path}: ${line}`);
    assert.ok(line.includes(REDACTED), path);
  }
});

test("child bindings, arrays, errors and deep objects are redacted; the caller's object is not changed", () => {
  const { logger, lines } = capture();
  const err = Object.assign(new Error("boom"), { pass: "p-secret" });
  const obj = {
    err,
    list: [{ sig: "sig-secret" }],
    client_info: { user: "raw-token", name: "ok" },
    a: { b: { c: { d: { e: { f: { auth_token: "deep-secret" } } } } } },
  };
  const before = JSON.stringify(obj);
  logger
    .child({ jwt: "jwt-secret" })
    .child({ nested: { seed: "seed-secret" } })
    .error(obj, "m");
  const line = lines.at(-1)!;
  for (const s of ["p-secret", "sig-secret", "raw-token", "deep-secret", "jwt-secret", "seed-secret"]) {
    assert.ok(!line.includes(s), `${s} leaked: ${line}`);
  }
  const parsed = JSON.parse(line) as {
    err: { message: string; stack: string };
    client_info: { name: string };
  };
  assert.equal(parsed.err.message, "boom");
  assert.match(parsed.err.stack, /boom/);
  assert.equal(parsed.client_info.name, "ok");
  assert.equal(JSON.stringify(obj), before);
  assert.equal(err.pass, "p-secret");
});

test("an object without secrets is passed through as it is", () => {
  const o = { a: 1, b: { c: [1, 2, { d: "x" }] } };
  assert.equal(redactSecrets(o), o);
  assert.ok(SECRET_KEYS.length > 0);
});
