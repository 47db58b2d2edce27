// go-pubsub: a minimal nats.go client for the integration tests (test/integration/injection.test.ts).
//
//	go-pubsub -server nats://127.0.0.1:4222 -user U -pass P [-name N] -sub SUBJECT [-wait 2s]
//	go-pubsub -server ... -user U -pass P -pub SUBJECT -data TEXT
//
// Prints one line per event on stdout: "CONNECTED", "SUBSCRIBED", "MSG <subject> <data>", "PUBLISHED",
// "ERROR <text>" (an async error such as a permissions violation). A failed connection prints
// "CONNECT_ERROR <text>" and exits 2. With -sub it reads until -wait passes without a message or until
// "stop" arrives on stdin.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	server := flag.String("server", nats.DefaultURL, "server URL")
	user := flag.String("user", "", "user")
	pass := flag.String("pass", "", "password")
	name := flag.String("name", "", "connection name")
	sub := flag.String("sub", "", "subscribe to this subject")
	pub := flag.String("pub", "", "publish to this subject")
	data := flag.String("data", "", "payload for -pub")
	flag.Parse()

	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	opts := []nats.Option{
		nats.UserInfo(*user, *pass),
		nats.NoReconnect(),
		nats.Timeout(10 * time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { say("ERROR %v", err) }),
	}
	if *name != "" {
		opts = append(opts, nats.Name(*name))
	}
	nc, err := nats.Connect(*server, opts...)
	if err != nil {
		say("CONNECT_ERROR %v", err)
		os.Exit(2)
	}
	defer nc.Close()
	say("CONNECTED")

	if *sub != "" {
		_, err := nc.Subscribe(*sub, func(m *nats.Msg) { say("MSG %s %s", m.Subject, string(m.Data)) })
		if err == nil {
			err = nc.Flush()
		}
		if err != nil {
			say("ERROR %v", err)
			os.Exit(1)
		}
		say("SUBSCRIBED")
		// Run until the test says stop (or closes stdin).
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			if in.Text() == "stop" {
				break
			}
		}
		_ = nc.Flush()
	}
	if *pub != "" {
		if err := nc.Publish(*pub, []byte(*data)); err != nil {
			say("ERROR %v", err)
			os.Exit(1)
		}
		if err := nc.Flush(); err != nil {
			say("ERROR %v", err)
			os.Exit(1)
		}
		say("PUBLISHED")
	}
}
