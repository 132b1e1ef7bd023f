// Package testdb opens fresh, migrated stores for tests: an embedded SQLite
// file in a temporary directory, and a private schema in the PostgreSQL
// database named by IOTFLOW_TEST_POSTGRES_URL.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/postgres"
	"github.com/iotflow/iotflow/internal/sqlite"
)

// PostgresEnv names the variable that enables the PostgreSQL tests.
const PostgresEnv = "IOTFLOW_TEST_POSTGRES_URL"

// Backend opens a fresh store of one kind.
type Backend struct {
	Name string
	Open func(t testing.TB) iotflow.Store
}

// Backends returns SQLite, and PostgreSQL when PostgresEnv is set.
func Backends() []Backend {
	bs := []Backend{{"sqlite", func(t testing.TB) iotflow.Store { return SQLite(t) }}}
	if os.Getenv(PostgresEnv) != "" {
		bs = append(bs, Backend{"postgres", func(t testing.TB) iotflow.Store { return Postgres(t) }})
	}
	return bs
}

// SQLite returns a migrated store in a new file under t.TempDir().
func SQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "iotflow.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate sqlite: %v", err)
	}
	return s
}

// Postgres returns a migrated store in a new schema, dropped at cleanup. It
// skips when PostgresEnv is unset and fails when the database is unreachable.
func Postgres(t testing.TB) *postgres.Store {
	t.Helper()
	url := PostgresURL(t)
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate postgres: %v", err)
	}
	return s
}

// PostgresURL creates a fresh schema and returns a connection URL whose
// search_path selects it. The schema is dropped at cleanup.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("%s is not set", PostgresEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("%s: cannot connect: %v", PostgresEnv, err)
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "iotflow_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	cfg, err := pgxpool.ParseConfig(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	return withSearchPath(cfg.ConnString(), schema)
}
