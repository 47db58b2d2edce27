package nats.lib.subject_test

import data.nats.lib.subject

# Values an attacker may choose as a user name or JWT claim, and which must never become a token.
unsafe_tokens := [
	"",
	"*",
	">",
	"a.b",
	"alice.>",
	"alice.*",
	".alice",
	"alice.",
	"a*",
	"a>b",
	"al ice",
	"alice ",
	"alice\t",
	"alice\n",
	"alice\r",
	"ali\u0000ce",
	"ali\u007fce",
	"ali\u200bce", # zero-width space (Cf)
	"ali\u00a0ce", # no-break space (Zs)
	"ali\u2028ce", # line separator (Zl)
	"ali\u0085ce", # next line (Cc)
]

test_token_accepts_safe_names if {
	subject.token("alice") == "alice"
	subject.token("idp-frank") == "idp-frank"
	subject.token("orders_svc") == "orders_svc"
	subject.token("$KV") == "$KV"
	subject.token("u-1234@example") == "u-1234@example"
}

test_token_rejects_unsafe_values if {
	every s in unsafe_tokens {
		not subject.token(s)
	}
}

test_token_is_printable_ascii_only if {
	every i in numbers.range(33, 126) {
		_token_char_ok(_ascii(i))
	}
	not subject.token("Zoë")
	not subject.token("аlice") # Cyrillic a
	not subject.token("al😀ice")
	subject.token("!#$%&'()+,-/:;<=?@[\\]^_`{|}~") # every printable ASCII but . * >
}

# token() checks its allow-list with trim(), not a regex: it must accept exactly what the reference
# pattern accepts, for every ASCII character alone and inside a name, and for the usual tricks.
_token_reference := `^[!-)+-\-/-=?-~]+$`

test_token_accepts_exactly_the_reference_pattern if {
	every i in numbers.range(0, 127) {
		_same_as_reference(_char(i))
		_same_as_reference(concat("", ["ab", _char(i), "9Z"]))
	}
	every s in unsafe_tokens {
		_same_as_reference(s)
	}
	every s in ["", "Zoë", "аlice", "al😀ice", "a\u00a0b", "a\u200bb", "\ufeffa", "a\u2028b", "ａ", "\u00ff"] {
		_same_as_reference(s)
	}
}

_same_as_reference(s) if {
	subject.token(s) == s
	regex.match(_token_reference, s)
}

_same_as_reference(s) if {
	not subject.token(s)
	not regex.match(_token_reference, s)
}

# Any code point as a one-character string (json.unmarshal of a \uXXXX escape).
_char(i) := json.unmarshal(sprintf("\"\\u%04x\"", [i]))

# "." "*" ">" are the only printable ASCII characters that are refused.
_token_char_ok(c) if {
	not c in {".", "*", ">"}
	subject.token(c) == c
}

_token_char_ok(c) if {
	c in {".", "*", ">"}
	not subject.token(c)
}

_ascii(i) := substring("!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~", i - 33, 1)

test_token_rejects_non_strings if {
	not subject.token(1)
	not subject.token(null)
	not subject.token(["alice"])
	not subject.token({"alice": true})
	not subject.token(true)
}

test_token_length_limit if {
	long := concat("", [x | some _ in numbers.range(1, subject.max_token_length); x := "a"])
	subject.token(long) == long
	not subject.token(concat("", [long, "a"]))
}

test_join if {
	subject.join(["_INBOX", "alice"]) == "_INBOX.alice"
	subject.join(["orders"]) == "orders"
	not subject.join([])
	not subject.join("_INBOX.alice")
	every s in unsafe_tokens {
		not subject.join(["_INBOX", s])
	}
}

test_under if {
	subject.under(["_INBOX", "alice"]) == "_INBOX.alice.>"
	subject.under(["$KV", "prefs", "alice"]) == "$KV.prefs.alice.>"
	every s in unsafe_tokens {
		not subject.under(["_INBOX", s])
	}
}

