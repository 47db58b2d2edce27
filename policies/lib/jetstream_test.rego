package nats.lib.jetstream_test

import data.nats.lib.jetstream
import data.nats.lib.subject_test

_kv := {"bucket": "prefs", "prefix": ["alice"]}

_pub(g) := g.pub.allow

# _name() checks its allow-list with trim(), not a regex: it accepts exactly what the reference pattern does.
_name_reference := `^[-_A-Za-z0-9]{1,64}$`

test_names_accept_exactly_the_reference_pattern if {
	every i in numbers.range(0, 127) {
		c := json.unmarshal(sprintf("\"\\u%04x\"", [i]))
		_same_name_check(c)
		_same_name_check(concat("", ["Ab", c, "9z"]))
	}
	every s in ["", "é", "a\u00a0b", "a\u200bb", "ａ", concat("", [x | some _ in numbers.range(1, 64); x := "a"]), concat("", [x | some _ in numbers.range(1, 65); x := "a"])] {
		_same_name_check(s)
	}
	not jetstream._name(1)
}

_same_name_check(s) if {
	jetstream._name(s) == s
	regex.match(_name_reference, s)
}

_same_name_check(s) if {
	not jetstream._name(s)
	not regex.match(_name_reference, s)
}

test_kv_get_is_one_direct_get_subject if {
	jetstream.kv_get(_kv) == {
		"pub": {"allow": ["$JS.API.DIRECT.GET.KV_prefs.$KV.prefs.alice.>"]},
		"sub": {"allow": []},
	}
}

test_kv_watch_is_a_filtered_consumer_create_and_flow_control if {
	_pub(jetstream.kv_watch(_kv)) == [
		"$JS.API.CONSUMER.CREATE.KV_prefs.*.$KV.prefs.alice.>",
		"$JS.FC.KV_prefs.>",
	]
}

test_kv_list_adds_consumer_info if {
	_pub(jetstream.kv_list(_kv)) == [
		"$JS.API.CONSUMER.CREATE.KV_prefs.*.$KV.prefs.alice.>",
		"$JS.API.CONSUMER.INFO.KV_prefs.*",
		"$JS.FC.KV_prefs.>",
	]
}

test_kv_read_write if {
	_pub(jetstream.kv_read(_kv)) == [
		"$JS.API.CONSUMER.CREATE.KV_prefs.*.$KV.prefs.alice.>",
		"$JS.API.DIRECT.GET.KV_prefs.$KV.prefs.alice.>",
		"$JS.FC.KV_prefs.>",
	]
	_pub(jetstream.kv_write(_kv)) == ["$KV.prefs.alice.>"]
	_pub(jetstream.kv_read_write(_kv)) == [
		"$JS.API.CONSUMER.CREATE.KV_prefs.*.$KV.prefs.alice.>",
		"$JS.API.DIRECT.GET.KV_prefs.$KV.prefs.alice.>",
		"$JS.FC.KV_prefs.>",
		"$KV.prefs.alice.>",
	]
}

test_kv_prefix_may_have_several_tokens if {
	_pub(jetstream.kv_write({"bucket": "prefs", "prefix": ["tenant-1", "alice"]})) == ["$KV.prefs.tenant-1.alice.>"]
}

# No per-user function grants anything that reads across keys: STREAM.INFO (subjects_filter),
# STREAM.MSG.GET, DIRECT.GET without a subject, consumer creates without a filter, purge/delete.
test_per_user_kv_grants_have_no_bucket_wide_rights if {
	every f in ["kv_get", "kv_watch", "kv_list", "kv_read", "kv_write", "kv_read_write"] {
		every s in _pub(_kv_fn(f)) {
			not _bucket_wide(s)
		}
	}
}

_kv_fn("kv_get") := jetstream.kv_get(_kv)

_kv_fn("kv_watch") := jetstream.kv_watch(_kv)

_kv_fn("kv_list") := jetstream.kv_list(_kv)

_kv_fn("kv_read") := jetstream.kv_read(_kv)

_kv_fn("kv_write") := jetstream.kv_write(_kv)

_kv_fn("kv_read_write") := jetstream.kv_read_write(_kv)

_bucket_wide(s) if contains(s, "STREAM.")

