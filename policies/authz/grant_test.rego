package nats.authz_test

import data.nats.authz

# ---- role conditions ----

test_roles_default_to_standard_connections if {
	authz.grant.allowed_connection_types == ["STANDARD"] with input as login("bob", "bob-pw")
	authz.authz_failure == "connection_type_not_allowed" with input as login_via("carol", "carol-pw", "WEBSOCKET")
	authz.authz_failure == "connection_type_not_allowed" with input as login_via("bob", "bob-pw", "MQTT")

	# data may widen the default
	g := authz.grant with input as login_via("bob", "bob-pw", "MQTT") with data.callout.settings.default_connection_types as ["STANDARD", "MQTT"]
	g.allowed_connection_types == ["MQTT"]
}

test_browser_role_is_websocket_only_and_narrower if {
	ws := authz.grant with input as login_via("dave", "dave-pw", "WEBSOCKET")
	ws.allowed_connection_types == ["WEBSOCKET"]
	ws.pub.allow == ["dashboard.dave.requests"]
	not "orders.events.>" in ws.sub.allow
	ws.subs == 20
	ws.payload == 65536
	ws.expires_in == 900

	std := authz.grant with input as login("dave", "dave-pw")
	std.pub.allow == ["orders.query.>"]
	not std.subs
	not std.payload
}

test_source_cidrs if {
	authz.grant.account == "OPS" with input as login_from("admin", "admin-pw", "10.20.255.255")
	authz.grant.src == ["10.20.0.0/16", "127.0.0.0/8", "::1/128"] with input as login_from("admin", "admin-pw", "::1")
	authz.authz_failure == "source_not_allowed" with input as login_from("admin", "admin-pw", "10.21.0.0")
	authz.authz_failure == "source_not_allowed" with input as login_from("admin", "admin-pw", "not-an-ip")
	authz.authz_failure == "source_not_allowed" with input as login_from("admin", "admin-pw", "")
}

test_empty_source_list_fails_closed if {
	authz.authz_failure == "source_not_allowed" with input as login("admin", "admin-pw") with data.callout.roles.admin.source_cidrs as []
}

test_no_src_without_cidr_roles if {
	g := authz.grant with input as login("alice", "alice-pw")
	not g.src
}

test_time_window if {
	g := authz.grant with input as login("carol", "carol-pw") with time.now_ns as wed_noon_berlin
	g.times == [{"start": "08:00:00", "end": "18:00:00"}]
	g.times_location == "Europe/Berlin"
	g.expires_in == 3600
	authz.authz_failure == "outside_time_window" with input as login("carol", "carol-pw") with time.now_ns as saturday
}

test_time_zone_comes_from_data if {
	# 12:00 in Berlin is 06:00 in New York: before the window opens
	authz.authz_failure == "outside_time_window" with input as login("carol", "carol-pw") with time.now_ns as wed_noon_berlin with data.callout.settings.time_zone as "America/New_York"
}

test_missing_window_fails_closed if {
	authz.authz_failure == "outside_time_window" with input as login("carol", "carol-pw") with time.now_ns as wed_noon_berlin with data.callout.roles["business-hours"].window as "no-such-window"
}

test_malformed_window_time_fails_closed if {
	authz.authz_failure == "outside_time_window" with input as login("carol", "carol-pw") with time.now_ns as wed_noon_berlin with data.callout.windows["office-hours"].end as "18:00"
}

test_no_times_without_window_roles if {
	g := authz.grant with input as login("alice", "alice-pw")
	not g.times
	not g.times_location
}

test_inactive_reason_priority if {
	# dave over MQTT: both roles fail on connection type
	authz.authz_failure == "connection_type_not_allowed" with input as login_via("dave", "dave-pw", "MQTT")

	# a user with an admin role (wrong source) and a time-window role (closed): source first
	authz.authz_failure == "source_not_allowed" with input as login_from("carol", "carol-pw", "192.0.2.1") with time.now_ns as saturday with data.callout.users.carol.roles as ["business-hours", "admin"]
}

