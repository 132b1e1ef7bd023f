package series

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

// TestRetentionUnderLoad: while writers store readings, the rollup runs
// and retention removes what is past the window, no reading within the
// window is lost, none before it is left, and every count (each device's,
// the total, the hourly) agrees with the rows.
func TestRetentionUnderLoad(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			devices := []int64{f.device(t, "a"), f.device(t, "b"), f.device(t, "c")}
			now := time.Date(2026, 6, 10, 12, 30, 0, 0, time.UTC)
			keep := 72 * time.Hour
			cutoff := iotflow.RetentionCutoff(now, keep)
			// Old readings: five days back to the window, across hours.
			var old []*iotflow.Reading
			for i := range 2000 {
				at := cutoff.Add(-time.Duration(i) * 3 * time.Minute)
				old = append(old, read(devices[i%3], at.Add(-time.Second), `{"t": 1}`))
			}
			for i := 0; i < len(old); i += 250 {
				f.insert(t, old[i:i+250]...)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r := &Retention{Store: f.store, Keep: keep, Batch: 100, Pause: time.Millisecond, Every: 5 * time.Millisecond,
				Now: func() time.Time { return now }, Log: slog.New(slog.DiscardHandler)}
			var bg sync.WaitGroup
			bg.Go(func() { r.Run(ctx) })
			bg.Go(func() { f.roller.Run(ctx) })

			var mu sync.Mutex
			var kept []*iotflow.Reading
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := range 60 {
						// Within the window, some right at its edge.
						at := cutoff.Add(time.Duration((w*60+i)%120) * time.Minute)
						rs := []*iotflow.Reading{read(devices[(w+i)%3], at, fmt.Sprintf(`{"t": %d}`, i))}
						if err := f.store.InsertReadings(t.Context(), rs); err != nil {
							t.Errorf("InsertReadings: %v", err)
							return
						}
						mu.Lock()
						kept = append(kept, rs...)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			deadline := time.Now().Add(30 * time.Second)
			for {
				n, err := f.store.CountReadings(t.Context(), iotflow.ReadingFilter{End: &cutoff})
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d readings before the cutoff are left", n)
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			bg.Wait()

			all, err := f.store.ListReadings(t.Context(), iotflow.ReadingFilter{})
			if err != nil {
				t.Fatal(err)
			}
			left := map[int64]bool{}
			for _, rd := range all {
				left[rd.ID] = true
			}
			for _, rd := range kept {
				if !left[rd.ID] {
					t.Fatalf("reading %d within the window was removed", rd.ID)
				}
			}
			if len(all) != len(kept) {
				t.Fatalf("%d readings left, want the %d within the window", len(all), len(kept))
			}
			var total int64
			for _, id := range devices {
				d, err := f.store.Device(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				rows, err := f.store.CountReadings(t.Context(), iotflow.ReadingFilter{DeviceID: id, DataType: "sensor"})
				if err != nil {
					t.Fatal(err)
				}
				if d.TelemetryCount != rows {
					t.Errorf("device %d: telemetry_count %d, %d rows", id, d.TelemetryCount, rows)
				}
				total += rows
			}
			st, err := f.store.Dashboard(t.Context(), now, cutoff.Add(-24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if st.TotalReadings != total || st.RecentReadings != total {
				t.Errorf("dashboard: %d readings, %d recent; want %d", st.TotalReadings, st.RecentReadings, total)
			}
			// The rollups hold what is left, nothing before the cutoff.
			iv, _ := ParseInterval("1h")
			res, err := f.svc.Series(t.Context(), SeriesQuery{DeviceID: devices[0], Start: cutoff.Add(-96 * time.Hour), End: cutoff.Add(3 * time.Hour),
				Interval: iv, Loc: time.UTC, Fill: FillNone, Limit: MaxBuckets, Aggs: []string{"count"}})
			if err != nil {
				t.Fatal(err)
			}
			var counted int64
			for _, bk := range res.Buckets["t"] {
				if bk.Start.Before(cutoff) {
					t.Errorf("a bucket before the cutoff: %+v", bk)
				}
				counted += bk.Count
			}
			rows, _ := f.store.CountReadings(t.Context(), iotflow.ReadingFilter{DeviceID: devices[0], DataType: "sensor"})
			if counted != rows {
				t.Errorf("the series counts %d readings of device a, %d rows", counted, rows)
			}
		})
	}
}
