# JetStream rights of the active roles, built by policies/lib/jetstream.rego (docs/jetstream.md).
# A role lists specs under "jetstream": {"grant": "<library function>", ...its arguments}. In
# "bucket", "stream" and "consumer" the text "{user}" becomes the principal's name, and a "prefix"
# token "{user}" becomes the name; the library checks every argument, so an unsafe name (or a bad
# spec) makes the spec undefined and the login fails closed with policy_data_error.
#   {"grant": "kv_read_write", "bucket": "prefs", "prefix": ["{user}"]}
package nats.authz

import data.nats.lib.jetstream
import data.nats.lib.subject

_js_specs := [spec | some role in _active; some spec in object.get(role, "jetstream", [])]

_js_name(v) := strings.replace_n({"{user}": subject.token(principal.name)}, v) if is_string(v)

_js_token("{user}") := principal.name

_js_token(t) := t if t != "{user}"

_js_arg("prefix", v) := [_js_token(t) | some t in v] if is_array(v)

_js_arg(k, v) := _js_name(v) if k in {"bucket", "stream", "consumer"}

_js_arg(k, v) := v if k in {"api", "domain"}

_js_args(spec) := args if {
	args := {k: a | some k, v in object.remove(spec, ["grant"]); a := _js_arg(k, v)}
	count(args) == count(spec) - 1
}

_js_call("kv_get", a) := jetstream.kv_get(a)

_js_call("kv_watch", a) := jetstream.kv_watch(a)

_js_call("kv_list", a) := jetstream.kv_list(a)

_js_call("kv_read", a) := jetstream.kv_read(a)

_js_call("kv_write", a) := jetstream.kv_write(a)

_js_call("kv_read_write", a) := jetstream.kv_read_write(a)

_js_call("kv_admin", a) := jetstream.kv_admin(a)

_js_call("obj_read", a) := jetstream.obj_read(a)

_js_call("obj_read_write", a) := jetstream.obj_read_write(a)

_js_call("obj_admin", a) := jetstream.obj_admin(a)

_js_call("stream_publish", a) := jetstream.stream_publish(a)

_js_call("stream_get", a) := jetstream.stream_get(a)

_js_call("stream_pull", a) := jetstream.stream_pull(a)

_js_call("stream_ordered", a) := jetstream.stream_ordered(a)

_js_grants := [g | some spec in _js_specs; g := _js_call(spec.grant, _js_args(spec))]

# Every spec of every active role was built (false for an unsafe name or a bad spec).
_js_ok if count(_js_grants) == count(_js_specs)

# The library grants only allow-lists.
_js_subjects(kind, "allow") := {s | some g in _js_grants; some s in g[kind].allow}

_js_subjects(_, "deny") := set()
