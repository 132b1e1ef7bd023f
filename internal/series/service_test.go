package series

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

// fixture is a store with devices, and the readings stored so far.
type fixture struct {
	store    iotflow.Store
	svc      *Service
	roller   *Roller
	readings []*iotflow.Reading
}

func newFixture(t *testing.T, b testdb.Backend) *fixture {
	s := b.Open(t)
	return &fixture{store: s, svc: &Service{Store: s}, roller: &Roller{Store: s, Batch: 500, Every: time.Millisecond, Log: slog.New(slog.DiscardHandler)}}
}

func (f *fixture) device(t *testing.T, name string) int64 {
	t.Helper()
	now := iotflow.Truncate(time.Now())
	d := &iotflow.Device{Name: name, DeviceType: "sensor", Status: iotflow.StatusActive, CreatedAt: now, UpdatedAt: now}
	if err := f.store.CreateDevice(t.Context(), d, &iotflow.APIKey{Prefix: "p", Hash: "h-" + name, Active: true, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

func (f *fixture) insert(t *testing.T, rs ...*iotflow.Reading) {
	t.Helper()
	if err := f.store.InsertReadings(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	f.readings = append(f.readings, rs...)
}

// rollAll runs passes until the rollups have caught up.
func (f *fixture) rollAll(t *testing.T) {
	t.Helper()
	for {
		n, err := f.roller.Pass(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func read(device int64, at time.Time, payload string) *iotflow.Reading {
	return &iotflow.Reading{DeviceID: device, Timestamp: at, ReceivedAt: at, DataType: "sensor",
		Payload: json.RawMessage(payload), Metadata: json.RawMessage(`{"battery": 90}`)}
}

// bruteForce aggregates the fixture's readings of a device per bucket of
// edges, straight from the readings, over [start, end).
func (f *fixture) bruteForce(device int64, edges []time.Time, start, end time.Time, m iotflow.KeyMatcher) map[string][]iotflow.Agg {
	out := map[string][]iotflow.Agg{}
	for _, rd := range f.readings {
		if rd.DeviceID != device || rd.Timestamp.Before(start) || !rd.Timestamp.Before(end) {
			continue
		}
		i := BucketIndex(edges, rd.Timestamp)
		if i < 0 {
			continue
		}
		iotflow.ReadingValues(rd.Payload, rd.Metadata, func(v iotflow.Value) {
			if !v.Kind.Numeric() || !m.Match(v.Key) {
				return
			}
			if out[v.Key] == nil {
				out[v.Key] = make([]iotflow.Agg, len(edges)-1)
			}
			out[v.Key][i].Add(v.Num, rd.Timestamp, rd.ID)
		})
	}
	return out
}

func sameAgg(a, b iotflow.Agg) bool {
	near := func(x, y float64) bool { return x == y || (x-y)/max(abs(x), abs(y)) < 1e-9 }
	return a.Count == b.Count && near(a.Sum, b.Sum) && a.Min == b.Min && a.Max == b.Max && a.First == b.First &&
		a.FirstID == b.FirstID && a.FirstAt.Equal(b.FirstAt) && a.Last == b.Last && a.LastID == b.LastID && a.LastAt.Equal(b.LastAt)
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestSeriesMatchesTheReadings: whatever the interval, zone and range,
// and however far the rollups have got, a series equals the aggregate of
// the readings themselves, on both stores; late readings (older times,
// newer ids) count in their own buckets.
func TestSeriesMatchesTheReadings(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			dev, other := f.device(t, "d"), f.device(t, "other")
			base := time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC) // Berlin's clocks go forward on the 29th
			rnd := rand.New(rand.NewPCG(1, 2))
			var batch []*iotflow.Reading
			for i := range 3000 {
				at := base.Add(time.Duration(rnd.IntN(4*24*3600)) * time.Second).Add(time.Duration(rnd.IntN(1000)) * time.Millisecond)
				p := fmt.Sprintf(`{"temperature": %.2f, "env": {"hum": %d, "ok": %v}, "label": "x", "list": [1, 2]}`,
					20+rnd.Float64()*5, rnd.IntN(100), i%3 == 0)
				batch = append(batch, read(dev, at, p))
				if len(batch) == 100 {
					f.insert(t, batch...)
					batch = nil
				}
			}
			f.insert(t, read(other, base.Add(time.Hour), `{"temperature": 1000}`))
			berlin, _ := time.LoadLocation("Europe/Berlin")
			kolkata, _ := time.LoadLocation("Asia/Kolkata")
			cases := []struct {
				interval   string
				loc        *time.Location
				start, end time.Time
				keys       []string
			}{
				{"1m", time.UTC, base.Add(90 * time.Minute).Add(17 * time.Second), base.Add(26 * time.Hour).Add(3 * time.Second), nil},
				{"1h", time.UTC, base.Add(5 * time.Second), base.Add(96 * time.Hour), []string{"temperature"}},
				{"1d", berlin, base, base.Add(96 * time.Hour), []string{"env.*"}},
				{"1d", kolkata, base.Add(7 * time.Hour), base.Add(90 * time.Hour), nil},
				{"15m", berlin, base.Add(40 * time.Hour), base.Add(60 * time.Hour), []string{"temperature", "metadata.*"}},
				{"90s", time.UTC, base.Add(10 * time.Hour), base.Add(14 * time.Hour), nil},
				{"1w", berlin, base, base.Add(96 * time.Hour), nil},
			}
			check := func(stage string) {
				for _, c := range cases {
					iv, err := ParseInterval(c.interval)
					if err != nil {
						t.Fatal(err)
					}
					q := SeriesQuery{DeviceID: dev, Keys: c.keys, Start: c.start, End: c.end, Interval: iv,
						Loc: c.loc, Fill: FillNone, Limit: MaxBuckets}
					res, err := f.svc.Series(t.Context(), q)
					if err != nil {
						t.Fatalf("%s %s: %v", stage, c.interval, err)
					}
					edges, _ := Buckets(c.start, c.end, iv, c.loc, MaxBuckets)
					want := f.bruteForce(dev, edges, c.start, c.end, iotflow.NewKeyMatcher(c.keys))
					if len(res.Keys) != len(want) {
						t.Fatalf("%s %s %s: keys %v, want %d keys", stage, c.interval, c.loc, res.Keys, len(want))
					}
					for key, aggs := range want {
						got := res.Buckets[key]
						j := 0
						for i, a := range aggs {
							if a.Count == 0 {
								continue
							}
							if j >= len(got) || !got[j].Start.Equal(edges[i]) || !sameAgg(got[j].Agg, a) {
								t.Fatalf("%s %s %s key %s bucket %v: got %+v, want %+v", stage, c.interval, c.loc, key, edges[i], got[min(j, len(got)-1)], a)
							}
							j++
						}
						if j != len(got) {
							t.Fatalf("%s %s: %d buckets of %s, want %d", stage, c.interval, len(got), key, j)
						}
					}
				}
			}
			check("nothing rolled up")
			if _, err := f.roller.Pass(t.Context()); err != nil {
				t.Fatal(err)
			}
			check("partly rolled up")
			f.rollAll(t)
			check("rolled up")
			// Late readings: new ids, old times, after the rollups caught up.
			var late []*iotflow.Reading
			for i := range 50 {
				late = append(late, read(dev, base.Add(time.Duration(i)*97*time.Minute), `{"temperature": -40, "env": {"hum": 1}}`))
			}
			f.insert(t, late...)
			check("late readings in the tail")
			f.rollAll(t)
			check("late readings rolled up")
		})
	}
}

// TestDaylightSavingDays: day buckets in a named zone start at local
// midnight, so the day the clocks go forward holds 23 hours of readings
// and the day they go back 25.
func TestDaylightSavingDays(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			dev := f.device(t, "hourly")
			berlin, _ := time.LoadLocation("Europe/Berlin")
			var rs []*iotflow.Reading
			for _, day := range []time.Time{time.Date(2026, 3, 28, 0, 0, 0, 0, berlin), time.Date(2026, 10, 24, 0, 0, 0, 0, berlin)} {
				for h := range 24 * 3 { // three local days of hourly readings, in real hours
					rs = append(rs, read(dev, day.Add(time.Duration(h)*time.Hour).UTC(), `{"v": 1}`))
				}
			}
			f.insert(t, rs...)
			f.rollAll(t)
			q, err := ParseSeriesQuery(url.Values{"interval": {"1d"}, "tz": {"Europe/Berlin"}, "agg": {"count"},
				"start": {"2026-03-28T00:00:00+01:00"}, "end": {"2026-03-31T00:00:00+02:00"}}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			q.DeviceID = dev
			res, err := f.svc.Series(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			var counts []int64
			for _, bk := range res.Buckets["v"] {
				counts = append(counts, bk.Count)
			}
			if fmt.Sprint(counts) != "[24 23 24]" {
				t.Errorf("spring: readings per local day %v, want [24 23 24]", counts)
			}
			q.Start, q.End = time.Date(2026, 10, 24, 0, 0, 0, 0, berlin).UTC(), time.Date(2026, 10, 27, 0, 0, 0, 0, berlin).UTC()
			if res, err = f.svc.Series(t.Context(), q); err != nil {
				t.Fatal(err)
			}
			counts = nil
			for _, bk := range res.Buckets["v"] {
				counts = append(counts, bk.Count)
			}
			if fmt.Sprint(counts) != "[24 25 23]" {
				// 72 real hours from local midnight: 24, the 25-hour day, and 23 of the next.
				t.Errorf("autumn: readings per local day %v, want [24 25 23]", counts)
			}
		})
	}
}

// TestLatestByTheReadingsTime: the latest value of a key is the one of the
// reading with the newest own time; one that arrives late with an older
// time never replaces it, before or after the rollup; strings count, and
// keys filter.
func TestLatestByTheReadingsTime(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			dev := f.device(t, "latest")
			now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			f.insert(t, read(dev, now, `{"t": 22.5, "mode": "eco"}`))
			f.insert(t, read(dev, now.Add(-time.Hour), `{"t": 10, "mode": "old", "h": 40}`)) // late
			latest := func() map[string]string {
				states, err := f.svc.KeyStates(t.Context(), dev, iotflow.NewKeyMatcher(nil))
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]string{}
				for _, st := range states {
					out[st.Key] = fmt.Sprintf("%s@%s", st.Value, st.At.Format("15:04"))
				}
				return out
			}
			want := `map[h:40@11:00 metadata.battery:90@12:00 mode:"eco"@12:00 t:22.5@12:00]`
			if got := fmt.Sprint(latest()); got != want {
				t.Errorf("before the rollup: %s, want %s", got, want)
			}
			f.rollAll(t)
			if got := fmt.Sprint(latest()); got != want {
				t.Errorf("after the rollup: %s, want %s", got, want)
			}
			f.insert(t, read(dev, now.Add(-2*time.Hour), `{"t": 5}`))
			if got := fmt.Sprint(latest()); got != want {
				t.Errorf("with a late reading in the tail: %s, want %s", got, want)
			}
			states, err := f.svc.KeyStates(t.Context(), dev, iotflow.NewKeyMatcher([]string{"t"}))
			if err != nil || len(states) != 1 || string(states[0].Value) != "22.5" {
				t.Errorf("keys=t: %+v, %v", states, err)
			}
		})
	}
}

