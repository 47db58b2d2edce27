/**
 * Policy directories for tests and benchmarks: the trivial allow policy, and the example policy
 * (policies/, tests excluded) with its data document grown to N generated password users.
 */
import { createHmac, randomBytes } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./paths.js";

export const TRIVIAL_POLICY = `package nats.authz

import rego.v1

# Trivial allow: every client lands in APP with explicit permissions.
decision := {
	"allow": true,
	"account": "APP",
	"pub": {"allow": ["app.>", "_INBOX.>"]},
	"sub": {"allow": ["app.>", "_INBOX.>"]},
}
`;

/** `dir` (created) holding the trivial policy only. */
export function trivialPolicyDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "policy.rego"), TRIVIAL_POLICY);
  return dir;
}

/** Generated user i: name and password (what a client would send). */
export function benchUser(i: number): { user: string; pass: string } {
  return { user: `bench-u${i}`, pass: `bench-pw-${i}` };
}

/**
 * Copy the example policy (policies/*.rego and lib/, no tests, no cases) to `dir` and write a
 * data.json whose `callout.users` holds the example users plus `users` generated ones
 * (salted HMAC-SHA256 passwords, role orders-reader). Returns the data file size in bytes.
 */
export function examplePolicyDir(dir: string, users: number): { dir: string; dataBytes: number } {
  mkdirSync(dir, { recursive: true });
  cpSync(join(REPO, "policies"), dir, {
    recursive: true,
    filter: (src) => {
      const rel = src.slice(join(REPO, "policies").length);
      if (rel === "") return true;
      if (/\/(cases|testdata)(\/|$)/.test(rel)) return false;
      if (rel.endsWith("_test.rego")) return false;
      return !/\.(json|yaml|yml)$/.test(rel) || rel === "/data.json";
    },
  });
  const data = JSON.parse(readFileSync(join(REPO, "policies", "data.json"), "utf8")) as {
    callout: { users: Record<string, unknown> };
  };
  for (let i = 0; i < users; i++) {
    const { user, pass } = benchUser(i);
    const salt = randomBytes(16).toString("hex");
    data.callout.users[user] = {
      roles: ["orders-reader"],
      password: { salt, hmac_sha256: createHmac("sha256", salt).update(pass).digest("hex") },
    };
  }
  const body = JSON.stringify(data);
  writeFileSync(join(dir, "data.json"), body);
  return { dir, dataBytes: Buffer.byteLength(body) };
}
