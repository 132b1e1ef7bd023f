package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iotflow/iotflow/internal/testdb"
)

// syncBuffer is an io.Writer safe for the server goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// backendEnv returns the environment of a fresh database per backend.
func backendEnvs(t *testing.T) map[string]func(t *testing.T) map[string]string {
	envs := map[string]func(t *testing.T) map[string]string{
		"sqlite": func(t *testing.T) map[string]string {
			return map[string]string{"IOTFLOW_DATA_DIR": filepath.Join(t.TempDir(), "data")}
		},
	}
	if os.Getenv(testdb.PostgresEnv) != "" {
		envs["postgres"] = func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": testdb.PostgresURL(t)}
		}
	}
	return envs
}

// server is iotflow serve running in the test process.
type server struct {
	base   string
	stdout *syncBuffer
	stop   func() error
}

// startServer runs `iotflow serve` on a free loopback port with env and
// waits until /health answers.
func startServer(t *testing.T, env map[string]string) *server {
	t.Helper()
	return startServerWith(t, env, http.DefaultClient, listenRE)
}

// startServerWith is startServer for a server whose listening line
// matches re and whose /health client answers through.
func startServerWith(t *testing.T, env map[string]string, client *http.Client, re *regexp.Regexp) *server {
	t.Helper()
	// MQTT on a free port too: never the machine's 1883.
	full := map[string]string{"HOST": "127.0.0.1", "PORT": "0", "LOG_FILE": "off", "LOG_LEVEL": "WARNING",
		"IOTFLOW_MQTT_ADDR": "127.0.0.1:0", "IOTFLOW_MQTT_TLS_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"iotflow", "serve"}, func(k string) string { return full[k] }, out, errOut)
	}()
	s := &server{stdout: out}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(15 * time.Second):
				stopErr = fmt.Errorf("server did not stop")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s%s", err, out, errOut)
		default:
		}
		if m := re.FindStringSubmatch(out.String()); m != nil {
			s.base = m[1]
			if res, err := client.Get(s.base + "/health"); err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					return s
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not become healthy:\n%s%s", out, errOut)
	return nil
}

// call is what a script would do: plain HTTP with JSON.
func call(t *testing.T, method, url string, body any, headers map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := newRequest(method, url, body, headers)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res.StatusCode, out
}

// newRequest builds a request with body, if not nil, as JSON.
func newRequest(method, url string, body any, headers map[string]string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req, nil
}

var adminTokenRE = regexp.MustCompile(`\b(iotadm_[A-Za-z0-9_-]{43})\b`)

// TestReferenceScript drives the service the way a script written for the
// reference service does, on each backend, then checks that no API key is
// stored or logged in plaintext.
func TestReferenceScript(t *testing.T) {
	for name, envFor := range backendEnvs(t) {
		t.Run(name, func(t *testing.T) {
			env := envFor(t)
			logFile := filepath.Join(t.TempDir(), "logs", "iotflow.log")
			env["LOG_FILE"], env["LOG_LEVEL"] = logFile, "DEBUG"
			srv := startServer(t, env)
			api := srv.base + "/api/v1"

			code, reg := call(t, "POST", api+"/devices/register", map[string]string{
				"name": "Script Sensor", "device_type": "sensor", "location": "Lab"}, nil)
			if code != 201 {
				t.Fatalf("register: %d %v", code, reg)
			}
			key := reg["device"].(map[string]any)["api_key"].(string)
			dev := map[string]string{"X-API-Key": key}

			if code, st := call(t, "GET", api+"/devices/status", nil, dev); code != 200 || st["status"] != "success" {
				t.Fatalf("status: %d %v", code, st)
			}
			for _, v := range []float64{21.5, 22.0} {
				code, tel := call(t, "POST", api+"/devices/telemetry", map[string]any{
					"data": map[string]any{"temperature": v}, "metadata": map[string]any{"unit": "C"}}, dev)
				if code != 201 || tel["telemetry_id"] == nil {
					t.Fatalf("telemetry: %d %v", code, tel)
				}
			}
			code, got := call(t, "GET", api+"/devices/telemetry?limit=10", nil, dev)
			if code != 200 || got["count"] != float64(2) {
				t.Fatalf("read back: %d %v", code, got)
			}
			if first := got["telemetry"].([]any)[0].(map[string]any); first["payload"].(map[string]any)["temperature"] != 22.0 {
				t.Fatalf("newest first: %v", first)
			}
			if code, hb := call(t, "POST", api+"/devices/heartbeat", nil, dev); code != 200 || hb["status"] != "online" {
				t.Fatalf("heartbeat: %d %v", code, hb)
			}

			// The admin API is closed without a token and open with the one
			// the first start printed.
			if code, _ := call(t, "GET", api+"/admin/devices", nil, nil); code != 401 {
				t.Fatalf("admin without token: %d", code)
			}
			m := adminTokenRE.FindStringSubmatch(srv.stdout.String())
			if m == nil {
				t.Fatalf("first start printed no admin token:\n%s", srv.stdout)
			}
			adm := map[string]string{"Authorization": "Bearer " + m[1]}
			if code, l := call(t, "GET", api+"/admin/devices", nil, adm); code != 200 || len(l["devices"].([]any)) != 1 {
				t.Fatalf("admin list: %d %v", code, l)
			}
			if code, d := call(t, "GET", api+"/admin/dashboard", nil, adm); code != 200 {
				t.Fatalf("dashboard: %d %v", code, d)
			}

			if err := srv.stop(); err != nil {
				t.Fatal(err)
			}
			// No secret in plaintext: not in the log file, not in the database.
			logs, err := os.ReadFile(logFile)
			if err != nil || len(logs) == 0 {
				t.Fatalf("log file: %v", err)
			}
			for _, secret := range []string{key, m[1]} {
				if bytes.Contains(logs, []byte(secret)) || strings.Contains(stripSecretsShown(srv.stdout.String(), m[1]), secret) {
					t.Errorf("a secret was logged")
				}
				if dumpContains(t, env, secret) {
					t.Errorf("a secret is stored in plaintext")
				}
			}
		})
	}
}

// stripSecretsShown removes the admin token banner, the one place a secret
// is meant to appear.
func stripSecretsShown(out, token string) string {
	return strings.Replace(out, token, "", 1)
}

// dumpContains reports whether the database holds s anywhere: every file
// of the SQLite data directory, or every row of every table on PostgreSQL.
func dumpContains(t *testing.T, env map[string]string, s string) bool {
	t.Helper()
	if dir := env["IOTFLOW_DATA_DIR"]; dir != "" {
		found := false
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(p)
				found = found || bytes.Contains(b, []byte(s))
			}
			return nil
		})
		return found
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 4 {
		t.Fatalf("tables %v %v", tables, err)
	}
	for _, tbl := range tables {
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM %s t WHERE strpos(t::text, $1) > 0`, pgx.Identifier{tbl}.Sanitize())
		if err := c.QueryRow(ctx, q, s).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return true
		}
	}
	return false
}
