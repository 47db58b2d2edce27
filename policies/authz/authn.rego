# Authentication
# Turns the client's CONNECT options into a principal {name, roles, method[, not_after]} or
# an authentication failure reason. Four methods, chosen by what the client sent:
#   password: connect_opts.user + pass, checked against a salted HMAC-SHA256 in data
#   token:    connect_opts.auth_token (opaque), looked up by its SHA-256 in data
#   jwt:      connect_opts.auth_token that is a compact JWS from the IdP (ES256, key by kid)
#   nkey:     only an nkey: the PROVEN key input.derived.nkey, looked up in data.callout.nkeys (nkey.rego)
# connect_opts.jwt and sig are ignored; connect_opts.nkey only selects the nkey method, it never admits.
package nats.authz

import data.callout
import data.nats.lib.subject

# ---- credentials as sent (empty strings count as absent) ----

_auth_token := t if {
	t := input.connect_opts.auth_token
	is_string(t)
	t != ""
}

_username := u if {
	u := input.connect_opts.user
	is_string(u)
	u != ""
}

_password := p if {
	p := input.connect_opts.pass
	is_string(p)
	p != ""
}

# A compact JWS whose header is a JSON object ("eyJ" is base64url for `{"`).
_jwt_pattern := `^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$`

_max_jwt_length := 8192

# auth_method is one of "none", "ambiguous", "jwt", "token", "password", "nkey".
auth_method := "ambiguous" if {
	_auth_token
	_username
} else := "jwt" if {
	count(_auth_token) <= _max_jwt_length
	regex.match(_jwt_pattern, _auth_token)
} else := "token" if {
	_auth_token
} else := "password" if {
	_username
} else := "nkey" if {
	_nkey_claimed
} else := "none"

_local_methods := {"password", "token"}

# ---- local users (password and token) ----

_local_name := _username if auth_method == "password"

# The token's SHA-256 is the lookup key: an unknown token has no name (-> bad_credentials).
_local_name := callout.tokens[crypto.sha256(_auth_token)] if auth_method == "token"

_local_user := callout.users[_local_name]

# Local names go verbatim into subjects and must not collide with IdP identities.
_valid_local_name(name) if {
	subject.token(name)
	not startswith(name, callout.idp.name_prefix)
}

# Positive helper rules for negation: `not f(r)` with an undefined rule r is *undefined*, not
# true (OPA evaluates r outside the negation), so negate a rule that wraps the call instead.
_local_name_ok if _valid_local_name(_local_name)

# Anything but a missing or `false` "locked" locks the user (fail closed on odd data).
_locked(user) if object.get(user, "locked", false) != false

_password_ok if {
	stored := _local_user.password
	crypto.hmac.equal(crypto.hmac.sha256(_password, stored.salt), stored.hmac_sha256)
}

_credentials_ok if {
	auth_method == "password"
	_password_ok
}

_credentials_ok if {
	auth_method == "token"
	_local_name # the token hash was found: that is the credential check
}

# ---- IdP bearer JWT ----

_jwt_header := json.unmarshal(base64url.decode(split(_auth_token, ".")[0]))

# Verification key chosen by the token's kid; the algorithm is pinned by data, never by the token.
_jwt_key := callout.idp.keys[_jwt_header.kid]

_jwt_claims := claims if {
	auth_method == "jwt"
	key := _jwt_key
	[valid, _, claims] := io.jwt.decode_verify(_auth_token, {
		"cert": key.public_key_pem,
		"alg": key.alg,
		"iss": callout.idp.issuer,
		"aud": callout.idp.audience,
		"time": time.now_ns(),
	})
	valid == true
	is_number(claims.exp) # decode_verify accepts tokens without exp; we do not
}

_jwt_name := concat("", [callout.idp.name_prefix, subject.token(_jwt_claims.sub)])

_jwt_name_ok if subject.token(_jwt_name)

# IdP groups map to roles only through data: the IdP cannot name a role directly.
_jwt_roles := {role |
	is_array(_jwt_claims.groups)
	some group in _jwt_claims.groups
	some role in callout.idp.group_roles[group]
}

# ---- result ----

# authn_failure is the first reason authentication fails, in this order; undefined on success.
authn_failure := "no_credentials" if {
	auth_method == "none"
} else := "ambiguous_credentials" if {
	auth_method == "ambiguous"
} else := "bad_credentials" if {
	auth_method == "token"
	not _local_name
} else := "invalid_username" if {
	auth_method in _local_methods
	not _local_name_ok
} else := "unknown_user" if {
	auth_method in _local_methods
	not _local_user
} else := "user_locked" if {
	auth_method in _local_methods
	_locked(_local_user)
} else := "bad_credentials" if {
	auth_method == "password"
	not _password_ok
} else := "invalid_jwt" if {
	auth_method == "jwt"
	not _jwt_claims
} else := "invalid_username" if {
	auth_method == "jwt"
	not _jwt_name_ok
} else := nkey_failure if {
	auth_method == "nkey"
}

# principal re-checks every condition positively: it never relies on authn_failure alone.
principal := {"name": _local_name, "method": auth_method, "roles": {r | some r in _local_user.roles}} if {
	auth_method in _local_methods
	not authn_failure
	_local_name_ok
	not _locked(_local_user)
	_credentials_ok
}

principal := {"name": name, "method": "jwt", "roles": _jwt_roles, "not_after": _jwt_claims.exp} if {
	auth_method == "jwt"
	not authn_failure
	name := subject.token(_jwt_name)
}
