package httpapi

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/series"
)

// The time-series reads: a device reads its own, an admin any device's.
// The rules are series'; these handlers translate.

// adminDevice reads the {id} of an admin route and checks the device
// exists, so that an unknown one is a 404 rather than an empty read.
func (s *server) adminDevice(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.Service.Store().Device(r.Context(), id)
	}
	if err != nil {
		s.writeError(w, r, err)
		return 0, false
	}
	return id, true
}

// readings answers a page of raw readings of q's device (or of every
// device), with the reference's fields and the cursor's.
func (s *server) readings(w http.ResponseWriter, r *http.Request, deviceID int64, maxLimit int) {
	q, err := s.readingsQuery(r, deviceID, maxLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.Series.Readings(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":      "success",
		"telemetry":   telemetryViews(page.Readings),
		"count":       len(page.Readings),
		"limit":       q.Limit,
		"offset":      q.Offset,
		"has_more":    page.HasMore,
		"next_cursor": nullable(page.NextCursor),
	})
}

// readingsQuery reads limit (default 100, at most maxLimit), offset,
// type, start, end, order and cursor.
func (s *server) readingsQuery(r *http.Request, deviceID int64, maxLimit int) (series.ReadingsQuery, error) {
	q := series.ReadingsQuery{DeviceID: deviceID, Cursor: r.URL.Query().Get("cursor")}
	var err error
	if q.Limit, err = queryInt(r, "limit", 100, 1); err != nil {
		return q, err
	}
	q.Limit = min(q.Limit, maxLimit)
	if q.Offset, err = queryInt(r, "offset", 0, 0); err != nil {
		return q, err
	}
	if q.DataType, err = queryText(r, "type"); err != nil {
		return q, err
	}
	q.Range, err = series.ParseRange(r.URL.Query())
	return q, err
}

func (s *server) adminDeviceTelemetry(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	if id, ok := s.adminDevice(w, r); ok {
		s.readings(w, r, id, maxDeviceTelemetryLimit)
	}
}

func (s *server) deviceSeries(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	s.series(w, r, d.ID)
}

func (s *server) adminSeries(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	if id, ok := s.adminDevice(w, r); ok {
		s.series(w, r, id)
	}
}

