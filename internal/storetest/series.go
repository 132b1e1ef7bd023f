package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// valueReading returns a reading of the device at ts whose payload is p.
func valueReading(deviceID int64, ts time.Time, p string) *iotflow.Reading {
	r := reading(deviceID, ts, "sensor")
	r.Payload = json.RawMessage(p)
	return r
}

// testListReadingRanges: Start and End bound the readings' own time to
// [Start, End), in either order, and After continues a page after the
// reading it names, ties in time broken by id.
func testListReadingRanges(t *testing.T, s iotflow.Store) {
	d := createSimple(t, s, "ranged")
	other := createSimple(t, s, "other")
	var rs []*iotflow.Reading
	for i := range 10 {
		rs = append(rs, reading(d.ID, at(time.Duration(i/2)*time.Minute), "sensor")) // pairs share a time
	}
	insert(t, s, rs...)
	insert(t, s, reading(other.ID, at(time.Minute), "sensor"))
	ids := func(got []*iotflow.Reading) []int64 {
		out := make([]int64, len(got))
		for i, r := range got {
			out[i] = r.ID
		}
		return out
	}
	want := func(idx ...int) []int64 {
		out := make([]int64, len(idx))
		for i, j := range idx {
			out[i] = rs[j].ID
		}
		return out
	}
	start, end := at(time.Minute), at(3*time.Minute)
	for _, tt := range []struct {
		name string
		f    iotflow.ReadingFilter
		want []int64
	}{
		{"range newest first", iotflow.ReadingFilter{DeviceID: d.ID, Start: &start, End: &end}, want(5, 4, 3, 2)},
		{"range oldest first", iotflow.ReadingFilter{DeviceID: d.ID, Start: &start, End: &end, Ascending: true}, want(2, 3, 4, 5)},
		{"after, newest first", iotflow.ReadingFilter{DeviceID: d.ID, After: &iotflow.ReadingKey{At: rs[5].Timestamp, ID: rs[5].ID}, Limit: 3},
			want(4, 3, 2)},
		{"after, oldest first", iotflow.ReadingFilter{DeviceID: d.ID, Ascending: true, After: &iotflow.ReadingKey{At: rs[2].Timestamp, ID: rs[2].ID}, Limit: 2},
			want(3, 4)},
		{"after and end", iotflow.ReadingFilter{DeviceID: d.ID, Ascending: true, End: &end, After: &iotflow.ReadingKey{At: rs[4].Timestamp, ID: rs[4].ID}},
			want(5)},
		{"open end", iotflow.ReadingFilter{DeviceID: d.ID, Start: &end, Ascending: true}, want(6, 7, 8, 9)},
	} {
		got, err := s.ListReadings(t.Context(), tt.f)
		ok(t, tt.name, err)
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("%s: ids %v, want %v", tt.name, ids(got), tt.want)
		}
		n, err := s.CountReadings(t.Context(), iotflow.ReadingFilter{DeviceID: tt.f.DeviceID, Start: tt.f.Start, End: tt.f.End, After: tt.f.After, Ascending: tt.f.Ascending})
		ok(t, tt.name+" count", err)
		if tt.f.Limit == 0 && n != int64(len(tt.want)) {
			t.Errorf("%s: CountReadings %d, want %d", tt.name, n, len(tt.want))
		}
	}
}

// testCursorWalkWhileWriting: paging by After, oldest first, through a
// device's readings while others are stored returns each reading that was
// there when the walk began exactly once, in order.
func testCursorWalkWhileWriting(t *testing.T, s iotflow.Store) {
	d := createSimple(t, s, "walked")
	var first []*iotflow.Reading
	for i := range 200 {
		first = append(first, reading(d.ID, at(time.Duration(i%50)*time.Second), "sensor"))
	}
	insert(t, s, first...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Some land before the walk's position, some after it.
			if err := s.InsertReadings(t.Context(), []*iotflow.Reading{reading(d.ID, at(time.Duration(i%60)*time.Second), "sensor")}); err != nil {
				t.Errorf("InsertReadings: %v", err)
				return
			}
		}
	})
	seen := map[int64]bool{}
	var prev *iotflow.ReadingKey
	f := iotflow.ReadingFilter{DeviceID: d.ID, Ascending: true, Limit: 7}
	for {
		page, err := s.ListReadings(t.Context(), f)
		ok(t, "ListReadings", err)
		for _, r := range page {
			k := iotflow.ReadingKey{At: r.Timestamp, ID: r.ID}
			if seen[r.ID] {
				t.Fatalf("reading %d returned twice", r.ID)
			}
			if prev != nil && (k.At.Before(prev.At) || k.At.Equal(prev.At) && k.ID <= prev.ID) {
				t.Fatalf("reading %v after %v: out of order", k, *prev)
			}
			seen[r.ID], prev = true, &k
		}
		if len(page) < f.Limit {
			break
		}
		f.After = prev
	}
	close(stop)
	wg.Wait()
	for _, r := range first {
		if !seen[r.ID] {
			t.Errorf("reading %d was never returned", r.ID)
		}
	}
}

