# METADATA
# title: Least-privilege JetStream, KV and Object Store rights
# description: |
#   Each function takes one object of named arguments and returns an exact grant
#     {"pub": {"allow": [...]}, "sub": {"allow": [...]}}
#   (arrays sorted). It is *undefined* when any argument is missing, unknown or unsafe: user-derived
#   values (key prefixes, subject prefixes, consumer names) are checked with data.nats.lib.subject,
#   so a hostile user name such as "*", ">" or "a.b" can never widen a grant; the decision then
#   denies. Common arguments:
#     api     custom JetStream API prefix (e.g. "JS.acme.API" for an imported API); default "$JS.API"
#     domain  JetStream domain: the API prefix becomes "$JS.<domain>.API" (not together with api)
#   Replies (pub acks, API answers, pushed messages) go to the client's inbox, so every grant is meant
#   to be used together with inbox(user) (sub "_INBOX.<user>.>"), and the client must set that inbox
#   prefix (nats.js `inboxPrefix: "_INBOX.<user>"`, nats.go `nats.CustomInboxPrefix("_INBOX.<user>")`).
#   docs/jetstream.md lists, per function, the operations it allows, the attacks it refuses (as
#   tested against real servers in test/integration/jetstream.test.ts) and the client options it needs.
package nats.lib.jetstream

import data.nats.lib.subject

# ---- argument checks ----

# Stream, bucket and consumer names: a conservative subset of what nats-server accepts
# (KV buckets allow [-_A-Za-z0-9]; NATS names must not contain ".", "*", ">", whitespace, "/", "\"),
# 1 to 64 characters: the pattern `^[-_A-Za-z0-9]{1,64}$`, checked with trim() against the allow-list
# like subject.token (regex.match would compile its pattern again in every evaluation).
_name_chars := "abcdefghijklmnopqrstuvwxyz0123456789-_ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_name(s) := s if {
	is_string(s)
	s != ""
	count(s) <= 64
	trim(s, _name_chars) == ""
}

# A non-empty list of safe literal tokens, joined: ["alice"] -> "alice", ["t1", "alice"] -> "t1.alice".
_prefix(parts) := subject.join(parts) if {
	is_array(parts)
	count(parts) > 0
}

_known(o, allowed) if {
	is_object(o)
	every k, _ in o {
		k in allowed
	}
}

_common_keys := {"api", "domain"}

# The API prefix of o: "$JS.API", "$JS.<domain>.API" or a custom literal prefix (never with wildcards).
_api(o) := "$JS.API" if {
	not "api" in object.keys(o)
	not "domain" in object.keys(o)
}

_api(o) := concat(".", ["$JS", subject.token(o.domain), "API"]) if {
	not "api" in object.keys(o)
}

_api(o) := o.api if {
	not "domain" in object.keys(o)
	subject.literal(o.api)
}

_grant(pub, sub) := {"pub": {"allow": sort(pub)}, "sub": {"allow": sort(sub)}}

# ---- composition ----

# inbox(user): subscribe to the private inbox "_INBOX.<user>.>" where every reply, pub ack and pushed
# JetStream message of the functions below arrives. Client: nats.js connect({inboxPrefix:
# "_INBOX.<user>"}), nats.go nats.CustomInboxPrefix("_INBOX.<user>"). Nobody else may be granted a
# subscription that covers it (no "_INBOX.>" for other users).
inbox(user) := _grant(set(), {subject.under(["_INBOX", user])})

# merge(grants): the union of a list of grants (each {"pub": {"allow"}, "sub": {"allow"}}).
merge(grants) := _grant(
	{s | some g in grants; some s in g.pub.allow},
	{s | some g in grants; some s in g.sub.allow},
) if {
	is_array(grants)
	every g in grants {
		is_array(g.pub.allow)
		is_array(g.sub.allow)
	}
}

# ---- Key-Value (stream KV_<bucket>, subjects $KV.<bucket>.<key>) ----

_kv_keys := {"bucket", "prefix"} | _common_keys

# [api, stream, key filter] for a KV scope: keys under <prefix>.> of bucket.
_kv(o) := [a, concat("", ["KV_", b]), concat(".", ["$KV", b, p, ">"])] if {
	_known(o, _kv_keys)
	a := _api(o)
	b := _name(o.bucket)
	p := _prefix(o.prefix)
}

# kv_get({bucket, prefix}): get the latest value of own keys ("<prefix>.>") by direct get
# with the subject in the request subject (last-by-subject). Not: get by revision (a direct get by
# sequence could read any key), STREAM.MSG.GET, STREAM.INFO.
# Client: the bucket must have allow_direct (nats.js creates it so on 2.9+); open it with
# new Kvm(nc).open(bucket) (no $JS.API.INFO needed); nats.go needs jetstream.KeyValue via
# js.KeyValue(ctx, bucket), which calls STREAM.INFO: use kv_get only with nats.js, or see docs.
kv_get(o) := _grant({concat(".", [a, "DIRECT.GET", stream, filter])}, set()) if {
	[a, stream, filter] := _kv(o)
}

