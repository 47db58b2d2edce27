// reconnect: holds N client connections (user/password, reconnect forever) so a benchmark can restart
// nats-server under them and measure how fast every client is authorized again.
//
// Protocol on stdout, one JSON line each:
//  1. {"phase":"connected","ok":…,"failed":…,"errors":{…}} once every initial connect finished;
//  2. {"phase":"reconnected",…} once every connection that was up has reconnected (or -wait ran out after the
//     first disconnect): absolute unix-ms timestamps of the first disconnect and of the last reconnect, per-
//     connection reconnect latency quantiles (from its own disconnect), the async errors seen while
//     reconnecting (authorization failures, timeouts) by message, and how many never came back.
//
// The password comes from STORM_PASS (never argv); -users K spreads "<user><i mod K>" with "{i}" in the
// password replaced likewise. Clients retry with nats.go's reconnect wait and jitter and never give up on
// authorization errors (IgnoreAuthErrorAbort), as a long-lived production client should.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type connected struct {
	Phase  string         `json:"phase"`
	OK     int            `json:"ok"`
	Failed int            `json:"failed"`
	Errors map[string]int `json:"errors"`
}

type reconnected struct {
	Phase            string         `json:"phase"`
	Up               int            `json:"up"`
	Reconnected      int            `json:"reconnected"`
	Missing          int            `json:"missing"`
	FirstDisconnect  int64          `json:"first_disconnect_unix_ms"`
	LastReconnect    int64          `json:"last_reconnect_unix_ms"`
	P50Ms            float64        `json:"p50_ms"`
	P99Ms            float64        `json:"p99_ms"`
	MaxMs            float64        `json:"max_ms"`
	ReconnectErrors  map[string]int `json:"reconnect_errors"`
	ReconnectAttempt int64          `json:"reconnect_attempts"`
}

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "server URL (loopback)")
	n := flag.Int("n", 1000, "connections")
	c := flag.Int("c", 50, "concurrency of the initial connects")
	user := flag.String("user", "bench", "user name (or prefix with -users)")
	users := flag.Int("users", 0, "distinct users (0 = one user)")
	wait := flag.Duration("wait", 120*time.Second, "give up this long after the first disconnect")
	flag.Parse()
	pass := os.Getenv("STORM_PASS")

	var mu sync.Mutex
	disconnectedAt := make([]time.Time, *n)
	reconnectedAt := make([]time.Time, *n)
	reconnectErrs := map[string]int{}
	var attempts atomic.Int64
	var firstDisconnect atomic.Int64
	done := make(chan struct{}, *n)

	conns := make([]*nats.Conn, *n)
	errs := make([]string, *n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				u, p := *user, pass
				if *users > 0 {
					k := strconv.Itoa(i % *users)
					u += k
					p = strings.ReplaceAll(p, "{i}", k)
				}
				idx := i
				nc, err := nats.Connect(*url, nats.UserInfo(u, p), nats.Name("reconnect"),
					nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
					nats.ReconnectJitter(250*time.Millisecond, 250*time.Millisecond),
					nats.IgnoreAuthErrorAbort(), nats.Timeout(10*time.Second),
					nats.DisconnectErrHandler(func(*nats.Conn, error) {
						now := time.Now()
						firstDisconnect.CompareAndSwap(0, now.UnixMilli())
						mu.Lock()
						if disconnectedAt[idx].IsZero() {
							disconnectedAt[idx] = now
						}
						mu.Unlock()
					}),
					nats.ReconnectHandler(func(*nats.Conn) {
						mu.Lock()
						first := reconnectedAt[idx].IsZero()
						if first {
							reconnectedAt[idx] = time.Now()
						}
						mu.Unlock()
						if first {
							done <- struct{}{}
						}
					}),
					nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
						attempts.Add(1)
						mu.Lock()
						reconnectErrs[errText(err)]++
						mu.Unlock()
					}),
				)
				if err != nil {
					errs[idx] = errText(err)
					continue
				}
				conns[idx] = nc
			}
		}()
	}
	for i := 0; i < *n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	cr := connected{Phase: "connected", Errors: map[string]int{}}
	for i := 0; i < *n; i++ {
		if errs[i] != "" {
			cr.Failed++
			cr.Errors[errs[i]]++
		} else {
			cr.OK++
		}
	}
	emit(cr)

	// Wait for every live connection to reconnect once, or for -wait after the first disconnect.
	got := 0
	var deadline <-chan time.Time
	tick := time.NewTicker(100 * time.Millisecond)
	for got < cr.OK {
		select {
		case <-done:
			got++
		case <-tick.C:
			if deadline == nil && firstDisconnect.Load() != 0 {
				deadline = time.After(*wait)
			}
		case <-deadline:
			got = cr.OK // give up
		}
	}
	tick.Stop()

	mu.Lock()
	rr := reconnected{Phase: "reconnected", Up: cr.OK, FirstDisconnect: firstDisconnect.Load(),
		ReconnectErrors: reconnectErrs, ReconnectAttempt: attempts.Load()}
	lat := make([]time.Duration, 0, cr.OK)
	for i := 0; i < *n; i++ {
		if conns[i] == nil {
			continue
		}
		if reconnectedAt[i].IsZero() {
			rr.Missing++
			continue
		}
		rr.Reconnected++
		if ms := reconnectedAt[i].UnixMilli(); ms > rr.LastReconnect {
			rr.LastReconnect = ms
		}
		if !disconnectedAt[i].IsZero() {
			lat = append(lat, reconnectedAt[i].Sub(disconnectedAt[i]))
		}
	}
	mu.Unlock()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	rr.P50Ms, rr.P99Ms, rr.MaxMs = q(0.5), q(0.99), q(1)
	emit(rr)
	for _, nc := range conns {
		if nc != nil {
			nc.Close()
		}
	}
}

func emit(v any) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

var socketAddr = regexp.MustCompile(`\[?[0-9a-fA-F.:]+\]?:\d+`)

// errText trims an error to its message class (no secrets: nats.go errors carry none); socket addresses are
// replaced so one kind of failure counts as one entry.
func errText(err error) string {
	s := socketAddr.ReplaceAllString(err.Error(), "<addr>")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