test_valid_subjects if {
	every s in [
		"orders",
		"orders.create",
		"orders.*",
		"orders.*.created",
		"orders.>",
		">",
		"*",
		"*.>",
		"_INBOX.alice.>",
		"$KV.prefs.alice.>",
		"$JS.API.DIRECT.GET.KV_prefs.$KV.prefs.alice.>",
	] {
		subject.valid(s)
	}
}

test_invalid_subjects if {
	every s in [
		"",
		".",
		"orders.",
		".orders",
		"orders..create",
		"orders.>.created",
		">.orders",
		"orders.cre*",
		"orders.a>",
		"orders create",
		"orders.\tcreate",
		"orders.\u0000",
	] {
		not subject.valid(s)
	}
	not subject.valid(42)
	not subject.valid(concat("", [x | some _ in numbers.range(0, subject.max_subject_length); x := "a"]))
}

test_literal if {
	subject.literal("orders.create")
	subject.literal("$KV.prefs.alice.theme")
	not subject.literal("orders.*")
	not subject.literal("orders.>")
	not subject.literal("orders..x")
}

test_render_substitutes_safe_values if {
	subject.render("_INBOX.{user}.>", {"user": "alice"}) == "_INBOX.alice.>"
	subject.render("$KV.prefs.{user}.>", {"user": "bob"}) == "$KV.prefs.bob.>"
	subject.render("chat.{room}.{user}", {"user": "bob", "room": "ops"}) == "chat.ops.bob"
	subject.render("orders.>", {"user": "bob"}) == "orders.>"
	subject.render("a.{user}.b.{user}", {"user": "x"}) == "a.x.b.x"
}

test_render_never_widens if {
	every s in unsafe_tokens {
		not subject.render("_INBOX.{user}.>", {"user": s})
	}
	not subject.render("_INBOX.{user}.>", {"user": 7})
}

test_render_rejects_bad_templates if {
	not subject.render("_INBOX.{usr}.>", {"user": "alice"}) # unknown placeholder
	not subject.render("_INBOX.{user", {"user": "alice"}) # stray brace
	not subject.render("_INBOX.user}", {"user": "alice"})
	not subject.render("_INBOX..{user}", {"user": "alice"}) # invalid result
	not subject.render(["_INBOX.{user}"], {"user": "alice"})
	not subject.render("_INBOX.{user}", "alice")
}

# A value that itself looks like a placeholder is substituted literally, never re-expanded.
test_render_single_pass if {
	subject.render("a.{user}.{room}", {"user": "{room}", "room": "r"}) == "a.{room}.r"
}

test_render_all if {
	templates := {"_INBOX.{user}.>", "orders.>", "$KV.prefs.{user}.>"}
	subject.render_all(templates, {"user": "alice"}) == {
		"_INBOX.{user}.>": "_INBOX.alice.>",
		"orders.>": "orders.>",
		"$KV.prefs.{user}.>": "$KV.prefs.alice.>",
	}
	subject.render_all(set(), {"user": "alice"}) == {}
}

test_render_all_undefined_for_unsafe_values if {
	every s in unsafe_tokens {
		not subject.render_all({"_INBOX.{user}.>"}, {"user": s})
	}
	not subject.render_all({"x"}, "alice")
}

test_render_all_leaves_out_bad_templates if {
	r := subject.render_all({"ok.{user}", "bad.{usr}", "bad..{user}", "bad.{user", "a.>.b", "a b.{user}", 7}, {"user": "u"})
	r == {"ok.{user}": "ok.u"}
}

test_well_formed_is_structural if {
	subject.well_formed("orders.*.x.>")
	subject.well_formed(">")
	not subject.well_formed("orders..x")
	not subject.well_formed("orders.>.x")
	not subject.well_formed("orders.a*")
	not subject.well_formed("orders x")
	not subject.well_formed("orders\tx")
	not subject.well_formed("orders.x\n")
	not subject.well_formed("")
	not subject.well_formed(1)

	# what only valid() catches
	subject.well_formed("orders.\u0000")
	not subject.valid("orders.\u0000")
}
