package series

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func formatPlan(segs []iotflow.Segment) string {
	var b strings.Builder
	for _, s := range segs {
		w := "raw"
		switch s.Width {
		case iotflow.RollupMinute:
			w = "minute"
		case iotflow.RollupHour:
			w = "hour"
		}
		fmt.Fprintf(&b, "%s [%s, %s) ", w, s.Start.Format(time.RFC3339Nano), s.End.Format(time.RFC3339Nano))
	}
	return strings.TrimSpace(b.String())
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name, zone, interval string
		start, end           string // UTC
		want                 []string
	}{
		{"UTC 1m", "UTC", "1m", "2026-05-01T10:00:30Z", "2026-05-01T11:30:00Z", []string{
			"raw [2026-05-01T10:00:30Z, 2026-05-01T10:01:00Z)",
			"minute [2026-05-01T10:01:00Z, 2026-05-01T11:30:00Z)",
		}},
		{"UTC 1h over 30 days, unaligned", "UTC", "1h", "2026-01-01T10:17:42Z", "2026-01-31T05:43:10.5Z", []string{
			"raw [2026-01-01T10:17:42Z, 2026-01-01T10:18:00Z)",
			"minute [2026-01-01T10:18:00Z, 2026-01-01T11:00:00Z)",
			"hour [2026-01-01T11:00:00Z, 2026-01-31T05:00:00Z)",
			"minute [2026-01-31T05:00:00Z, 2026-01-31T05:43:00Z)",
			"raw [2026-01-31T05:43:00Z, 2026-01-31T05:43:10.5Z)",
		}},
		{"UTC 1h, aligned", "UTC", "1h", "2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z", []string{
			"hour [2026-01-01T10:00:00Z, 2026-01-02T10:00:00Z)",
		}},
		{"UTC 1h within one hour", "UTC", "1h", "2026-01-01T10:10:10Z", "2026-01-01T10:50:50Z", []string{
			"raw [2026-01-01T10:10:10Z, 2026-01-01T10:11:00Z)",
			"minute [2026-01-01T10:11:00Z, 2026-01-01T10:50:00Z)",
			"raw [2026-01-01T10:50:00Z, 2026-01-01T10:50:50Z)",
		}},
		{"UTC 1h within one minute", "UTC", "1h", "2026-01-01T10:10:10Z", "2026-01-01T10:10:50Z", []string{
			"raw [2026-01-01T10:10:10Z, 2026-01-01T10:10:50Z)",
		}},
		{"Berlin 1d, whole-hour zone", "Europe/Berlin", "1d", "2026-03-27T23:00:00Z", "2026-03-30T22:00:00Z", []string{
			"hour [2026-03-27T23:00:00Z, 2026-03-30T22:00:00Z)",
		}},
		{"Kolkata 1d over 30 days", "Asia/Kolkata", "1d", "2026-04-30T18:30:00Z", "2026-05-30T18:30:00Z", []string{
			"minute [2026-04-30T18:30:00Z, 2026-05-30T18:30:00Z)",
		}},
		{"Kolkata 1d, unaligned", "Asia/Kolkata", "1d", "2026-04-30T12:00:30Z", "2026-05-30T12:00:00Z", []string{
			"raw [2026-04-30T12:00:30Z, 2026-04-30T12:01:00Z)",
			"minute [2026-04-30T12:01:00Z, 2026-05-30T12:00:00Z)",
		}},
		{"Kathmandu 1h", "Asia/Kathmandu", "1h", "2026-04-30T18:15:00Z", "2026-05-01T18:15:00Z", []string{
			"minute [2026-04-30T18:15:00Z, 2026-05-01T18:15:00Z)",
		}},
		{"UTC 90s", "UTC", "90s", "2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z", []string{
			"raw [2026-05-01T10:00:00Z, 2026-05-01T11:00:00Z)",
		}},
		{"UTC 30s", "UTC", "30s", "2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z", []string{
			"raw [2026-05-01T10:00:00Z, 2026-05-01T11:00:00Z)",
		}},
		{"UTC 1d, one bucket", "UTC", "1d", "2026-05-01T10:20:00Z", "2026-05-01T12:00:00Z", []string{
			"minute [2026-05-01T10:20:00Z, 2026-05-01T11:00:00Z)",
			"hour [2026-05-01T11:00:00Z, 2026-05-01T12:00:00Z)",
		}},
		{"raw", "UTC", "raw", "2026-05-01T10:00:00Z", "2026-06-01T11:00:00Z", []string{
			"raw [2026-05-01T10:00:00Z, 2026-06-01T11:00:00Z)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, end := utc(tc.start), utc(tc.end)
			edges, err := Buckets(start, end, mustInterval(t, tc.interval), mustLoc(t, tc.zone), 10000)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := formatPlan(Plan(edges, start, end)), strings.Join(tc.want, " "); got != want {
				t.Errorf("plan\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestPlanProperties checks over random ranges, intervals and zones that
// a plan covers its range exactly and that no rollup segment splits a
// bucket or reaches outside the range.
func TestPlanProperties(t *testing.T) {
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu",
		"Australia/Lord_Howe", "America/Santiago", "America/St_Johns"}
	intervals := []string{"raw", "1s", "30s", "1m", "90s", "5m", "7m", "15m", "1h", "90m", "2h", "7h", "12h", "1d", "1w", "1mo"}
	r := rand.New(rand.NewPCG(3, 4))
	lo, hi := utc("2015-01-01T00:00:00Z").Unix(), utc("2030-01-01T00:00:00Z").Unix()
	for range 3000 {
		zone, ivs := zones[r.IntN(len(zones))], intervals[r.IntN(len(intervals))]
		loc, iv := mustLoc(t, zone), mustInterval(t, ivs)
		start := time.Unix(lo+r.Int64N(hi-lo), 0)
		switch r.IntN(3) { // unaligned, minute aligned, hour aligned
		case 0:
			start = start.Add(time.Duration(r.Int64N(1e9)))
		case 1:
			start = start.Truncate(time.Minute)
		case 2:
			start = start.Truncate(time.Hour)
		}
		g := bucketGuess(iv)
		if iv.Raw() {
			g = time.Hour
		}
		end := start.Add(time.Duration(r.Int64N(int64(time.Duration(r.Int64N(2000)+1)*g))) + 1)
		if r.IntN(2) == 0 {
			end = end.Truncate(time.Minute)
		}
		if !end.After(start) {
			end = start.Add(time.Second)
		}
		edges, err := Buckets(start, end, iv, loc, 1e6)
		if err != nil {
			t.Fatal(err)
		}
		segs := Plan(edges, start, end)
		where := fmt.Sprintf("%s %s [%v, %v): %s", zone, ivs, start.UTC(), end.UTC(), formatPlan(segs))
		if len(segs) == 0 || !segs[0].Start.Equal(start) || !segs[len(segs)-1].End.Equal(end) {
			t.Fatalf("%s: does not cover the range", where)
		}
		for i, s := range segs {
			if !s.Start.Before(s.End) {
				t.Fatalf("%s: segment %d is empty", where, i)
			}
			if i > 0 && (!segs[i-1].End.Equal(s.Start) || segs[i-1].Width == s.Width) {
				t.Fatalf("%s: segment %d does not follow the one before", where, i)
			}
			switch s.Width {
			case 0:
				continue
			case iotflow.RollupMinute, iotflow.RollupHour:
			default:
				t.Fatalf("%s: segment %d has width %v", where, i, s.Width)
			}
			if iv.Raw() {
				t.Fatalf("%s: a raw interval reads rollups", where)
			}
			if !s.Start.Truncate(s.Width).Equal(s.Start) || !s.End.Truncate(s.Width).Equal(s.End) {
				t.Fatalf("%s: segment %d is not aligned to its width", where, i)
			}
			for _, e := range edges {
				if e.After(s.Start) && e.Before(s.End) && !e.Truncate(s.Width).Equal(e) {
					t.Fatalf("%s: edge %v inside segment %d is not aligned to its width", where, e, i)
				}
			}
		}
	}
}

func TestBucketIndex(t *testing.T) {
	edges := []time.Time{utc("2026-05-01T00:00:00Z"), utc("2026-05-01T01:00:00Z"), utc("2026-05-01T03:00:00Z")}
	for _, tc := range []struct {
		edges []time.Time
		t     string
		want  int
	}{
		{edges, "2026-04-30T23:59:59.999999999Z", -1},
		{edges, "2026-05-01T00:00:00Z", 0},
		{edges, "2026-05-01T00:59:59Z", 0},
		{edges, "2026-05-01T01:00:00Z", 1},
		{edges, "2026-05-01T02:59:59.999999999Z", 1},
		{edges, "2026-05-01T03:00:00Z", -1},
		{edges, "2026-05-02T00:00:00Z", -1},
		{edges[:1], "2026-05-01T00:00:00Z", -1},
		{nil, "2026-05-01T00:00:00Z", -1},
	} {
		if got := BucketIndex(tc.edges, utc(tc.t)); got != tc.want {
			t.Errorf("BucketIndex(%d edges, %s) = %d, want %d", len(tc.edges), tc.t, got, tc.want)
		}
	}
	// A time in another zone is placed by its instant.
	if got := BucketIndex(edges, utc("2026-05-01T01:30:00Z").In(mustLoc(t, "Asia/Kathmandu"))); got != 1 {
		t.Errorf("BucketIndex of 01:30Z in Kathmandu = %d, want 1", got)
	}
}
