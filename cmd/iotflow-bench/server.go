package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// serverFlags say how to start the IoTFlow server under test when no --url
// is given.
type serverFlags struct {
	server   string    // the iotflow binary; "" to look for one
	database string    // DATABASE_URL of the server; "" for its embedded SQLite
	env      multiFlag // further NAME=VALUE entries of its environment
}

func (f *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", "", "the iotflow binary to start without --url (default: iotflow beside iotflow-bench, else in PATH)")
	fs.StringVar(&f.database, "database", "", "PostgreSQL URL for the started server (default: its embedded SQLite in a temporary directory)")
	fs.Var(&f.env, "server-env", "NAME=VALUE for the started server (repeatable), e.g. IOTFLOW_WRITE_BATCH=1")
}

// check refuses server flags beside --url: they would be ignored.
func (f *serverFlags) check(url string) error {
	if url != "" && (f.server != "" || f.database != "" || len(f.env) > 0) {
		return errors.New("--server, --database and --server-env configure the server iotflow-bench starts; they do not apply with --url")
	}
	return nil
}

// iotflowServer is an 'iotflow serve' started by the bench.
type iotflowServer struct {
	cmd     *exec.Cmd
	dir     string // its working directory, data directory included
	url     string
	storage string // as the server announced it: sqlite or postgres
	token   string // its admin token
}

// serveRE finds the address and the storage in the line serve prints once
// it listens.
var serveRE = regexp.MustCompile(`listening on (http://\S+)(?: \(storage: (\w+))?`)

// startServer starts 'iotflow serve' in a fresh temporary directory with a
// clean environment: see serverCommand.
func startServer(ctx context.Context, e env, f serverFlags) (*iotflowServer, error) {
	bin, err := findServer(f.server)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "iotflow-bench-")
	if err != nil {
		return nil, err
	}
	s := &iotflowServer{dir: dir, token: "bench-" + randomHex(16)}
	s.cmd = serverCommand(bin, dir, s.token, f, e.getenv("PATH"))
	m, err := start(ctx, s.cmd, e.stderr, serveRE)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	s.url, s.storage = m[1], cmp.Or(m[2], "storage unknown")
	return s, nil
}

func (s *iotflowServer) pid() int { return s.cmd.Process.Pid }

// stop ends the server and removes its directory.
func (s *iotflowServer) stop() {
	stopChild(s.cmd)
	os.RemoveAll(s.dir)
}

// serverCommand is 'bin serve' with an explicit environment and dir as its
// working directory. Nothing of the caller's environment reaches it but
// PATH: a DATABASE_URL or DB_HOST exported for other work must not bring
// the benchmark's devices into that database, and a .env file where the
// bench is run must not configure the server (serve reads ./.env). Its
// database is f.database, else the embedded SQLite under dir.
func serverCommand(bin, dir, token string, f serverFlags, path string) *exec.Cmd {
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = []string{
		"HOST=127.0.0.1", "PORT=0", "LOG_FILE=off", "LOG_LEVEL=WARNING",
		"IOTFLOW_MQTT_ADDR=127.0.0.1:0", // a free port: 1883 may be another broker's
		"IOTFLOW_DATA_DIR=" + filepath.Join(dir, "data"), "IOTFLOW_ADMIN_TOKEN=" + token,
		// The load comes from one address and a hundred devices far faster
		// than any device would send: the rate limits are lifted, the
		// backlog allowance of batches included.
		"RATE_LIMIT_PER_MINUTE=100000000", "TELEMETRY_RATE_LIMIT_PER_MINUTE=100000000",
		"IOTFLOW_BACKLOG_RATE_LIMIT_PER_HOUR=1000000000",
		"IOTFLOW_REGISTER_RATE_LIMIT_PER_MINUTE=100000000", "IOTFLOW_ADMIN_RATE_LIMIT_PER_MINUTE=100000000",
	}
	if path != "" {
		cmd.Env = append(cmd.Env, "PATH="+path)
	}
	if f.database != "" {
		cmd.Env = append(cmd.Env, "DATABASE_URL="+f.database)
	}
	cmd.Env = append(cmd.Env, f.env...) // last wins
	return cmd
}

// findServer returns the iotflow executable to start: the one named by
// --server, else an iotflow beside this program, else iotflow in PATH.
func findServer(named string) (string, error) {
	if named != "" {
		path, err := exec.LookPath(named)
		if err != nil {
			return "", fmt.Errorf("--server: %w", err)
		}
		return filepath.Abs(path)
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "iotflow")
		if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return beside, nil
		}
	}
	if path, err := exec.LookPath("iotflow"); err == nil {
		return filepath.Abs(path)
	}
	return "", errors.New("no iotflow server binary beside iotflow-bench or in PATH: build it with " +
		"'go build -o iotflow ./cmd/iotflow' and name it with --server, or give --url")
}

// floorDatabaseEnv carries the floor's database to its process.
const floorDatabaseEnv = "IOTFLOW_BENCH_FLOOR_DATABASE"

// targetCommand is one of the bench's own targets ("baseline" or "floor":
// iotflow-bench serve-NAME), with only env as its environment.
func targetCommand(self, name string, env []string) *exec.Cmd {
	cmd := exec.Command(self, "serve-"+name)
	cmd.Env = append([]string{}, env...) // never nil: nil would inherit ours
	cmd.Dir = os.TempDir()
	return cmd
}

// spawnTarget starts one of the bench's own targets and returns it with
// the address that serveTarget announces.
func spawnTarget(ctx context.Context, e env, name string, env []string) (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := targetCommand(self, name, env)
	m, err := start(ctx, cmd, e.stderr, regexp.MustCompile(regexp.QuoteMeta(name)+` listening on (http://\S+)`))
	if err != nil {
		return nil, "", fmt.Errorf("start the %s: %w", name, err)
	}
	return cmd, m[1], nil
}

// start starts cmd and waits for a line of its stdout that addrRE
// matches, and returns the match; the rest of stdout is discarded.
func start(ctx context.Context, cmd *exec.Cmd, stderr io.Writer, addrRE *regexp.Regexp) ([]string, error) {
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m:
				default:
				}
			}
		}
		close(found) // stdout ended: the process is gone
	}()
	select {
	case m, ok := <-found:
		if ok {
			return m, nil
		}
		err = errors.New("it exited before listening")
	case <-time.After(30 * time.Second):
		err = errors.New("it did not listen within 30s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	stopChild(cmd)
	return nil, err
}

func stopChild(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
