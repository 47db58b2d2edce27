/**
 * In-process parts of the honest audit and log rotation: the outcome a client got from the decision and the
 * reply's fate, and the reopenable decision-log file. (The reply's fate on a real server: integration/audit.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deliveredOutcome } from "../../src/service.js";
import { ReopenableFile } from "../../src/logfile.js";
import type { Outcome } from "../../src/types.js";

const allow: Outcome = { kind: "allow", grant: { account: "APP" } };
const deny: Outcome = { kind: "deny", code: "auth_denied", reason: "bad_credentials" };
const abort: Outcome = { kind: "abort", code: "auth_aborted", reason: "locked" };

test("deliveredOutcome: allow/deny only when the reply was sent", () => {
  assert.equal(deliveredOutcome(allow, "sent"), allow);
  assert.equal(deliveredOutcome(deny, "sent"), deny);
  assert.equal(deliveredOutcome(abort, "none"), abort);
  assert.deepEqual(deliveredOutcome(allow, "late"), {
    kind: "abort",
    code: "reply_late",
    reason: "allow reply not confirmed before the request expired",
  });
  assert.deepEqual(deliveredOutcome(deny, "failed", new Error("max_payload size exceeded")), {
    kind: "abort",
    code: "reply_failed",
    reason: "deny reply failed: max_payload size exceeded",
  });
  assert.deepEqual(deliveredOutcome(allow, "failed"), {
    kind: "abort",
    code: "reply_failed",
    reason: "allow reply failed",
  });
});

test("ReopenableFile: after reopen() lines go to the file now at the path; mode 0600; bad path throws", async () => {
  const dir = mkdtempSync(join(tmpdir(), "logfile-"));
  try {
    const path = join(dir, "decisions.jsonl");
    const errors: unknown[] = [];
    const f = new ReopenableFile(path, (e) => errors.push(e));
    f.write("one\n");
    renameSync(path, `${path}.1`);
    f.write("two\n"); // still the old file until reopened
    f.reopen();
    f.write("three\n");
    await f.end();
    assert.equal(readFileSync(`${path}.1`, "utf8"), "one\ntwo\n");
    assert.equal(readFileSync(path, "utf8"), "three\n");
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(errors, []);
    assert.throws(() => new ReopenableFile(join(dir, "missing", "x.jsonl"), () => {}), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ReopenableFile: the lines of one turn reach the stream as one write, in order", async () => {
  const dir = mkdtempSync(join(tmpdir(), "logfile-"));
  try {
    const path = join(dir, "decisions.jsonl");
    const f = new ReopenableFile(path, () => {});
    const stream = (f as unknown as { stream: { write(s: string): boolean } }).stream;
    const writes: string[] = [];
    const write = stream.write.bind(stream);
    stream.write = (s: string) => (writes.push(s), write(s));
    for (let i = 0; i < 5; i++) f.write(`a${i}\n`);
    assert.deepEqual(writes, []); // nothing before the turn ends
    await new Promise((r) => setImmediate(r));
    f.write("b0\n");
    f.write("b1\n");
    await f.end();
    assert.deepEqual(writes, ["a0\na1\na2\na3\na4\n", "b0\nb1\n"]);
    assert.equal(readFileSync(path, "utf8"), "a0\na1\na2\na3\na4\nb0\nb1\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
