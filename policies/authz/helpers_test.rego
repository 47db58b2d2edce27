# Shared fixtures for the nats.authz unit tests. Test-only (excluded from production builds).
package nats.authz_test

# 2025-06-04T10:00:00Z: a Wednesday, 12:00 in Europe/Berlin (CEST).
wed_noon_berlin := 1749031200000000000

# 2025-06-07T10:00:00Z: a Saturday.
saturday := 1749290400000000000

one_second := 1000000000

# A connection as src/policy/input.ts builds it (COMMON.md §2).
conn(opts, host, ctype) := {
	"version": 1,
	"server_id": {"name": "demo-nats", "host": "127.0.0.1", "id": "NAS3LF6OGO4CVKOTHG5M2WWRBVEQDB2NOJGZKYMJHD36QSTRRJBVEX44", "version": "2.10.27"},
	"user_nkey": "UAO4LD32ZECEOHGJVMJX5TIOLZL3LZGWVOXDS7A6MNMLB3FJ2GPBB55N",
	"client_info": {"host": host, "id": 7, "user": object.get(opts, "user", ""), "name": "unit", "kind": "Client", "type": "nats"},
	"connect_opts": opts,
	"request_issuer": "ADK6GOHR3ILAHESL7QTYU52IUYCWUIG3Q2UM4DLDOT6C2GTPR5T4GE2A",
	"derived": {"connection_type": ctype, "tls": false},
}

login(user, pass) := conn({"user": user, "pass": pass}, "127.0.0.1", "STANDARD")

login_from(user, pass, host) := conn({"user": user, "pass": pass}, host, "STANDARD")

login_via(user, pass, ctype) := conn({"user": user, "pass": pass}, "127.0.0.1", ctype)

bearer(token) := conn({"auth_token": token}, "127.0.0.1", "STANDARD")

# IdP tokens minted by policies/testdata/mint-test-jwts.mjs (iss https://idp.example.test, aud nats,
# kid demo-es256-1). valid_frank: sub frank, groups [orders-team], exp 2100-01-01.
token_valid_frank := "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImRlbW8tZXMyNTYtMSJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLnRlc3QiLCJhdWQiOiJuYXRzIiwiaWF0IjoxNzQ5MDMwMDAwLCJzdWIiOiJmcmFuayIsImdyb3VwcyI6WyJvcmRlcnMtdGVhbSJdLCJleHAiOjQxMDI0NDQ4MDB9.wLbdMfFEcqEZHCmI0Mp-e0K5OvsxJaRlxY26EemxF0x1CVE3VlUnggRYXoJNQxpm5ZEDdJH_A-0MrsBn63oTFg"

# short_grace: sub grace, groups [orders-viewers, unmapped], exp 2025-06-04T10:10:00Z (1749031800).
token_short_grace := "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImRlbW8tZXMyNTYtMSJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLnRlc3QiLCJhdWQiOiJuYXRzIiwiaWF0IjoxNzQ5MDMwMDAwLCJzdWIiOiJncmFjZSIsImdyb3VwcyI6WyJvcmRlcnMtdmlld2VycyIsInVubWFwcGVkIl0sImV4cCI6MTc0OTAzMTgwMH0.Kqj0uYXSo12ADdV-6UHgjILDcp9gV3qO_uo2Gdh6BQ-oBeCyjUiTePea3RBgBMXxB_PzkEOhMhPRvPY6GOFT0A"

# expired_frank: like valid_frank, exp 2025-06-04T09:00:00Z.
token_expired_frank := "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImRlbW8tZXMyNTYtMSJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLnRlc3QiLCJhdWQiOiJuYXRzIiwiaWF0IjoxNzQ5MDI0MDAwLCJzdWIiOiJmcmFuayIsImdyb3VwcyI6WyJvcmRlcnMtdGVhbSJdLCJleHAiOjE3NDkwMjc2MDB9.LX3TgLiay0kTFqHtd4atqf39Kvfc8RhL02IbaiKFAhdh_-S5Zj03XGVrlqXOX_-QN5J4Lx5E2wc51e1yvljaIA"
