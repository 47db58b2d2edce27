# NKey authentication, the fourth method (auth_method "nkey"): a service holding an nkey seed signs the
# server's nonce; the callout service verifies that signature and only then puts the key into
# input.derived.nkey. Users are looked up in data.callout.nkeys by that PROVEN key.
#
# input.connect_opts.nkey is a claim: nats-server forwards it unchecked, so anyone who knows a public key can
# send it. It only selects this method (so an unproven key is refused with a clear reason); it never admits.
package nats.authz

import data.callout
import data.nats.lib.subject

_nkey_claimed if {
	k := input.connect_opts.nkey
	is_string(k)
	k != ""
}

_proven_nkey := k if {
	k := input.derived.nkey
	is_string(k)
	k != ""
}

_nkey_user := callout.nkeys[_proven_nkey]

_nkey_name_ok if _valid_local_name(_nkey_user.name)

# The first reason nkey authentication fails; undefined on success.
nkey_failure := "unproven_nkey" if {
	not _proven_nkey
} else := "unknown_nkey" if {
	not _nkey_user
} else := "invalid_username" if {
	not _nkey_name_ok
} else := "user_locked" if {
	_locked(_nkey_user)
}

principal := {"name": name, "method": "nkey", "roles": {r | some r in _nkey_user.roles}} if {
	auth_method == "nkey"
	not nkey_failure
	name := subject.token(_nkey_user.name)
}
