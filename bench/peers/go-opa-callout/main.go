// go-opa-callout: the system a team would build instead of nats-opa-callout — a Go auth callout on the
// official NATS libraries (github.com/nats-io/jwt/v2, nats.go, nkeys) that embeds OPA's Go SDK
// (rego.PrepareForEval) and evaluates the same policies/ directory with the same input document and the
// same decision mapping as our service (docs/policy-contract.md). It exists only for `make bench`.
//
// Per request: open xkey if sealed, decode + verify the request JWT, build the input document (version 1:
// server_id, user_nkey, client_info, connect_opts, client_tls, request_issuer, derived), evaluate
// data.nats.authz.decision with the clock frozen at the request's arrival, map allow → user JWT (account,
// name, pub/sub allow/deny, resp, expiry capped, limits, src, times, connection types, tags), deny → signed
// error, abort → no reply; sign, seal if the request was sealed, reply. One request at a time in the
// subscription callback, as callout.go's micro endpoint does.
//
// Secrets come from the environment, never argv: GO_CALLOUT_PASS, GO_CALLOUT_ISSUER_SEED, optional
// GO_CALLOUT_XKEY_SEED. Prints "ready" on stdout once the policy is prepared and the subscription is live.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/open-policy-agent/opa/v1/rego"
)

const (
	authSubject      = "$SYS.REQ.USER.AUTH"
	expectedAud      = "nats-authorization-request"
	serverXkeyHdr    = "Nats-Server-Xkey"
	defaultExpirySec = 3600
	maxExpirySec     = 86400
)

