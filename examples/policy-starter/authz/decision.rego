# METADATA
# title: Starter policy (nats-opa-callout init --policy)
# description: |
#   Who may connect and what they may do. Entrypoint nats/authz/decision; contract: docs/policy-contract.md.
#   Deny by default: a login that matches no rule below gets {"allow": false, "reason": "no_matching_user"}.
#   Users and their salted password HMACs are in data.json (starter.users).
package nats.authz

import data.nats.lib.subject

default decision := {"allow": false, "reason": "no_matching_user"}

# A known user with the right password: their own subjects app.<user>.> and their private inbox
# _INBOX.<user>.> (clients set inboxPrefix "_INBOX.<user>"). subject.token is undefined for an unsafe name
# ("*", ">", "a.b", …), which leaves the decision at its default deny.
decision := {
	"allow": true,
	"account": data.starter.account,
	"pub": {"allow": [subject.under(["app", user])], "deny": ["$SYS.>"]},
	"sub": {"allow": [subject.under(["app", user]), subject.under(["_INBOX", user])], "deny": ["$SYS.>"]},
	"expires_in": 3600,
	"reason": "password",
} if {
	user := subject.token(input.connect_opts.user)
	stored := data.starter.users[user].password
	crypto.hmac.equal(crypto.hmac.sha256(input.connect_opts.pass, stored.salt), stored.hmac_sha256)
}
