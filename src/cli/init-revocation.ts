/**
 * `init --revocation` (config mode): a least-privilege system-account user for live revocation. It may publish only
 * `$SYS.REQ.SERVER.*.KICK` and subscribe only to `_INBOX.>` (the KICK replies); it bypasses the callout
 * (auth_users), and its password is stored bcrypt-hashed in nats-server.conf and in clear only in the 0600
 * service.yaml. Operator mode is refused: there the user is a SYS-account user JWT (see docs/operations.md).
 */
import { randomBytes } from "node:crypto";
import type { ServiceConfig } from "../config.js";
import { KICK_PERMISSION } from "../live/kicker.js";

export const REVOCATION_USER = "revocation";

export interface InitRevocation {
  /** The password (for the service config and --print-secrets). */
  password: string;
  /** Replaces `SYS {}` in the accounts block of nats-server.conf. */
  sysAccount: string;
  /** The `revocation` section of service.yaml. */
  serviceSection: NonNullable<ServiceConfig["revocation"]>;
}

export function initRevocation(hash: (password: string) => string): InitRevocation {
  const password = randomBytes(24).toString("base64url");
  const sysAccount = `  # Live revocation: may only disconnect clients (KICK) and read the replies.
  SYS {
    users: [
      {
        user: ${REVOCATION_USER}
        password: ${JSON.stringify(hash(password))}
        permissions: {
          publish: { allow: [${JSON.stringify(KICK_PERMISSION)}] }
          subscribe: { allow: ["_INBOX.>"] }
        }
      }
    ]
  }`;
  return {
    password,
    sysAccount,
    serviceSection: { enabled: true, nats: { user: REVOCATION_USER, password } },
  };
}
