package sqlite

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/storetest"
)

// openTest opens and migrates a store on a fresh file that the test removes.
func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.RunStoreTests(t, func(t *testing.T) iotflow.Store {
		return openTest(t, filepath.Join(t.TempDir(), "iotflow.db"))
	})
}

func TestMigrate(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "iotflow.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if pending, err := s.PendingMigrations(ctx); err != nil || !slices.Equal(pending, []int{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("PendingMigrations before Migrate = %v, %v; want [1 2 3 4 5 6]", pending, err)
	}
	applied, err := s.Migrate(ctx)
	if err != nil || !slices.Equal(applied, []int{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("first Migrate = %v, %v; want [1 2 3 4 5 6]", applied, err)
	}
	applied, err = s.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate = %v, %v; want none", applied, err)
	}
	if pending, err := s.PendingMigrations(ctx); err != nil || len(pending) != 0 {
		t.Fatalf("PendingMigrations after Migrate = %v, %v; want none", pending, err)
	}
	for _, table := range []string{"devices", "device_auth", "telemetry_data", "device_configurations", "admin_tokens", "telemetry_rollups", "telemetry_keys"} {
		var n int
		q := `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`
		if err := s.reader.QueryRowContext(ctx, q, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: count %d, err %v", table, n, err)
		}
	}
	d := &iotflow.Device{Name: "kept", DeviceType: "sensor", Status: "active", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := s.CreateDevice(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A reopened file keeps its data and needs no migration.
	s = openTest(t, path)
	applied, err = s.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("Migrate after reopening = %v, %v; want none", applied, err)
	}
	if got, err := s.DeviceByName(ctx, "kept"); err != nil || got.ID != d.ID {
		t.Fatalf("DeviceByName after reopening = %v, %v; want device %d", got, err, d.ID)
	}
}

func TestMigrationsLoad(t *testing.T) {
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.version != i+1 {
			t.Errorf("migration %s has version %d, want %d: versions must be 1, 2, 3, ...", m.name, m.version, i+1)
		}
	}
}

func TestConnectionSettings(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "iotflow.db"))
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"wal_autocheckpoint", "10000"},
	}
	for _, tt := range tests {
		var got string
		if err := s.writer.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
	// Readers are read-only, so a write by mistake fails loudly.
	_, err := s.reader.ExecContext(t.Context(), `DELETE FROM admin_tokens`)
	if err == nil {
		t.Error("write through the reader pool: no error")
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	openTest(t, filepath.Join(dir, "iotflow.db"))
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o750 {
		t.Errorf("directory mode %v, want 0750", perm)
	}
}

func TestOpenUnwritable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	notADatabase := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notADatabase, []byte(strings.Repeat("garbage!", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		// These fail even for root, who may write anywhere.
		{"parent is a file", filepath.Join(file, "iotflow.db")},
		{"deeper parent is a file", filepath.Join(file, "sub", "iotflow.db")},
		{"path is a directory", dir},
		{"not a database", notADatabase},
		{"empty", ""},
		{"memory", ":memory:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), tt.path)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q): no error", tt.path)
			}
		})
	}
}

func TestUnavailableAfterClose(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "iotflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping after Close: no error")
	}
}
