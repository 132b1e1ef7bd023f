package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// fakeServerEnv, in a child's environment, makes this test binary a fake
// 'iotflow serve': it writes its environment and working directory to the
// file the variable names, announces an address like serve and waits for
// SIGTERM.
const fakeServerEnv = "IOTFLOW_BENCH_FAKE_SERVER"

func TestMain(m *testing.M) {
	if report := os.Getenv(fakeServerEnv); report != "" {
		os.Exit(fakeServer(report))
	}
	os.Exit(m.Run())
}

type fakeReport struct {
	Args []string
	Env  []string
	Dir  string
}

func fakeServer(report string) int {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	dir, _ := os.Getwd()
	b, _ := json.Marshal(fakeReport{Args: os.Args[1:], Env: os.Environ(), Dir: dir})
	if err := os.WriteFile(report, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("IoTFlow fake listening on http://127.0.0.1:9 (storage: fake)")
	<-stop
	return 0
}

// startFake starts this test binary as the server, with the caller's
// environment (DATABASE_URL and all) as getenv, and returns what the child
// saw of its world.
func startFake(t *testing.T, f serverFlags) (*iotflowServer, fakeReport) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	f.server = self
	f.env = append(f.env, fakeServerEnv+"="+report)
	srv, err := startServer(context.Background(), env{getenv: os.Getenv, stdout: io.Discard, stderr: os.Stderr}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	var r fakeReport
	b, err := os.ReadFile(report)
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil {
		t.Fatal(err)
	}
	return srv, r
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// TestServerEnvironmentIsClean: the server the bench starts sees none of
// the caller's environment but PATH, so a DATABASE_URL exported for other
// work does not reach it, and runs in a fresh directory, so the caller's
// .env is not read.
func TestServerEnvironmentIsClean(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	if err := os.WriteFile(".env", []byte("DATABASE_URL=postgres://dotenv@127.0.0.1:1/production\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", "postgres://env@127.0.0.1:1/production")
	t.Setenv("DB_HOST", "production.example")
	t.Setenv("REDIS_URL", "redis://production.example:6379")

	srv, r := startFake(t, serverFlags{env: multiFlag{"IOTFLOW_WRITE_BATCH=1", "LOG_LEVEL=ERROR"}})
	if srv.url != "http://127.0.0.1:9" || srv.storage != "fake" {
		t.Errorf("announced %q (storage %q)", srv.url, srv.storage)
	}
	if !slices.Equal(r.Args, []string{"serve"}) {
		t.Errorf("args %q, want serve", r.Args)
	}
	got := envMap(r.Env)
	want := map[string]string{
		"HOST": "127.0.0.1", "PORT": "0", "LOG_FILE": "off", "LOG_LEVEL": "ERROR", // --server-env wins
		"IOTFLOW_MQTT_ADDR": "127.0.0.1:0", // never the machine's own broker's port
		"IOTFLOW_DATA_DIR":  filepath.Join(srv.dir, "data"), "IOTFLOW_ADMIN_TOKEN": srv.token,
		"RATE_LIMIT_PER_MINUTE": "100000000", "TELEMETRY_RATE_LIMIT_PER_MINUTE": "100000000",
		"IOTFLOW_BACKLOG_RATE_LIMIT_PER_HOUR":    "1000000000",
		"IOTFLOW_REGISTER_RATE_LIMIT_PER_MINUTE": "100000000", "IOTFLOW_ADMIN_RATE_LIMIT_PER_MINUTE": "100000000",
		"IOTFLOW_WRITE_BATCH": "1", fakeServerEnv: got[fakeServerEnv],
	}
	if p := os.Getenv("PATH"); p != "" {
		want["PATH"] = p
	}
	for k, v := range got {
		if want[k] != v {
			t.Errorf("the server got %s=%q", k, v)
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("the server lacks %s=%q (has %q)", k, v, got[k])
		}
	}
	if dir, _ := filepath.EvalSymlinks(r.Dir); dir == work || r.Dir != srv.dir {
		t.Errorf("the server ran in %s, want its own temporary directory %s", r.Dir, srv.dir)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, ".env")); err == nil {
		t.Error("the server's directory has a .env")
	}
	srv.stop()
	if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
		t.Errorf("the server's directory outlived it: %v", err)
	}
}

// TestServerDatabaseComesFromTheFlag: --database, and only it, gives the
// server its DATABASE_URL.
func TestServerDatabaseComesFromTheFlag(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://env@127.0.0.1:1/production")
	const bench = "postgres://bench@127.0.0.1:1/iotflow_bench"
	_, r := startFake(t, serverFlags{database: bench})
	if got := envMap(r.Env)["DATABASE_URL"]; got != bench {
		t.Errorf("DATABASE_URL=%q, want --database's %q", got, bench)
	}
}

// TestTargetEnvironmentIsClean: the bench's own targets get exactly the
// environment the bench names, never an inherited one.
func TestTargetEnvironmentIsClean(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://env@127.0.0.1:1/production")
	for _, env := range [][]string{nil, {floorDatabaseEnv + "=postgres://floor@127.0.0.1:1/bench"}} {
		cmd := targetCommand("/bin/iotflow-bench", "floor", env)
		if cmd.Env == nil || !slices.Equal(cmd.Env, append([]string{}, env...)) {
			t.Errorf("env %q: the target gets %q", env, cmd.Env)
		}
		if !slices.Equal(cmd.Args, []string{"/bin/iotflow-bench", "serve-floor"}) {
			t.Errorf("args %q", cmd.Args)
		}
	}
}

// TestServerBinary: --server names the binary; without one found, the
// error says how to build it.
func TestServerBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := findServer(""); err == nil || !strings.Contains(err.Error(), "go build -o iotflow ./cmd/iotflow") {
		t.Errorf("no server: err %v, want one saying how to build it", err)
	}
	if _, err := findServer(filepath.Join(t.TempDir(), "iotflow")); err == nil {
		t.Error("a --server that does not exist was accepted")
	}
	self, _ := os.Executable()
	if got, err := findServer(self); err != nil || got != self {
		t.Errorf("findServer(%s) = %q, %v", self, got, err)
	}
	if _, _, err := runCmd(t, nil, "--url", "http://127.0.0.1:1", "--database", "postgres://x@127.0.0.1/y"); err == nil ||
		!strings.Contains(err.Error(), "do not apply with --url") {
		t.Errorf("--database with --url: err %v", err)
	}
}