# kv_watch({bucket, prefix}): watch, history and key listing of own keys: a push consumer on the
# bucket whose filter is inside "<prefix>.>" (the filter is in the create subject, and the server
# refuses a config whose filter differs from it), plus flow-control replies for that stream.
# Listing keys also shows values: a consumer's headers_only cannot be enforced by permissions.
# Client: nats.js kv.watch({key: "<prefix>.>"}), kv.keys("<prefix>.>"), kv.history({key}); the key
# pattern must stay inside the prefix (watching ">" is refused).
kv_watch(o) := _grant(
	{
		concat(".", [a, "CONSUMER.CREATE", stream, "*", filter]),
		concat(".", ["$JS.FC", stream, ">"]),
	},
	set(),
) if {
	[a, stream, filter] := _kv(o)
}

# kv_list({bucket, prefix}): kv_watch plus CONSUMER.INFO on the bucket's consumers, which nats.js
# kv.keys() calls on its consumer. Exposure (tested): whoever knows a consumer's name can read its
# info (filter subject, pending counts); names are random nuids and not listable with these rights
# (no CONSUMER.NAMES/LIST), but prefer kv_watch where keys() is not needed.
# Client: nats.js kv.keys("<prefix>.>").
kv_list(o) := merge([
	kv_watch(o),
	_grant({concat(".", [a, "CONSUMER.INFO", stream, "*"])}, set()),
]) if {
	[a, stream, _] := _kv(o)
}

# kv_read: kv_get and kv_watch (the read-only variant for own keys).
kv_read(o) := merge([kv_get(o), kv_watch(o)])

# kv_write({bucket, prefix}): put, create, update, delete and purge of own keys (publishes to
# "$KV.<bucket>.<prefix>.>"; pub acks come back to the inbox). No read rights.
# Limit (server behaviour, tested): KV buckets are created with allow_rollup_hdrs, so a writer can
# publish with header "Nats-Rollup: all" and erase the whole bucket; permissions cannot see headers.
# Buckets shared by writers of different trust should be updated to allow_rollup_hdrs: false
# (kv.purge() then fails; kv.delete() still works). See docs/jetstream.md.
kv_write(o) := _grant({filter}, set()) if {
	[_, _, filter] := _kv(o)
}

# kv_read_write: kv_read and kv_write.
kv_read_write(o) := merge([kv_read(o), kv_write(o)])

# kv_admin({bucket}): everything on one bucket: create/update/delete/purge the bucket, status, all
# keys read/write/watch. For operators and owners of a whole bucket, never for one tenant of a
# shared bucket. Includes $JS.API.INFO (Kvm.create() calls it). Not: other streams, STREAM.LIST/NAMES.
kv_admin(o) := _grant(
	{
		concat(".", [a, "INFO"]),
		concat(".", [a, "STREAM.CREATE", stream]),
		concat(".", [a, "STREAM.UPDATE", stream]),
		concat(".", [a, "STREAM.INFO", stream]),
		concat(".", [a, "STREAM.DELETE", stream]),
		concat(".", [a, "STREAM.PURGE", stream]),
		concat(".", [a, "STREAM.MSG.GET", stream]),
		concat(".", [a, "STREAM.MSG.DELETE", stream]),
		concat(".", [a, "DIRECT.GET", stream]),
		concat(".", [a, "DIRECT.GET", stream, ">"]),
		concat(".", [a, "CONSUMER.CREATE", stream, ">"]),
		concat(".", [a, "CONSUMER.INFO", stream, "*"]),
		concat(".", [a, "CONSUMER.DELETE", stream, "*"]),
		concat(".", ["$JS.FC", stream, ">"]),
		concat(".", ["$KV", b, ">"]),
	},
	set(),
) if {
	_known(o, {"bucket"} | _common_keys)
	a := _api(o)
	b := _name(o.bucket)
	stream := concat("", ["KV_", b])
}

# ---- Object Store (stream OBJ_<bucket>, subjects $O.<bucket>.C.<nuid> and $O.<bucket>.M.<b64 name>) ----
# Scoping is per bucket only: object names are base64url-encoded into one subject token and chunk
# subjects are random, and a permission can only match whole tokens. Give each tenant its own bucket
# (e.g. bucket "files-<user>" from a safe name).

_obj(o) := [a, concat("", ["OBJ_", b]), b] if {
	_known(o, {"bucket"} | _common_keys)
	a := _api(o)
	b := _name(o.bucket)
}

