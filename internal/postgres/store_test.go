package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iotflow/iotflow/internal/config"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// testURL returns the database URL of the tests, or skips t when
// IOTFLOW_TEST_POSTGRES_URL is not set.
func testURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("IOTFLOW_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("IOTFLOW_TEST_POSTGRES_URL is not set; skipping PostgreSQL tests")
	}
	return url
}

// adminExec runs sql on a connection of its own; a database that cannot be
// reached fails the test, since CI sets the URL only when it runs one.
func adminExec(t testing.TB, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to IOTFLOW_TEST_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// testConfig creates a fresh schema, dropped when t ends, and returns a pool
// configuration whose search_path selects it.
func testConfig(t testing.TB) *pgxpool.Config {
	t.Helper()
	url := testURL(t)
	b := make([]byte, 8)
	rand.Read(b)
	schema := pgx.Identifier{"iotflow_test_" + hex.EncodeToString(b)}.Sanitize()
	adminExec(t, url, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { adminExec(t, url, "DROP SCHEMA "+schema+" CASCADE") })

	cfg, err := parseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	return cfg
}

// openTest opens a store with cfg, closed when t ends (before its schema is
// dropped, as cleanups run last-in first-out).
func openTest(t testing.TB, cfg *pgxpool.Config) *Store {
	t.Helper()
	s, err := openConfig(t.Context(), cfg.Copy())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newTestStore returns an empty migrated store in a schema of its own.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	s := openTest(t, testConfig(t))
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		conn     string
		maxConns int32
		timeout  time.Duration
	}{
		{"postgres://u@localhost/db", 32, 5 * time.Second},
		{"postgres://u@localhost/db?pool_max_conns=7&connect_timeout=9", 7, 9 * time.Second},
		{"host=localhost user=u dbname=db", 32, 5 * time.Second},
		{"host=localhost user=u dbname=db pool_max_conns=3", 3, 5 * time.Second},
	}
	for _, tt := range tests {
		cfg, err := parseConfig(tt.conn)
		if err != nil {
			t.Fatalf("parseConfig(%q): %v", tt.conn, err)
		}
		if cfg.MaxConns != tt.maxConns || cfg.ConnConfig.ConnectTimeout != tt.timeout {
			t.Errorf("parseConfig(%q): MaxConns %d, ConnectTimeout %v; want %d, %v",
				tt.conn, cfg.MaxConns, cfg.ConnConfig.ConnectTimeout, tt.maxConns, tt.timeout)
		}
	}
	if _, err := parseConfig("postgres://u@localhost/db?pool_max_conns=x"); err == nil {
		t.Error("parseConfig accepted pool_max_conns=x")
	}
}

func TestOpenUnreachable(t *testing.T) {
	// Nothing listens on port 1.
	_, err := Open(t.Context(), "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if code := iotflow.ErrorCode(err); code != iotflow.EUNAVAILABLE {
		t.Fatalf("Open: code %q (%v), want %q", code, err, iotflow.EUNAVAILABLE)
	}
	var connectErr *pgconn.ConnectError
	if !errors.As(err, &connectErr) {
		t.Errorf("Open: error %v does not keep its *pgconn.ConnectError", err)
	}
}

func TestOpenPing(t *testing.T) {
	s, err := Open(t.Context(), testURL(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if got := s.pool.Config().MaxConns; got != defaultMaxConns {
		t.Errorf("MaxConns = %d, want %d", got, defaultMaxConns)
	}
}

// TestOpenThroughUnixSocket: a DATABASE_URL that names the server's Unix
// socket directory, in libpq's query form, passes the configuration and
// opens a store that talks over the socket.
func TestOpenThroughUnixSocket(t *testing.T) {
	url := testURL(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	var dirs, port, user, db string
	err = conn.QueryRow(ctx, `SELECT current_setting('unix_socket_directories'), current_setting('port'),
		current_user, current_database()`).Scan(&dirs, &port, &user, &db)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir, _, _ := strings.Cut(dirs, ",")
	if dir = strings.TrimSpace(dir); !strings.HasPrefix(dir, "/") {
		t.Skipf("the server has no Unix socket directory (%q)", dirs)
	}
	if _, err := os.Stat(filepath.Join(dir, ".s.PGSQL."+port)); err != nil {
		t.Skipf("the server's socket is not reachable from here: %v", err)
	}
	socketURL := fmt.Sprintf("postgres://%s@/%s?host=%s&port=%s", user, db, neturl.QueryEscape(dir), port)
	if c, err := pgx.Connect(ctx, socketURL); err != nil {
		if strings.HasPrefix(sqlState(err), "28") { // pg_hba.conf asks more of the socket than of TCP
			t.Skipf("the server refuses this user on its socket: %v", err)
		}
	} else {
		c.Close(ctx)
	}
	cfg, err := config.Load(func(name string) string {
		if name == "DATABASE_URL" {
			return socketURL
		}
		return ""
	}, nil)
	if err != nil {
		t.Fatalf("config refuses %s: %v", socketURL, err)
	}
	s, err := Open(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatalf("Open(%s): %v", socketURL, err)
	}
	defer s.Close()
	var tcp bool
	if err := s.pool.QueryRow(ctx, `SELECT inet_client_addr() IS NOT NULL`).Scan(&tcp); err != nil || tcp {
		t.Fatalf("connected over TCP (%v) or failed: %v", tcp, err)
	}
}
