package series

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func TestParseInterval(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"raw", "raw"}, {"1s", "1s"}, {"30s", "30s"}, {"5m", "5m"}, {"90m", "1h30m"}, {"1h30m", "1h30m"},
		{"1h", "1h"}, {"6h", "6h"}, {"7h", "7h"}, {"12h", "12h"}, {"1d", "1d"}, {"24h", "1d"}, {"1440m", "1d"},
		{"1w", "1w"}, {"1mo", "1mo"}, {"0.5m", "30s"}, {"1000ms", "1s"}, {"1.5h", "1h30m"}, {"3601s", "1h1s"},
		{"23h59m59s", "23h59m59s"}, {"90s", "1m30s"},
	} {
		iv, err := ParseInterval(tc.in)
		if err != nil {
			t.Errorf("ParseInterval(%q): %v", tc.in, err)
			continue
		}
		if got := iv.String(); got != tc.want {
			t.Errorf("ParseInterval(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := ParseInterval(iv.String()); err != nil || back != iv {
			t.Errorf("ParseInterval(%q) = %v, %v; want %v back", iv.String(), back, err, iv)
		}
		if iv.Raw() != (tc.want == "raw") {
			t.Errorf("ParseInterval(%q).Raw() = %v", tc.in, iv.Raw())
		}
	}
	const msg = "Query parameter 'interval' must be raw, a duration from 1s to 1d such as 30s, 5m or 1h, or 1w or 1mo"
	for _, in := range []string{
		"", "0s", "0", "1.5s", "500ms", "25h", "24h1s", "2d", "1d1h", "2w", "2mo", "-1m", "+1m", "1", "1y",
		"RAW", "Raw", "1W", "1MO", " 1h", "1h ", "1mon", "1month", "m", "1e3s", "9999999999999999999h",
	} {
		_, err := ParseInterval(in)
		if iotflow.ErrorCode(err) != iotflow.EINVALID || iotflow.ErrorMessage(err) != msg {
			t.Errorf("ParseInterval(%q) = %v, want %q", in, err, msg)
		}
	}
	if !(Interval{}).Raw() {
		t.Error("the zero Interval is not raw")
	}
}

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustInterval(t testing.TB, s string) Interval {
	t.Helper()
	iv, err := ParseInterval(s)
	if err != nil {
		t.Fatal(err)
	}
	return iv
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// local is a wall time in a zone, written as RFC 3339 without an offset.
func local(t testing.TB, zone, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02T15:04:05", s, mustLoc(t, zone))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBucketsEdges(t *testing.T) {
	for _, tc := range []struct {
		name, zone, interval string
		start, end           string // wall times in zone
		want                 []string
	}{
		{"start not on an edge", "UTC", "1h", "2026-05-01T10:30:00", "2026-05-01T12:00:00",
			[]string{"2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z", "2026-05-01T12:00:00Z"}},
		{"end not on an edge", "UTC", "1h", "2026-05-01T10:00:00", "2026-05-01T11:30:00",
			[]string{"2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z", "2026-05-01T12:00:00Z"}},
		{"one bucket", "UTC", "1d", "2026-05-01T10:00:00", "2026-05-01T10:00:01",
			[]string{"2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z"}},
		{"Berlin 1d, 23-hour day", "Europe/Berlin", "1d", "2026-03-27T00:00:00", "2026-03-31T00:00:00",
			[]string{"2026-03-26T23:00:00Z", "2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", "2026-03-30T22:00:00Z"}},
		{"Berlin 1d, 25-hour day", "Europe/Berlin", "1d", "2026-10-24T12:00:00", "2026-10-26T12:00:00",
			[]string{"2026-10-23T22:00:00Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z"}},
		{"Kolkata 1d", "Asia/Kolkata", "1d", "2026-05-01T00:00:00", "2026-05-03T00:00:00",
			[]string{"2026-04-30T18:30:00Z", "2026-05-01T18:30:00Z", "2026-05-02T18:30:00Z"}},
		{"Kathmandu 1h", "Asia/Kathmandu", "1h", "2026-05-01T00:30:00", "2026-05-01T03:00:00",
			[]string{"2026-04-30T18:15:00Z", "2026-04-30T19:15:00Z", "2026-04-30T20:15:00Z", "2026-04-30T21:15:00Z"}},
		{"Berlin 1w from Monday", "Europe/Berlin", "1w", "2026-03-04T09:00:00", "2026-04-02T00:00:00",
			[]string{"2026-03-01T23:00:00Z", "2026-03-08T23:00:00Z", "2026-03-15T23:00:00Z", "2026-03-22T23:00:00Z", "2026-03-29T22:00:00Z", "2026-04-05T22:00:00Z"}},
		{"UTC 1w on a Monday", "UTC", "1w", "2026-01-05T00:00:00", "2026-01-12T00:00:00",
			[]string{"2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"}},
		{"Berlin 1mo over a year", "Europe/Berlin", "1mo", "2026-01-01T00:00:00", "2027-01-01T00:00:00",
			[]string{"2025-12-31T23:00:00Z", "2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z",
				"2026-04-30T22:00:00Z", "2026-05-31T22:00:00Z", "2026-06-30T22:00:00Z", "2026-07-31T22:00:00Z",
				"2026-08-31T22:00:00Z", "2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z",
				"2026-12-31T23:00:00Z"}},
		{"UTC 1mo, leap February", "UTC", "1mo", "2028-02-15T00:00:00", "2028-03-01T00:00:01",
			[]string{"2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z", "2028-04-01T00:00:00Z"}},
		{"UTC 7h, last bucket of a day 3h", "UTC", "7h", "2026-05-01T00:00:00", "2026-05-02T08:00:00",
			[]string{"2026-05-01T00:00:00Z", "2026-05-01T07:00:00Z", "2026-05-01T14:00:00Z", "2026-05-01T21:00:00Z",
				"2026-05-02T00:00:00Z", "2026-05-02T07:00:00Z", "2026-05-02T14:00:00Z"}},
		{"Berlin 7h on the 23-hour day", "Europe/Berlin", "7h", "2026-03-29T00:00:00", "2026-03-30T00:00:00",
			[]string{"2026-03-28T23:00:00Z", "2026-03-29T06:00:00Z", "2026-03-29T13:00:00Z", "2026-03-29T20:00:00Z", "2026-03-29T22:00:00Z"}},
		{"Santiago 1d, midnight skipped", "America/Santiago", "1d", "2022-09-10T00:00:00", "2022-09-12T00:00:00",
			[]string{"2022-09-10T04:00:00Z", "2022-09-11T03:00:00Z", "2022-09-12T03:00:00Z"}},
		// Apia skipped 2011-12-30: its midnight is that of the 29th.
		{"Apia 1d, day skipped", "Pacific/Apia", "1d", "2011-12-29T00:00:00", "2011-12-31T12:00:00",
			[]string{"2011-12-29T10:00:00Z", "2011-12-30T10:00:00Z", "2011-12-31T10:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc := mustLoc(t, tc.zone)
			edges, err := Buckets(local(t, tc.zone, tc.start), local(t, tc.zone, tc.end), mustInterval(t, tc.interval), loc, 10000)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(edges))
			for i, e := range edges {
				if e.Location() != time.UTC {
					t.Errorf("edge %d is in %v, not UTC", i, e.Location())
				}
				got[i] = e.Format(time.RFC3339)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("edges\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestBucketsCounts(t *testing.T) {
	for _, tc := range []struct {
		name, zone, interval string
		start, end           string // wall times in zone
		n                    int
		step                 time.Duration // if set, edges[i] = edges[0] + i*step
	}{
		{"UTC 1m over a day", "UTC", "1m", "2026-05-01T00:00:00", "2026-05-02T00:00:00", 1440, time.Minute},
		{"UTC 1h over 3 days", "UTC", "1h", "2026-05-01T00:00:00", "2026-05-04T00:00:00", 72, time.Hour},
		{"New York 1h, 23-hour day", "America/New_York", "1h", "2026-03-08T00:00:00", "2026-03-09T00:00:00", 23, time.Hour},
		{"New York 1h, 25-hour day", "America/New_York", "1h", "2026-11-01T00:00:00", "2026-11-02T00:00:00", 25, time.Hour},
		{"Berlin 1h over the week of the change", "Europe/Berlin", "1h", "2026-03-23T00:00:00", "2026-03-30T00:00:00", 167, time.Hour},
		{"Berlin 15m, 23-hour day", "Europe/Berlin", "15m", "2026-03-29T00:00:00", "2026-03-30T00:00:00", 92, 15 * time.Minute},
		{"Kathmandu 1h over a day", "Asia/Kathmandu", "1h", "2026-05-01T00:00:00", "2026-05-02T00:00:00", 24, time.Hour},
		{"UTC 1mo over 10 years", "UTC", "1mo", "2020-01-01T00:00:00", "2030-01-01T00:00:00", 120, 0},
		{"UTC 1d over a leap year", "UTC", "1d", "2028-01-01T00:00:00", "2029-01-01T00:00:00", 366, day},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc := mustLoc(t, tc.zone)
			start, end := local(t, tc.zone, tc.start), local(t, tc.zone, tc.end)
			edges, err := Buckets(start, end, mustInterval(t, tc.interval), loc, 10000)
			if err != nil {
				t.Fatal(err)
			}
			if len(edges)-1 != tc.n {
				t.Fatalf("%d buckets, want %d", len(edges)-1, tc.n)
			}
			if !edges[0].Equal(start) || !edges[tc.n].Equal(end) {
				t.Errorf("edges run from %v to %v, want %v to %v", edges[0], edges[tc.n], start.UTC(), end.UTC())
			}
			for i, e := range edges {
				if tc.step != 0 && !e.Equal(edges[0].Add(time.Duration(i)*tc.step)) {
					t.Fatalf("edge %d is %v, want %v", i, e, edges[0].Add(time.Duration(i)*tc.step))
				}
			}
			if got := count(start, end, mustInterval(t, tc.interval), loc); got != int64(tc.n) {
				t.Errorf("count = %d, want %d", got, tc.n)
			}
		})
	}
}

func TestBucketsErrors(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	t0 := utc("2000-01-01T00:00:00Z")
	const tooMany = "Query parameter 'interval' gives %d buckets over this range, more than 10000; the smallest interval that fits is %s"
	for _, tc := range []struct {
		name       string
		start, end time.Time
		interval   string
		loc        *time.Location
		msg        string
	}{
		{"start == end", t0, t0, "1h", time.UTC, "Query parameter 'end' must lie after 'start'"},
		{"end < start", t0, t0.Add(-time.Second), "1h", time.UTC, "Query parameter 'end' must lie after 'start'"},
		{"end < start, raw", t0, t0.Add(-time.Second), "raw", time.UTC, "Query parameter 'end' must lie after 'start'"},
		{"1s over a day", t0, t0.Add(day), "1s", time.UTC, strings.NewReplacer("%d", "86400", "%s", "10s").Replace(tooMany)},
		{"1m over 30 days", t0, t0.Add(30 * day), "1m", time.UTC, strings.NewReplacer("%d", "43200", "%s", "5m").Replace(tooMany)},
		{"10001 seconds", t0, t0.Add(10001 * time.Second), "1s", time.UTC, strings.NewReplacer("%d", "10001", "%s", "2s").Replace(tooMany)},
		// 36525 days of 86400 s; the weeks from Monday 1999-12-27 are 5219.
		{"1s over 100 years", t0, utc("2100-01-01T00:00:00Z"), "1s", time.UTC,
			strings.NewReplacer("%d", "3155760000", "%s", "1w").Replace(tooMany)},
		// In Berlin the 100 years hold 100 days of 23 and 100 of 25 hours.
		{"1s over 100 years in Berlin", local(t, "Europe/Berlin", "2000-01-01T00:00:00"), local(t, "Europe/Berlin", "2100-01-01T00:00:00"), "1s", berlin,
			strings.NewReplacer("%d", "3155760000", "%s", "1w").Replace(tooMany)},
		{"1d over 100 years", t0, utc("2100-01-01T00:00:00Z"), "1d", time.UTC,
			strings.NewReplacer("%d", "36525", "%s", "1w").Replace(tooMany)},
		{"1mo over 1000 years", t0, utc("3000-01-01T00:00:00Z"), "1mo", time.UTC,
			"Query parameter 'interval' gives 12000 buckets over this range, more than 10000; not even the widest interval, 1mo, fits"},
		// 365243 days from 2000-01-01, a Saturday, to 3000-01-01, a Wednesday.
		{"1w over 1000 years", t0, utc("3000-01-01T00:00:00Z"), "1w", time.UTC,
			"Query parameter 'interval' gives 52179 buckets over this range, more than 10000; not even the widest interval, 1mo, fits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edges, err := Buckets(tc.start, tc.end, mustInterval(t, tc.interval), tc.loc, 10000)
			if iotflow.ErrorCode(err) != iotflow.EINVALID || iotflow.ErrorMessage(err) != tc.msg {
				t.Errorf("Buckets = %d edges, %v\nwant %q", len(edges), err, tc.msg)
			}
		})
	}
}

func TestBucketsBoundedWork(t *testing.T) {
	start, end := utc("1990-01-01T00:00:00Z"), utc("2090-01-01T00:00:00Z")
	began := time.Now()
	for _, zone := range []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu"} {
		if _, err := Buckets(start, end, mustInterval(t, "1s"), mustLoc(t, zone), 10000); err == nil {
			t.Fatal("1s over 100 years fits")
		}
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("1s over 100 years took %v", took)
	}
}

func TestBucketsRaw(t *testing.T) {
	edges, err := Buckets(utc("2026-01-01T00:00:00Z"), utc("2126-01-01T00:00:00Z"), Interval{}, nil, 10000)
	if edges != nil || err != nil {
		t.Errorf("raw: %v, %v; want nil, nil", edges, err)
	}
}

// TestBucketsProperties checks over random ranges, intervals and zones,
// among them zones whose midnights are skipped or repeated, that the edges
// cover the range as promised, that every local midnight of a day interval
// is an edge, and that count agrees with the edges.
func TestBucketsProperties(t *testing.T) {
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu",
		"Australia/Lord_Howe", "America/Santiago", "America/Havana", "Asia/Beirut", "Pacific/Apia", "America/St_Johns"}
	intervals := []string{"1s", "7s", "1m", "90s", "5m", "7m", "1h", "90m", "2h", "7h", "11h", "12h", "23h", "1d", "1w", "1mo"}
	r := rand.New(rand.NewPCG(1, 2))
	lo, hi := utc("2010-01-01T00:00:00Z").Unix(), utc("2030-01-01T00:00:00Z").Unix()
	for range 3000 {
		zone, ivs := zones[r.IntN(len(zones))], intervals[r.IntN(len(intervals))]
		loc, iv := mustLoc(t, zone), mustInterval(t, ivs)
		start := time.Unix(lo+r.Int64N(hi-lo), r.Int64N(2)*r.Int64N(1e9)).In(loc)
		if zone == "Pacific/Apia" && r.IntN(2) == 0 {
			start = utc("2011-12-27T00:00:00Z").Add(time.Duration(r.Int64N(int64(5 * day))))
		}
		// Ranges of up to about 3000 buckets, some much longer.
		span := time.Duration(r.Int64N(3000)+1) * bucketGuess(iv)
		end := start.Add(time.Duration(r.Int64N(int64(span))) + 1)
		edges, err := Buckets(start, end, iv, loc, 1e6)
		if err != nil {
			t.Fatalf("%s %s [%v, %v): %v", zone, ivs, start, end, err)
		}
		n := len(edges) - 1
		if n < 1 || edges[0].After(start) || !edges[1].After(start) || edges[n-1].Compare(end) >= 0 || edges[n].Before(end) {
			t.Fatalf("%s %s [%v, %v): edges %v ... %v do not cover the range", zone, ivs, start, end, edges[:min(2, len(edges))], edges[n-1:])
		}
		for i := 1; i <= n; i++ {
			if !edges[i].After(edges[i-1]) {
				t.Fatalf("%s %s: edges %v, %v out of order", zone, ivs, edges[i-1], edges[i])
			}
		}
		if iv.kind == kindFixed || iv.kind == kindDay {
			y, m, d := edges[0].In(loc).Date()
			for k := 1; ; k++ {
				mid := time.Date(y, m, d+k, 0, 0, 0, 0, loc)
				if !mid.Before(edges[n]) {
					break
				}
				if !mid.After(edges[0]) {
					continue // the midnight of a skipped day, the same as the day before's
				}
				if i := BucketIndex(edges, mid); i < 0 || !edges[i].Equal(mid) {
					t.Fatalf("%s %s: midnight %v is not an edge", zone, ivs, mid)
				}
			}
		}
		if got := count(start, end, iv, loc); got != int64(n) {
			t.Fatalf("%s %s [%v, %v): count = %d, edges give %d", zone, ivs, start, end, got, n)
		}
	}
}

// bucketGuess is about how long a bucket of iv is.
func bucketGuess(iv Interval) time.Duration {
	switch iv.kind {
	case kindWeek:
		return 7 * day
	case kindMonth:
		return 30 * day
	case kindDay:
		return day
	}
	return iv.d
}

// TestCountLong checks count against the edges over ranges long enough for
// it to skip whole runs of days.
func TestCountLong(t *testing.T) {
	for _, zone := range []string{"UTC", "Europe/Berlin", "America/Santiago", "Pacific/Apia", "Asia/Kathmandu"} {
		loc := mustLoc(t, zone)
		for _, ivs := range []string{"1h", "7h", "1d", "1w", "1mo"} {
			iv := mustInterval(t, ivs)
			start, end := utc("2009-03-03T03:03:03Z"), utc("2013-10-10T10:10:10Z")
			edges, err := Buckets(start, end, iv, loc, 1e6)
			if err != nil {
				t.Fatal(err)
			}
			if got := count(start, end, iv, loc); got != int64(len(edges)-1) {
				t.Errorf("%s %s: count = %d, edges give %d", zone, ivs, got, len(edges)-1)
			}
		}
	}
}
