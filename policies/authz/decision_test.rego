package nats.authz_test

import data.nats.authz

test_allow_document if {
	d := authz.decision with input as login("bob", "bob-pw")
	d == {
		"allow": true,
		"account": "APP",
		"name": "bob",
		"pub": {
			"allow": [
				"$JS.API.CONSUMER.CREATE.KV_prefs.*.$KV.prefs.bob.>",
				"$JS.API.CONSUMER.INFO.KV_prefs.*",
				"$JS.API.DIRECT.GET.KV_prefs.$KV.prefs.bob.>",
				"$JS.FC.KV_prefs.>",
				"$KV.prefs.bob.>",
				"orders.query.>",
			],
			"deny": ["$SYS.>"],
		},
		"sub": {"allow": ["_INBOX.bob.>", "orders.events.>"], "deny": ["$SYS.>"]},
		"expires_in": 3600,
		"allowed_connection_types": ["STANDARD"],
		"reason": "password",
	}
}

test_deny_document if {
	authz.decision == {"allow": false, "reason": "bad_credentials"} with input as login("bob", "alice-pw")
}

test_abort_documents if {
	authz.decision == {"allow": false, "abort": true, "reason": "user_locked"} with input as login("eve", "eve-pw")
	authz.decision == {"allow": false, "abort": true, "reason": "source_tarpitted"} with input as login_from("bob", "bob-pw", "203.0.113.1")
}

test_tarpit_list_comes_from_data if {
	authz.decision.allow with input as login_from("bob", "bob-pw", "203.0.113.1") with data.callout.settings.tarpit_cidrs as []
	authz.decision.abort with input as login_from("bob", "bob-pw", "192.0.2.1") with data.callout.settings.tarpit_cidrs as ["192.0.2.0/24"]
}

test_input_version_is_checked_first if {
	authz.decision == {"allow": false, "reason": "unsupported_input_version"} with input as object.union(login("bob", "bob-pw"), {"version": "1"})
	authz.decision == {"allow": false, "reason": "unsupported_input_version"} with input as object.remove(login("bob", "bob-pw"), ["version"])
	authz.decision == {"allow": false, "reason": "unsupported_input_version"} with input as {}
}

test_check_order if {
	# tarpit before credentials
	authz.decision.reason == "source_tarpitted" with input as login_from("bob", "wrong", "203.0.113.1")

	# credentials before roles and sources
	authz.decision.reason == "bad_credentials" with input as login_from("admin", "wrong", "198.51.100.1")

	# authentication succeeded, then roles
	authz.decision.reason == "source_not_allowed" with input as login_from("admin", "admin-pw", "198.51.100.1")
}

test_every_failure_maps_to_one_document if {
	every reason in ["bad_credentials", "no_roles", "policy_data_error"] {
		authz._refusal(reason) == {"allow": false, "reason": reason}
	}
	every reason in authz.abort_reasons {
		authz._refusal(reason) == {"allow": false, "abort": true, "reason": reason}
	}
}
