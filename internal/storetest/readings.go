package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func testInsertReadings(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	a := createSimple(t, s, "a")
	b := createSimple(t, s, "b")

	ok(t, "InsertReadings(empty)", s.InsertReadings(ctx, []*iotflow.Reading{}))
	ok(t, "InsertReadings(nil)", s.InsertReadings(ctx, nil))

	// Timestamps out of order: IDs still follow the slice.
	batch := []*iotflow.Reading{
		reading(a.ID, at(5*time.Second), "sensor"),
		reading(b.ID, at(1*time.Second), "sensor"),
		reading(a.ID, at(1*time.Second), "event"),
		reading(a.ID, at(9*time.Second), "sensor"),
		reading(b.ID, at(1*time.Second), "sensor"),
	}
	batch[0].Payload = json.RawMessage(`{"z": 1, "a": {"nested": [1, 2.5, "three", null, true]}, "text": "Grüße \"quoted\""}`)
	batch[0].Metadata = json.RawMessage(`{"firmware": "1.0.0", "rssi": -70}`)
	insert(t, s, batch...)
	for i, r := range batch {
		if r.ID == 0 || (i > 0 && r.ID <= batch[i-1].ID) {
			t.Fatalf("IDs %v not set and strictly increasing in slice order", readingIDs(batch))
		}
	}
	if n := getDevice(t, s, a.ID).TelemetryCount; n != 3 {
		t.Errorf("TelemetryCount of a = %d, want 3", n)
	}
	if n := getDevice(t, s, b.ID).TelemetryCount; n != 2 {
		t.Errorf("TelemetryCount of b = %d, want 2", n)
	}

	second := []*iotflow.Reading{reading(b.ID, at(time.Hour), "sensor")}
	insert(t, s, second...)
	if n := getDevice(t, s, b.ID).TelemetryCount; n != 3 {
		t.Errorf("TelemetryCount of b after second batch = %d, want 3", n)
	}

	// Every field comes back; JSON compares as values, not as text.
	got, err := s.ListReadings(ctx, iotflow.ReadingFilter{Limit: 100})
	ok(t, "ListReadings", err)
	byID := make(map[int64]*iotflow.Reading)
	for _, r := range got {
		byID[r.ID] = r
	}
	names := map[int64]string{a.ID: "a", b.ID: "b"}
	for _, want := range append(batch, second...) {
		r, found := byID[want.ID]
		if !found {
			t.Errorf("reading %d not listed", want.ID)
			continue
		}
		checkReading(t, "reading", r, want, names[want.DeviceID])
	}
	if len(got) != 6 {
		t.Errorf("ListReadings returned %d readings, want 6", len(got))
	}
}

func testInsertReadingsUnknownDevice(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	a := createSimple(t, s, "a")
	tests := []struct {
		name  string
		batch []*iotflow.Reading
	}{
		{"unknown only", []*iotflow.Reading{reading(1_000_000, at(0), "sensor")}},
		{"valid then unknown", []*iotflow.Reading{
			reading(a.ID, at(0), "sensor"), reading(a.ID, at(time.Second), "sensor"), reading(1_000_000, at(0), "sensor"),
		}},
		{"unknown then valid", []*iotflow.Reading{reading(1_000_000, at(0), "sensor"), reading(a.ID, at(0), "sensor")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.InsertReadings(ctx, tt.batch)
			wantCode(t, "InsertReadings", err, iotflow.ENOTFOUND)
			// All or nothing: no reading stored, no counter raised.
			wantCount(t, s, iotflow.ReadingFilter{}, 0)
			wantCount(t, s, iotflow.ReadingFilter{DataType: "sensor"}, 0)
			wantCount(t, s, iotflow.ReadingFilter{DeviceID: a.ID}, 0)
			if n := getDevice(t, s, a.ID).TelemetryCount; n != 0 {
				t.Errorf("TelemetryCount = %d, want 0", n)
			}
			rs, err := s.ListReadings(ctx, iotflow.ReadingFilter{Limit: 10})
			ok(t, "ListReadings", err)
			if len(rs) != 0 {
				t.Errorf("ListReadings = %d readings, want 0", len(rs))
			}
		})
	}
	// The store still works after the failed batches.
	insert(t, s, reading(a.ID, at(0), "sensor"))
	wantCount(t, s, iotflow.ReadingFilter{}, 1)
}

// readingFixtures stores six readings of two devices, with equal and
// out-of-order timestamps, and returns the devices and the readings by label.
func readingFixtures(t *testing.T, s iotflow.Store) (a, b *iotflow.Device, r map[string]*iotflow.Reading) {
	a = createSimple(t, s, "dev-a")
	b = createSimple(t, s, "dev-b")
	r = map[string]*iotflow.Reading{
		"r1": reading(a.ID, at(2*time.Second), "sensor"),
		"r2": reading(b.ID, at(1*time.Second), "sensor"),
		"r3": reading(a.ID, at(2*time.Second), "event"), // same time as r1, higher ID
		"r4": reading(a.ID, at(0), "sensor"),
		"r5": reading(b.ID, at(3*time.Second), "event"),
		"r6": reading(a.ID, at(1*time.Second), "sensor"), // same time as r2, higher ID
	}
	insert(t, s, r["r1"], r["r2"], r["r3"])
	insert(t, s, r["r4"], r["r5"], r["r6"])
	return a, b, r
}

