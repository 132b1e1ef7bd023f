package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func createDevice(t *testing.T, s *Store, name string) *iotflow.Device {
	t.Helper()
	now := time.Now()
	d := &iotflow.Device{Name: name, DeviceType: "sensor", Status: "active", CreatedAt: now, UpdatedAt: now}
	if err := s.CreateDevice(t.Context(), d, nil); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	return d
}

func newReading(device int64, msg string, ts time.Time) *iotflow.Reading {
	return &iotflow.Reading{DeviceID: device, Timestamp: ts, ReceivedAt: ts, DataType: "sensor",
		Payload: []byte(`{"v":1}`), MessageID: msg}
}

// storedRow reads back the message id and timestamp of the row with id.
func storedRow(t *testing.T, s *Store, id int64) (msg string, ts int64) {
	t.Helper()
	const q = `SELECT coalesce(message_id, ''), timestamp FROM telemetry_data WHERE id = ?`
	if err := s.reader.QueryRowContext(t.Context(), q, id).Scan(&msg, &ts); err != nil {
		t.Fatalf("row %d: %v", id, err)
	}
	return msg, ts
}

// TestInsertReadingsIDs: InsertReadings takes each id from the insert
// itself (the connection's last rowid), so every reading must name its own
// row, in slice order, whatever mix of new readings, readings without a
// message id and repeats a batch holds.
func TestInsertReadingsIDs(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "iotflow.db"))
	a, b := createDevice(t, s, "a"), createDevice(t, s, "b")
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	old := newReading(a.ID, "old", base)
	if err := s.InsertReadings(ctx, []*iotflow.Reading{old}); err != nil {
		t.Fatal(err)
	}

	var rs []*iotflow.Reading
	for i := range 250 {
		ts := base.Add(time.Duration(i+1) * time.Second)
		dev := []int64{a.ID, b.ID}[i%2]
		switch {
		case i%7 == 0:
			rs = append(rs, newReading(dev, "", ts))
		case i%11 == 0:
			rs = append(rs, newReading(a.ID, "old", ts)) // stored by an earlier batch
		case i%13 == 0 && i > 26:
			rs = append(rs, newReading(dev, fmt.Sprintf("m-%d", i-26), ts)) // repeats one of this batch
		case i%17 == 0:
			rs = append(rs, newReading(dev, fmt.Sprintf("m-%d", i-17), ts)) // another device's message id
		default:
			rs = append(rs, newReading(dev, fmt.Sprintf("m-%d", i), ts))
		}
	}
	if err := s.InsertReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}

	first := map[[2]any]*iotflow.Reading{{a.ID, "old"}: old}
	var last int64
	var repeats int
	stored := map[int64]int64{}
	for i, r := range rs {
		key := [2]any{r.DeviceID, r.MessageID}
		prev, seen := first[key]
		if r.MessageID == "" || !seen {
			if r.Duplicate || r.ID <= last {
				t.Fatalf("reading %d: id %d duplicate %v after id %d; want a new, larger id", i, r.ID, r.Duplicate, last)
			}
			last = r.ID
			stored[r.DeviceID]++
			msg, ts := storedRow(t, s, r.ID)
			if msg != r.MessageID || ts != r.Timestamp.UnixMicro() {
				t.Errorf("reading %d (%q at %v) got id %d, which holds %q at %d", i, r.MessageID, r.Timestamp, r.ID, msg, ts)
			}
			if r.MessageID != "" {
				first[key] = r
			}
			continue
		}
		repeats++
		if !r.Duplicate || r.ID != prev.ID || !r.Timestamp.Equal(prev.Timestamp) {
			t.Errorf("reading %d repeats %q: id %d dup %v ts %v; want id %d ts %v",
				i, r.MessageID, r.ID, r.Duplicate, r.Timestamp, prev.ID, prev.Timestamp)
		}
	}
	if repeats < 20 {
		t.Fatalf("the batch repeats %d message ids; the test wants more", repeats)
	}
	for _, d := range []*iotflow.Device{a, b} {
		want := stored[d.ID]
		if d.ID == a.ID {
			want++ // "old"
		}
		got, err := s.Device(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		var rows int64
		if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM telemetry_data WHERE device_id = ?`, d.ID).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if got.TelemetryCount != want || rows != want {
			t.Errorf("device %s: TelemetryCount %d, rows %d; want %d", d.Name, got.TelemetryCount, rows, want)
		}
	}
}

// TestInsertReadingsIDsNeverReused: ids come from AUTOINCREMENT, so deleting
// the newest readings (with their device) does not hand their ids out again.
func TestInsertReadingsIDsNeverReused(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "iotflow.db"))
	kept, doomed := createDevice(t, s, "kept"), createDevice(t, s, "doomed")
	now := time.Now()
	newest := newReading(doomed.ID, "", now)
	if err := s.InsertReadings(ctx, []*iotflow.Reading{newReading(kept.ID, "", now), newest}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteDevice(ctx, doomed.ID); err != nil {
		t.Fatal(err)
	}
	next := newReading(kept.ID, "", now)
	if err := s.InsertReadings(ctx, []*iotflow.Reading{next}); err != nil {
		t.Fatal(err)
	}
	if next.ID <= newest.ID {
		t.Errorf("id %d after deleting id %d: ids are reused", next.ID, newest.ID)
	}
}

// TestInsertReadingsMissingDeviceLate: a batch whose last reading names a
// missing device, after readings and repeats of existing ones, stores
// nothing and leaves the readings as they were.
func TestInsertReadingsMissingDeviceLate(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "iotflow.db"))
	a := createDevice(t, s, "a")
	now := time.Now()
	if err := s.InsertReadings(ctx, []*iotflow.Reading{newReading(a.ID, "m-1", now)}); err != nil {
		t.Fatal(err)
	}
	rs := []*iotflow.Reading{newReading(a.ID, "m-2", now), newReading(a.ID, "m-1", now), newReading(a.ID, "", now),
		newReading(a.ID+1000, "m-3", now)}
	err := s.InsertReadings(ctx, rs)
	if iotflow.ErrorCode(err) != iotflow.ENOTFOUND {
		t.Fatalf("InsertReadings = %v, want ENOTFOUND", err)
	}
	for i, r := range rs {
		if r.ID != 0 || r.Duplicate {
			t.Errorf("reading %d: id %d duplicate %v after a failed call", i, r.ID, r.Duplicate)
		}
	}
	var rows int64
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM telemetry_data`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Device(ctx, a.ID); err != nil || d.TelemetryCount != 1 || rows != 1 {
		t.Errorf("after the failed batch: %d rows, device %+v, %v; want 1 row, count 1", rows, d, err)
	}
}

// TestInsertReadingsDeadline: a batch whose deadline passes while its rows
// are inserted stores none of them.
func TestInsertReadingsDeadline(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "iotflow.db"))
	a := createDevice(t, s, "a")
	now := time.Now()
	rs := make([]*iotflow.Reading, 20000)
	for i := range rs {
		rs[i] = newReading(a.ID, fmt.Sprintf("m-%d", i), now)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
	defer cancel()
	err := s.InsertReadings(ctx, rs)
	if err == nil {
		t.Skip("20000 readings stored within 5ms")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("InsertReadings = %v, want the deadline's error", err)
	}
	var rows int64
	if err := s.reader.QueryRowContext(t.Context(), `SELECT count(*) FROM telemetry_data`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Device(t.Context(), a.ID); err != nil || d.TelemetryCount != 0 || rows != 0 {
		t.Errorf("after the deadline: %d rows, device %+v, %v; want none", rows, d, err)
	}
}
