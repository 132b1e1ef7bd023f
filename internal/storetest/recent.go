package storetest

import (
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// testRecentReadingsAcrossHours: the dashboard's count of recent readings
// is exact whatever hours the readings and the cut-off fall in, and drops
// by exactly a deleted device's readings.
func testRecentReadingsAcrossHours(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	a := createSimple(t, s, "a")
	b := createSimple(t, s, "b")
	// t0 is 12:00:00.123456; the cut-off lies inside the 12:00 hour.
	since := at(30 * time.Minute)
	for _, r := range []struct {
		dev *iotflow.Device
		d   time.Duration
	}{
		{a, 10 * time.Minute},                  // before the cut-off, same hour
		{a, -2 * time.Hour},                    // hours before
		{a, 30 * time.Minute},                  // exactly at the cut-off: counts
		{b, 45 * time.Minute},                  // the partial hour
		{a, 65 * time.Minute},                  // the next hour
		{b, 65 * time.Minute},                  // the next hour, another device
		{a, 3*time.Hour + time.Second},         // later hours
		{b, 26 * time.Hour},                    // a day later
		{a, 30*time.Minute - time.Microsecond}, // a microsecond before the cut-off
	} {
		insert(t, s, reading(r.dev.ID, at(r.d), "sensor"))
	}
	recent := func() int64 {
		st, err := s.Dashboard(ctx, at(0), since)
		ok(t, "Dashboard", err)
		return st.RecentReadings
	}
	if got := recent(); got != 6 {
		t.Fatalf("RecentReadings = %d, want 6", got)
	}
	// Many readings in one batch, spread over hours, count once each.
	var batch []*iotflow.Reading
	for i := range 50 {
		batch = append(batch, reading(b.ID, at(time.Duration(i)*7*time.Minute), "sensor"))
	}
	insert(t, s, batch...)
	want := int64(6)
	for i := range 50 {
		if !at(time.Duration(i) * 7 * time.Minute).Before(since) {
			want++
		}
	}
	if got := recent(); got != want {
		t.Fatalf("after a batch RecentReadings = %d, want %d", got, want)
	}
	// Deleting b takes its readings out of every hour's count.
	_, err := s.DeleteDevice(ctx, b.ID)
	ok(t, "DeleteDevice", err)
	if got := recent(); got != 3 {
		t.Fatalf("after deleting b RecentReadings = %d, want 3 (a's)", got)
	}
	// A cut-off on a whole hour and one after every reading.
	st, err := s.Dashboard(ctx, at(0), at(time.Hour).Truncate(time.Hour))
	ok(t, "Dashboard", err)
	if st.RecentReadings != 2 {
		t.Fatalf("cut-off on the hour: RecentReadings = %d, want 2", st.RecentReadings)
	}
	st, err = s.Dashboard(ctx, at(0), at(48*time.Hour))
	ok(t, "Dashboard", err)
	if st.RecentReadings != 0 {
		t.Fatalf("cut-off after everything: RecentReadings = %d, want 0", st.RecentReadings)
	}
}
