package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParseRollup reads the rollup's metrics from a canned /metrics text,
// as the server writes it among its other metrics.
func TestParseRollup(t *testing.T) {
	const text = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 23
# HELP iotflow_rollup_behind 1 while the rollup has more readings waiting than its last pass took.
# TYPE iotflow_rollup_behind gauge
iotflow_rollup_behind 1
# HELP iotflow_rollup_readings_total Readings the time-series rollup has taken in since start.
# TYPE iotflow_rollup_readings_total counter
iotflow_rollup_readings_total 1.2592e+07
`
	st, ok := parseRollup(strings.NewReader(text))
	if !ok || st != (rollupState{rolled: 12_592_000, behind: true}) {
		t.Errorf("parseRollup = %+v, %v; want 12592000 readings, behind", st, ok)
	}
	calm := strings.Replace(text, "\niotflow_rollup_behind 1\n", "\niotflow_rollup_behind 0\n", 1)
	if st, ok := parseRollup(strings.NewReader(calm)); !ok || st.behind {
		t.Errorf("parseRollup = %+v, %v; want not behind", st, ok)
	}
	for _, text := range []string{
		"go_goroutines 12\n",
		"# TYPE iotflow_rollup_behind gauge\niotflow_rollup_behind 0\n", // no counter
		"iotflow_rollup_readings_total{",                                // not the text format
	} {
		if _, ok := parseRollup(strings.NewReader(text)); ok {
			t.Errorf("parseRollup found the rollup's metrics in %q", text)
		}
	}
}

// TestRollupWatch: the wait ends once the rollup has taken in the seeded
// readings and is not behind; with nothing to count, once it is not
// behind twice in a row.
func TestRollupWatch(t *testing.T) {
	type obs = rollupState
	for _, c := range []struct {
		name string
		want float64
		seen []obs
		done int // the index of the scrape that ends the wait; -1 for none
	}{
		{"counted", 100, []obs{{10, true}, {60, false}, {100, true}, {120, false}}, 3},
		{"reached at once", 100, []obs{{100, false}}, 0},
		{"never reached", 100, []obs{{99, false}, {99, false}, {99, false}}, -1},
		{"nothing to count", 0, []obs{{0, true}, {5, false}, {9, true}, {9, false}, {9, false}}, 4},
	} {
		w := rollupWatch{want: c.want}
		got := -1
		for i, st := range c.seen {
			if w.done(st) {
				got = i
				break
			}
		}
		if got != c.done {
			t.Errorf("%s: the wait ended at scrape %d, want %d", c.name, got, c.done)
		}
	}
}

// TestLayoutWindow: a window of a device holds exactly the readings asked
// for, counted over every reading the layout stores, in the spread of the
// ordinary devices (newest first, in clumps of a batch) as in the steady
// heavy device.
func TestLayoutWindow(t *testing.T) {
	end := time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC)
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		l       layout
		devices int
	}{
		{spread(200_000, 100, 3*24*time.Hour, end), 100},
		{spread(30_000, 7, 30*24*time.Hour, end), 7},
		{steady(24*time.Hour, 10*time.Second, end), 1},
	} {
		for range 20 {
			d, want := rnd.IntN(c.devices), 1000+rnd.IntN(1000)
			start, stop, ok := c.l.window(d, want, rnd.IntN)
			if !ok {
				t.Fatalf("no window of %d readings of device %d", want, d)
			}
			held := 0
			for i := range c.l.n {
				if at := c.l.stored(i); c.l.device(i/c.l.per) == d && !at.Before(start) && at.Before(stop) {
					held++
				}
			}
			if held != want {
				t.Errorf("the window [%s, %s) of device %d holds %d readings, want %d", start, stop, d, held, want)
			}
		}
	}
	l := spread(5000, 10, 24*time.Hour, end)
	if _, _, ok := l.window(3, 1000, rnd.IntN); ok {
		t.Error("a window of 1000 readings of a device holding 500")
	}
}

// TestHeavyBuckets: a whole day of the heavy device at one reading a
// second fills 1440 one-minute buckets, and its 30 days, not aligned to
// the hour, 721 hourly ones; a day is whole only inside the readings.
func TestHeavyBuckets(t *testing.T) {
	end := time.Date(2026, 3, 1, 11, 59, 0, 123e6, time.UTC)
	span := 30 * 24 * time.Hour
	l := steady(span, time.Second, end)
	if l.n != 2_592_000 {
		t.Fatalf("%d readings, want 2592000", l.n)
	}
	days := l.wholeDays()
	first, last := l.span()
	if len(days) != 29 || days[0].Before(first) || days[28].Add(24*time.Hour).After(last) {
		t.Fatalf("whole days %v of [%s, %s]", days, first, last)
	}
	if n := l.buckets(0, days[5], days[5].Add(24*time.Hour), time.Minute); n != 1440 {
		t.Errorf("a day at 1m: %d buckets, want 1440", n)
	}
	if n := l.buckets(0, first, first.Add(span), time.Hour); n != 721 {
		t.Errorf("30 days at 1h: %d buckets, want 721", n)
	}
	if n := l.buckets(0, end, end.Add(time.Hour), time.Minute); n != 0 {
		t.Errorf("after the readings: %d buckets", n)
	}
	// The ordinary devices' clumps, newest first: as counted one by one.
	o := spread(20_000, 10, 10*24*time.Hour, end)
	rnd := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		d := rnd.IntN(10)
		start := end.Add(-time.Duration(rnd.Int64N(int64(11 * 24 * time.Hour))))
		stop := start.Add(time.Duration(rnd.Int64N(int64(3 * 24 * time.Hour))))
		seen := map[int64]bool{}
		for i := range o.n {
			if at := o.stored(i); o.device(i/o.per) == d && !at.Before(start) && at.Before(stop) {
				seen[at.UnixMilli()/time.Hour.Milliseconds()] = true
			}
		}
		if n := o.buckets(d, start, stop, time.Hour); n != len(seen) {
			t.Errorf("device %d over [%s, %s): %d buckets, want %d", d, start, stop, n, len(seen))
		}
	}
}

// TestSeededRoundTrip: the --keys file gives a later run the very
// layouts the seeding run stored.
func TestSeededRoundTrip(t *testing.T) {
	s := &seeded{End: time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC(), Readings: 12_345, Days: 3,
		HeavyEvery: 1500 * time.Millisecond, Devices: []seededDevice{{1, "k1"}, {2, "k2"}}, Heavy: seededDevice{3, "k3"}}
	path := filepath.Join(t.TempDir(), "keys.json")
	b, _ := json.Marshal(s)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := readSeeded(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]layout{{s.ordinary(), r.ordinary()}, {s.heavy(), r.heavy()}} {
		a, b := pair[0], pair[1]
		if a.n != b.n || a.per != b.per || !a.at(0).Equal(b.at(0)) || !a.at(a.n-1).Equal(b.at(b.n-1)) {
			t.Errorf("layout of %d readings from %s read back as %d from %s", a.n, a.at(0), b.n, b.at(0))
		}
	}
	if err := os.WriteFile(path, []byte("k1\nk2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSeeded(path); err == nil {
		t.Error("a query --keys file was taken for a series one")
	}
}

// TestBenchSeriesFlags: what cannot work is refused before anything is
// started.
func TestBenchSeriesFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"series", "--keys", filepath.Join(t.TempDir(), "keys")}, "--url"},
		{[]string{"series", "--seed=false"}, "--url"},
		{[]string{"series", "--url", "http://127.0.0.1:1"}, "--admin-token"},
		{[]string{"series", "--readings", "5000", "--devices", "10"}, "fewer than the 1000"},
		{[]string{"series", "--heavy-every", "0s"}, "--heavy-every"},
	} {
		_, _, err := runCmd(t, nil, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want one naming %s", c.args, err, c.want)
		}
	}
}
