package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// noBackgroundFold keeps s from starting its background fold, so that a
// test sees the counts pending until it folds them itself.
func noBackgroundFold(s *Store) { s.foldStart.Do(func() {}) }

// pendingRows counts the rows of telemetry_pending.
func pendingRows(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM telemetry_pending`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// hourlySum is what telemetry_hourly holds for the hours from since on.
func hourlySum(t *testing.T, s *Store, since time.Time) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(t.Context(), `SELECT coalesce(sum(n), 0)::bigint FROM telemetry_hourly WHERE hour >= $1`, since).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// counts is every figure a reader gets of the readings of devs.
type counts struct {
	devices        []int64 // TelemetryCount from Device
	listed         []int64 // TelemetryCount from ListDevices, by id
	total, recent  int64   // Dashboard
	counted, stats []int64 // CountReadings and ReadingStats per device
}

func readCounts(t *testing.T, s *Store, devs []*iotflow.Device, recentSince time.Time) counts {
	t.Helper()
	ctx := t.Context()
	var c counts
	list, _, err := s.ListDevices(ctx, iotflow.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[int64]int64{}
	for _, d := range list {
		listed[d.ID] = d.TelemetryCount
	}
	for _, d := range devs {
		got, err := s.Device(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.CountReadings(ctx, iotflow.ReadingFilter{DeviceID: d.ID})
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.ReadingStats(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		c.devices, c.listed = append(c.devices, got.TelemetryCount), append(c.listed, listed[d.ID])
		c.counted, c.stats = append(c.counted, n), append(c.stats, st.Count)
	}
	dash, err := s.Dashboard(ctx, time.Now().Add(-time.Hour), recentSince)
	if err != nil {
		t.Fatal(err)
	}
	c.total, c.recent = dash.TotalReadings, dash.RecentReadings
	return c
}

// TestPendingCountsAreExact: counts stay exact whether a batch's counts
// are pending or folded, and a fold moves them all into the counters.
func TestPendingCountsAreExact(t *testing.T) {
	s := newTestStore(t)
	noBackgroundFold(s)
	a, b := addDevice(t, s, "a"), addDevice(t, s, "b")
	now := iotflow.Truncate(time.Now().UTC())
	hourAgo := now.Add(-time.Hour)
	dayAgo := now.Add(-25 * time.Hour) // outside the dashboard's 24 hours
	batches := [][]*iotflow.Reading{
		{reading(a.ID, now), reading(a.ID, hourAgo), reading(b.ID, now), reading(a.ID, now)},
		{reading(b.ID, dayAgo), reading(b.ID, now)},
	}
	for _, rs := range batches {
		if err := s.InsertReadings(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
	}
	recentSince := now.Add(-24 * time.Hour)
	want := counts{
		devices: []int64{3, 3}, listed: []int64{3, 3}, total: 6, recent: 5,
		counted: []int64{3, 3}, stats: []int64{3, 3},
	}
	check := func(when string) {
		t.Helper()
		if got := readCounts(t, s, []*iotflow.Device{a, b}, recentSince); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: counts %+v, want %+v", when, got, want)
		}
	}
	if n := pendingRows(t, s); n != 2 {
		t.Fatalf("%d pending rows after two batches; want 2", n)
	}
	check("before the fold")
	moved, err := s.fold(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if pendingRows(t, s) != 0 || moved != 6 {
		t.Errorf("fold moved %d counts and left %d pending rows; want 6 and none", moved, pendingRows(t, s))
	}
	var stored int64
	if err := s.pool.QueryRow(t.Context(), `SELECT sum(telemetry_count)::bigint FROM devices`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 6 || hourlySum(t, s, dayAgo.Truncate(time.Hour)) != 6 {
		t.Errorf("after the fold the counters hold %d readings and the hours %d; want 6 and 6", stored, hourlySum(t, s, dayAgo.Truncate(time.Hour)))
	}
	check("after the fold")
}

// TestDeleteDeviceWithPendingCounts: a device deleted while its counts are
// pending leaves no trace in any count, before the fold and after.
func TestDeleteDeviceWithPendingCounts(t *testing.T) {
	s := newTestStore(t)
	noBackgroundFold(s)
	keep, doomed := addDevice(t, s, "keep"), addDevice(t, s, "doomed")
	now := iotflow.Truncate(time.Now().UTC())
	hourAgo := now.Add(-time.Hour)
	// Folded counts for both, then pending ones for both.
	if err := s.InsertReadings(t.Context(), []*iotflow.Reading{reading(keep.ID, now), reading(doomed.ID, hourAgo)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.fold(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertReadings(t.Context(), []*iotflow.Reading{reading(doomed.ID, now), reading(keep.ID, hourAgo), reading(doomed.ID, now)}); err != nil {
		t.Fatal(err)
	}
	if n := pendingRows(t, s); n != 1 {
		t.Fatalf("%d pending rows; want 1", n)
	}
	if _, err := s.DeleteDevice(t.Context(), doomed.ID); err != nil {
		t.Fatal(err)
	}
	recentSince := now.Add(-24 * time.Hour)
	want := counts{devices: []int64{2}, listed: []int64{2}, total: 2, recent: 2, counted: []int64{2}, stats: []int64{2}}
	for _, when := range []string{"before the fold", "after the fold"} {
		if got := readCounts(t, s, []*iotflow.Device{keep}, recentSince); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: counts %+v, want %+v", when, got, want)
		}
		if _, err := s.fold(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := hourlySum(t, s, hourAgo.Truncate(time.Hour)); got != 2 {
		t.Errorf("hourly counts hold %d readings; want 2", got)
	}
}

// TestConcurrentFolds: stores of several nodes fold the same table while
// batches commit; every reading is counted once.
func TestConcurrentFolds(t *testing.T) {
	cfg := testConfig(t)
	nodes := []*Store{openTest(t, cfg), openTest(t, cfg), openTest(t, cfg)}
	if _, err := nodes[0].Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	devs := []*iotflow.Device{addDevice(t, nodes[0], "a"), addDevice(t, nodes[0], "b")}
	const perNode, batch int64 = 20, 5
	var wg sync.WaitGroup
	for _, s := range nodes {
		wg.Go(func() {
			for i := range int(perNode) {
				now := iotflow.Truncate(time.Now())
				rs := make([]*iotflow.Reading, batch)
				for j := range rs {
					rs[j] = reading(devs[(i+j)%2].ID, now)
				}
				if err := s.InsertReadings(t.Context(), rs); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.fold(t.Context()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, s := range nodes {
		if _, err := s.fold(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range devs {
		got, err := nodes[1].Device(t.Context(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rows := countRows(t, nodes[1], d.ID); got.TelemetryCount != rows || rows != int64(len(nodes))*perNode*batch/2 {
			t.Errorf("device %s: TelemetryCount %d, %d rows; want %d of each", d.Name, got.TelemetryCount, rows, int64(len(nodes))*perNode*batch/2)
		}
	}
	if n := pendingRows(t, nodes[0]); n != 0 {
		t.Errorf("%d pending rows left after every node folded", n)
	}
}

// TestCloseFolds: a store that closes leaves nothing pending, and the
// duplicate path counts only what it stored.
func TestCloseFolds(t *testing.T) {
	cfg := testConfig(t)
	s := openTest(t, cfg)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	d := addDevice(t, s, "a")
	now := iotflow.Truncate(time.Now())
	first := reading(d.ID, now)
	first.MessageID = "m-1"
	if err := s.InsertReadings(t.Context(), []*iotflow.Reading{first}); err != nil {
		t.Fatal(err)
	}
	again, fresh := reading(d.ID, now), reading(d.ID, now)
	again.MessageID, fresh.MessageID = "m-1", "m-2"
	if err := s.InsertReadings(t.Context(), []*iotflow.Reading{again, fresh}); err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.ID != first.ID || fresh.Duplicate {
		t.Errorf("retry: Duplicate %v, ID %d (first %d); fresh Duplicate %v", again.Duplicate, again.ID, first.ID, fresh.Duplicate)
	}
	s.Close()

	other := openTest(t, cfg)
	if n := pendingRows(t, other); n != 0 {
		t.Errorf("%d pending rows after Close; want none", n)
	}
	var stored int64
	if err := other.pool.QueryRow(t.Context(), `SELECT telemetry_count FROM devices WHERE id = $1`, d.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 2 {
		t.Errorf("counter %d after Close; want 2", stored)
	}
}

// TestUpdateDeviceDuringFold: an update that waits for a fold holding its
// device answers with the device's count once, not with the folded counter
// plus the pending counts the fold took.
func TestUpdateDeviceDuringFold(t *testing.T) {
	s := newTestStore(t)
	noBackgroundFold(s)
	d := addDevice(t, s, "a")
	now := iotflow.Truncate(time.Now())
	if err := s.InsertReadings(t.Context(), []*iotflow.Reading{reading(d.ID, now), reading(d.ID, now), reading(d.ID, now)}); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if moved, _, err := foldIn(t.Context(), tx); err != nil || moved != 3 {
		t.Fatalf("foldIn = %d, %v; want 3", moved, err)
	}
	type result struct {
		d   *iotflow.Device
		err error
	}
	done := make(chan result, 1)
	loc := "lab"
	go func() {
		got, err := s.UpdateDevice(t.Context(), d.ID, iotflow.DeviceUpdate{Location: &loc}, now)
		done <- result{got, err}
	}()
	// Let the update reach the row the fold holds, then commit the fold.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting int
		if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%UPDATE devices%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.d.TelemetryCount != 3 || r.d.Location != loc {
		t.Errorf("UpdateDevice during a fold: TelemetryCount %d, Location %q; want 3, %q", r.d.TelemetryCount, r.d.Location, loc)
	}
}

// TestCrossedMessageIDs: batches on two nodes that carry the same message
// ids in opposite orders store each id once and neither fails (they used
// to deadlock on the message-id index).
func TestCrossedMessageIDs(t *testing.T) {
	cfg := testConfig(t)
	nodes := []*Store{openTest(t, cfg), openTest(t, cfg)}
	if _, err := nodes[0].Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	d := addDevice(t, nodes[0], "a")
	const rounds, size = 20, 50
	for round := range rounds {
		var wg sync.WaitGroup
		batches := make([][]*iotflow.Reading, len(nodes))
		errs := make([]error, len(nodes))
		for w, s := range nodes {
			rs := make([]*iotflow.Reading, size)
			for j := range rs {
				k := j
				if w == 1 {
					k = size - 1 - j
				}
				rs[j] = reading(d.ID, iotflow.Truncate(time.Now()))
				rs[j].MessageID = fmt.Sprint(round, "-", k)
			}
			batches[w] = rs
			wg.Go(func() { errs[w] = s.InsertReadings(t.Context(), rs) })
		}
		wg.Wait()
		for w, err := range errs {
			if err != nil {
				t.Fatalf("round %d, node %d: %v", round, w, err)
			}
		}
		// Both answer every message id with the same stored reading.
		ids := map[string]int64{}
		for _, r := range batches[0] {
			ids[r.MessageID] = r.ID
		}
		for _, r := range batches[1] {
			if ids[r.MessageID] != r.ID {
				t.Fatalf("round %d: message %s answered with ids %d and %d", round, r.MessageID, ids[r.MessageID], r.ID)
			}
		}
	}
	if n := countRows(t, nodes[0], d.ID); n != rounds*size {
		t.Errorf("%d rows stored; want %d", n, rounds*size)
	}
	got, err := nodes[1].Device(t.Context(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.TelemetryCount != rounds*size {
		t.Errorf("TelemetryCount %d; want %d", got.TelemetryCount, rounds*size)
	}
}

func TestPendingCountsAdd(t *testing.T) {
	var p pendingCounts
	h0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for i := range 100 { // past the size at which it switches to a map
		p.add(int64(i%40), h0.Add(time.Duration(i%2)*time.Hour))
	}
	if len(p.devices) != 40 || len(p.hours) != 40 || len(p.counts) != 40 {
		t.Fatalf("%d device-hours; want 40", len(p.devices))
	}
	total := int32(0)
	for i := range p.devices {
		total += p.counts[i]
		if want := h0.Add(time.Duration(p.devices[i]%2) * time.Hour); !p.hours[i].Equal(want) {
			t.Errorf("device %d counted in hour %v; want %v", p.devices[i], p.hours[i], want)
		}
	}
	if total != 100 {
		t.Errorf("counts sum to %d; want 100", total)
	}
}

// TestFoldSkipsHeldDevice: a device another transaction holds (as
// DeleteDevice does while it deletes the device's readings) keeps its
// counts pending; the fold neither waits for it nor stops for the others.
func TestFoldSkipsHeldDevice(t *testing.T) {
	s := newTestStore(t)
	noBackgroundFold(s)
	held, free := addDevice(t, s, "held"), addDevice(t, s, "free")
	now := iotflow.Truncate(time.Now().UTC())
	if err := s.InsertReadings(t.Context(), []*iotflow.Reading{
		reading(held.ID, now), reading(free.ID, now), reading(held.ID, now), reading(free.ID, now), reading(free.ID, now),
	}); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, held.ID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	moved, kept, err := s.foldKeeping(ctx)
	if err != nil || moved != 3 || kept != 2 {
		t.Fatalf("fold while a device is held = moved %d, kept %d, %v; want 3, 2, no error", moved, kept, err)
	}
	recentSince := now.Add(-24 * time.Hour)
	want := counts{devices: []int64{2, 3}, listed: []int64{2, 3}, total: 5, recent: 5, counted: []int64{2, 3}, stats: []int64{2, 3}}
	if got := readCounts(t, s, []*iotflow.Device{held, free}, recentSince); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("while held: counts %+v, want %+v", got, want)
	}
	var stored int64
	if err := s.pool.QueryRow(t.Context(), `SELECT telemetry_count FROM devices WHERE id = $1`, free.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 3 || pendingRows(t, s) != 1 {
		t.Errorf("free device's counter %d, %d pending rows; want 3 and 1", stored, pendingRows(t, s))
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if moved, kept, err := s.foldKeeping(t.Context()); err != nil || moved != 2 || kept != 0 {
		t.Fatalf("fold after release = moved %d, kept %d, %v; want 2, 0", moved, kept, err)
	}
	if got := readCounts(t, s, []*iotflow.Device{held, free}, recentSince); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after release: counts %+v, want %+v", got, want)
	}
	if n := pendingRows(t, s); n != 0 || hourlySum(t, s, now.Truncate(time.Hour)) != 5 {
		t.Errorf("%d pending rows, hourly %d; want none and 5", n, hourlySum(t, s, now.Truncate(time.Hour)))
	}
}
