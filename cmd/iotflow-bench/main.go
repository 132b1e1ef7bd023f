// Command iotflow-bench is IoTFlow's load generator: it drives an IoTFlow
// server (one it starts from the iotflow binary, or one at --url) and
// reports throughput, latency and what the server spent, beside a bare
// net/http handler and a durable floor of its own. It is a tool beside the
// product, not part of it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "iotflow-bench:", err)
		os.Exit(1)
	}
}
