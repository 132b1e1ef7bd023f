package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/iotflow/iotflow/internal/config"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/postgres"
	"github.com/iotflow/iotflow/internal/sqlite"
)

const usage = `IoTFlow: where IoT devices connect.

Usage:
  iotflow [serve]              run the service, HTTP and MQTT (the default)
  iotflow migrate              apply database migrations and exit
  iotflow init                 create the three sample devices and print their API keys
  iotflow admin create-token   mint an admin bearer token
  iotflow version              print build information
  iotflow healthcheck          exit 0 when the local service is ready (for container health checks)

Every command takes --help. Configuration comes from the environment and an
optional .env file in the working directory (the environment wins); see
'iotflow serve --help' for the variables.
`

// env bundles what a subcommand needs from the outside world.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	cmd, rest := "serve", []string{}
	if len(args) > 1 {
		cmd, rest = args[1], args[2:]
	}
	if cmd == "-h" || cmd == "-help" || cmd == "--help" {
		cmd = "help" // the program's help lists its commands; 'serve --help' has serve's
	}
	if strings.HasPrefix(cmd, "-") { // flags of the default command
		cmd, rest = "serve", args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, e, rest)
	case "migrate":
		return runMigrate(ctx, e, rest)
	case "init":
		return runInit(ctx, e, rest)
	case "admin":
		return runAdmin(ctx, e, rest)
	case "version":
		return runVersion(e, rest)
	case "healthcheck":
		return runHealthcheck(ctx, e, rest)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
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

// loadConfig reads the environment and ./.env.
func loadConfig(e env) (*config.Config, error) {
	dotenv, err := config.ReadDotEnv(".env")
	if err != nil {
		return nil, err
	}
	return config.Load(e.getenv, dotenv)
}

// database is a Store that can also migrate its schema.
type database interface {
	iotflow.Store
	iotflow.Migrator
}

// openDatabase opens PostgreSQL when configured, else the embedded SQLite
// file, and applies pending migrations.
func openDatabase(ctx context.Context, cfg *config.Config) (database, string, []int, error) {
	var (
		db   database
		desc string
		err  error
	)
	if cfg.UsesPostgres() {
		db, err = postgres.Open(ctx, cfg.DatabaseURL)
		desc = "postgres"
	} else {
		db, err = sqlite.Open(ctx, cfg.SQLitePath())
		desc = "sqlite " + cfg.SQLitePath()
	}
	if err != nil {
		return nil, "", nil, fmt.Errorf("open %s database: %w", strings.Fields(desc)[0], err)
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, "", nil, fmt.Errorf("migrate database: %w", err)
	}
	return db, desc, applied, nil
}