// series answers a series read in the json or the columnar format.
func (s *server) series(w http.ResponseWriter, r *http.Request, deviceID int64) {
	format := strings.ToLower(r.URL.Query().Get("format"))
	if format != "" && format != "json" && format != "columnar" {
		s.writeError(w, r, invalid("Query parameter 'format' must be json or columnar"))
		return
	}
	q, err := series.ParseSeriesQuery(r.URL.Query(), s.Service.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q.DeviceID = deviceID
	res, err := s.Series.Series(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q = res.Query // with the range a cursor carried
	body := map[string]any{
		"device_id": deviceID, "start": formatTime(q.Start), "end": formatTime(q.End),
		"interval": q.Interval.String(), "tz": q.Loc.String(),
		"has_more": res.HasMore, "next_cursor": nullable(res.NextCursor),
	}
	if format == "columnar" {
		columnar(body, res)
	} else {
		body["series"] = seriesJSON(res)
	}
	writeJSON(w, http.StatusOK, body)
}

// seriesJSON is the json format: per key, the buckets ascending, each with
// its start and the aggregates asked for (null in a filled empty bucket),
// or for a raw series the values with their times.
func seriesJSON(res *series.SeriesResult) map[string][]map[string]any {
	out := make(map[string][]map[string]any, len(res.Keys))
	for _, key := range res.Keys {
		if res.Points != nil {
			points := make([]map[string]any, len(res.Points[key]))
			for i, p := range res.Points[key] {
				points[i] = map[string]any{"ts": formatTime(p.At), "value": finite(p.Value)}
			}
			out[key] = points
			continue
		}
		buckets := make([]map[string]any, len(res.Buckets[key]))
		for i, b := range res.Buckets[key] {
			m := map[string]any{"ts": formatTime(b.Start)}
			for _, a := range res.Query.Aggs {
				m[a] = aggValue(b, a)
			}
			buckets[i] = m
		}
		out[key] = buckets
	}
	return out
}

// columnar adds the columnar format to body: one "ts" column of epoch
// milliseconds and a column a key and aggregate ("temperature.avg"), null
// where that key has no value. The rows are the union of every key's
// buckets, or for a raw series its readings ("temperature.value"), which
// may share a time.
func columnar(body map[string]any, res *series.SeriesResult) {
	type row struct {
		at time.Time
		id int64 // the reading of a raw series' row
	}
	var rows []row
	index := map[row]int{}
	for _, key := range res.Keys {
		for _, b := range res.Buckets[key] {
			rows = append(rows, row{at: b.Start})
		}
		for _, p := range res.Points[key] {
			rows = append(rows, row{at: p.At, id: p.ReadingID})
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return int(a.id - b.id)
	})
	rows = slices.Compact(rows)
	ts := make([]int64, len(rows))
	for i, r := range rows {
		ts[i], index[r] = r.at.UnixMilli(), i
	}
	body["ts"] = ts
	column := func() []any { return make([]any, len(rows)) }
	for _, key := range res.Keys {
		if res.Points != nil {
			col := column()
			for _, p := range res.Points[key] {
				col[index[row{at: p.At, id: p.ReadingID}]] = finite(p.Value)
			}
			body[key+".value"] = col
			continue
		}
		for _, a := range res.Query.Aggs {
			col := column()
			for _, b := range res.Buckets[key] {
				col[index[row{at: b.Start}]] = aggValue(b, a)
			}
			body[key+"."+a] = col
		}
	}
}

// finite is v, or null for a sum (or its average) that overflowed a
// float64: the values are finite, but not always their sum.
func finite(v float64) any {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return v
}

// aggValue is one aggregate of a bucket. An empty bucket has a count of 0
// and null for the others, unless fill=previous carried the previous
// bucket's values into it.
func aggValue(b series.Bucket, agg string) any {
	switch {
	case agg == "count" && b.Empty:
		return 0
	case agg == "count":
		return b.Count
	case b.Count == 0: // empty, and nothing carried
		return nil
	}
	switch agg {
	case "avg":
		return finite(b.Avg())
	case "min":
		return b.Min
	case "max":
		return b.Max
	case "sum":
		return finite(b.Sum)
	case "first":
		return b.First
	case "last":
		return b.Last
	}
	return nil
}

func (s *server) deviceLatest(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	s.latest(w, r, d.ID)
}

func (s *server) adminLatest(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	if id, ok := s.adminDevice(w, r); ok {
		s.latest(w, r, id)
	}
}

// latest answers each key's newest value, by the readings' own time.
func (s *server) latest(w http.ResponseWriter, r *http.Request, deviceID int64) {
	keys, err := series.ParseKeys(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	states, err := s.Series.KeyStates(r.Context(), deviceID, iotflow.NewKeyMatcher(keys))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	type value struct {
		Value json.RawMessage `json:"value"`
		TS    string          `json:"ts"`
	}
	latest := make(map[string]value, len(states))
	for _, st := range states {
		latest[st.Key] = value{Value: st.Value, TS: formatTime(st.At)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": deviceID, "latest": latest})
}

func (s *server) adminKeys(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	id, ok := s.adminDevice(w, r)
	if !ok {
		return
	}
	states, err := s.Series.KeyStates(r.Context(), id, iotflow.NewKeyMatcher(nil))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	type key struct {
		Key    string `json:"key"`
		Type   string `json:"type"`
		LastTS string `json:"last_ts"`
	}
	keys := make([]key, len(states))
	for i, st := range states {
		keys[i] = key{Key: st.Key, Type: st.Kind.String(), LastTS: formatTime(st.At)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": id, "keys": keys})
}
