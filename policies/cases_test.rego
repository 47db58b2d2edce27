# Golden cases: policies/cases/*.json, one source of truth for `opa test` (here) and for the
# service's own wasm engine (test/unit/policy/cases.test.ts). `opa test policies/` loads every
# JSON file under policies/cases/ at data.cases; each file is an object keyed by case name, so the
# merge fails loudly if two files reuse a name. See policies/cases/README.md.
package nats.cases_test

import data.nats.authz

# Clocks for cases without "now": the decision must not depend on time, so it must be the same on a
# Sunday night (UTC and Berlin), on a Wednesday noon, and at the real current time.
time_independent_clocks := ["2025-06-08T03:00:00Z", "2025-06-04T10:00:00Z", "2024-12-31T23:59:59Z"]

# Note: no helper *function* may reference authz.decision: `opa build -t wasm -e nats/authz/decision`
# rejects a function that references the entrypoint ("used as reference, not called"), even in a
# test file. So every evaluation is written out in a rule body.

# Cases with a frozen clock.
failing contains {"name": name, "now": c.now, "got": got} if {
	some name, c in data.cases
	c.now
	ns := time.parse_rfc3339_ns(c.now)
	got := authz.decision with input as c.input with time.now_ns as ns
	got != c.expect
}

# Cases without a clock, at the real current time ...
failing contains {"name": name, "now": "real clock", "got": got} if {
	some name, c in data.cases
	not c.now
	got := authz.decision with input as c.input
	got != c.expect
}

# ... and at each fixed clock.
failing contains {"name": name, "now": clock, "got": got} if {
	some name, c in data.cases
	not c.now
	some clock in time_independent_clocks
	ns := time.parse_rfc3339_ns(clock)
	got := authz.decision with input as c.input with time.now_ns as ns
	got != c.expect
}

_well_formed(name, c) if {
	c.name == name
	is_string(c.description)
	is_object(c.input)
	is_boolean(c.expect.allow)
	every key, _ in c {
		key in {"name", "description", "now", "input", "expect"}
	}
	_now_ok(c)
}

_has_now(c) if _ = c.now

_now_ok(c) if not _has_now(c)

_now_ok(c) if time.parse_rfc3339_ns(c.now)

malformed contains name if {
	some name, c in data.cases
	not _well_formed(name, c)
}

test_golden_cases_pass if {
	print("failing golden cases:", failing)
	count(failing) == 0
}

test_golden_cases_well_formed if {
	print("malformed golden cases:", malformed)
	count(malformed) == 0
}

test_golden_cases_exist if {
	count(data.cases) >= 80
}

# Every reason the policy can produce appears in at least one case.
test_golden_cases_cover_every_outcome if {
	reasons := {c.expect.reason | some c in data.cases}
	every r in {
		"password", "token", "jwt",
		"no_credentials", "ambiguous_credentials", "bad_credentials", "invalid_username",
		"unknown_user", "user_locked", "source_tarpitted", "invalid_jwt", "no_roles",
		"connection_type_not_allowed", "source_not_allowed", "outside_time_window",
		"unsupported_input_version", "credentials_expire_too_soon",
	} {
		r in reasons
	}
	some c1 in data.cases
	c1.expect.abort == true
	some c2 in data.cases
	c2.expect.account == "OPS"
}
