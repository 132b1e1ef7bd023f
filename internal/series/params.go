package series

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// The query parameters of the time-series reads are parsed here, where
// their rules live, so that every transport reads them alike.

func invalid(format string, args ...any) error {
	return iotflow.Errorf(iotflow.EINVALID, "Invalid request", format, args...)
}

// ParseTime reads a time parameter: RFC 3339 with a zone, or Unix epoch
// milliseconds.
func ParseTime(name, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		if ms < -62135596800000 || ms > 253402300799999 { // years 1 to 9999
			return time.Time{}, invalid("Query parameter '%s' is out of range", name)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, invalid("Query parameter '%s' must be an RFC 3339 time with a zone, such as 2026-01-02T15:04:05Z, or Unix epoch milliseconds", name)
	}
	return iotflow.Truncate(t), nil
}

// Range is a span of the readings' own time, [Start, End), either side open
// when nil, and the order to read it in.
type Range struct {
	Start, End *time.Time
	Ascending  bool
}

// ParseRange reads start, end and order (desc, the default, or asc).
func ParseRange(v url.Values) (Range, error) {
	var r Range
	for _, p := range []struct {
		name string
		dst  **time.Time
	}{{"start", &r.Start}, {"end", &r.End}} {
		if s := v.Get(p.name); s != "" {
			t, err := ParseTime(p.name, s)
			if err != nil {
				return Range{}, err
			}
			*p.dst = &t
		}
	}
	if r.Start != nil && r.End != nil && !r.End.After(*r.Start) {
		return Range{}, invalid("Query parameter 'end' must lie after 'start'")
	}
	switch o := strings.ToLower(strings.TrimSpace(v.Get("order"))); o {
	case "", "desc":
	case "asc":
		r.Ascending = true
	default:
		return Range{}, invalid("Query parameter 'order' must be asc or desc")
	}
	return r, nil
}

// ParseKeys reads keys: a comma-separated list of keys, where "env.*"
// stands for every key that begins "env.".
func ParseKeys(v url.Values) ([]string, error) {
	var keys []string
	for _, k := range strings.Split(v.Get("keys"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			if err := iotflow.CheckText("keys", k, 200); err != nil {
				return nil, invalid("Query parameter 'keys' must be a comma-separated list of keys, each at most 200 characters without NUL")
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// The aggregates a series can return.
var aggregates = []string{"avg", "min", "max", "sum", "count", "first", "last"}

// The fills of empty buckets.
const (
	FillNone     = "none"
	FillNull     = "null"
	FillPrevious = "previous"
)

// MaxBuckets is the most buckets one series read returns.
const MaxBuckets = 10_000

// SeriesQuery is a series read of one device.
type SeriesQuery struct {
	DeviceID   int64
	Keys       []string // exact keys and prefixes ("env.*"); none for every key
	Start, End time.Time
	Interval   Interval
	Aggs       []string
	Loc        *time.Location
	Fill       string
	// Limit bounds the buckets of an aggregated read, or the readings of a
	// raw one; Cursor continues a read that had more.
	Limit  int
	Cursor string
	// startParam and endParam are start and end as given, "" when they
	// were not: a cursor then carries the end that the first page took
	// from the time of its request.
	startParam, endParam string
}

// ParseSeriesQuery reads keys, start and end (by default the last 24 hours
// before now), interval (by default the smallest that gives at most 1,000
// buckets), agg (by default avg), tz (by default UTC), fill, limit and
// cursor.
func ParseSeriesQuery(v url.Values, now time.Time) (SeriesQuery, error) {
	q := SeriesQuery{End: iotflow.Truncate(now), Fill: FillNone, Aggs: []string{"avg"}, Loc: time.UTC, Cursor: v.Get("cursor"),
		startParam: v.Get("start"), endParam: v.Get("end")}
	var err error
	if q.Keys, err = ParseKeys(v); err != nil {
		return SeriesQuery{}, err
	}
	if s := v.Get("end"); s != "" {
		if q.End, err = ParseTime("end", s); err != nil {
			return SeriesQuery{}, err
		}
	}
	q.Start = q.End.Add(-24 * time.Hour)
	if s := v.Get("start"); s != "" {
		if q.Start, err = ParseTime("start", s); err != nil {
			return SeriesQuery{}, err
		}
	}
	if !q.End.After(q.Start) {
		return SeriesQuery{}, invalid("Query parameter 'end' must lie after 'start'")
	}
	if tz := v.Get("tz"); tz != "" {
		if q.Loc, err = time.LoadLocation(tz); err != nil || tz == "Local" {
			return SeriesQuery{}, invalid("Query parameter 'tz' must be an IANA time zone name such as Europe/Berlin or UTC")
		}
	}
	if s := v.Get("interval"); s != "" {
		if q.Interval, err = ParseInterval(s); err != nil {
			return SeriesQuery{}, err
		}
	} else if q.Interval, err = defaultInterval(q.Start, q.End, q.Loc); err != nil {
		return SeriesQuery{}, err
	}
	if !q.Interval.Raw() {
		if _, err := Buckets(q.Start, q.End, q.Interval, q.Loc, MaxBuckets); err != nil {
			return SeriesQuery{}, err
		}
	}
	if s := v.Get("agg"); strings.Trim(s, ", ") != "" {
		q.Aggs = nil
		for _, a := range strings.Split(s, ",") {
			if a = strings.ToLower(strings.TrimSpace(a)); a == "" {
				continue
			}
			if !slices.Contains(aggregates, a) {
				return SeriesQuery{}, invalid("Query parameter 'agg' must be a comma-separated list of %s", strings.Join(aggregates, ", "))
			}
			if !slices.Contains(q.Aggs, a) {
				q.Aggs = append(q.Aggs, a)
			}
		}
	}
	switch f := strings.ToLower(strings.TrimSpace(v.Get("fill"))); f {
	case "", FillNone:
	case FillNull, FillPrevious:
		q.Fill = f
	default:
		return SeriesQuery{}, invalid("Query parameter 'fill' must be none, null or previous")
	}
	q.Limit = MaxBuckets
	if q.Interval.Raw() {
		q.Limit = 1000
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return SeriesQuery{}, invalid("Query parameter 'limit' must be a positive integer")
		}
		q.Limit = min(n, q.Limit)
	}
	return q, nil
}

// defaultInterval is the smallest of the usual intervals that gives at
// most 1,000 buckets over the range.
func defaultInterval(start, end time.Time, loc *time.Location) (Interval, error) {
	for _, s := range []string{"1s", "10s", "1m", "5m", "15m", "1h", "6h", "1d", "1w"} {
		iv, err := ParseInterval(s)
		if err != nil {
			return Interval{}, err
		}
		if _, err := Buckets(start, end, iv, loc, 1000); err == nil {
			return iv, nil
		}
	}
	return ParseInterval("1mo")
}

// hash identifies the query for its cursors.
func (q *SeriesQuery) hash() uint64 {
	keys := slices.Clone(q.Keys)
	slices.Sort(keys)
	return queryHash("series", strconv.FormatInt(q.DeviceID, 10), strings.Join(keys, ","), q.startParam, q.endParam,
		q.Interval.String(), strings.Join(q.Aggs, ","), q.Loc.String(), q.Fill)
}
