package nats.authz_test

import data.nats.authz

# ---- method selection ----

test_auth_method_password if {
	authz.auth_method == "password" with input as login("alice", "alice-pw")
	authz.auth_method == "password" with input as login("alice", "")
}

test_auth_method_token if {
	authz.auth_method == "token" with input as bearer("tok_5Vf8kQz2LmN7xR3c")
	authz.auth_method == "token" with input as bearer("eyJ not a jwt")
}

test_auth_method_jwt if {
	authz.auth_method == "jwt" with input as bearer(token_valid_frank)
	authz.auth_method == "jwt" with input as bearer("eyJ..")
}

test_auth_method_oversized_jwt_is_a_token if {
	huge := concat("", ["eyJ", concat("", [x | some _ in numbers.range(1, 8200); x := "a"]), ".e30.c2ln"])
	authz.auth_method == "token" with input as bearer(huge)
	authz.decision == {"allow": false, "reason": "bad_credentials"} with input as bearer(huge)
}

test_auth_method_none_and_ambiguous if {
	authz.auth_method == "none" with input as conn({}, "127.0.0.1", "STANDARD")
	authz.auth_method == "none" with input as conn({"user": "", "auth_token": ""}, "127.0.0.1", "STANDARD")
	authz.auth_method == "none" with input as conn({"user": 42, "pass": "x"}, "127.0.0.1", "STANDARD")
	authz.auth_method == "ambiguous" with input as conn({"user": "bob", "auth_token": "t"}, "127.0.0.1", "STANDARD")
}

# ---- password users ----

test_password_principal if {
	authz.principal == {"name": "alice", "method": "password", "roles": {"orders-reader", "orders-writer", "prefs-kv"}} with input as login("alice", "alice-pw")
}

test_password_failures if {
	authz.authn_failure == "bad_credentials" with input as login("alice", "wrong")
	authz.authn_failure == "bad_credentials" with input as conn({"user": "alice"}, "127.0.0.1", "STANDARD")
	authz.authn_failure == "unknown_user" with input as login("zed", "zed-pw")
	authz.authn_failure == "invalid_username" with input as login("al.ice", "alice-pw")
	authz.authn_failure == "invalid_username" with input as login("idp-frank", "x")
	not authz.principal with input as login("alice", "wrong")
	not authz.principal with input as login("zed", "zed-pw")
}

test_password_is_salted_per_user if {
	# bob's password under alice's name fails even though both are demo passwords
	authz.authn_failure == "bad_credentials" with input as login("alice", "bob-pw")
}

test_locked_user if {
	authz.authn_failure == "user_locked" with input as login("eve", "eve-pw")
	authz.authn_failure == "user_locked" with input as login("eve", "nope")
	not authz.principal with input as login("eve", "eve-pw")
}

test_locked_non_boolean_fails_closed if {
	authz.authn_failure == "user_locked" with input as login("bob", "bob-pw") with data.callout.users.bob.locked as "yes"
	not authz.principal with input as login("bob", "bob-pw") with data.callout.users.bob.locked as "yes"
	authz.principal.name == "bob" with input as login("bob", "bob-pw") with data.callout.users.bob.locked as false
}

test_local_user_with_reserved_prefix_is_refused if {
	users := object.union(data.callout.users, {"idp-frank": data.callout.users.alice})
	authz.authn_failure == "invalid_username" with input as login("idp-frank", "alice-pw") with data.callout.users as users
	not authz.principal with input as login("idp-frank", "alice-pw") with data.callout.users as users
}

test_password_record_without_hash_fails_closed if {
	authz.authn_failure == "bad_credentials" with input as login("bob", "bob-pw") with data.callout.users.bob.password as {"salt": "x"}
}

# ---- token users ----

test_token_principal if {
	authz.principal == {"name": "orders-svc", "method": "token", "roles": {"orders-service"}} with input as bearer("tok_5Vf8kQz2LmN7xR3c")
}

test_token_failures if {
	authz.authn_failure == "bad_credentials" with input as bearer("nope")
	not authz.principal with input as bearer("nope")
}

test_token_data_errors_fail_closed if {
	h := crypto.sha256("tok_5Vf8kQz2LmN7xR3c")
	authz.authn_failure == "unknown_user" with input as bearer("tok_5Vf8kQz2LmN7xR3c") with data.callout.tokens as {h: "ghost"}
	authz.authn_failure == "invalid_username" with input as bearer("tok_5Vf8kQz2LmN7xR3c") with data.callout.tokens as {h: "a.b"}
	authz.authn_failure == "user_locked" with input as bearer("tok_5Vf8kQz2LmN7xR3c") with data.callout.users["orders-svc"].locked as true
}

# ---- IdP bearer JWT ----

test_jwt_principal if {
	p := authz.principal with input as bearer(token_valid_frank) with time.now_ns as wed_noon_berlin
	p == {"name": "idp-frank", "method": "jwt", "roles": {"orders-reader", "orders-writer"}, "not_after": 4102444800}
}

test_jwt_unmapped_groups_are_ignored if {
	p := authz.principal with input as bearer(token_short_grace) with time.now_ns as wed_noon_berlin
	p.roles == {"orders-reader"}
}

test_jwt_expiry_uses_the_frozen_clock if {
	authz.authn_failure == "invalid_jwt" with input as bearer(token_expired_frank) with time.now_ns as wed_noon_berlin

	# the same token, one second before its exp (2025-06-04T09:00:00Z)
	not authz.authn_failure with input as bearer(token_expired_frank) with time.now_ns as (1749027600 - 1) * one_second
}

test_jwt_verification_key_and_alg_come_from_data if {
	# a data change to another algorithm invalidates the ES256 token
	authz.authn_failure == "invalid_jwt" with input as bearer(token_valid_frank) with time.now_ns as wed_noon_berlin with data.callout.idp.keys["demo-es256-1"].alg as "RS256"

	# the key is removed (rotated out)
	authz.authn_failure == "invalid_jwt" with input as bearer(token_valid_frank) with time.now_ns as wed_noon_berlin with data.callout.idp.keys as {}

	# another issuer configured
	authz.authn_failure == "invalid_jwt" with input as bearer(token_valid_frank) with time.now_ns as wed_noon_berlin with data.callout.idp.issuer as "https://other.example.test"
}

test_jwt_group_mapping_comes_from_data if {
	p := authz.principal with input as bearer(token_valid_frank) with time.now_ns as wed_noon_berlin with data.callout.idp.group_roles as {"orders-team": ["orders-reader"]}
	p.roles == {"orders-reader"}
}
