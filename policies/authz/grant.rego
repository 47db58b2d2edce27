# Authorization
# Turns the principal's roles into a grant for *this* connection. A role is active only when all
# of its conditions hold now: connection type (default settings.default_connection_types),
# source CIDRs (source_cidrs), and time window (window, in settings.time_zone). Subject rights of
# the active roles are additive; lifetimes are restrictive (the shortest wins). The user JWT is
# issued per connection, so conditions are re-evaluated at every (re)connect.
package nats.authz

import data.callout
import data.callout.settings
import data.nats.lib.subject

_connection_type := input.derived.connection_type

_raw_host := h if {
	h := input.client_info.host
	is_string(h)
	h != ""
}

# IPv4-mapped IPv6 ("::ffff:192.0.2.1") as plain IPv4: OPA's Go net.cidr_contains maps it, the wasm
# one does not. (nats-server reports IPv4 clients in dotted form anyway.)
_client_host := substring(_raw_host, 7, -1) if {
	startswith(lower(_raw_host), "::ffff:")
	contains(_raw_host, ".")
} else := _raw_host

_source_in(cidrs) if {
	some cidr in cidrs
	net.cidr_contains(cidr, _client_host)
}

# ---- clock: time.now_ns() is frozen once per evaluation by the host ----

_now_ns := time.now_ns()

_local_now := [_now_ns, settings.time_zone]

_clock_seconds := ((c[0] * 3600) + (c[1] * 60)) + c[2] if c := time.clock(_local_now)

_seconds_of_day(hms) := ((to_number(p[0]) * 3600) + (to_number(p[1]) * 60)) + to_number(p[2]) if {
	p := split(hms, ":")
	count(p) == 3
}

# Windows are same-day ranges [start, end) on the listed weekdays.
_window_open(window) if {
	time.weekday(_local_now) in window.days
	_clock_seconds >= _seconds_of_day(window.start)
	_clock_seconds < _seconds_of_day(window.end)
}

# ---- roles ----

_roles := {name: role | some name in principal.roles; role := callout.roles[name]}

# Each condition is a positive rule so that missing input or data makes it false: `not f(x)` is
# undefined (not true) when x is an undefined rule, so never negate a call on a possibly undefined value.
_connection_type_ok(role) if _connection_type in object.get(role, "connection_types", settings.default_connection_types)

_source_ok(role) if _source_in(role.source_cidrs)

# A role naming a window that does not exist in data is never in its window.
_window_ok(role) if _window_open(callout.windows[role.window])

# The first unmet condition of a role; undefined when the role is active.
_role_failure(role) := "connection_type_not_allowed" if {
	not _connection_type_ok(role)
} else := "source_not_allowed" if {
	role.source_cidrs
	not _source_ok(role)
} else := "outside_time_window" if {
	role.window
	not _window_ok(role)
}

_active := {name: role | some name, role in _roles; not _role_failure(role)}

_failure_priority := ["connection_type_not_allowed", "source_not_allowed", "outside_time_window"]

_inactive_reason := [reason | some reason in _failure_priority; reason in {_role_failure(role) | some role in _roles}][0]

_accounts := {object.get(role, "account", settings.default_account) | some role in _active}

_account := a if {
	count(_accounts) == 1
	some a in _accounts
}

# ---- subjects: role templates rendered with the principal's (safe) name ----

_vars := {"user": principal.name}

_sources := array.concat([settings.base], [role | some role in _active])

_templates(kind, list) := {t | some src in _sources; some t in object.get(object.get(src, kind, {}), list, [])}

_all_templates := {t | some kind in ["pub", "sub"]; some list in ["allow", "deny"]; some t in _templates(kind, list)}

# One render per evaluation: the user name is checked once (subject.token), templates structurally.
_rendered := subject.render_all(_all_templates, _vars)

# Every template rendered (false if the name were unsafe: then _rendered is undefined), and every
# JetStream spec built (authz/jetstream.rego).
_rendered_ok if {
	count(_rendered) == count(_all_templates)
	_js_ok
}

_subjects(kind, list) := sort({_rendered[t] | some t in _templates(kind, list)} | _js_subjects(kind, list))

_permission(kind) := {"allow": _subjects(kind, "allow"), "deny": _subjects(kind, "deny")}

# ---- limits and lifetime ----

_resps := [role.resp | some role in _active; role.resp]

_resp_max := -1 if {
	some r in _resps
	r.max == -1
} else := max({r.max | some r in _resps})

_resp := {"max": _resp_max, "ttl_ms": max({r.ttl_ms | some r in _resps})} if count(_resps) > 0

# A limit is emitted only when every active role sets it (rights are additive: the largest wins).
_limit(name) := max({v | some role in _active; v := role.limits[name]}) if {
	every role in _active {
		role.limits[name]
	}
}

_windows := {callout.windows[role.window] | some role in _active; role.window}

_times := sort({{"start": w.start, "end": w.end} | some w in _windows})

_src := sort({cidr | some role in _active; some cidr in object.get(role, "source_cidrs", [])})

_lifetimes contains settings.expires_in

_lifetimes contains role.expires_in if some role in _active

_lifetimes contains _seconds_of_day(w.end) - _clock_seconds if some w in _windows

_lifetimes contains floor(principal.not_after - (_now_ns / 1000000000)) if principal.not_after

_expires_in := min(_lifetimes)

# ---- result ----

# authz_failure is the reason no grant can be made; undefined when a grant exists.
authz_failure := "no_roles" if {
	count(_roles) == 0
} else := _inactive_reason if {
	count(_active) == 0
} else := "account_conflict" if {
	not _account
} else := "policy_data_error" if {
	not _rendered_ok
} else := "credentials_expire_too_soon" if {
	is_number(_expires_in)
	_expires_in < 1
} else := "policy_data_error" if {
	not _lifetime_ok
}

_lifetime_ok if {
	is_number(_expires_in)
	_expires_in >= 1
}

_optional contains ["resp", _resp] if _resp

_optional contains [name, v] if {
	some name in ["subs", "data", "payload"]
	v := _limit(name)
}

_optional contains ["src", _src] if count(_src) > 0

_optional contains ["times", _times] if count(_times) > 0

_optional contains ["times_location", settings.time_zone] if count(_times) > 0

grant := object.union(
	{
		"allow": true,
		"account": _account,
		"name": principal.name,
		"pub": _permission("pub"),
		"sub": _permission("sub"),
		"expires_in": _expires_in,
		"allowed_connection_types": [_connection_type],
		"reason": principal.method,
	},
	{k: v | some [k, v] in _optional},
) if {
	not authz_failure
	_lifetime_ok
	_rendered_ok
}