// TestReadingsPages: pages follow each other by cursor, in either order,
// exactly once each; a cursor of another query or altered is refused.
func TestReadingsPages(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			dev, other := f.device(t, "paged"), f.device(t, "other")
			base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
			var rs []*iotflow.Reading
			for i := range 53 {
				rs = append(rs, read(dev, base.Add(time.Duration(i/3)*time.Second), `{"v": 1}`))
			}
			f.insert(t, rs...)
			f.insert(t, read(other, base, `{"v": 1}`))
			for _, asc := range []bool{true, false} {
				q := ReadingsQuery{DeviceID: dev, Range: Range{Ascending: asc}, Limit: 10}
				seen := map[int64]bool{}
				pages := 0
				for {
					p, err := f.svc.Readings(t.Context(), q)
					if err != nil {
						t.Fatal(err)
					}
					pages++
					for _, r := range p.Readings {
						if seen[r.ID] || r.DeviceID != dev {
							t.Fatalf("reading %+v twice or of another device", r)
						}
						seen[r.ID] = true
					}
					if p.HasMore != (p.NextCursor != "") {
						t.Fatalf("has_more %v with cursor %q", p.HasMore, p.NextCursor)
					}
					if !p.HasMore {
						break
					}
					q.Cursor = p.NextCursor
				}
				if len(seen) != 53 || pages != 6 {
					t.Errorf("ascending %v: %d readings in %d pages, want 53 in 6", asc, len(seen), pages)
				}
			}
			p, err := f.svc.Readings(t.Context(), ReadingsQuery{DeviceID: dev, Limit: 5})
			if err != nil {
				t.Fatal(err)
			}
			for name, q := range map[string]ReadingsQuery{
				"another device":  {DeviceID: other, Limit: 5, Cursor: p.NextCursor},
				"another order":   {DeviceID: dev, Range: Range{Ascending: true}, Limit: 5, Cursor: p.NextCursor},
				"altered":         {DeviceID: dev, Limit: 5, Cursor: p.NextCursor[:10] + strings.ToUpper(p.NextCursor[10:11]) + p.NextCursor[11:]},
				"not a cursor":    {DeviceID: dev, Limit: 5, Cursor: "nonsense"},
				"cursor + offset": {DeviceID: dev, Limit: 5, Offset: 5, Cursor: p.NextCursor},
			} {
				if _, err := f.svc.Readings(t.Context(), q); iotflow.ErrorCode(err) != iotflow.EINVALID {
					t.Errorf("%s: %v, want EINVALID", name, err)
				}
			}
		})
	}
}

