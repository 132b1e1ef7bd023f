package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// env bundles what a subcommand needs from the outside world.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	var rest []string
	if len(args) > 1 {
		rest = args[1:]
	}
	if len(rest) > 0 {
		switch rest[0] {
		case "query":
			return runQuery(ctx, e, rest[1:])
		case "series":
			return runSeries(ctx, e, rest[1:])
		case "downlink":
			return runDownlink(ctx, e, rest[1:])
		case "mqtt":
			return runMQTT(ctx, e, rest[1:])
		case "simulate":
			return runSimulate(ctx, e, rest[1:])
		// The bench's own targets, started by it as child processes.
		case "serve-baseline":
			return runBaselineServer(ctx, e)
		case "serve-floor":
			return runFloorServer(ctx, e)
		}
	}
	return runBench(ctx, e, rest)
}

// parseFlags parses a subcommand's flags; help returns errHelp after
// printing the usage to stdout.
func parseFlags(fs *flag.FlagSet, e env, args []string, text string) error {
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(e.stdout, text)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// errHelp ends a command successfully after --help.
var errHelp = errors.New("help shown")

func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
