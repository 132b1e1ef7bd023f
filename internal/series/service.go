package series

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// Service answers the time-series reads of a store.
type Service struct {
	Store iotflow.Store
}

// ReadingsQuery is a read of raw readings: a device's, or every device's
// when DeviceID is 0.
type ReadingsQuery struct {
	DeviceID int64
	DataType string
	Range
	// Window, when set, names what Start is relative to the time of each
	// request ("hours=24"): a cursor then belongs to the window, not to
	// the start it had when it was given out.
	Window string
	Limit  int
	Offset int // the reference's paging; with a cursor it must be 0
	Cursor string
}

// Page is one page of readings and where the next one begins: NextCursor
// is empty when there are no more.
type Page struct {
	Readings   []*iotflow.Reading
	HasMore    bool
	NextCursor string
}

func (q *ReadingsQuery) hash() uint64 {
	start := timeKey(q.Start)
	if q.Window != "" {
		start = q.Window
	}
	return queryHash("readings", strconv.FormatInt(q.DeviceID, 10), q.DataType, start, timeKey(q.End),
		strconv.FormatBool(q.Ascending))
}

// Readings returns a page of readings in the order of the range, newest
// first unless ascending. Following NextCursor until it is empty returns
// every reading that matches exactly once, in order, while others arrive.
func (s *Service) Readings(ctx context.Context, q ReadingsQuery) (*Page, error) {
	f := iotflow.ReadingFilter{DeviceID: q.DeviceID, DataType: q.DataType, Start: q.Start, End: q.End,
		Ascending: q.Ascending, Limit: q.Limit + 1, Offset: q.Offset}
	if q.Cursor != "" {
		if q.Offset != 0 {
			return nil, invalid("Query parameter 'offset' cannot be used with 'cursor'")
		}
		c, err := decodeCursor(q.Cursor, q.hash())
		if err != nil {
			return nil, err
		}
		f.After = &iotflow.ReadingKey{At: c.at, ID: c.id}
	}
	rs, err := s.Store.ListReadings(ctx, f)
	if err != nil {
		return nil, err
	}
	p := &Page{Readings: rs}
	if len(rs) > q.Limit {
		last := rs[q.Limit-1]
		p.Readings, p.HasMore = rs[:q.Limit], true
		p.NextCursor = cursor{query: q.hash(), at: last.Timestamp, id: last.ID}.encode()
	}
	return p, nil
}

// Each calls fn with every reading of q in its order, reading a bounded
// page at a time, each read within pageTimeout: memory stays flat however
// many there are, and however long the whole takes.
func (s *Service) Each(ctx context.Context, q ReadingsQuery, pageTimeout time.Duration, fn func(*iotflow.Reading) error) error {
	f := iotflow.ReadingFilter{DeviceID: q.DeviceID, DataType: q.DataType, Start: q.Start, End: q.End, Ascending: q.Ascending, Limit: 5000}
	for {
		pctx, cancel := context.WithTimeout(ctx, pageTimeout)
		rs, err := s.Store.ListReadings(pctx, f)
		cancel()
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(rs) < f.Limit {
			return nil
		}
		last := rs[len(rs)-1]
		f.After = &iotflow.ReadingKey{At: last.Timestamp, ID: last.ID}
	}
}

