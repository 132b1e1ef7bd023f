package postgres

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMigrations(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("migrations start at %v, want version 1", ms)
	}
	for i, m := range ms {
		if m.version != i+1 {
			t.Errorf("migration %s has version %d, want %d: versions are consecutive", m.name, m.version, i+1)
		}
	}
}

// TestMigrateConcurrently starts several processes' worth of stores on one
// schema at once: each version must be applied exactly once, without error.
func TestMigrateConcurrently(t *testing.T) {
	cfg := testConfig(t)
	const n = 8
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = openTest(t, cfg)
	}

	applied := make([][]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { applied[i], errs[i] = s.Migrate(t.Context()) })
	}
	wg.Wait()

	times := map[int]int{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Migrate %d: %v", i, errs[i])
		}
		for _, v := range applied[i] {
			times[v]++
		}
	}
	ms, _ := migrations()
	for _, m := range ms {
		if times[m.version] != 1 {
			t.Errorf("version %d applied %d times, want once", m.version, times[m.version])
		}
	}

	rows, _ := stores[0].pool.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	recorded, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if len(recorded) != len(ms) {
		t.Errorf("schema_migrations holds %v, want %d versions", recorded, len(ms))
	}

	again, err := stores[0].Migrate(t.Context())
	if err != nil || len(again) != 0 {
		t.Errorf("second Migrate = %v, %v; want nothing applied", again, err)
	}
}

// TestMigrateSchemasIndependent checks that the lock is per schema: a run
// holding another schema's lock does not block this one.
func TestMigrateSchemasIndependent(t *testing.T) {
	a := openTest(t, testConfig(t))
	b := openTest(t, testConfig(t))
	conn, err := a.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), `SELECT pg_advisory_lock($1, hashtext(current_schema()))`, migrationLockClass); err != nil {
		t.Fatal(err)
	}
	defer unlock(t.Context(), conn)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	applied, err := b.Migrate(ctx)
	if err != nil || !slices.Contains(applied, 1) {
		t.Fatalf("Migrate beside a locked schema = %v, %v", applied, err)
	}
}

func TestPendingMigrations(t *testing.T) {
	s := openTest(t, testConfig(t))
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	pending, err := s.PendingMigrations(t.Context())
	if err != nil || len(pending) != len(ms) || pending[0] != 1 {
		t.Fatalf("PendingMigrations on an empty schema = %v, %v; want all %d", pending, err, len(ms))
	}
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if pending, err := s.PendingMigrations(t.Context()); err != nil || len(pending) != 0 {
		t.Fatalf("PendingMigrations after Migrate = %v, %v; want none", pending, err)
	}
}

// TestMigrationCountsAfresh: migration 0008 drops the pending counts and
// the sharded hourly rows and counts both counters from the readings, so
// whatever a node of the older version left pending, or miscounted, comes
// out exact.
func TestMigrationCountsAfresh(t *testing.T) {
	s := openTest(t, testConfig(t))
	ctx := t.Context()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:7] {
		if err := apply(ctx, conn, m); err != nil {
			t.Fatal(err)
		}
	}
	conn.Release()
	// As an older node left it: two devices, three readings over two
	// hours, one batch still pending, a counter that is off.
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO devices (id, name, name_folded, device_type, status, created_at, updated_at, telemetry_count)
		OVERRIDING SYSTEM VALUE VALUES
			(1, 'a', 'a', 'sensor', 'active', now(), now(), 1),
			(2, 'b', 'b', 'sensor', 'active', now(), now(), 7);
		INSERT INTO telemetry_data (device_id, "timestamp", received_at, data_type, payload, metadata) VALUES
			(1, '2026-11-01 10:15Z', now(), 'sensor', '{}', '{}'),
			(1, '2026-11-01 11:15Z', now(), 'sensor', '{}', '{}'),
			(2, '2026-11-01 11:30Z', now(), 'sensor', '{}', '{}');
		INSERT INTO telemetry_hourly (hour, shard, n) VALUES ('2026-11-01 10:00Z', 1, 1), ('2026-11-01 11:00Z', 2, 5);
		INSERT INTO telemetry_pending (device_ids, hours, counts) VALUES ('{1}', '{2026-11-01 11:00Z}', '{1}')`); err != nil {
		t.Fatal(err)
	}
	if applied, err := s.Migrate(ctx); err != nil || len(applied) != len(ms)-7 {
		t.Fatalf("Migrate = %v, %v; want the migrations from 0008 on", applied, err)
	}
	for id, want := range map[int64]int64{1: 2, 2: 1} {
		if d, err := s.Device(ctx, id); err != nil || d.TelemetryCount != want {
			t.Errorf("device %d after the migration: %+v, %v; want telemetry_count %d", id, d, err, want)
		}
	}
	rows, _ := s.pool.Query(ctx, `SELECT n FROM telemetry_hourly ORDER BY hour`)
	hourly, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || !slices.Equal(hourly, []int64{1, 2}) {
		t.Errorf("hourly counts %v, %v; want [1 2]", hourly, err)
	}
	var pending bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('telemetry_pending') IS NOT NULL`).Scan(&pending); err != nil || pending {
		t.Errorf("telemetry_pending still exists (%v)", err)
	}
}
