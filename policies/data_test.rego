# Integrity checks for policies/data.json: run with every data change (`make policy-test`).
package nats.data_test

import data.callout
import data.nats.lib.subject

# The accounts the policy can place users in. The service's account allow-list must contain
# exactly these (config mode: accounts APP and OPS must exist in nats-server's config).
expected_accounts := {"APP", "OPS"}

# Demo credentials for `make run` and the integration tests (documented in docs/policy-contract.md).
# Only here and in docs: data.json holds salted HMACs and SHA-256 hashes, never these strings.
demo_passwords := {
	"alice": "alice-pw",
	"bob": "bob-pw",
	"carol": "carol-pw",
	"dave": "dave-pw",
	"admin": "admin-pw",
	"eve": "eve-pw",
}

demo_tokens := {"orders-svc": "tok_5Vf8kQz2LmN7xR3c"}

_hex64(s) if regex.match(`^[0-9a-f]{64}$`, s)

weekdays := {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

test_demo_passwords_match_the_stored_hashes if {
	every name, pw in demo_passwords {
		stored := callout.users[name].password
		crypto.hmac.equal(crypto.hmac.sha256(pw, stored.salt), stored.hmac_sha256)
	}
}

test_demo_tokens_match_the_stored_hashes if {
	every name, token in demo_tokens {
		callout.tokens[crypto.sha256(token)] == name
	}
}

test_no_plaintext_secrets_in_data if {
	every name, user in callout.users {
		every key, _ in user {
			key in {"description", "roles", "password", "locked"}
		}
		every pw in [p | p := user.password] {
			object.keys(pw) == {"salt", "hmac_sha256"}
			_hex64(pw.hmac_sha256)
			count(pw.salt) >= 16
			not pw.hmac_sha256 == demo_passwords[name]
		}
	}
	every hash, _ in callout.tokens {
		_hex64(hash)
	}
	every key in callout.idp.keys {
		not contains(key.public_key_pem, "PRIVATE")
		startswith(key.public_key_pem, "-----BEGIN PUBLIC KEY-----")
	}
}

test_every_salt_is_unique if {
	salts := [u.password.salt | some u in callout.users; u.password]
	count(salts) == count({s | some s in salts})
}

test_user_names_are_safe_tokens if {
	every name, user in callout.users {
		subject.token(name)
		not startswith(name, callout.idp.name_prefix)
		is_boolean(object.get(user, "locked", false))
	}
}

test_every_user_can_authenticate_somehow if {
	token_users := {name | some name in callout.tokens}
	every name, user in callout.users {
		_can_authenticate(name, user, token_users)
	}
}

_can_authenticate(_, user, _) if user.password

_can_authenticate(name, _, token_users) if name in token_users

test_tokens_point_at_users if {
	every _, name in callout.tokens {
		callout.users[name]
	}
}

test_roles_referenced_exist if {
	every user in callout.users {
		every role in user.roles {
			callout.roles[role]
		}
	}
	every _, roles in callout.idp.group_roles {
		every role in roles {
			callout.roles[role]
		}
	}
}

test_idp_never_maps_to_privileged_roles if {
	every _, roles in callout.idp.group_roles {
		every role in roles {
			not callout.roles[role].source_cidrs
			object.get(callout.roles[role], "account", callout.settings.default_account) == callout.settings.default_account
		}
	}
}

test_role_templates_render_to_valid_subjects if {
	lists := [l |
		some src in array.concat([callout.settings.base], [r | some r in callout.roles])
		some kind in ["pub", "sub"]
		some list in ["allow", "deny"]
		l := object.get(object.get(src, kind, {}), list, [])
	]
	every l in lists {
		every t in l {
			subject.valid(subject.render(t, {"user": "some-user"}))
		}
	}
}

test_role_fields_are_known_and_typed if {
	known := {"description", "pub", "sub", "account", "connection_types", "source_cidrs", "window", "resp", "limits", "expires_in", "jetstream"}
	every _, role in callout.roles {
		every key, _ in role {
			key in known
		}
		every t in object.get(role, "connection_types", []) {
			t in {"STANDARD", "WEBSOCKET", "MQTT", "MQTT_WS", "LEAFNODE", "LEAFNODE_WS"}
		}
		every cidr in object.get(role, "source_cidrs", ["0.0.0.0/32"]) {
			regex.match(`^[0-9a-fA-F.:]+/[0-9]{1,3}$`, cidr)
		}
		every n in [e | e := role.expires_in] {
			is_number(n)
			n >= 1
		}
		every r in [x | x := role.resp] {
			object.keys(r) == {"max", "ttl_ms"}
			r.ttl_ms > 0
		}
		every name, v in object.get(role, "limits", {}) {
			name in {"subs", "data", "payload"}
			v >= -1
		}
	}
}

test_accounts_used_are_the_expected_ones if {
	used := {object.get(r, "account", callout.settings.default_account) | some r in callout.roles}
	used == expected_accounts
}

test_windows_are_well_formed if {
	every _, w in callout.windows {
		every d in w.days {
			d in weekdays
		}
		regex.match(`^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$`, w.start)
		regex.match(`^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$`, w.end)
		w.start < w.end # same-day windows only
	}
	every r in callout.roles {
		every name in [n | n := r.window] {
			callout.windows[name]
		}
	}
}

test_settings_are_sane if {
	s := callout.settings
	is_number(s.expires_in)
	s.expires_in >= 1
	s.expires_in <= 86400
	time.weekday([0, s.time_zone]) # a zone the host knows
	count(s.default_connection_types) > 0
}