// testRollupWatermark: the rollups take in readings above a watermark
// that only a pass applied from it moves; a pass from a stale watermark
// changes nothing.
func testRollupWatermark(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := createSimple(t, s, "rolled")
	from, upTo, rs, err := s.UnrolledReadings(ctx, 10)
	ok(t, "UnrolledReadings(empty)", err)
	if from != 0 || upTo != 0 || len(rs) != 0 {
		t.Fatalf("empty store: from %d upTo %d, %d readings", from, upTo, len(rs))
	}
	var all []*iotflow.Reading
	for i := range 5 {
		all = append(all, valueReading(d.ID, at(time.Duration(i)*time.Second), fmt.Sprintf(`{"v": %d}`, i)))
	}
	insert(t, s, all...)
	from, upTo, rs, err = s.UnrolledReadings(ctx, 3)
	ok(t, "UnrolledReadings(3)", err)
	if from != 0 || len(rs) != 3 || rs[0].ID != all[0].ID || upTo != all[2].ID {
		t.Fatalf("first pass: from %d upTo %d, %d readings", from, upTo, len(rs))
	}
	if string(rs[1].Payload) == "" || rs[1].DeviceID != d.ID || !rs[1].Timestamp.Equal(all[1].Timestamp) {
		t.Fatalf("unrolled reading %+v lacks what the rollup needs", rs[1])
	}
	ok(t, "ApplyRollups", s.ApplyRollups(ctx, iotflow.RollupUpdate{From: from, UpTo: upTo}))
	err = s.ApplyRollups(ctx, iotflow.RollupUpdate{From: from, UpTo: upTo})
	wantCode(t, "ApplyRollups(stale)", err, iotflow.ECONFLICT)
	from, upTo, rs, err = s.UnrolledReadings(ctx, 10)
	ok(t, "UnrolledReadings(rest)", err)
	if from != all[2].ID || len(rs) != 2 || rs[0].ID != all[3].ID || upTo < all[4].ID {
		t.Fatalf("second pass: from %d upTo %d, %d readings", from, upTo, len(rs))
	}
	ok(t, "ApplyRollups", s.ApplyRollups(ctx, iotflow.RollupUpdate{From: from, UpTo: upTo}))
	if _, _, rs, err = s.UnrolledReadings(ctx, 10); err != nil || len(rs) != 0 {
		t.Fatalf("after both passes: %d readings, %v", len(rs), err)
	}
}

// agg aggregates values taken at the given readings.
func agg(vs []float64, rs []*iotflow.Reading) iotflow.Agg {
	var a iotflow.Agg
	for i, v := range vs {
		a.Add(v, rs[i].Timestamp, rs[i].ID)
	}
	return a
}