# obj_read({bucket}): open (STREAM.INFO of this bucket), info/get (STREAM.MSG.GET last-by-subject
# of the metadata, then a push consumer on the chunks), list and watch (push consumer on the metadata).
# Client: nats.js new Objm(jetstream(nc, {checkAPI: false})) (otherwise $JS.API.INFO is needed),
# os = await objm.open(bucket).
obj_read(o) := _grant(
	{
		concat(".", [a, "STREAM.INFO", stream]),
		concat(".", [a, "STREAM.MSG.GET", stream]),
		concat(".", [a, "CONSUMER.CREATE", stream, "*", "$O", b, ">"]),
		concat(".", ["$JS.FC", stream, ">"]),
	},
	set(),
) if {
	[a, stream, b] := _obj(o)
}

# obj_read_write({bucket}): obj_read plus put (chunks and metadata), delete (metadata marker and a
# purge of the object's chunks) and replacing objects (purge of old chunks).
obj_read_write(o) := merge([
	obj_read(o),
	_grant(
		{
			concat(".", [a, "STREAM.PURGE", stream]),
			concat(".", ["$O", b, ">"]),
		},
		set(),
	),
]) if {
	[a, stream, b] := _obj(o)
}

# obj_admin({bucket}): obj_read_write plus create, update (seal) and destroy of the bucket and
# $JS.API.INFO (Objm.create() calls it). Not: other streams, STREAM.LIST/NAMES.
obj_admin(o) := merge([
	obj_read_write(o),
	_grant(
		{
			concat(".", [a, "INFO"]),
			concat(".", [a, "STREAM.CREATE", stream]),
			concat(".", [a, "STREAM.UPDATE", stream]),
			concat(".", [a, "STREAM.DELETE", stream]),
		},
		set(),
	),
]) if {
	[a, stream, _] := _obj(o)
}

# ---- Streams ----

_stream(o, extra) := [a, _name(o.stream), concat(".", [_prefix(o.prefix), ">"])] if {
	_known(o, (({"stream", "prefix"} | extra) | _common_keys))
	a := _api(o)
}

# stream_publish({prefix}): publish to "<prefix>.>" (a stream captures it; the pub ack goes to the
# inbox). Client: nats.js jetstream(nc).publish(subject, data); nats.go js.Publish(ctx, subject, data).
stream_publish(o) := _grant({concat(".", [_prefix(o.prefix), ">"])}, set()) if {
	_known(o, {"prefix"})
}

# stream_get({stream, prefix}): latest message of a subject under "<prefix>.>" by direct get
# (last-by-subject in the request subject; the stream needs allow_direct).
# Client: nats.js (await jetstreamManager(nc, {checkAPI: false})).direct.getMessage(stream,
# {last_by_subj: subject}).
stream_get(o) := _grant({concat(".", [a, "DIRECT.GET", stream, filter])}, set()) if {
	[a, stream, filter] := _stream(o, set())
}

# stream_pull({stream, prefix, consumer}): one pull consumer with the fixed name `consumer` (durable
# or ephemeral: durable_name or name = consumer) whose filter is inside "<prefix>.>": create/update it,
# info, fetch/consume, ack, delete. Names are fixed because MSG.NEXT.<stream>.* would let a client
# drain anybody's consumer. Client: nats.js jsm.consumers.add(stream, {durable_name: consumer,
# filter_subject, ack_policy: "explicit"}) (single filter_subject, not filter_subjects), then
# js.consumers.get(stream, consumer).
stream_pull(o) := _grant(
	{
		concat(".", [a, "CONSUMER.CREATE", stream, c, filter]),
		concat(".", [a, "CONSUMER.INFO", stream, c]),
		concat(".", [a, "CONSUMER.DELETE", stream, c]),
		concat(".", [a, "CONSUMER.MSG.NEXT", stream, c]),
		concat(".", ["$JS.ACK", stream, c, ">"]),
	},
	set(),
) if {
	[a, stream, filter] := _stream(o, {"consumer"})
	c := _name(o.consumer)
}

# stream_ordered({stream, prefix}): ordered reads for a reader: push consumers (any generated name)
# whose filter is inside "<prefix>.>", delivered to the inbox, with flow control. No MSG.NEXT, so a
# reader cannot pull from anybody else's consumer. Client: nats.js
# js.consumers.getPushConsumer(stream, {filter_subjects: [subject]}) (one subject; the pull-based
# js.consumers.get(stream, {...}) ordered consumer needs MSG.NEXT.<stream>.* and is not supported).
stream_ordered(o) := _grant(
	{
		concat(".", [a, "CONSUMER.CREATE", stream, "*", filter]),
		concat(".", ["$JS.FC", stream, ">"]),
	},
	set(),
) if {
	[a, stream, filter] := _stream(o, set())
}
