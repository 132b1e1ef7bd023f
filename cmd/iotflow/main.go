// Command iotflow is the IoTFlow service: the device and admin HTTP API on
// PostgreSQL or an embedded SQLite database, and its management commands.
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
		fmt.Fprintln(os.Stderr, "iotflow:", err)
		os.Exit(1)
	}
}
