# Unit tests of the starter policy (opa test <dir>). Test files may use any builtin: the capabilities file
# restricts only the policy itself (make policy checks the two apart).
package nats.authz_test

import data.nats.authz

login(user, pass) := {"connect_opts": {"user": user, "pass": pass}, "client_info": {"type": "nats"}}

test_demo_gets_own_subjects if {
	d := authz.decision with input as login("demo", "demo-pw")
	d.allow
	d.account == "APP"
	d.pub.allow == ["app.demo.>"]
	d.sub.allow == ["app.demo.>", "_INBOX.demo.>"]
}

test_wrong_password_denied if {
	authz.decision with input as login("demo", "wrong") == {"allow": false, "reason": "no_matching_user"}
}

test_unknown_user_denied if {
	d := authz.decision with input as login("mallory", "demo-pw")
	d == {"allow": false, "reason": "no_matching_user"}
}

test_unsafe_names_denied if {
	every name in ["*", ">", "demo.>", "demo.x", ""] {
		d := authz.decision with input as login(name, "demo-pw")
		d.allow == false
	}
}

test_no_input_denied if {
	d := authz.decision with input as {}
	d.allow == false
}