// KeyStates returns the newest value of each key of a device that m
// selects, by the reading's own time (a reading that arrives late never
// replaces a newer one), by key. They come from the stored states and the
// readings the rollups have not reached yet.
func (s *Service) KeyStates(ctx context.Context, deviceID int64, m iotflow.KeyMatcher) ([]iotflow.KeyState, error) {
	states, tail, err := s.Store.DeviceKeys(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	byKey := make(map[string]int, len(states))
	out := states[:0]
	for _, st := range states {
		if m.Match(st.Key) {
			byKey[st.Key] = len(out)
			out = append(out, st)
		}
	}
	for _, rd := range tail {
		iotflow.ReadingValues(rd.Payload, rd.Metadata, func(v iotflow.Value) {
			if !m.Match(v.Key) {
				return
			}
			st := iotflow.KeyState{DeviceID: deviceID, Key: v.Key, Kind: v.Kind, At: rd.Timestamp, ReadingID: rd.ID, Value: v.JSON}
			if i, ok := byKey[v.Key]; !ok {
				byKey[v.Key] = len(out)
				out = append(out, st)
			} else if st.Newer(&out[i]) {
				out[i] = st
			}
		})
	}
	slices.SortFunc(out, func(a, b iotflow.KeyState) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out, nil
}

// Bucket is one bucket of a key's series: its start and the aggregate of
// its values. Empty is set for a bucket without values, which is only
// returned with a fill: with FillNull its aggregate is zero, with
// FillPrevious it carries the previous bucket's of the same answer (zero
// before the first: a page does not look back past its start).
type Bucket struct {
	Start time.Time
	iotflow.Agg
	Empty bool
}

// Point is one value of a raw series, of the reading ReadingID.
type Point struct {
	At        time.Time
	ReadingID int64
	Value     float64
}

// SeriesResult is what a series read returns.
type SeriesResult struct {
	Query SeriesQuery
	Keys  []string // in order
	// Buckets of every key, in ascending order, for an aggregated read;
	// Points for a raw one.
	Buckets    map[string][]Bucket
	Points     map[string][]Point
	HasMore    bool
	NextCursor string
}

// Series reads the series of q.
func (s *Service) Series(ctx context.Context, q SeriesQuery) (*SeriesResult, error) {
	if q.Interval.Raw() {
		return s.rawSeries(ctx, q)
	}
	start := q.Start
	if q.Cursor != "" {
		c, err := q.resume()
		if err != nil {
			return nil, err
		}
		start = c.at
	}
	edges, err := Buckets(start, q.End, q.Interval, q.Loc, MaxBuckets)
	if err != nil {
		return nil, err
	}
	res := &SeriesResult{Query: q, Buckets: map[string][]Bucket{}}
	if n := len(edges) - 1; n > q.Limit {
		// The rest of the range is the next page's, from the next bucket on.
		edges = edges[:q.Limit+1]
		res.HasMore = true
		res.NextCursor = cursor{query: q.hash(), at: edges[q.Limit], end: q.End}.encode()
	}
	end := q.End
	if last := edges[len(edges)-1]; last.Before(end) {
		end = last
	}
	states, err := s.KeyStates(ctx, q.DeviceID, iotflow.NewKeyMatcher(q.Keys))
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(states))
	for i, st := range states {
		keys[i] = st.Key
	}
	data, err := s.Store.SeriesData(ctx, iotflow.SeriesQuery{DeviceID: q.DeviceID, Keys: keys, Segments: Plan(edges, start, end)})
	if err != nil {
		return nil, err
	}
	m := iotflow.NewKeyMatcher(q.Keys)
	aggs := map[string][]iotflow.Agg{}
	slot := func(key string) []iotflow.Agg {
		a, ok := aggs[key]
		if !ok {
			a = make([]iotflow.Agg, len(edges)-1)
			aggs[key] = a
		}
		return a
	}
	for _, r := range data.Rollups {
		if i := BucketIndex(edges, r.Bucket); i >= 0 {
			slot(r.Key)[i].Merge(r.Agg)
		}
	}
	for _, rd := range data.Readings {
		i := BucketIndex(edges, rd.Timestamp)
		if i < 0 || rd.Timestamp.Before(start) || !rd.Timestamp.Before(end) {
			continue
		}
		iotflow.ReadingValues(rd.Payload, rd.Metadata, func(v iotflow.Value) {
			if v.Kind.Numeric() && m.Match(v.Key) {
				slot(v.Key)[i].Add(v.Num, rd.Timestamp, rd.ID)
			}
		})
	}
	if q.Fill != FillNone {
		// Filled, every numeric key has its buckets, values or not.
		for _, st := range states {
			if st.Kind.Numeric() {
				slot(st.Key)
			}
		}
	}
	for key, a := range aggs {
		res.Keys = append(res.Keys, key)
		res.Buckets[key] = fill(edges, a, q.Fill)
	}
	slices.Sort(res.Keys)
	return res, nil
}

// resume reads q's cursor and takes from it the end the first page took
// from the time of its request, when q names none.
func (q *SeriesQuery) resume() (cursor, error) {
	c, err := decodeCursor(q.Cursor, q.hash())
	if err != nil {
		return c, err
	}
	if q.endParam == "" && !c.end.IsZero() {
		q.End = c.end
		if q.startParam == "" {
			q.Start = q.End.Add(-24 * time.Hour)
		}
	}
	return c, nil
}

// fill turns aggregates per bucket into the buckets a series returns.
func fill(edges []time.Time, aggs []iotflow.Agg, how string) []Bucket {
	out := make([]Bucket, 0, len(aggs))
	var prev *iotflow.Agg
	for i := range aggs {
		a := &aggs[i]
		switch {
		case a.Count > 0:
			out = append(out, Bucket{Start: edges[i], Agg: *a})
			prev = a
		case how == FillNull, how == FillPrevious && prev == nil:
			out = append(out, Bucket{Start: edges[i], Empty: true})
		case how == FillPrevious:
			out = append(out, Bucket{Start: edges[i], Agg: *prev, Empty: true})
		}
	}
	return out
}

// rawSeries returns the values themselves, a page of readings at a time.
func (s *Service) rawSeries(ctx context.Context, q SeriesQuery) (*SeriesResult, error) {
	var c cursor
	if q.Cursor != "" {
		var err error
		if c, err = q.resume(); err != nil {
			return nil, err
		}
	}
	start, end := q.Start, q.End
	rq := ReadingsQuery{DeviceID: q.DeviceID, Range: Range{Start: &start, End: &end, Ascending: true}, Limit: q.Limit}
	if q.Cursor != "" {
		// The raw series' cursor is its readings' cursor, bound to the
		// series query.
		c.query, c.end = rq.hash(), time.Time{}
		rq.Cursor = c.encode()
	}
	page, err := s.Readings(ctx, rq)
	if err != nil {
		return nil, err
	}
	res := &SeriesResult{Query: q, Points: map[string][]Point{}, HasMore: page.HasMore}
	if page.HasMore {
		c, _ := decodeCursor(page.NextCursor, rq.hash())
		c.query, c.end = q.hash(), q.End
		res.NextCursor = c.encode()
	}
	m := iotflow.NewKeyMatcher(q.Keys)
	for _, rd := range page.Readings {
		iotflow.ReadingValues(rd.Payload, rd.Metadata, func(v iotflow.Value) {
			if v.Kind.Numeric() && m.Match(v.Key) {
				if _, ok := res.Points[v.Key]; !ok {
					res.Keys = append(res.Keys, v.Key)
				}
				res.Points[v.Key] = append(res.Points[v.Key], Point{At: rd.Timestamp, ReadingID: rd.ID, Value: v.Num})
			}
		})
	}
	slices.Sort(res.Keys)
	return res, nil
}

// ExportKeys returns, sorted, every key of the device's values, or of
// every device's when deviceID is 0: the columns of a CSV export.
func (s *Service) ExportKeys(ctx context.Context, deviceID int64) ([]string, error) {
	ids := []int64{deviceID}
	if deviceID == 0 {
		ids = nil
		for offset := 0; ; offset += 1000 {
			ds, _, err := s.Store.ListDevices(ctx, iotflow.DeviceFilter{Limit: 1000, Offset: offset})
			if err != nil {
				return nil, err
			}
			for _, d := range ds {
				ids = append(ids, d.ID)
			}
			if len(ds) < 1000 {
				break
			}
		}
	}
	seen := map[string]bool{}
	var keys []string
	for _, id := range ids {
		states, err := s.KeyStates(ctx, id, iotflow.NewKeyMatcher(nil))
		if err != nil {
			return nil, err
		}
		for _, st := range states {
			if !seen[st.Key] {
				seen[st.Key] = true
				keys = append(keys, st.Key)
			}
		}
	}
	slices.Sort(keys)
	return keys, nil
}
