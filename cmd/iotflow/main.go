// Command iotflow is the IoTFlow service: the device and admin HTTP API on
// PostgreSQL or an embedded SQLite database, and its management commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "iotflow:", describe(err))
		os.Exit(1)
	}
}

// describe is what a person reads of an error that ends a command: the
// message of an application error (a name taken, a value refused), else
// the error with its context.
func describe(err error) string {
	var ae *iotflow.Error
	if errors.As(err, &ae) && ae.Code != iotflow.EINTERNAL && ae.Message != "" {
		return ae.Message
	}
	return err.Error()
}
