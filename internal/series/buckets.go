// Package series serves the time-series reads of telemetry: ranges with cursors, aggregation buckets in a time zone, latest values and export, over the rollups the store keeps.
package series

import (
	"strconv"
	"time"
	_ "time/tzdata" // zones work on machines without zoneinfo

	"github.com/iotflow/iotflow/internal/iotflow"
)

const day = 24 * time.Hour

type kind uint8

const (
	kindRaw   kind = iota // the values themselves
	kindFixed             // a fixed duration below a day, restarted at every local midnight
	kindDay               // local days
	kindWeek              // ISO weeks, from local midnight on Monday
	kindMonth             // months, from local midnight on the 1st
)

// Interval is the width of the buckets of a series read: the raw values
// themselves, a duration of whole seconds from 1s to 1d, or the calendar
// week or month. The zero Interval is raw.
type Interval struct {
	kind kind
	d    time.Duration // of kindFixed: whole seconds, below a day
}

// ladder is the intervals tried, narrowest first, when one gives too many
// buckets.
var ladder = []Interval{
	fixed(time.Second), fixed(2 * time.Second), fixed(5 * time.Second), fixed(10 * time.Second),
	fixed(15 * time.Second), fixed(30 * time.Second), fixed(time.Minute), fixed(2 * time.Minute),
	fixed(5 * time.Minute), fixed(10 * time.Minute), fixed(15 * time.Minute), fixed(30 * time.Minute),
	fixed(time.Hour), fixed(2 * time.Hour), fixed(3 * time.Hour), fixed(6 * time.Hour), fixed(12 * time.Hour),
	{kind: kindDay}, {kind: kindWeek}, {kind: kindMonth},
}

func fixed(d time.Duration) Interval { return Interval{kind: kindFixed, d: d} }

// ParseInterval parses the interval query parameter: "raw", a duration in
// the forms of time.ParseDuration of whole seconds from 1s to 24h ("1d" is
// 24h, and 24h is 1d), "1w" or "1mo".
func ParseInterval(s string) (Interval, error) {
	switch s {
	case "raw":
		return Interval{}, nil
	case "1d":
		return Interval{kind: kindDay}, nil
	case "1w":
		return Interval{kind: kindWeek}, nil
	case "1mo":
		return Interval{kind: kindMonth}, nil
	}
	// A sign is refused so that every interval has one spelling without.
	if s == "" || s[0] == '+' || s[0] == '-' {
		return Interval{}, errInterval()
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil || d < time.Second || d > day || d%time.Second != 0:
		return Interval{}, errInterval()
	case d == day:
		return Interval{kind: kindDay}, nil
	}
	return fixed(d), nil
}

func errInterval() error {
	return iotflow.Errorf(iotflow.EINVALID, "Invalid request",
		"Query parameter 'interval' must be raw, a duration from 1s to 1d such as 30s, 5m or 1h, or 1w or 1mo")
}

// String is the canonical form of the interval, which ParseInterval takes
// back: "raw", "1d", "1w", "1mo" or a duration such as "30s" or "1h30m".
func (iv Interval) String() string {
	switch iv.kind {
	case kindRaw:
		return "raw"
	case kindDay:
		return "1d"
	case kindWeek:
		return "1w"
	case kindMonth:
		return "1mo"
	}
	var b []byte
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := iv.d / u.d % 60; n != 0 {
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, u.name...)
		}
	}
	return string(b)
}

// Raw reports whether the interval asks for the values themselves, in no
// buckets.
func (iv Interval) Raw() bool { return iv.kind == kindRaw }