test_mixed_roles_keep_the_active_ones if {
	# carol with an extra always-on role: outside the window she keeps only orders-reader,
	# inside the window she gets both and the JWT ends with the window.
	out := authz.grant with input as login("carol", "carol-pw") with time.now_ns as saturday with data.callout.users.carol.roles as ["business-hours", "orders-reader"]
	out.pub.allow == ["orders.query.>"]
	not out.times

	half_past_five := wed_noon_berlin + (((5 * 3600) + (30 * 60)) * one_second) # 17:30 Berlin
	inside := authz.grant with input as login("carol", "carol-pw") with time.now_ns as half_past_five with data.callout.users.carol.roles as ["business-hours", "orders-reader"]
	inside.pub.allow == ["orders.query.>", "support.tickets.>"]
	inside.expires_in == 1800
	inside.times == [{"start": "08:00:00", "end": "18:00:00"}]
}

test_unknown_roles_are_ignored if {
	authz.authz_failure == "no_roles" with input as login("bob", "bob-pw") with data.callout.users.bob.roles as ["no-such-role"]
	authz.grant.pub.allow == ["orders.query.>"] with input as login("bob", "bob-pw") with data.callout.users.bob.roles as ["orders-reader", "no-such-role"]
}

test_account_conflict if {
	authz.authz_failure == "account_conflict" with input as login("bob", "bob-pw") with data.callout.users.bob.roles as ["orders-reader", "admin"]
}

test_default_account_from_data if {
	authz.grant.account == "SHOP" with input as login("bob", "bob-pw") with data.callout.settings.default_account as "SHOP"
}

# ---- subjects ----

test_permissions_are_rendered_per_user if {
	g := authz.grant with input as login("alice", "alice-pw")
	g.sub.allow == ["_INBOX.alice.>", "orders.events.>"]
	"$KV.prefs.alice.>" in g.pub.allow
	"$JS.API.DIRECT.GET.KV_prefs.$KV.prefs.alice.>" in g.pub.allow
	g.pub.deny == ["$SYS.>"]
	g.sub.deny == ["$SYS.>"]
}

# ---- JetStream specs (authz/jetstream.rego, built by policies/lib/jetstream.rego) ----

_kv_rights(user) := [
	concat("", ["$JS.API.CONSUMER.CREATE.KV_prefs.*.$KV.prefs.", user, ".>"]),
	"$JS.API.CONSUMER.INFO.KV_prefs.*",
	concat("", ["$JS.API.DIRECT.GET.KV_prefs.$KV.prefs.", user, ".>"]),
	"$JS.FC.KV_prefs.>",
	concat("", ["$KV.prefs.", user, ".>"]),
]

test_prefs_kv_gives_alice_and_bob_their_own_keys_only if {
	a := authz.grant with input as login("alice", "alice-pw")
	every s in _kv_rights("alice") {
		s in a.pub.allow
	}
	b := authz.grant with input as login("bob", "bob-pw")
	every s in _kv_rights("bob") {
		s in b.pub.allow
	}

	# the leaking STREAM.INFO (subjects_filter lists every key) is gone, and nothing bucket-wide is granted
	every g in [a, b] {
		every s in g.pub.allow {
			not contains(s, "STREAM.")
			not s in {"$KV.prefs.>", "$JS.API.DIRECT.GET.KV_prefs", "$JS.API.INFO"}
		}
	}
}

test_prefs_kv_is_the_only_role_over_websocket_for_bob if {
	g := authz.grant with input as login_via("bob", "bob-pw", "WEBSOCKET")
	g.pub.allow == _kv_rights("bob")
	g.sub.allow == ["_INBOX.bob.>"]
}

test_jetstream_specs_take_user_in_names_and_other_arguments if {
	role := {"jetstream": [
		{"grant": "obj_read", "bucket": "files-{user}"},
		{"grant": "stream_pull", "stream": "ORDERS", "prefix": ["orders", "{user}"], "consumer": "{user}", "domain": "hub"},
	]}
	g := authz.grant with input as login("bob", "bob-pw") with data.callout.roles["orders-reader"] as role with data.callout.users.bob.roles as ["orders-reader"]
	"$JS.API.STREAM.INFO.OBJ_files-bob" in g.pub.allow
	"$JS.hub.API.CONSUMER.MSG.NEXT.ORDERS.bob" in g.pub.allow
}

