# METADATA
# title: Safe NATS subject helpers
# description: |
#   Build subjects from untrusted values (user names, JWT claims) without ever widening access.
#   Every helper is *undefined* when its input is unsafe, so a rule that interpolates a name like
#   "*", ">", "a.b" or "alice.>" into a permission becomes undefined and the decision denies.
#   Only natively compiled wasm builtins are used (trim, split, concat, strings.replace_n, ...).
package nats.lib.subject

# Longest token we accept. NATS has no hard limit, but identities longer than this are suspicious.
max_token_length := 128

# Longest subject (with wildcards) we accept, matching NATS's default max_control_line (4 KiB).
max_subject_length := 4096

# A token is printable ASCII (0x21-0x7E) except "." (separator), "*" and ">" (wildcards): so no
# whitespace, no control characters, no Unicode separators or invisible format characters.
# Deliberately ASCII-only: an allow-list is simpler to reason about than a deny-list and avoids
# look-alike identities. Widen it only with care.
#
# _token_chars is that allow-list (the pattern `^[!-)+-\-/-=?-~]+$`), the most frequent characters
# first. token() checks it with trim(), not regex.match: trim leaves "" exactly when every character
# of s is in the list. In wasm, regex.match compiles its pattern again in every evaluation (the
# builtin cache is reset with the heap): ~7 us, then ~0.5 us per match; this trim costs ~2 us for a
# 12-character name, so it is cheaper while a policy checks up to ~3 tokens per evaluation (one
# identity, checked once or twice, as the example does).
_token_chars := "abcdefghijklmnopqrstuvwxyz0123456789-_ABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&'()+,/:;<=?@[\\]^`{|}~"

# token(s) is s when s is one safe, literal subject token; undefined otherwise.
token(s) := s if {
	is_string(s)
	s != ""
	count(s) <= max_token_length
	trim(s, _token_chars) == ""
}

# join(parts) joins safe literal tokens with "."; undefined if parts is empty or any part is
# not a safe token (so join(["_INBOX", user]) can never produce a wildcard or extra level).
join(parts) := concat(".", parts) if {
	is_array(parts)
	count(parts) > 0
	every p in parts {
		token(p)
	}
}

# under(parts) is the subject filter "<join(parts)>.>": everything strictly below a literal prefix,
# e.g. under(["_INBOX", "alice"]) == "_INBOX.alice.>".
under(parts) := concat(".", [join(parts), ">"])

# valid(s): s is a well-formed subject or subject filter: non-empty tokens, "*" only as a whole
# token, ">" only as the whole last token, no whitespace or control characters.
valid(s) if {
	is_string(s)
	count(s) <= max_subject_length
	parts := split(s, ".")
	last := count(parts) - 1
	every i, p in parts {
		_valid_part(p, i, last)
	}
}

_valid_part(p, _, _) if token(p)

_valid_part("*", _, _) := true

_valid_part(">", i, last) if i == last

# literal(s): s is a valid subject without wildcards (publishable as-is).
literal(s) if {
	valid(s)
	every p in split(s, ".") {
		token(p)
	}
}

# render_all(templates, vars) renders a set of templates at once: {template: subject}.
# Each "{name}" in a template is replaced by token(vars[name]). Undefined when any value in vars
# is not a safe token; a template is left out of the result when it uses a placeholder that is not
# in vars (or any other "{"/"}") or when the result is not well_formed. Compare the sizes to detect
# a template that did not render.
#   render_all({"_INBOX.{user}.>"}, {"user": "alice"}) == {"_INBOX.{user}.>": "_INBOX.alice.>"}
#   render_all({"_INBOX.{user}.>"}, {"user": "*"})     is undefined
#
# Cost: values are checked with token() once per call; results are checked structurally
# (well_formed: no per-character check), because those add up with many templates. Check
# template data with valid() in tests (see policies/data_test.rego).
render_all(templates, vars) := result if {
	is_object(vars)
	replacements := {_placeholder(k): t | some k, v in vars; t := token(v)}
	count(replacements) == count(vars)
	erase := {p: "" | some p, _ in replacements}
	result := {t: s | some t in templates; s := _fill(t, replacements, erase)}
}

_fill(template, replacements, erase) := result if {
	is_string(template)
	stripped := strings.replace_n(erase, template)
	not contains(stripped, "{")
	not contains(stripped, "}")
	result := strings.replace_n(replacements, template)
	well_formed(result)
}

# render(template, vars): one template, fully checked with valid(). Undefined on any problem.
#   render("_INBOX.{user}.>", {"user": "alice"}) == "_INBOX.alice.>"
#   render("_INBOX.{user}.>", {"user": "*"})     is undefined
render(template, vars) := result if {
	result := render_all({template}, vars)[template]
	valid(result)
}

# well_formed(s): the structure of valid(s) without regex: non-empty tokens, "*" only as a whole
# token, ">" only as the whole last token, no ASCII whitespace. It does not look for control or
# Unicode separator characters; valid(s) does.
well_formed(s) if {
	is_string(s)
	count(s) <= max_subject_length
	not _has_ascii_space(s)
	parts := split(s, ".")
	last := count(parts) - 1
	every i, p in parts {
		_part_shape(p, i, last)
	}
}

_has_ascii_space(s) if {
	some c in [" ", "\t", "\r", "\n"]
	contains(s, c)
}

_part_shape("*", _, _) := true

_part_shape(">", i, last) if i == last

_part_shape(p, _, _) if {
	p != ""
	not contains(p, "*")
	not contains(p, ">")
}

_placeholder(name) := concat("", ["{", name, "}"])
