// go-callout: a minimal NATS auth callout service built directly on the official Go libraries
// (github.com/nats-io/jwt/v2, github.com/nats-io/nats.go, github.com/nats-io/nkeys) — the same
// libraries synadia-io/callout.go wraps. It stands in for callout.go in the benchmarks because
// callout.go itself cannot be fetched here (see docs/benchmarks.md).
//
// It performs the same steps per request as callout.go's ServiceHandler: detect/open xkey,
// decode + verify the request JWT, check the audience, run a trivial allow handler (explicit
// pub/sub permissions, bounded exp), encode the user JWT, decode + validate it again (callout.go
// does this as a debugging aid), build and sign the response, seal it if the request was sealed,
// and reply. Requests are handled in the subscription callback, one at a time, as callout.go's
// micro endpoint does.
//
// Secrets come from the environment, never argv: GO_CALLOUT_PASS, GO_CALLOUT_ISSUER_SEED,
// optional GO_CALLOUT_XKEY_SEED. Prints "ready" on stdout once subscribed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

const (
	authSubject    = "$SYS.REQ.USER.AUTH"
	expectedAud    = "nats-authorization-request"
	serverXkeyHdr  = "Nats-Server-Xkey"
	userJWTSeconds = 3600
)

type service struct {
	issuer     nkeys.KeyPair
	xkey       nkeys.KeyPair // nil without encryption
	account    string
	validate   bool
	allowed    atomic.Int64
	dropped    atomic.Int64
	respondErr atomic.Int64
}

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "NATS server URL (loopback)")
	user := flag.String("user", "callout", "auth user name (password from GO_CALLOUT_PASS)")
	account := flag.String("account", "APP", "target account name (config mode)")
	queue := flag.String("queue", "auth-callout", "queue group")
	validate := flag.Bool("validate", true, "decode+validate each issued user JWT, as callout.go does")
	flag.Parse()

	issuer, err := nkeys.FromSeed([]byte(os.Getenv("GO_CALLOUT_ISSUER_SEED")))
	if err != nil {
		fail("GO_CALLOUT_ISSUER_SEED: %v", err)
	}
	s := &service{issuer: issuer, account: *account, validate: *validate}
	if xs := os.Getenv("GO_CALLOUT_XKEY_SEED"); xs != "" {
		if s.xkey, err = nkeys.FromCurveSeed([]byte(xs)); err != nil {
			fail("GO_CALLOUT_XKEY_SEED: %v", err)
		}
	}

	nc, err := nats.Connect(*url,
		nats.UserInfo(*user, os.Getenv("GO_CALLOUT_PASS")),
		nats.Name("go-callout"),
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
	fmt.Fprintf(os.Stderr, "go-callout: allowed=%d dropped=%d respond_errors=%d\n",
		s.allowed.Load(), s.dropped.Load(), s.respondErr.Load())
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-callout: "+format+"\n", args...)
	os.Exit(2)
}

func (s *service) handle(msg *nats.Msg) {
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
	resp.Expires = time.Now().Add(10 * time.Second).Unix()
	if userJWT, err := s.authorize(&req); err != nil {
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
	}
}

// authorize is the trivial allow handler: every user lands in the target account with explicit
// permissions and a bounded expiry.
func (s *service) authorize(req *jwt.AuthorizationRequest) (string, error) {
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Audience = s.account
	uc.Name = req.ConnectOptions.Username
	uc.Expires = time.Now().Add(userJWTSeconds * time.Second).Unix()
	uc.Pub.Allow.Add(">")
	uc.Sub.Allow.Add(">")
	token, err := uc.Encode(s.issuer)
	if err != nil {
		return "", err
	}
	if s.validate {
		dc, err := jwt.DecodeUserClaims(token)
		if err != nil {
			return "", err
		}
		vr := &jwt.ValidationResults{}
		dc.Validate(vr)
		if errs := vr.Errors(); len(errs) > 0 {
			return "", errs[0]
		}
	}
	return token, nil
}