test_bad_jetstream_specs_fail_closed if {
	every spec in [
		{"grant": "no_such_function", "bucket": "prefs", "prefix": ["{user}"]},
		{"grant": "kv_read", "bucket": "prefs"},
		{"grant": "kv_read", "bucket": "prefs", "prefix": ["{user}"], "typo": true},
		{"grant": "kv_read", "bucket": "pre.fs", "prefix": ["{user}"]},
		{"grant": "kv_read", "bucket": "prefs", "prefix": "{user}"},
	] {
		authz.authz_failure == "policy_data_error" with input as login("bob", "bob-pw") with data.callout.roles["prefs-kv"].jetstream as [spec]
	}
}

test_every_jetstream_function_is_reachable_from_data if {
	every spec in [
		{"grant": "kv_get", "bucket": "b", "prefix": ["{user}"]},
		{"grant": "kv_watch", "bucket": "b", "prefix": ["{user}"]},
		{"grant": "kv_read", "bucket": "b", "prefix": ["{user}"]},
		{"grant": "kv_write", "bucket": "b", "prefix": ["{user}"]},
		{"grant": "kv_admin", "bucket": "b"},
		{"grant": "obj_read_write", "bucket": "b-{user}"},
		{"grant": "obj_admin", "bucket": "b-{user}"},
		{"grant": "stream_publish", "prefix": ["s", "{user}"]},
		{"grant": "stream_get", "stream": "S", "prefix": ["s", "{user}"]},
		{"grant": "stream_ordered", "stream": "S", "prefix": ["s", "{user}"], "api": "JS.x.API"},
	] {
		g := authz.grant with input as login("bob", "bob-pw") with data.callout.roles["prefs-kv"].jetstream as [spec]
		count(g.pub.allow) > 1 # orders.query.> plus the spec's rights
	}
}

test_permissions_are_sorted_and_deduplicated if {
	g := authz.grant with input as login("alice", "alice-pw") with data.callout.users.alice.roles as ["orders-reader", "orders-reader", "orders-writer"]
	g.pub.allow == ["orders.cancel.*", "orders.create", "orders.query.>", "orders.update.*"]
}

test_bad_template_in_data_fails_closed if {
	authz.authz_failure == "policy_data_error" with input as login("bob", "bob-pw") with data.callout.roles["orders-reader"].pub.allow as ["orders..query"]
	authz.authz_failure == "policy_data_error" with input as login("bob", "bob-pw") with data.callout.roles["orders-reader"].sub.deny as ["{tenant}.>"]
	not authz.grant with input as login("bob", "bob-pw") with data.callout.roles["orders-reader"].pub.allow as ["orders..query"]
}

# ---- resp, limits, lifetime ----

test_resp_for_responders_only if {
	authz.grant.resp == {"max": 1, "ttl_ms": 5000} with input as bearer("tok_5Vf8kQz2LmN7xR3c")
	g := authz.grant with input as login("alice", "alice-pw")
	not g.resp
}

test_resp_merge if {
	roles := object.union(data.callout.roles, {
		"r1": {"pub": {"allow": ["a"]}, "resp": {"max": 1, "ttl_ms": 5000}},
		"r2": {"pub": {"allow": ["b"]}, "resp": {"max": 10, "ttl_ms": 1000}},
		"r3": {"pub": {"allow": ["c"]}, "resp": {"max": -1, "ttl_ms": 10}},
	})
	authz.grant.resp == {"max": 10, "ttl_ms": 5000} with input as login("bob", "bob-pw") with data.callout.roles as roles with data.callout.users.bob.roles as ["r1", "r2"]
	authz.grant.resp == {"max": -1, "ttl_ms": 5000} with input as login("bob", "bob-pw") with data.callout.roles as roles with data.callout.users.bob.roles as ["r1", "r3"]
}

