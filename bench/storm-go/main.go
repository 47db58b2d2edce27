// storm: a connect-storm load generator. N client connections at concurrency C, each
// connect (user/password, no reconnect) -> authorized (the handshake's PONG) -> close.
// Prints one JSON line: counts, failures by message, elapsed time, rate, and latency quantiles.
//
// The password comes from STORM_PASS (never argv). With -users K > 0 the user name is
// "<user><i mod K>" and every "{i}" in STORM_PASS is replaced by the same number.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

type result struct {
	N         int            `json:"n"`
	OK        int            `json:"ok"`
	Failed    int            `json:"failed"`
	Errors    map[string]int `json:"errors"`
	ElapsedS  float64        `json:"elapsed_s"`
	Rate      float64        `json:"rate"`
	P50Ms     float64        `json:"p50_ms"`
	P90Ms     float64        `json:"p90_ms"`
	P99Ms     float64        `json:"p99_ms"`
	MaxMs     float64        `json:"max_ms"`
	DriverCPU float64        `json:"driver_cpu_s"`
}

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "server URL (loopback)")
	n := flag.Int("n", 2000, "connections")
	c := flag.Int("c", 50, "concurrency")
	user := flag.String("user", "bench", "user name (or prefix with -users)")
	users := flag.Int("users", 0, "distinct users (0 = one user)")
	timeout := flag.Duration("timeout", 10*time.Second, "per-connect timeout")
	flag.Parse()
	pass := os.Getenv("STORM_PASS")

	jobs := make(chan int)
	lat := make([]time.Duration, *n)
	errs := make([]string, *n)
	var wg sync.WaitGroup
	start := time.Now()
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
				t0 := time.Now()
				nc, err := nats.Connect(*url, nats.UserInfo(u, p), nats.NoReconnect(),
					nats.Timeout(*timeout), nats.Name("storm"))
				lat[i] = time.Since(t0)
				if err != nil {
					errs[i] = err.Error()
					continue
				}
				nc.Close()
			}
		}()
	}
	for i := 0; i < *n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)

	r := result{N: *n, Errors: map[string]int{}, ElapsedS: elapsed.Seconds()}
	okLat := make([]time.Duration, 0, *n)
	for i := 0; i < *n; i++ {
		if errs[i] != "" {
			r.Failed++
			r.Errors[errs[i]]++
		} else {
			r.OK++
			okLat = append(okLat, lat[i])
		}
	}
	r.Rate = float64(r.OK) / elapsed.Seconds()
	sort.Slice(okLat, func(a, b int) bool { return okLat[a] < okLat[b] })
	q := func(p float64) float64 {
		if len(okLat) == 0 {
			return 0
		}
		idx := int(p * float64(len(okLat)-1))
		return float64(okLat[idx].Microseconds()) / 1000
	}
	r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs = q(0.5), q(0.9), q(0.99), q(1)
	r.DriverCPU = selfCPU()
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

// selfCPU reads utime+stime of this process from /proc/self/stat (clock ticks, 100/s on Linux).
func selfCPU() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}