func testListReadings(t *testing.T, s iotflow.Store) {
	a, b, r := readingFixtures(t, s)
	tests := []struct {
		name   string
		filter iotflow.ReadingFilter
		want   []string
	}{
		{"all", iotflow.ReadingFilter{Limit: 100}, []string{"r5", "r3", "r1", "r6", "r2", "r4"}},
		{"device a", iotflow.ReadingFilter{DeviceID: a.ID, Limit: 100}, []string{"r3", "r1", "r6", "r4"}},
		{"device b", iotflow.ReadingFilter{DeviceID: b.ID, Limit: 100}, []string{"r5", "r2"}},
		{"unknown device", iotflow.ReadingFilter{DeviceID: 1_000_000, Limit: 100}, nil},
		{"data type", iotflow.ReadingFilter{DataType: "event", Limit: 100}, []string{"r5", "r3"}},
		{"unknown data type", iotflow.ReadingFilter{DataType: "Event", Limit: 100}, nil},
		{"device and type", iotflow.ReadingFilter{DeviceID: a.ID, DataType: "sensor", Limit: 100}, []string{"r1", "r6", "r4"}},
		{"since inclusive", iotflow.ReadingFilter{Since: ptr(at(time.Second)), Limit: 100}, []string{"r5", "r3", "r1", "r6", "r2"}},
		{"since and device", iotflow.ReadingFilter{DeviceID: a.ID, Since: ptr(at(2 * time.Second)), Limit: 100}, []string{"r3", "r1"}},
		{"since between", iotflow.ReadingFilter{Since: ptr(at(2*time.Second + time.Microsecond)), Limit: 100}, []string{"r5"}},
		{"since future", iotflow.ReadingFilter{Since: ptr(at(time.Hour)), Limit: 100}, nil},
		{"all filters", iotflow.ReadingFilter{DeviceID: a.ID, DataType: "sensor", Since: ptr(at(time.Second)), Limit: 100}, []string{"r1", "r6"}},
		{"page 1", iotflow.ReadingFilter{Limit: 2}, []string{"r5", "r3"}},
		{"page 2", iotflow.ReadingFilter{Limit: 2, Offset: 2}, []string{"r1", "r6"}},
		{"page 3", iotflow.ReadingFilter{Limit: 2, Offset: 4}, []string{"r2", "r4"}},
		{"past the end", iotflow.ReadingFilter{Limit: 2, Offset: 6}, nil},
		{"device page", iotflow.ReadingFilter{DeviceID: a.ID, Limit: 1, Offset: 1}, []string{"r1"}},
	}
	names := map[int64]string{a.ID: "dev-a", b.ID: "dev-b"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListReadings(t.Context(), tt.filter)
			ok(t, "ListReadings", err)
			want := make([]int64, len(tt.want))
			for i, label := range tt.want {
				want[i] = r[label].ID
			}
			if ids := readingIDs(got); !slices.Equal(ids, want) {
				t.Fatalf("ListReadings(%+v) IDs = %v, want %v (%v)", tt.filter, ids, want, tt.want)
			}
			for i, g := range got {
				checkReading(t, tt.want[i], g, r[tt.want[i]], names[g.DeviceID])
			}
		})
	}
}

func testCountReadings(t *testing.T, s iotflow.Store) {
	a, b, _ := readingFixtures(t, s)
	tests := []struct {
		name   string
		filter iotflow.ReadingFilter
		want   int64
	}{
		{"all", iotflow.ReadingFilter{}, 6},
		{"limit and offset ignored", iotflow.ReadingFilter{Limit: 1, Offset: 1}, 6},
		{"device a", iotflow.ReadingFilter{DeviceID: a.ID}, 4},
		{"device b", iotflow.ReadingFilter{DeviceID: b.ID}, 2},
		{"unknown device", iotflow.ReadingFilter{DeviceID: 1_000_000}, 0},
		{"data type", iotflow.ReadingFilter{DataType: "event"}, 2},
		{"device and type", iotflow.ReadingFilter{DeviceID: a.ID, DataType: "sensor"}, 3},
		{"unknown device and type", iotflow.ReadingFilter{DeviceID: 1_000_000, DataType: "sensor"}, 0},
		{"since inclusive", iotflow.ReadingFilter{Since: ptr(at(time.Second))}, 5},
		{"since and device", iotflow.ReadingFilter{DeviceID: a.ID, Since: ptr(at(time.Second))}, 3},
		{"since future", iotflow.ReadingFilter{Since: ptr(at(time.Hour))}, 0},
		{"all filters", iotflow.ReadingFilter{DeviceID: b.ID, DataType: "event", Since: ptr(at(3 * time.Second))}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCount(t, s, tt.filter, tt.want)
		})
	}
}

func testReadingStats(t *testing.T, s iotflow.Store) {
	a, b, _ := readingFixtures(t, s)
	empty := createSimple(t, s, "no-readings")
	tests := []struct {
		name string
		id   int64
		want iotflow.ReadingStats
	}{
		{"device a", a.ID, iotflow.ReadingStats{Count: 4, First: ptr(at(0)), Latest: ptr(at(2 * time.Second))}},
		{"device b", b.ID, iotflow.ReadingStats{Count: 2, First: ptr(at(time.Second)), Latest: ptr(at(3 * time.Second))}},
		{"no readings", empty.ID, iotflow.ReadingStats{}},
		{"unknown device", 1_000_000, iotflow.ReadingStats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ReadingStats(t.Context(), tt.id)
			ok(t, "ReadingStats", err)
			if got.Count != tt.want.Count || !sameTime(got.First, tt.want.First) || !sameTime(got.Latest, tt.want.Latest) {
				t.Errorf("ReadingStats = {%d %v %v}, want {%d %v %v}",
					got.Count, got.First, got.Latest, tt.want.Count, tt.want.First, tt.want.Latest)
			}
			if got.First != nil {
				checkUTC(t, "First", *got.First)
				checkUTC(t, "Latest", *got.Latest)
			}
		})
	}
}
