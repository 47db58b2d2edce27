# Decision-log mask
# Entrypoint nats/authz/mask, used when the service sets policy.mask_entrypoint. Given the same input
# as the decision, the JSON pointers the decision log replaces with "[REDACTED]" (listed in the
# event's "masked"). The built-in masking of passwords, tokens, JWTs, signatures and nonces always
# applies as well; this rule only adds to it. See docs/policy-contract.md.
package nats.authz

# Connection names and name tags are free text chosen by clients and account operators; they often
# carry host names or e-mail addresses, which an audit trail of decisions does not need.
mask contains "/connect_opts/name" if input.connect_opts.name

mask contains "/client_info/name" if input.client_info.name

mask contains "/client_info/name_tag" if input.client_info.name_tag