_bucket_wide(s) if s == "$JS.API.DIRECT.GET.KV_prefs"

_bucket_wide(s) if endswith(s, "DIRECT.GET.KV_prefs.>")

_bucket_wide(s) if s == "$JS.API.CONSUMER.CREATE.KV_prefs"

_bucket_wide(s) if endswith(s, "CONSUMER.CREATE.KV_prefs.>")

_bucket_wide(s) if contains(s, "MSG.NEXT")

_bucket_wide(s) if s == "$KV.prefs.>"

_bucket_wide(s) if s == "$JS.API.INFO"

test_kv_admin_is_the_whole_bucket_only if {
	g := _pub(jetstream.kv_admin({"bucket": "prefs"}))
	"$JS.API.STREAM.CREATE.KV_prefs" in g
	"$JS.API.STREAM.PURGE.KV_prefs" in g
	"$JS.API.INFO" in g
	"$KV.prefs.>" in g
	every s in g {
		_only_prefs(s)
	}
}

_only_prefs(s) if contains(s, "KV_prefs")

_only_prefs(s) if startswith(s, "$KV.prefs.")

_only_prefs("$JS.API.INFO") := true

test_obj_grants_are_per_bucket if {
	_pub(jetstream.obj_read({"bucket": "files-alice"})) == [
		"$JS.API.CONSUMER.CREATE.OBJ_files-alice.*.$O.files-alice.>",
		"$JS.API.STREAM.INFO.OBJ_files-alice",
		"$JS.API.STREAM.MSG.GET.OBJ_files-alice",
		"$JS.FC.OBJ_files-alice.>",
	]
	_pub(jetstream.obj_read_write({"bucket": "files-alice"})) == [
		"$JS.API.CONSUMER.CREATE.OBJ_files-alice.*.$O.files-alice.>",
		"$JS.API.STREAM.INFO.OBJ_files-alice",
		"$JS.API.STREAM.MSG.GET.OBJ_files-alice",
		"$JS.API.STREAM.PURGE.OBJ_files-alice",
		"$JS.FC.OBJ_files-alice.>",
		"$O.files-alice.>",
	]
	g := _pub(jetstream.obj_admin({"bucket": "files-alice"}))
	"$JS.API.STREAM.CREATE.OBJ_files-alice" in g
	"$JS.API.STREAM.DELETE.OBJ_files-alice" in g
	"$JS.API.INFO" in g
}

test_streams if {
	_pub(jetstream.stream_publish({"prefix": ["orders", "alice"]})) == ["orders.alice.>"]
	o := {"stream": "ORDERS", "prefix": ["orders", "alice"]}
	_pub(jetstream.stream_get(o)) == ["$JS.API.DIRECT.GET.ORDERS.orders.alice.>"]
	_pub(jetstream.stream_ordered(o)) == [
		"$JS.API.CONSUMER.CREATE.ORDERS.*.orders.alice.>",
		"$JS.FC.ORDERS.>",
	]
	_pub(jetstream.stream_pull(object.union(o, {"consumer": "alice"}))) == [
		"$JS.ACK.ORDERS.alice.>",
		"$JS.API.CONSUMER.CREATE.ORDERS.alice.orders.alice.>",
		"$JS.API.CONSUMER.DELETE.ORDERS.alice",
		"$JS.API.CONSUMER.INFO.ORDERS.alice",
		"$JS.API.CONSUMER.MSG.NEXT.ORDERS.alice",
	]
}

test_domains_and_custom_api_prefixes if {
	_pub(jetstream.kv_get(object.union(_kv, {"domain": "hub"}))) == ["$JS.hub.API.DIRECT.GET.KV_prefs.$KV.prefs.alice.>"]
	_pub(jetstream.kv_get(object.union(_kv, {"api": "JS.acme.API"}))) == ["JS.acme.API.DIRECT.GET.KV_prefs.$KV.prefs.alice.>"]
	_pub(jetstream.stream_ordered({"stream": "S", "prefix": ["a"], "domain": "edge"})) == [
		"$JS.FC.S.>",
		"$JS.edge.API.CONSUMER.CREATE.S.*.a.>",
	]
	_pub(jetstream.obj_read({"bucket": "b", "api": "JS.x.API"}))[1] == "JS.x.API.CONSUMER.CREATE.OBJ_b.*.$O.b.>"
}

