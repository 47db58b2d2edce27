package nats.authz_test

import data.nats.authz

test_mask_lists_client_chosen_names if {
	m := authz.mask with input as conn({"user": "bob", "pass": "bob-pw", "name": "laptop.example.org"}, "127.0.0.1", "STANDARD")
	m == {"/connect_opts/name", "/client_info/name"}
}

test_mask_lists_the_name_tag if {
	m := authz.mask with input as object.union(login("bob", "bob-pw"), {"client_info": {"name_tag": "Bob B."}})
	m == {"/client_info/name", "/client_info/name_tag"}
}

test_mask_is_empty_without_names if {
	m := authz.mask with input as json.remove(login("bob", "bob-pw"), ["client_info/name"])
	m == set()
}

# Secrets are masked by the service itself, never left to this rule.
test_mask_never_needs_to_list_secrets if {
	m := authz.mask with input as bearer("tok_5Vf8kQz2LmN7xR3c")
	every p in m {
		not contains(p, "auth_token")
		not contains(p, "pass")
	}
}
