package nats.authz_test

import data.nats.authz

audit_svc_key := "UC43FZZQ26VBJKS6VV2EYX3FUACM75F4KEBXLLG2DRXY63A3CHZAACXS"

# What the service sends for an nkey client: the claim always, derived.nkey only when the signature verified.
nkey_login(key, proven) := object.union(
	conn({"nkey": key, "sig": "c2ln"}, "127.0.0.1", "STANDARD"),
	{"client_info": {"host": "127.0.0.1", "id": 7, "user": key, "name": "unit", "kind": "Client", "type": "nats", "nonce": "n0nce"}, "derived": {"connection_type": "STANDARD", "tls": false, "nkey": key}},
) if proven

nkey_login(key, proven) := conn({"nkey": key}, "127.0.0.1", "STANDARD") if not proven

test_auth_method_nkey if {
	authz.auth_method == "nkey" with input as nkey_login(audit_svc_key, true)
	authz.auth_method == "nkey" with input as nkey_login(audit_svc_key, false)
	authz.auth_method == "password" with input as conn({"user": "alice", "pass": "alice-pw", "nkey": audit_svc_key}, "127.0.0.1", "STANDARD")
}

test_proven_nkey_principal if {
	authz.principal == {"name": "audit-svc", "method": "nkey", "roles": {"orders-reader"}} with input as nkey_login(audit_svc_key, true)
	d := authz.decision with input as nkey_login(audit_svc_key, true)
	d.allow == true
	d.name == "audit-svc"
	"orders.events.>" in d.sub.allow
}

test_claimed_nkey_is_never_enough if {
	not authz.principal with input as nkey_login(audit_svc_key, false)
	authz.decision == {"allow": false, "reason": "unproven_nkey"} with input as nkey_login(audit_svc_key, false)
}

test_unknown_proven_nkey if {
	other := "UAJNROALOPRMAOHXOU4N627TIPSDU4IFIMG4KVLZPDM5BJLGO7IQ5ON5"
	authz.decision == {"allow": false, "reason": "unknown_nkey"} with input as nkey_login(other, true)
}

test_nkey_user_checks if {
	locked := {audit_svc_key: {"name": "audit-svc", "roles": ["orders-reader"], "locked": true}}
	authz.decision == {"allow": false, "abort": true, "reason": "user_locked"} with input as nkey_login(audit_svc_key, true)
		with data.callout.nkeys as locked
	bad_name := {audit_svc_key: {"name": "audit.*", "roles": ["orders-reader"]}}
	authz.decision == {"allow": false, "reason": "invalid_username"} with input as nkey_login(audit_svc_key, true)
		with data.callout.nkeys as bad_name
}