type service struct {
	issuer     nkeys.KeyPair
	xkey       nkeys.KeyPair // nil without encryption
	accounts   map[string]bool
	query      rego.PreparedEvalQuery
	allowed    atomic.Int64
	denied     atomic.Int64
	dropped    atomic.Int64
	respondErr atomic.Int64
}

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "NATS server URL (loopback)")
	user := flag.String("user", "callout", "auth user name (password from GO_CALLOUT_PASS)")
	accounts := flag.String("accounts", "APP", "comma-separated target accounts a grant may name")
	queue := flag.String("queue", "auth-callout", "queue group")
	policyDir := flag.String("policy-dir", "policies", "Rego policy directory (tests, cases/ and capabilities.json are skipped)")
	entrypoint := flag.String("entrypoint", "nats/authz/decision", "decision entrypoint (slash path)")
	flag.Parse()

	issuer, err := nkeys.FromSeed([]byte(os.Getenv("GO_CALLOUT_ISSUER_SEED")))
	if err != nil {
		fail("GO_CALLOUT_ISSUER_SEED: %v", err)
	}
	s := &service{issuer: issuer, accounts: map[string]bool{}}
	for _, a := range strings.Split(*accounts, ",") {
		if a = strings.TrimSpace(a); a != "" {
			s.accounts[a] = true
		}
	}
	if xs := os.Getenv("GO_CALLOUT_XKEY_SEED"); xs != "" {
		if s.xkey, err = nkeys.FromCurveSeed([]byte(xs)); err != nil {
			fail("GO_CALLOUT_XKEY_SEED: %v", err)
		}
	}

	query := "data." + strings.ReplaceAll(strings.Trim(*entrypoint, "/"), "/", ".")
	skip := func(abspath string, info fs.FileInfo, _ int) bool {
		name := info.Name()
		if info.IsDir() {
			return name == "cases" || name == "testdata" || strings.HasPrefix(name, ".")
		}
		return strings.HasSuffix(name, "_test.rego") || name == "capabilities.json" ||
			!(strings.HasSuffix(name, ".rego") || name == "data.json" || name == "data.yaml" || name == "data.yml")
	}
	abs, err := filepath.Abs(*policyDir)
	if err != nil {
		fail("policy dir: %v", err)
	}
	s.query, err = rego.New(rego.Query(query), rego.Load([]string{abs}, skip)).PrepareForEval(context.Background())
	if err != nil {
		fail("prepare %s: %v", query, err)
	}

	nc, err := nats.Connect(*url,
		nats.UserInfo(*user, os.Getenv("GO_CALLOUT_PASS")),
		nats.Name("go-opa-callout"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
	)
	if err != nil {
		fail("connect: %v", err)
	}
	sub, err := nc.QueueSubscribe(authSubject, *queue, s.handle)
	if err != nil {
		fail("subscribe: %v", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		fail("flush: %v", err)
	}
	fmt.Println("ready")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = nc.Drain()
	fmt.Fprintf(os.Stderr, "go-opa-callout: allowed=%d denied=%d dropped=%d respond_errors=%d\n",
		s.allowed.Load(), s.denied.Load(), s.dropped.Load(), s.respondErr.Load())
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-opa-callout: "+format+"\n", args...)
	os.Exit(2)
}

func (s *service) handle(msg *nats.Msg) {
	now := time.Now()
	data := msg.Data
	encrypted := !bytes.HasPrefix(data, []byte("eyJ"))
	if encrypted != (s.xkey != nil) {
		s.dropped.Add(1) // encryption mismatch: abort (no reply)
		return
	}
	if encrypted {
		opened, err := s.xkey.Open(data, msg.Header.Get(serverXkeyHdr))
		if err != nil {
			s.dropped.Add(1)
			return
		}
		data = opened
	}
	rc, err := jwt.DecodeAuthorizationRequestClaims(string(data))
	if err != nil || rc.Audience != expectedAud {
		s.dropped.Add(1)
		return
	}
	req := rc.AuthorizationRequest

	resp := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	resp.Audience = req.Server.ID
	resp.Expires = now.Add(10 * time.Second).Unix()
	userJWT, abort, err := s.authorize(&req, rc.Issuer, now)
	if abort {
		s.dropped.Add(1)
		return
	}
	if err != nil {
		resp.Error = err.Error()
	} else {
		resp.Jwt = userJWT
	}
	token, err := resp.Encode(s.issuer)
	if err != nil {
		s.dropped.Add(1)
		return
	}
	out := []byte(token)
	if encrypted {
		if out, err = s.xkey.Seal(out, req.Server.XKey); err != nil {
			s.dropped.Add(1)
			return
		}
	}
	if err := msg.Respond(out); err != nil {
		s.respondErr.Add(1)
		return
	}
	if resp.Jwt != "" {
		s.allowed.Add(1)
	} else {
		s.denied.Add(1)
	}
}

// input builds the version-1 input document our service gives the policy (src/policy/input.ts).
func input(req *jwt.AuthorizationRequest, requestIssuer string) (map[string]any, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	out := map[string]any{
		"version":        1,
		"server_id":      doc["server_id"],
		"user_nkey":      req.UserNkey,
		"client_info":    doc["client_info"],
		"connect_opts":   doc["connect_opts"],
		"request_issuer": requestIssuer,
		"derived": map[string]any{
			"connection_type": connectionType(req.ClientInformation.Kind, req.ClientInformation.Type),
			"tls":             req.TLS != nil,
		},
	}
	if req.TLS != nil {
		out["client_tls"] = doc["client_tls"]
	}
	return out, nil
}

func connectionType(kind, typ string) string {
	kind, typ = strings.ToLower(kind), strings.ToLower(typ)
	if kind == "leafnode" {
		if typ == "websocket" {
			return "LEAFNODE_WS"
		}
		return "LEAFNODE"
	}
	switch typ {
	case "nats":
		return "STANDARD"
	case "websocket":
		return "WEBSOCKET"
	case "mqtt":
		return "MQTT"
	case "":
		return "UNKNOWN"
	}
	return strings.ToUpper(typ)
}

// authorize evaluates the policy and maps its decision (docs/policy-contract.md §3) to a user JWT.
// Returns abort=true when the policy asks for no reply. Faults deny.
func (s *service) authorize(req *jwt.AuthorizationRequest, requestIssuer string, now time.Time) (string, bool, error) {
	in, err := input(req, requestIssuer)
	if err != nil {
		return "", false, fmt.Errorf("policy_eval_error")
	}
	rs, err := s.query.Eval(context.Background(), rego.EvalInput(in), rego.EvalTime(now))
	if err != nil || len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return "", false, fmt.Errorf("policy_eval_error")
	}
	d, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return "", false, fmt.Errorf("decision_shape_error")
	}
	reason, _ := d["reason"].(string)
	if abort, _ := d["abort"].(bool); abort {
		return "", true, nil
	}
	if allow, _ := d["allow"].(bool); !allow {
		if reason == "" {
			reason = "denied_by_policy"
		}
		return "", false, fmt.Errorf("%s", reason)
	}
	account, _ := d["account"].(string)
	if !s.accounts[account] {
		return "", false, fmt.Errorf("account_not_allowed")
	}

	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Audience = account
	if name, ok := d["name"].(string); ok {
		uc.Name = name
	} else {
		uc.Name = req.ConnectOptions.Username
	}
	exp := float64(defaultExpirySec)
	if e, ok := d["expires_in"].(json.Number); ok {
		exp, _ = e.Float64()
	} else if e, ok := d["expires_in"].(float64); ok {
		exp = e
	}
	if exp > maxExpirySec {
		exp = maxExpirySec
	}
	uc.Expires = now.Add(time.Duration(exp * float64(time.Second))).Unix()
	// Deny by default: a side without an allow list gets deny ">" (no permissions would mean allow all).
	perm := func(v any, p *jwt.Permission) {
		m, _ := v.(map[string]any)
		for _, s := range strings_(m["allow"]) {
			p.Allow.Add(s)
		}
		for _, s := range strings_(m["deny"]) {
			p.Deny.Add(s)
		}
		if len(p.Allow) == 0 {
			p.Deny.Add(">")
		}
	}
	perm(d["pub"], &uc.Pub)
	perm(d["sub"], &uc.Sub)
	if r, ok := d["resp"].(map[string]any); ok {
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: int(num(r["max"])), Expires: time.Duration(num(r["ttl_ms"])) * time.Millisecond}
	}
	uc.Limits.Subs = int64(numOr(d["subs"], -1))
	uc.Limits.Data = int64(numOr(d["data"], -1))
	uc.Limits.Payload = int64(numOr(d["payload"], -1))
	for _, c := range strings_(d["src"]) {
		uc.Limits.Src.Set(c)
	}
	if t, ok := d["times"].([]any); ok {
		for _, w := range t {
			m, _ := w.(map[string]any)
			start, _ := m["start"].(string)
			end, _ := m["end"].(string)
			uc.Limits.Times = append(uc.Limits.Times, jwt.TimeRange{Start: start, End: end})
		}
	}
	if loc, ok := d["times_location"].(string); ok {
		uc.Limits.Locale = loc
	}
	for _, c := range strings_(d["allowed_connection_types"]) {
		uc.AllowedConnectionTypes.Add(c)
	}
	if b, ok := d["bearer_token"].(bool); ok {
		uc.BearerToken = b
	}
	for _, t := range strings_(d["tags"]) {
		uc.Tags.Add(t)
	}
	token, err := uc.Encode(s.issuer)
	if err != nil {
		return "", false, fmt.Errorf("response_encode_error")
	}
	return token, false, nil
}

func strings_(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func num(v any) float64 {
	switch n := v.(type) {
	case json.Number:
		f, _ := n.Float64()
		return f
	case float64:
		return n
	case int:
		return float64(n)
	case int64:
		return float64(n)
	}
	return 0
}

func numOr(v any, def float64) float64 {
	if v == nil {
		return def
	}
	return num(v)
}
