/**
 * `nats-opa-callout bundle build|push`: compile a policy directory into a wasm bundle exactly as `serve` compiles
 * it (the same snapshot of .rego and data files, the pinned capabilities, the same content revision), optionally
 * sign it the way OPA signs bundles, and write it to a file or upload it to a NATS Object Store object that
 * services with `policy.source.object_store` watch.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { connect, credsAuthenticator, type NodeConnectionOptions } from "@nats-io/transport-node";
import { PolicyLoadError } from "../errors.js";
import { buildBundle } from "../policy/bundle.js";
import { uploadBundle } from "../policy/sources/object-store.js";
import { takeSnapshot } from "../policy/snapshot.js";
import { SIGNING_ALGORITHMS } from "../policy/signature.js";
import { EXIT, UsageError, asUsage, err, out } from "./common.js";

export const BUNDLE_HELP = `Usage: nats-opa-callout bundle build --policy-dir <dir> -o <file> [options]
       nats-opa-callout bundle push  --policy-dir <dir> --bucket <name> [options]

Compile a Rego policy directory into a wasm bundle the way "serve" compiles it (opa build -t wasm with the
pinned capabilities; revision = the service's content hash of the directory), optionally sign it as OPA signs
bundles (.signatures.json), and write it to a file (build) or upload it to a NATS Object Store object (push)
that services with policy.source.object_store pick up at once.

Options:
  --policy-dir <dir>        Rego policy directory (default: ./policies)
  --entrypoint <path>       entrypoint to build; repeat for more (default: nats/authz/decision)
  --capabilities <file>     capabilities file (default: the packaged policies/capabilities.json)
  --signing-key <file>      sign: PEM private key (RS*, PS*, ES*) or a file holding the HS* secret
  --signing-alg <alg>       ${SIGNING_ALGORITHMS.join(", ")} (default RS256)
  --opa <path>              opa binary (default: $OPA_BIN or "opa" on PATH)
  -o, --output <file>       build: where to write the bundle

Push options:
  --bucket <name>           Object Store bucket (created when missing)
  --name <object>           object name (default: bundle.tar.gz)
  --server <url>            NATS server (default: nats://127.0.0.1:4222; repeat for more)
  --user <name>             user with write rights on the bucket (password from --password-file or $NATS_PASSWORD)
  --password-file <file>    file holding the password
  --creds <file>            creds file instead of user/password

Examples:
  nats-opa-callout bundle build --policy-dir policies -o build/bundle.tar.gz --signing-key keys/bundle.pem
  nats-opa-callout bundle push --policy-dir policies --bucket policy --user policy-admin --password-file pw.txt

Exit codes: 0 done; 2 usage error; 3 the policy does not compile; 1 the upload failed.
`;

export async function bundleCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "-h" || sub === "--help" || sub === "help") {
    out(BUNDLE_HELP);
    return sub === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (sub !== "build" && sub !== "push")
    throw new UsageError(`unknown bundle command "${sub}" (build or push)`);
  let flags;
  try {
    flags = parseArgs({
      args: rest,
      options: {
        "policy-dir": { type: "string", default: "policies" },
        entrypoint: { type: "string", multiple: true },
        capabilities: { type: "string" },
        "signing-key": { type: "string" },
        "signing-alg": { type: "string", default: "RS256" },
        opa: { type: "string" },
        output: { type: "string", short: "o" },
        bucket: { type: "string" },
        name: { type: "string", default: "bundle.tar.gz" },
        server: { type: "string", multiple: true },
        user: { type: "string" },
        "password-file": { type: "string" },
        creds: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    asUsage(e);
  }
  if (flags.help) {
    out(BUNDLE_HELP);
    return EXIT.OK;
  }
  const alg = flags["signing-alg"];
  if (!(SIGNING_ALGORITHMS as readonly string[]).includes(alg))
    throw new UsageError(`--signing-alg: unknown algorithm ${alg}`);
  if (sub === "build" && flags.output === undefined) throw new UsageError("bundle build needs -o <file>");
  if (sub === "push" && flags.bucket === undefined) throw new UsageError("bundle push needs --bucket <name>");
  if (flags.creds !== undefined && flags.user !== undefined)
    throw new UsageError("use --creds or --user, not both");

  let signingKey: string | undefined;
  if (flags["signing-key"] !== undefined) {
    const file = resolve(flags["signing-key"]);
    // opa takes a PEM file path for asymmetric keys and the secret itself for HMAC.
    signingKey = alg.startsWith("HS") ? readText(file, "--signing-key").trim() : file;
  }

  let bytes: Buffer;
  let revision: string;
  try {
    const snapshot = await takeSnapshot(resolve(flags["policy-dir"]));
    revision = snapshot.revision;
    bytes = await buildBundle(snapshot, {
      entrypoints: flags.entrypoint ?? ["nats/authz/decision"],
      ...(flags.capabilities !== undefined ? { capabilities: resolve(flags.capabilities) } : {}),
      opaBin: flags.opa ?? process.env.OPA_BIN ?? "opa",
      ...(signingKey !== undefined ? { signing: { algorithm: alg, key: signingKey } } : {}),
    });
  } catch (e) {
    if (e instanceof PolicyLoadError) {
      err(`policy error: ${e.message}`);
      return EXIT.POLICY;
    }
    throw e;
  }
  const signed = signingKey !== undefined ? `, signed ${alg}` : "";
  if (sub === "build") {
    writeFileSync(resolve(flags.output!), bytes);
    out(`bundle ${flags.output}: revision ${revision}, ${bytes.length} bytes${signed}`);
    return EXIT.OK;
  }

  const opts: NodeConnectionOptions = {
    servers: flags.server ?? ["nats://127.0.0.1:4222"],
    name: "nats-opa-callout-bundle-push",
    maxReconnectAttempts: 0,
  };
  if (flags.creds !== undefined) {
    opts.authenticator = credsAuthenticator(
      new TextEncoder().encode(readText(resolve(flags.creds), "--creds")),
    );
  } else if (flags.user !== undefined) {
    const pw =
      flags["password-file"] !== undefined
        ? readText(resolve(flags["password-file"]), "--password-file").trim()
        : process.env.NATS_PASSWORD;
    if (pw === undefined) throw new UsageError("--user needs --password-file or $NATS_PASSWORD");
    opts.user = flags.user;
    opts.pass = pw;
  }
  let nc;
  try {
    nc = await connect(opts);
  } catch (e) {
    err(`cannot connect to NATS: ${(e as Error).message}`);
    return EXIT.RUNTIME;
  }
  try {
    const info = await uploadBundle(nc, { bucket: flags.bucket!, name: flags.name, bytes });
    out(
      `pushed ${flags.bucket}/${flags.name}: revision ${revision}, ${info.size} bytes${signed} (nuid ${info.nuid})`,
    );
    return EXIT.OK;
  } catch (e) {
    err(`upload to ${flags.bucket}/${flags.name} failed: ${(e as Error).message}`);
    return EXIT.RUNTIME;
  } finally {
    await nc.close();
  }
}

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`${flag}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
}