// TestSeriesPagesAndFills: an aggregated series with a limit pages by
// cursor from the next bucket; fills put empty buckets in; a raw series
// pages its readings.
func TestSeriesPagesAndFills(t *testing.T) {
	f := newFixture(t, testdb.Backends()[0])
	dev := f.device(t, "filled")
	base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, m := range []int{0, 1, 4, 5} { // minutes 2 and 3 are empty
		f.insert(t, read(dev, base.Add(time.Duration(m)*time.Minute+time.Second), fmt.Sprintf(`{"v": %d}`, m)))
	}
	f.rollAll(t)
	get := func(v url.Values) *SeriesResult {
		t.Helper()
		v.Set("start", "2026-06-01T00:00:00Z")
		v.Set("end", "2026-06-01T00:06:00Z")
		q, err := ParseSeriesQuery(v, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		q.DeviceID = dev
		res, err := f.svc.Series(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	show := func(res *SeriesResult) string {
		var parts []string
		for _, b := range res.Buckets["v"] {
			parts = append(parts, fmt.Sprintf("%s:%v/%d/%v", b.Start.Format("04"), b.Last, b.Count, b.Empty))
		}
		return strings.Join(parts, " ")
	}
	for fill, want := range map[string]string{
		"none":     "00:0/1/false 01:1/1/false 04:4/1/false 05:5/1/false",
		"null":     "00:0/1/false 01:1/1/false 02:0/0/true 03:0/0/true 04:4/1/false 05:5/1/false",
		"previous": "00:0/1/false 01:1/1/false 02:1/1/true 03:1/1/true 04:4/1/false 05:5/1/false",
	} {
		if got := show(get(url.Values{"interval": {"1m"}, "agg": {"last"}, "fill": {fill}})); got != want {
			t.Errorf("fill %s: %s, want %s", fill, got, want)
		}
	}
	first := get(url.Values{"interval": {"1m"}, "limit": {"4"}, "fill": {"null"}})
	if !first.HasMore || len(first.Buckets["v"]) != 4 {
		t.Fatalf("page 1: %s, has_more %v", show(first), first.HasMore)
	}
	second := get(url.Values{"interval": {"1m"}, "limit": {"4"}, "fill": {"null"}, "cursor": {first.NextCursor}})
	if second.HasMore || show(second) != "04:4/1/false 05:5/1/false" {
		t.Errorf("page 2: %s, has_more %v", show(second), second.HasMore)
	}
	raw := get(url.Values{"interval": {"raw"}, "limit": {"3"}})
	if !raw.HasMore || len(raw.Points["v"]) != 3 {
		t.Fatalf("raw page 1: %+v", raw.Points)
	}
	rest := get(url.Values{"interval": {"raw"}, "limit": {"3"}, "cursor": {raw.NextCursor}})
	if rest.HasMore || len(rest.Points["v"]) != 1 || rest.Points["v"][0].Value != 5 {
		t.Errorf("raw page 2: %+v", rest.Points)
	}
}

// TestSeriesParameters: every bad parameter is a 400 naming it.
func TestSeriesParameters(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		query, param string
	}{
		{"agg=median", "agg"},
		{"agg=avg,", ""},
		{"start=yesterday", "start"},
		{"end=2026-13-01T00:00:00Z", "end"},
		{"start=2026-06-01T10:00:00Z&end=2026-06-01T09:00:00Z", "end"},
		{"tz=Mars/Olympus", "tz"},
		{"tz=Local", "tz"},
		{"interval=2d", "interval"},
		{"interval=1s&start=2026-05-01T00:00:00Z", "interval"},
		{"fill=zero", "fill"},
		{"limit=0", "limit"},
		{"keys=a%00b", "keys"},
		{"start=99999999999999999", "start"},
	} {
		v, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseSeriesQuery(v, now)
		if tc.param == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.query, err)
			}
			continue
		}
		if iotflow.ErrorCode(err) != iotflow.EINVALID || !strings.Contains(iotflow.ErrorMessage(err), "'"+tc.param+"'") {
			t.Errorf("%s: %v, want EINVALID naming %s", tc.query, err, tc.param)
		}
	}
	q, err := ParseSeriesQuery(url.Values{}, now)
	if err != nil || !q.End.Equal(now) || !q.Start.Equal(now.Add(-24*time.Hour)) || q.Interval.String() != "5m" || q.Aggs[0] != "avg" {
		t.Errorf("defaults: %+v, %v", q, err)
	}
	if _, err := ParseRange(url.Values{"order": {"sideways"}}); iotflow.ErrorCode(err) != iotflow.EINVALID {
		t.Errorf("order=sideways: %v", err)
	}
}
