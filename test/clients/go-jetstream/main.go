// go-jetstream: a nats.go client for test/integration/jetstream.test.ts. It logs in through the auth
// callout (user/password, plus sentinel creds in operator mode), with the custom inbox prefix the library
// grants (nats.CustomInboxPrefix), runs the operations it reads as JSON on stdin with nats.go, and writes
// one JSON result per operation to stdout. The test decides what each outcome must be; this program only
// reports what the server answered. Operation kinds:
//
//	request    nc.RequestMsg(subject, body, headers)              (raw JetStream API requests)
//	publish    jetstream.Publish(subject, body, headers), pub ack   (KV put/delete, stream publish)
//	subscribe  nc.SubscribeSync(subject) + flush                    (does the server accept the interest?)
//	watch      legacy js.Subscribe(filter, OrderedConsumer, BindStream(stream)); first message
//
// Outcomes: "ok" (detail: body), "permission" (the server refused the publish or subscription),
// "api_error" (JetStream error JSON), "status" (a status header such as 404/408), "timeout", "error".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type op struct {
	Name    string            `json:"name"`
	Kind    string            `json:"kind"`
	Subject string            `json:"subject"`
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers"`
	Stream  string            `json:"stream"`
}

type input struct {
	URL   string `json:"url"`
	User  string `json:"user"`
	Pass  string `json:"pass"`
	Creds string `json:"creds"`
	Inbox string `json:"inbox"`
	Ops   []op   `json:"ops"`
}

type result struct {
	Name    string `json:"name"`
	Outcome string `json:"outcome"`
	Detail  string `json:"detail"`
	Millis  int64  `json:"ms"`
}

const wait = 3 * time.Second

// permissions remembers every permissions violation the server reported, by subject.
type permissions struct {
	mu   sync.Mutex
	seen []string
}

func (p *permissions) add(err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, err.Error())
}

// waitFor polls until the server reported a permissions violation for subject, or wait passes.
func (p *permissions) waitFor(subject string) bool {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if p.sawLike(`"` + subject + `"`) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func isPermission(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation"))
}

func classify(msg *nats.Msg) result {
	if code := msg.Header.Get("Status"); code != "" {
		return result{Outcome: "status", Detail: code + " " + msg.Header.Get("Description")}
	}
	var api struct {
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if json.Unmarshal(msg.Data, &api) == nil && api.Error != nil {
		return result{Outcome: "api_error", Detail: fmt.Sprintf("%d %s", api.Error.ErrCode, api.Error.Description)}
	}
	return result{Outcome: "ok", Detail: string(msg.Data)}
}

// sawLike reports whether a permissions violation mentioning part was reported.
func (p *permissions) sawLike(part string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.seen {
		if strings.Contains(strings.ToLower(s), "permissions violation") && strings.Contains(s, part) {
			return true
		}
	}
	return false
}

func run(nc *nats.Conn, js jetstream.JetStream, legacy nats.JetStreamContext, perms *permissions, o op) result {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// nats.go reports a refused publish asynchronously (ErrorHandler): stop waiting as soon as it arrives.
	watchFor := `"` + o.Subject + `"`
	if o.Kind == "watch" {
		watchFor = "CONSUMER.CREATE." + o.Stream
	}
	go func() {
		for ctx.Err() == nil {
			if perms.sawLike(watchFor) {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	refused := func() bool { return perms.sawLike(watchFor) }
	msg := nats.NewMsg(o.Subject)
	msg.Data = []byte(o.Body)
	for k, v := range o.Headers {
		msg.Header.Set(k, v)
	}
	switch o.Kind {
	case "request":
		resp, err := nc.RequestMsgWithContext(ctx, msg)
		if err != nil {
			if isPermission(err) || refused() {
				return result{Outcome: "permission", Detail: err.Error()}
			}
			return result{Outcome: "timeout", Detail: err.Error()}
		}
		return classify(resp)
	case "publish":
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			if isPermission(err) || refused() {
				return result{Outcome: "permission", Detail: err.Error()}
			}
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) {
				return result{Outcome: "api_error", Detail: fmt.Sprintf("%d %s", apiErr.ErrorCode, apiErr.Description)}
			}
			return result{Outcome: "error", Detail: err.Error()}
		}
		return result{Outcome: "ok", Detail: fmt.Sprintf("%s seq %d", ack.Stream, ack.Sequence)}
	case "subscribe":
		sub, err := nc.SubscribeSync(o.Subject)
		if err != nil {
			return result{Outcome: "error", Detail: err.Error()}
		}
		defer sub.Unsubscribe()
		if err := nc.Flush(); err != nil {
			return result{Outcome: "error", Detail: err.Error()}
		}
		// The server answers a refused SUB with an -ERR; a PING/PONG after it proves nothing arrived
		// yet, so wait for the error itself (bounded) only when it is expected to come.
		if perms.waitFor(o.Subject) {
			return result{Outcome: "permission", Detail: "subscription refused"}
		}
		return result{Outcome: "ok", Detail: "subscribed"}
	case "watch":
		got := make(chan *nats.Msg, 1)
		sub, err := legacy.Subscribe(o.Subject, func(m *nats.Msg) {
			select {
			case got <- m:
			default:
			}
		}, nats.OrderedConsumer(), nats.BindStream(o.Stream), nats.DeliverLastPerSubject())
		if err != nil {
			if isPermission(err) || refused() {
				return result{Outcome: "permission", Detail: err.Error()}
			}
			var apiErr *nats.APIError
			if errors.As(err, &apiErr) {
				return result{Outcome: "api_error", Detail: fmt.Sprintf("%d %s", apiErr.ErrorCode, apiErr.Description)}
			}
			return result{Outcome: "error", Detail: err.Error()}
		}
		// No Unsubscribe: for an ephemeral consumer it sends CONSUMER.DELETE, which the grant does not include
		// (nats.go would wait out its timeout). The server removes the consumer once the connection is gone.
		_ = sub
		select {
		case m := <-got:
			return result{Outcome: "ok", Detail: string(m.Data)}
		case <-ctx.Done():
			if refused() {
				return result{Outcome: "permission", Detail: "consumer create refused"}
			}
			return result{Outcome: "timeout", Detail: "no message"}
		}
	}
	return result{Outcome: "error", Detail: "unknown kind " + o.Kind}
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "stdin:", err)
		os.Exit(2)
	}
	perms := &permissions{}
	opts := []nats.Option{
		nats.UserInfo(in.User, in.Pass),
		nats.CustomInboxPrefix(in.Inbox),
		nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { perms.add(err) }),
	}
	if in.Creds != "" {
		// Operator mode: the sentinel's JWT and nkey reach the callout; user/password travel with it.
		opts = append(opts, nats.UserCredentials(in.Creds))
	}
	nc, err := nats.Connect(in.URL, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jetstream:", err)
		os.Exit(1)
	}
	legacy, err := nc.JetStream()
	if err != nil {
		fmt.Fprintln(os.Stderr, "legacy jetstream:", err)
		os.Exit(1)
	}
	out := make([]result, 0, len(in.Ops))
	for _, o := range in.Ops {
		start := time.Now()
		r := run(nc, js, legacy, perms, o)
		r.Name = o.Name
		r.Millis = time.Since(start).Milliseconds()
		out = append(out, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "stdout:", err)
		os.Exit(1)
	}
}