// Buckets returns the edges of the buckets of iv in loc that cover
// [start, end), in UTC: edges[0] <= start < edges[1] < ... < edges[n] and
// edges[n] >= end, bucket i being [edges[i], edges[i+1]). Days, weeks and
// months begin at local midnight, so a day of a change to or from daylight
// saving time has 23 or 25 hours; a duration below a day restarts at every
// local midnight, so the last bucket of a day may be shorter. More than max
// buckets is an error naming the narrowest interval that fits. A raw
// interval has no buckets: its edges are nil. A nil loc is UTC.
func Buckets(start, end time.Time, iv Interval, loc *time.Location, max int) ([]time.Time, error) {
	if !start.Before(end) {
		return nil, iotflow.Errorf(iotflow.EINVALID, "Invalid request", "Query parameter 'end' must lie after 'start'")
	}
	if iv.Raw() {
		return nil, nil
	}
	if loc == nil {
		loc = time.UTC
	}
	if edges, ok := edgesOf(start, end, iv, loc, max); ok {
		return edges, nil
	}
	n := count(start, end, iv, loc)
	for _, c := range ladder {
		if _, ok := edgesOf(start, end, c, loc, max); ok {
			return nil, iotflow.Errorf(iotflow.EINVALID, "Invalid request",
				"Query parameter 'interval' gives %d buckets over this range, more than %d; the smallest interval that fits is %s",
				n, max, c)
		}
	}
	return nil, iotflow.Errorf(iotflow.EINVALID, "Invalid request",
		"Query parameter 'interval' gives %d buckets over this range, more than %d; not even the widest interval, 1mo, fits",
		n, max)
}

// edgesOf returns the edges of iv over [start, end), or false if there are
// more than max buckets; it makes at most max+1 edges.
func edgesOf(start, end time.Time, iv Interval, loc *time.Location, max int) ([]time.Time, bool) {
	g := newGrid(start, iv, loc)
	edges := []time.Time{g.edge.UTC()}
	for g.edge.Before(end) {
		if len(edges) > max {
			return nil, false
		}
		g.advance()
		edges = append(edges, g.edge.UTC())
	}
	return edges, true
}

// A grid walks the edges of an interval in a zone. Each local period (day,
// week or month) is named by its date, held as midnight UTC of that date so
// that date arithmetic ignores the zone, and begins at its local midnight.
type grid struct {
	iv         Interval
	loc        *time.Location
	date, next time.Time // the date of the current period and of the one after
	mid, end   time.Time // the local midnights they begin at
	edge       time.Time
}

// newGrid starts a grid at its last edge at or before t.
func newGrid(t time.Time, iv Interval, loc *time.Location) *grid {
	g := &grid{iv: iv, loc: loc}
	g.date, g.mid = floorPeriod(t, iv.kind, loc)
	g.next, g.end = nextPeriod(g.date, g.mid, iv.kind, loc)
	g.edge = g.mid
	if iv.kind == kindFixed {
		g.edge = g.mid.Add(t.Sub(g.mid) / iv.d * iv.d)
	}
	return g
}

// advance moves the grid to its next edge.
func (g *grid) advance() {
	if g.iv.kind == kindFixed {
		if e := g.edge.Add(g.iv.d); e.Before(g.end) {
			g.edge = e
			return
		}
	}
	g.date, g.mid = g.next, g.end
	g.next, g.end = nextPeriod(g.date, g.mid, g.iv.kind, g.loc)
	g.edge = g.mid
}

// midnight is the start of date in loc. A midnight that does not exist
// normalises as time.Date does: to 23:00 the day before in some zones, to
// 01:00 in others, and to the day before when a zone skipped a whole day.
func midnight(date time.Time, loc *time.Location) time.Time {
	return time.Date(date.Year(), date.Month(), date.Day(), 0, 0, 0, 0, loc)
}

// step moves a date by n periods of k: days for kindFixed and kindDay.
func step(date time.Time, k kind, n int) time.Time {
	switch k {
	case kindWeek:
		return date.AddDate(0, 0, 7*n)
	case kindMonth:
		return date.AddDate(0, n, 0)
	}
	return date.AddDate(0, 0, n)
}

