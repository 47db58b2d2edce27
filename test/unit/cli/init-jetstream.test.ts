/**
 * `init --jetstream` flag parsing and generated fragments, in-process (the real-server proof is
 * test/integration/init-jetstream.test.ts): sizes and counts, refusal of stray knobs, the config-mode account
 * body (limits, the admin's bcrypt hash only, its narrow permissions) and the account-JWT limits.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  JETSTREAM_ADMIN_PERMISSIONS,
  accountJwtJetStreamLimits,
  configAccountBody,
  jetStreamOptions,
  parseSize,
  serverJetStreamBlock,
} from "../../../src/cli/init-jetstream.js";
import { UsageError } from "../../../src/cli/common.js";

test("parseSize: bytes, K/M/G/T (1024-based, optional B), -1; anything else is a usage error naming the flag", () => {
  assert.equal(parseSize("x", undefined, -1), -1);
  assert.equal(parseSize("x", "-1", 0), -1);
  assert.equal(parseSize("x", "1048576", 0), 1048576);
  assert.equal(parseSize("x", "256M", 0), 256 * 1024 ** 2);
  assert.equal(parseSize("x", "2gb", 0), 2 * 1024 ** 3);
  assert.equal(parseSize("x", "1T", 0), 1024 ** 4);
  for (const bad of ["0", "-2", "1.5G", "1Q", "", "G", "1 G B", "99999999999999999999"]) {
    assert.throws(
      () => parseSize("js-max-mem", bad, 0),
      (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.match(e.message, /--js-max-mem/);
        return true;
      },
      bad,
    );
  }
});

test("jetStreamOptions: undefined without --jetstream, and a knob without --jetstream is refused", () => {
  assert.equal(jetStreamOptions({}), undefined);
  assert.throws(
    () => jetStreamOptions({ "js-account-max-streams": "3" }),
    /--js-account-max-streams needs --jetstream/,
  );
  assert.deepEqual(jetStreamOptions({ jetstream: true }), {
    accountMaxMemory: -1,
    accountMaxFile: -1,
    accountMaxStreams: -1,
    accountMaxConsumers: -1,
  });
  assert.deepEqual(
    jetStreamOptions({
      jetstream: true,
      "js-max-file": "10G",
      "js-account-max-consumers": "100",
      "js-store-dir": "/d",
    }),
    {
      accountMaxMemory: -1,
      accountMaxFile: -1,
      accountMaxStreams: -1,
      accountMaxConsumers: 100,
      storeDir: "/d",
      maxFile: 10 * 1024 ** 3,
    },
  );
  assert.throws(
    () => jetStreamOptions({ jetstream: true, "js-account-max-streams": "0" }),
    /positive integer/,
  );
});

test("generated fragments: store dir and caps, account limits, the admin's hash and narrow rights", () => {
  const o = {
    accountMaxMemory: 1024,
    accountMaxFile: 2048,
    accountMaxStreams: 3,
    accountMaxConsumers: 4,
    maxFile: 4096,
  };
  const server = serverJetStreamBlock(o, "/var/js");
  assert.match(server, /store_dir: "\/var\/js"/);
  assert.match(server, /^\s*max_file_store: 4096$/m);
  assert.match(server, /^\s*# max_memory_store:/m, "an unset cap is documented, commented out");
  const body = configAccountBody(o, "APP", "$2a$04$hash");
  for (const re of [
    /max_mem: 1024/,
    /max_file: 2048/,
    /max_streams: 3/,
    /max_consumers: 4/,
    /user: "js-admin-APP"/,
  ]) {
    assert.match(body, re);
  }
  assert.match(body, /password: "\$2a\$04\$hash"/);
  assert.match(
    body,
    /publish: \{ allow: \["\$JS\.API\.>", "\$KV\.>", "\$O\.>", "\$JS\.ACK\.>", "\$JS\.FC\.>"\] \}/,
  );
  assert.match(body, /subscribe: \{ allow: \["_INBOX\.>"\] \}/);
  assert.ok(!JETSTREAM_ADMIN_PERMISSIONS.pub.includes(">"));
  assert.deepEqual(accountJwtJetStreamLimits(o), {
    mem_storage: 1024,
    disk_storage: 2048,
    streams: 3,
    consumer: 4,
  });
});
