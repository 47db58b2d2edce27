/**
 * KICK replies as nats-server 2.15.3 sends them (captured), and the start-up error texts naming the missing right.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { failureText, parseKickReply, TokenBucket } from "../../../src/live/kicker.js";

const enc = new TextEncoder();
const SERVER = `"server":{"name":"N1","host":"127.0.0.1","id":"N1","ver":"2.15.3","seq":13,"time":"2026-11-29T19:06:10Z"}`;

describe("kicker", () => {
  it("reads success, no such client, and anything else as not understood", () => {
    assert.equal(parseKickReply(enc.encode(`{${SERVER}}`)), "kicked");
    assert.equal(
      parseKickReply(
        enc.encode(`{${SERVER},"error":{"code":500,"description":"no such client or leafnode id"}}`),
      ),
      "gone",
    );
    assert.equal(
      parseKickReply(enc.encode(`{${SERVER},"error":{"code":400,"description":"bad request"}}`)),
      "bad_reply",
    );
    assert.equal(parseKickReply(enc.encode("not json")), "bad_reply");
    assert.equal(parseKickReply(enc.encode("{}")), "bad_reply");
    assert.equal(parseKickReply(enc.encode("null")), "bad_reply");
  });

  it("failure texts name the right that is missing", () => {
    assert.match(failureText("permission_denied"), /may not publish \$SYS\.REQ\.SERVER\.\*\.KICK/);
    assert.match(failureText("no_responders"), /system_account/);
  });

  it("the token bucket hands out its burst at once, in order", async () => {
    const b = new TokenBucket(1000, 5);
    const order: number[] = [];
    await Promise.all([0, 1, 2, 3, 4].map((i) => b.take().then(() => order.push(i))));
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.throws(() => new TokenBucket(0), RangeError);
  });
});