test_bad_api_arguments_are_undefined if {
	not jetstream.kv_get(object.union(_kv, {"domain": "hub", "api": "JS.acme.API"}))
	not jetstream.kv_get(object.union(_kv, {"domain": "*"}))
	not jetstream.kv_get(object.union(_kv, {"domain": "a.b"}))
	not jetstream.kv_get(object.union(_kv, {"api": "JS.*.API"}))
	not jetstream.kv_get(object.union(_kv, {"api": "JS.>"}))
	not jetstream.kv_get(object.union(_kv, {"api": ""}))
}

# Hostile values in any user-derived argument make every function undefined (the decision denies).
test_unsafe_prefix_tokens_never_widen if {
	every bad in subject_test.unsafe_tokens {
		_all_undefined(["kv_get", "kv_watch", "kv_list", "kv_read", "kv_write", "kv_read_write"], {"bucket": "prefs", "prefix": [bad]})
		_all_undefined(["stream_publish"], {"prefix": ["orders", bad]})
		_all_undefined(["stream_get", "stream_ordered"], {"stream": "ORDERS", "prefix": ["orders", bad]})
		_all_undefined(["stream_pull"], {"stream": "ORDERS", "prefix": ["orders", "ok"], "consumer": bad})
		not jetstream.inbox(bad)
	}

	# Object store buckets are names, not prefixes: build per-user ones from subject.token(user).
	every bad in [t | some t in subject_test.unsafe_tokens; t != ""] {
		_all_undefined(["obj_read", "obj_read_write", "obj_admin"], {"bucket": concat("-", ["files", bad])})
	}
}

test_bad_shapes_are_undefined if {
	every o in [
		{"bucket": "prefs"}, # no prefix
		{"bucket": "prefs", "prefix": []},
		{"bucket": "prefs", "prefix": "alice"},
		{"bucket": "prefs", "prefix": ["alice"], "typo": 1},
		{"bucket": "pr.efs", "prefix": ["alice"]},
		{"bucket": "", "prefix": ["alice"]},
		{"bucket": 1, "prefix": ["alice"]},
		{"prefix": ["alice"]},
		"prefs",
	] {
		_all_undefined(["kv_get", "kv_watch", "kv_list", "kv_read", "kv_write", "kv_read_write"], o)
	}
	not jetstream.kv_admin({"bucket": "prefs", "prefix": ["alice"]})
	not jetstream.stream_publish({"prefix": ["a"], "stream": "S"})
	not jetstream.stream_pull({"stream": "S", "prefix": ["a"]})
	not jetstream.stream_get({"stream": "S.x", "prefix": ["a"]})
}

_all_undefined(fns, o) if {
	every f in fns {
		not _call(f, o)
	}
}

_call("kv_get", o) := jetstream.kv_get(o)

_call("kv_watch", o) := jetstream.kv_watch(o)

_call("kv_list", o) := jetstream.kv_list(o)

_call("kv_read", o) := jetstream.kv_read(o)

_call("kv_write", o) := jetstream.kv_write(o)

_call("kv_read_write", o) := jetstream.kv_read_write(o)

_call("stream_publish", o) := jetstream.stream_publish(o)

_call("stream_get", o) := jetstream.stream_get(o)

_call("stream_ordered", o) := jetstream.stream_ordered(o)

_call("stream_pull", o) := jetstream.stream_pull(o)

_call("obj_read", o) := jetstream.obj_read(o)

_call("obj_read_write", o) := jetstream.obj_read_write(o)

_call("obj_admin", o) := jetstream.obj_admin(o)

test_inbox_and_merge if {
	jetstream.inbox("alice") == {"pub": {"allow": []}, "sub": {"allow": ["_INBOX.alice.>"]}}
	jetstream.merge([jetstream.inbox("alice"), jetstream.kv_write(_kv), jetstream.kv_write(_kv)]) == {
		"pub": {"allow": ["$KV.prefs.alice.>"]},
		"sub": {"allow": ["_INBOX.alice.>"]},
	}
	jetstream.merge([]) == {"pub": {"allow": []}, "sub": {"allow": []}}
	not jetstream.merge([{"pub": {}}])
	not jetstream.merge("x")
}