// testApplyRollupsMerges: rollups of the same device, width, key and
// bucket add up across passes; first and last follow the readings' own
// time, then id; a key's state changes only for a newer reading; what
// names a deleted device is dropped; and the series data of a query holds
// the rollups of its rollup segments, the readings of its raw segments,
// and the readings the rollups do not cover yet, each once.
func testApplyRollupsMerges(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := createSimple(t, s, "merged")
	gone := createSimple(t, s, "gone")
	minute := at(0).Truncate(time.Minute)
	var rs []*iotflow.Reading
	for i, off := range []time.Duration{30, 10, 50, 10} { // seconds into the minute; two at :10
		rs = append(rs, valueReading(d.ID, minute.Add(off*time.Second), fmt.Sprintf(`{"t": %d, "s": "x%d"}`, i, i)))
	}
	insert(t, s, rs...)
	insert(t, s, valueReading(gone.ID, minute, `{"t": 1}`))
	from, upTo, _, err := s.UnrolledReadings(ctx, 100)
	ok(t, "UnrolledReadings", err)
	state := func(i int, kind iotflow.ValueKind, key, value string) iotflow.KeyState {
		return iotflow.KeyState{DeviceID: d.ID, Key: key, Kind: kind, At: rs[i].Timestamp, ReadingID: rs[i].ID, Value: json.RawMessage(value)}
	}
	roll := func(a iotflow.Agg) iotflow.Rollup {
		return iotflow.Rollup{DeviceID: d.ID, Key: "t", Width: iotflow.RollupMinute, Bucket: minute, Agg: a}
	}
	// Two passes' worth, applied as two updates: readings 0 and 1, then 2 and 3.
	ok(t, "ApplyRollups(1)", s.ApplyRollups(ctx, iotflow.RollupUpdate{From: from, UpTo: from + 1,
		Rollups: []iotflow.Rollup{roll(agg([]float64{0, 1}, rs[:2])),
			{DeviceID: gone.ID, Key: "t", Width: iotflow.RollupMinute, Bucket: minute, Agg: agg([]float64{1}, rs[:1])}},
		Keys: []iotflow.KeyState{state(0, iotflow.KindNumber, "t", "0"), state(1, iotflow.KindString, "s", `"x1"`)}}))
	_, err = s.DeleteDevice(ctx, gone.ID)
	ok(t, "DeleteDevice(gone)", err)
	ok(t, "ApplyRollups(2)", s.ApplyRollups(ctx, iotflow.RollupUpdate{From: from + 1, UpTo: upTo,
		Rollups: []iotflow.Rollup{roll(agg([]float64{2, 3}, rs[2:]))},
		Keys: []iotflow.KeyState{state(2, iotflow.KindNumber, "t", "2"), state(3, iotflow.KindString, "s", `"x3"`),
			{DeviceID: gone.ID, Key: "t", Kind: iotflow.KindNumber, At: minute, ReadingID: 1, Value: json.RawMessage("1")}}}))

	data, err := s.SeriesData(ctx, iotflow.SeriesQuery{DeviceID: d.ID, Keys: []string{"t"},
		Segments: []iotflow.Segment{{Start: minute, End: minute.Add(time.Minute), Width: iotflow.RollupMinute}}})
	ok(t, "SeriesData", err)
	if len(data.Rollups) != 1 || len(data.Readings) != 0 {
		t.Fatalf("SeriesData: %d rollups, %d readings; want one rollup", len(data.Rollups), len(data.Readings))
	}
	got, want := data.Rollups[0], roll(agg([]float64{0, 1, 2, 3}, rs))
	if got.Key != "t" || got.Width != iotflow.RollupMinute || !got.Bucket.Equal(minute) || got.Count != 4 || got.Sum != 6 ||
		got.Min != 0 || got.Max != 3 || got.First != 1 || got.FirstID != rs[1].ID || !got.FirstAt.Equal(rs[1].Timestamp) ||
		got.Last != 2 || got.LastID != rs[2].ID || !got.LastAt.Equal(rs[2].Timestamp) {
		t.Errorf("merged rollup %+v, want %+v", got, want)
	}
	states, tail, err := s.DeviceKeys(ctx, d.ID)
	ok(t, "DeviceKeys", err)
	if len(tail) != 0 || len(states) != 2 || states[0].Key != "s" || string(states[0].Value) != `"x3"` ||
		states[0].Kind != iotflow.KindString || states[1].Key != "t" || string(states[1].Value) != "2" ||
		states[1].ReadingID != rs[2].ID || !states[1].At.Equal(rs[2].Timestamp) {
		t.Errorf("key states %+v, tail %d", states, len(tail))
	}
	// An older reading does not replace a key's state.
	ok(t, "ApplyRollups(older)", s.ApplyRollups(ctx, iotflow.RollupUpdate{From: upTo, UpTo: upTo,
		Keys: []iotflow.KeyState{state(1, iotflow.KindNumber, "t", "1")}}))
	if states, _, _ = s.DeviceKeys(ctx, d.ID); string(states[1].Value) != "2" {
		t.Errorf("an older reading replaced the state: %+v", states[1])
	}
	if states, _, err := s.DeviceKeys(ctx, gone.ID); err != nil || len(states) != 0 {
		t.Errorf("a deleted device has key states %+v, %v", states, err)
	}

	// Readings after the watermark come as the tail, within the rollup
	// segments; the raw segments' readings come whatever the watermark.
	late := valueReading(d.ID, minute.Add(20*time.Second), `{"t": 9}`)
	later := valueReading(d.ID, minute.Add(90*time.Second), `{"t": 8}`)
	insert(t, s, late, later)
	data, err = s.SeriesData(ctx, iotflow.SeriesQuery{DeviceID: d.ID, Keys: []string{"t"}, Segments: []iotflow.Segment{
		{Start: minute, End: minute.Add(time.Minute), Width: iotflow.RollupMinute},
		{Start: minute.Add(time.Minute), End: minute.Add(2 * time.Minute)},
	}})
	ok(t, "SeriesData(tail)", err)
	var readings []int64
	for _, r := range data.Readings {
		readings = append(readings, r.ID)
	}
	slices.Sort(readings)
	if len(data.Rollups) != 1 || !slices.Equal(readings, []int64{late.ID, later.ID}) {
		t.Errorf("with a tail: %d rollups, readings %v; want 1 and [%d %d]", len(data.Rollups), readings, late.ID, later.ID)
	}
	raw, err := s.SeriesData(ctx, iotflow.SeriesQuery{DeviceID: d.ID, Segments: []iotflow.Segment{{Start: minute, End: minute.Add(2 * time.Minute)}}})
	ok(t, "SeriesData(raw)", err)
	if len(raw.Rollups) != 0 || len(raw.Readings) != 6 {
		t.Errorf("raw segment: %d rollups, %d readings; want 0 and 6", len(raw.Rollups), len(raw.Readings))
	}
	if _, tail, _ := s.DeviceKeys(ctx, d.ID); len(tail) != 2 {
		t.Errorf("DeviceKeys tail: %d readings, want 2", len(tail))
	}
}

