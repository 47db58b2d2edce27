# Golden cases: cases/*.json (objects keyed by case name: name, description, input, expect, optional now), run
# here by opa test and by the service's wasm engine (nats-opa-callout check --policy-dir <dir>).
package nats.cases_test

import data.nats.authz

failing contains {"name": name, "got": got} if {
	some name, c in data.cases
	not c.now
	got := authz.decision with input as c.input
	got != c.expect
}

failing contains {"name": name, "got": got} if {
	some name, c in data.cases
	c.now
	got := authz.decision with input as c.input with time.now_ns as time.parse_rfc3339_ns(c.now)
	got != c.expect
}

test_cases_exist if count(data.cases) > 0

test_golden_cases if count(failing) == 0
