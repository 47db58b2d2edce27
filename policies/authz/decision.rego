# METADATA
# title: NATS auth-callout decision
# description: |
#   Entrypoint nats/authz/decision. Exactly one document per evaluation:
#     allow: {"allow": true, "account": ..., "pub": ..., "sub": ..., "expires_in": ..., ...}
#     deny:  {"allow": false, "reason": "<code>"}
#     abort: {"allow": false, "abort": true, "reason": "<code>"}   (no reply: the client times out)
#   See docs/policy-contract.md. Checks run in a fixed order and the first failure wins.
package nats.authz

import data.callout.settings

# Failures answered with silence instead of a signed error: the client waits out the server's
# auth timeout, which slows down password guessing from tarpitted sources and against locked users.
abort_reasons := {"source_tarpitted", "user_locked"}

default decision := {"allow": false, "reason": "no_decision"}

decision := _refusal(reason) if {
	reason := _failure
} else := grant

_failure := "unsupported_input_version" if {
	not _version_ok
} else := "source_tarpitted" if {
	_tarpitted
} else := authn_failure if {
	authn_failure
} else := authz_failure if {
	authz_failure
}

_version_ok if input.version == 1

_tarpitted if _source_in(settings.tarpit_cidrs)

_refusal(reason) := {"allow": false, "abort": true, "reason": reason} if {
	reason in abort_reasons
} else := {"allow": false, "reason": reason}