// testDeleteReadingsBefore: retention deletes the oldest readings first,
// a bounded number at a time, and the counts, the dashboard's included,
// stay exact; the rollups of buckets before the cutoff go too.
func testDeleteReadingsBefore(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	a, b := createSimple(t, s, "old-a"), createSimple(t, s, "old-b")
	hour := at(0).Truncate(time.Hour)
	var rs []*iotflow.Reading
	for i := range 12 {
		dev := a.ID
		if i%3 == 0 {
			dev = b.ID
		}
		rs = append(rs, valueReading(dev, hour.Add(time.Duration(i)*15*time.Minute), `{"t": 1}`)) // over three hours
	}
	insert(t, s, rs...)
	from, upTo, _, err := s.UnrolledReadings(ctx, 100)
	ok(t, "UnrolledReadings", err)
	var rollups []iotflow.Rollup
	for h := range 3 {
		rollups = append(rollups, iotflow.Rollup{DeviceID: a.ID, Key: "t", Width: iotflow.RollupHour, Bucket: hour.Add(time.Duration(h) * time.Hour),
			Agg: agg([]float64{1}, rs[h*4:h*4+1])})
	}
	ok(t, "ApplyRollups", s.ApplyRollups(ctx, iotflow.RollupUpdate{From: from, UpTo: upTo, Rollups: rollups}))

	cutoff := hour.Add(2 * time.Hour) // the first 8 readings are older
	n, err := s.DeleteReadingsBefore(ctx, cutoff, 5)
	ok(t, "DeleteReadingsBefore(5)", err)
	if n != 5 {
		t.Fatalf("deleted %d, want 5", n)
	}
	left, err := s.ListReadings(ctx, iotflow.ReadingFilter{Ascending: true})
	ok(t, "ListReadings", err)
	if len(left) != 7 || left[0].ID != rs[5].ID {
		t.Fatalf("after a pass of 5: %d readings, oldest %d; want 7 from %d", len(left), left[0].ID, rs[5].ID)
	}
	for n != 0 {
		n, err = s.DeleteReadingsBefore(ctx, cutoff, 5)
		ok(t, "DeleteReadingsBefore", err)
	}
	for _, dev := range []*iotflow.Device{a, b} {
		rows, err := s.CountReadings(ctx, iotflow.ReadingFilter{DeviceID: dev.ID, DataType: "sensor"})
		ok(t, "CountReadings", err)
		if got := getDevice(t, s, dev.ID).TelemetryCount; got != rows {
			t.Errorf("device %s: telemetry_count %d, %d rows", dev.Name, got, rows)
		}
	}
	st, err := s.Dashboard(ctx, at(0), hour.Add(-time.Hour))
	ok(t, "Dashboard", err)
	if st.TotalReadings != 4 || st.RecentReadings != 4 {
		t.Errorf("dashboard counts %d readings, %d recent; want 4 and 4", st.TotalReadings, st.RecentReadings)
	}
	data, err := s.SeriesData(ctx, iotflow.SeriesQuery{DeviceID: a.ID, Keys: []string{"t"},
		Segments: []iotflow.Segment{{Start: hour, End: hour.Add(3 * time.Hour), Width: iotflow.RollupHour}}})
	ok(t, "SeriesData", err)
	if len(data.Rollups) != 1 || !data.Rollups[0].Bucket.Equal(cutoff) {
		t.Errorf("rollups after retention: %+v; want only the bucket at the cutoff", data.Rollups)
	}
}