// floorPeriod returns the period of k in which t falls, the last whose
// midnight is at or before t, and that midnight. Because of the ways
// midnights normalise, the local date of t is only where the search starts.
func floorPeriod(t time.Time, k kind, loc *time.Location) (date, mid time.Time) {
	y, m, d := t.In(loc).Date()
	date = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	switch k {
	case kindWeek:
		date = date.AddDate(0, 0, -(int(date.Weekday())+6)%7)
	case kindMonth:
		date = date.AddDate(0, 0, 1-d)
	}
	mid = midnight(date, loc)
	for mid.After(t) {
		date = step(date, k, -1)
		mid = midnight(date, loc)
	}
	for {
		next, end := nextPeriod(date, mid, k, loc)
		if end.After(t) {
			return date, mid
		}
		date, mid = next, end
	}
}

// nextPeriod returns the period after the one of date and mid, the first
// whose midnight lies after mid: a day a zone skipped has none of its own.
func nextPeriod(date, mid time.Time, k kind, loc *time.Location) (time.Time, time.Time) {
	for {
		date = step(date, k, 1)
		if m := midnight(date, loc); m.After(mid) {
			return date, m
		}
	}
}

// count is the number of buckets of iv over [start, end): one more than
// the edges strictly inside. It takes time in proportion to the zone's
// transitions over the range, not to the buckets, so that the error for
// too many buckets can say how many even of 1s over a century.
func count(start, end time.Time, iv Interval, loc *time.Location) int64 {
	if iv.kind == kindWeek || iv.kind == kindMonth {
		d0, _ := floorPeriod(start, iv.kind, loc)
		d1, m1 := floorPeriod(end, iv.kind, loc)
		// Periods d0+1 to d1 begin in (start, end].
		n := int64(d1.Year()-d0.Year())*12 + int64(d1.Month()-d0.Month())
		if iv.kind == kindWeek {
			n = (d1.Unix() - d0.Unix()) / (7 * 86400)
		}
		if m1.Equal(end) {
			n--
		}
		return 1 + n
	}
	date, mid := floorPeriod(start, kindDay, loc)
	n := int64(1)
	for mid.Before(end) {
		if mid.After(start) {
			if k := uniformDays(mid, end, loc); k > 0 {
				n += int64(k) * perDay(iv, day)
				date, mid = date.AddDate(0, 0, k), mid.Add(time.Duration(k)*day)
				continue
			}
		}
		next, end1 := nextPeriod(date, mid, kindDay, loc)
		d := iv.d
		if iv.kind == kindDay {
			d = end1.Sub(mid)
		}
		// The day's edges are mid + j*d for 0 <= j < perDay.
		lo, hi := int64(0), perDay(iv, end1.Sub(mid))
		if !start.Before(mid) {
			lo = int64(start.Sub(mid)/d) + 1
		}
		if end.Before(end1) {
			hi = int64((end.Sub(mid) + d - 1) / d)
		}
		n += max(0, hi-lo)
		date, mid = next, end1
	}
	return n
}

// perDay is the number of edges of iv in a local day of length l.
func perDay(iv Interval, l time.Duration) int64 {
	if iv.kind == kindDay {
		return 1
	}
	return int64((l + iv.d - 1) / iv.d)
}

// uniformDays is how many whole days after the local midnight mid up to end
// are of 24 hours, each beginning 24 hours after the last: those well
// inside the zone offset of mid. Three days of margin keep clear of wall
// times that the next transition repeats or skips. A midnight that did not
// exist and normalised to another wall time starts no run.
func uniformDays(mid, end time.Time, loc *time.Location) int {
	if h, m, s := mid.In(loc).Clock(); h != 0 || m != 0 || s != 0 {
		return 0
	}
	k := end.Sub(mid) / day
	if _, zend := mid.In(loc).ZoneBounds(); !zend.IsZero() {
		k = min(k, zend.Sub(mid)/day-3)
	}
	return int(k)
}
