/**
 * Signed bundles: what the real `opa build --bundle --signing-key` produces verifies (RS256, ES256, HS256, with
 * scope and excluded files), and every tampered copy is refused with a message naming what is wrong — a changed
 * file, a removed signature, another key, algorithm confusion, a file added or removed, a scope mismatch.
 * The canonical hash is exercised through a data.json that Go and JavaScript print differently.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { PolicyLoadError } from "../../../src/errors.js";
import {
  canonicalJson,
  goGlobMatch,
  verifyBundleSignature,
  type VerificationConfig,
} from "../../../src/policy/signature.js";
import { readTarGz } from "../../../src/policy/tar.js";
import {
  cleanupBundleHelpers,
  opaBundle,
  pemPair,
  OPA_BIN,
  skipWithoutOpa,
  tarGz,
} from "../../support/index.js";

after(cleanupBundleHelpers);

/** Data that Go's and JavaScript's JSON printers disagree on (number literals, U+2028, HTML characters). */
const TRICKY_DATA = `{
  "z": 1.0, "a": [1e3, -0.50, 12345678901234567890],
  "html": "<a href=\\"x\\">&amp;</a>", "sep": "line\\u2028para\\u2029end",
  "ctl": "tab\\tbell\\u0007", "emoji": "\\ud83d\\ude00", "nested": {"b": true, "a": null, "é": "ü"}
}`;

/** The basic fixture with tricky data, built and signed by the real opa; its files as our reader sees them. */
function opaSigned(opts: { alg: string; signingKey: string; claims?: object }): {
  files: Map<string, Buffer>;
} {
  const signing = { alg: opts.alg, key: opts.signingKey, ...(opts.claims ? { claims: opts.claims } : {}) };
  return { files: readTarGz(opaBundle({ data: TRICKY_DATA, signing })) };
}

const refused = (pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof PolicyLoadError, `expected PolicyLoadError, got ${String(err)}`);
  assert.match(err.message, pattern);
  return true;
};