test_limits_only_when_every_active_role_sets_them if {
	roles := object.union(data.callout.roles, {
		"ws-a": {"connection_types": ["WEBSOCKET"], "sub": {"allow": ["a.>"]}, "limits": {"subs": 5, "payload": 1024, "data": 10}},
		"ws-b": {"connection_types": ["WEBSOCKET"], "sub": {"allow": ["b.>"]}, "limits": {"subs": 50}},
		"ws-c": {"connection_types": ["WEBSOCKET"], "sub": {"allow": ["c.>"]}},
	})
	ab := authz.grant with input as login_via("bob", "bob-pw", "WEBSOCKET") with data.callout.roles as roles with data.callout.users.bob.roles as ["ws-a", "ws-b"]
	ab.subs == 50
	not ab.payload
	not ab.data
	a := authz.grant with input as login_via("bob", "bob-pw", "WEBSOCKET") with data.callout.roles as roles with data.callout.users.bob.roles as ["ws-a"]
	[a.subs, a.payload, a.data] == [5, 1024, 10]
	ac := authz.grant with input as login_via("bob", "bob-pw", "WEBSOCKET") with data.callout.roles as roles with data.callout.users.bob.roles as ["ws-a", "ws-c"]
	not ac.subs
}

test_lifetime_is_the_shortest_bound if {
	authz.grant.expires_in == 3600 with input as login("bob", "bob-pw")
	authz.grant.expires_in == 900 with input as login("admin", "admin-pw")
	authz.grant.expires_in == 60 with input as login("bob", "bob-pw") with data.callout.settings.expires_in as 60

	# IdP token: until its exp (10:10:00Z), rounded down
	authz.grant.expires_in == 600 with input as bearer(token_short_grace) with time.now_ns as wed_noon_berlin
	authz.grant.expires_in == 1 with input as bearer(token_short_grace) with time.now_ns as (1749031800 - 1) * one_second
}

test_token_too_close_to_expiry_is_refused if {
	# half a second before exp: the token is still valid, but no whole second of lifetime is left
	now := (1749031800 * one_second) - (one_second / 2)
	not authz.authn_failure with input as bearer(token_short_grace) with time.now_ns as now
	authz.authz_failure == "credentials_expire_too_soon" with input as bearer(token_short_grace) with time.now_ns as now
	authz.decision == {"allow": false, "reason": "credentials_expire_too_soon"} with input as bearer(token_short_grace) with time.now_ns as now
}

test_bad_lifetime_in_data_fails_closed if {
	authz.authz_failure == "policy_data_error" with input as login("bob", "bob-pw") with data.callout.settings.expires_in as "1h"
	not authz.grant with input as login("bob", "bob-pw") with data.callout.settings.expires_in as "1h"
}

test_grant_has_exactly_the_documented_fields if {
	allowed := {
		"allow", "account", "name", "pub", "sub", "resp", "expires_in", "subs", "data", "payload",
		"src", "times", "times_location", "allowed_connection_types", "bearer_token", "tags", "reason",
	}
	g1 := authz.grant with input as login("alice", "alice-pw")
	g2 := authz.grant with input as login("admin", "admin-pw")
	g3 := authz.grant with input as login_via("dave", "dave-pw", "WEBSOCKET")
	g4 := authz.grant with input as bearer("tok_5Vf8kQz2LmN7xR3c")
	g5 := authz.grant with input as login("carol", "carol-pw") with time.now_ns as wed_noon_berlin
	every g in [g1, g2, g3, g4, g5] {
		every k, _ in g {
			k in allowed
		}
		g.allow == true
		is_string(g.account)
		is_array(g.pub.allow)
		is_array(g.pub.deny)
		is_array(g.sub.allow)
		is_array(g.sub.deny)
		g.expires_in >= 1
	}
}

test_unsafe_name_never_renders if {
	# principal names are checked in authn; if one slipped through, no grant would be made
	p := {"name": "a.b", "method": "password", "roles": {"orders-reader"}}
	authz.authz_failure == "policy_data_error" with input as login("bob", "bob-pw") with authz.principal as p
	not authz.grant with input as login("bob", "bob-pw") with authz.principal as p
}