describe("signed bundles from the real opa", { skip: skipWithoutOpa }, () => {
  const rsa = OPA_BIN ? pemPair("rsa") : { privPath: "", pub: "" };
  const rsaOther = OPA_BIN ? pemPair("rsa") : { privPath: "", pub: "" };
  const ec = OPA_BIN ? pemPair("ec") : { privPath: "", pub: "" };
  const rsCfg: VerificationConfig = { keys: { default: { algorithm: "RS256", key: rsa.pub } } };
  const rs = OPA_BIN ? opaSigned({ alg: "RS256", signingKey: rsa.privPath }) : { files: new Map() };

  test("RS256, ES256 and HS256 signatures verify, with the canonical hash of tricky data.json", async () => {
    const v = await verifyBundleSignature(rs.files, rsCfg);
    assert.equal(v.keyId, "default");
    assert.ok(v.files.has("data.json") && v.files.has("policy.wasm") && v.files.has(".manifest"));

    const es = opaSigned({ alg: "ES256", signingKey: ec.privPath });
    await verifyBundleSignature(es.files, { keys: { default: { algorithm: "ES256", key: ec.pub } } });

    const hs = opaSigned({ alg: "HS256", signingKey: "a shared secret of some length" });
    await verifyBundleSignature(hs.files, {
      keys: { default: { algorithm: "HS256", key: "a shared secret of some length" } },
    });
    await assert.rejects(
      verifyBundleSignature(hs.files, { keys: { default: { algorithm: "HS256", key: "another secret" } } }),
      refused(/does not verify/),
    );
  });

  test("a changed file is refused by name; the same data re-encoded still verifies (as in OPA)", async () => {
    const changed = new Map(rs.files);
    changed.set("/data.json", Buffer.from(TRICKY_DATA.replace('"b": true', '"b": false')));
    await assert.rejects(verifyBundleSignature(changed, rsCfg), refused(/data\.json: digest mismatch/));

    const wasm = Buffer.from(rs.files.get("/policy.wasm")!);
    wasm[wasm.length - 1]! ^= 0x01;
    const wasmChanged = new Map(rs.files).set("/policy.wasm", wasm);
    await assert.rejects(verifyBundleSignature(wasmChanged, rsCfg), refused(/policy\.wasm: digest mismatch/));

    const reencoded = new Map(rs.files);
    reencoded.set("/data.json", Buffer.from(JSON.stringify(JSON.parse(TRICKY_DATA.replace("1.0", "1.0")))));
    // JSON.parse/stringify turns 1.0 into 1 and 1e3 into 1000: a different literal is a different document to OPA.
    await assert.rejects(verifyBundleSignature(reencoded, rsCfg), refused(/data\.json: digest mismatch/));
    const reordered = new Map(rs.files);
    reordered.set(
      "/data.json",
      Buffer.from(TRICKY_DATA.replace(/\n\s*/g, " ").replace('"z": 1.0, ', "") + ""),
    );
    await assert.rejects(verifyBundleSignature(reordered, rsCfg), refused(/digest mismatch/));
    const whitespace = new Map(rs.files);
    whitespace.set("/data.json", Buffer.from(TRICKY_DATA.replace(/\n\s*/g, "\n\t\t")));
    await verifyBundleSignature(whitespace, rsCfg);
  });

  test("a removed signature, another key, and algorithm confusion are refused", async () => {
    const unsigned = new Map(rs.files);
    unsigned.delete("/.signatures.json");
    await assert.rejects(verifyBundleSignature(unsigned, rsCfg), refused(/no \.signatures\.json/));
    await assert.rejects(
      verifyBundleSignature(rs.files, { keys: { default: { algorithm: "RS256", key: rsaOther.pub } } }),
      refused(/does not verify/),
    );
    await assert.rejects(
      verifyBundleSignature(rs.files, { keys: { other: { algorithm: "RS256", key: rsa.pub } } }),
      refused(/key "default" is not configured/),
    );
    // HS256 signed with the RSA *public* key as the secret must not pass an RS256 configuration.
    const confused = opaSigned({ alg: "HS256", signingKey: rsa.pub });
    await assert.rejects(verifyBundleSignature(confused.files, rsCfg), refused(/another algorithm/));
    const twoSigs = new Map(rs.files);
    const one = JSON.parse(rs.files.get("/.signatures.json")!.toString()) as { signatures: string[] };
    twoSigs.set(
      "/.signatures.json",
      Buffer.from(JSON.stringify({ signatures: [...one.signatures, ...one.signatures] })),
    );
    await assert.rejects(verifyBundleSignature(twoSigs, rsCfg), refused(/multiple JWTs/));
  });

  test("a file added or removed after signing is refused; excluded files are not checked", async () => {
    const added = new Map(rs.files).set("/extra.rego", Buffer.from("package extra\n"));
    await assert.rejects(verifyBundleSignature(added, rsCfg), refused(/extra\.rego not included/));
    await verifyBundleSignature(added, { ...rsCfg, excludeFiles: ["extra.*"] });
    const removed = new Map(rs.files);
    const rego = [...removed.keys()].find((k) => k.endsWith(".rego"))!;
    removed.delete(rego);
    await assert.rejects(
      verifyBundleSignature(removed, rsCfg),
      refused(/specified in bundle signatures but not found/),
    );
  });

  test("scope: the signed scope must equal the configured one", async () => {
    const scoped = opaSigned({
      alg: "RS256",
      signingKey: rsa.privPath,
      claims: { scope: "prod", keyid: "default" },
    });
    await verifyBundleSignature(scoped.files, { ...rsCfg, scope: "prod" });
    await verifyBundleSignature(scoped.files, {
      keys: { default: { algorithm: "RS256", key: rsa.pub, scope: "prod" } },
    });
    await assert.rejects(verifyBundleSignature(scoped.files, rsCfg), refused(/scope mismatch/));
    await assert.rejects(
      verifyBundleSignature(rs.files, { ...rsCfg, scope: "prod" }),
      refused(/scope mismatch/),
    );
  });
});

describe("canonical JSON and globs", () => {
  test("keys sorted bytewise, literals kept, Go string escapes", () => {
    assert.equal(
      canonicalJson('{"b":1.0,"a":[1e3, -0.50],"é":"x","Z":null}'),
      '{"Z":null,"a":[1e3,-0.50],"b":1.0,"é":"x"}',
    );
    assert.equal(canonicalJson('"<&>\\u2028"'), '"<&>\\u2028"');
    assert.equal(canonicalJson('{"a":1,"a":2}'), '{"a":2}');
    assert.throws(() => canonicalJson('{"a":1} x'), SyntaxError);
    assert.throws(() => canonicalJson('{"a":}'), SyntaxError);
  });

  test("Go filepath.Match semantics", () => {
    assert.equal(goGlobMatch("*.json", "data.json"), true);
    assert.equal(goGlobMatch("*.json", "a/data.json"), false);
    assert.equal(goGlobMatch("a/?.rego", "a/b.rego"), true);
    assert.equal(goGlobMatch("[^x]*", "data.json"), true);
    assert.equal(goGlobMatch("[^d]*", "data.json"), false);
    assert.equal(goGlobMatch("[", "["), false);
  });

  test("a hand-made bundle without signatures is refused", async () => {
    const files = readTarGz(tarGz({ "/data.json": "{}" }));
    await assert.rejects(verifyBundleSignature(files, { keys: {} }), refused(/no \.signatures\.json/));
  });
});
