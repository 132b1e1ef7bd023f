package httpapi_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// seriesBase is when the readings of the series scenarios begin: the night
// Europe/Berlin moves to summer time (at 01:00 UTC), so that its day of
// 2026-03-29 has 23 hours.
var seriesBase = time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)

// at is seriesBase moved by d, as a query parameter in RFC 3339.
func at(d time.Duration) string { return url.QueryEscape(seriesBase.Add(d).Format(time.RFC3339)) }

// atMillis is seriesBase moved by d, in Unix epoch milliseconds.
func atMillis(d time.Duration) string { return strconv.FormatInt(seriesBase.Add(d).UnixMilli(), 10) }

// shown is seriesBase moved by d as the API writes times.
func shown(d time.Duration) string {
	return seriesBase.Add(d).UTC().Format("2006-01-02T15:04:05.000000+00:00")
}

// postSeriesReadings posts, as device key k, twelve readings ten minutes
// apart from seriesBase, one five hours on, and then one that arrives
// late, taken an hour before seriesBase: fourteen readings.
func (c *contract) postSeriesReadings(a *api, k string) {
	c.t.Helper()
	var records []any
	for i := range 12 {
		records = append(records, map[string]any{
			"data": map[string]any{"temperature": 20 + i, "env": map[string]any{"humidity": 50 + i, "co2": 400},
				"door_open": i%2 == 0, "label": "ok", "tags": []int{1, 2}},
			"metadata":   map[string]any{"battery": 90 - i},
			"timestamp":  seriesBase.Add(time.Duration(i) * 10 * time.Minute).UnixMilli(),
			"message_id": fmt.Sprint("series-", i),
		})
	}
	records = append(records, map[string]any{"data": map[string]any{"temperature": 30, "note": nil, "label": "late"},
		"timestamp": seriesBase.Add(5 * time.Hour).Format(time.RFC3339)})
	const batch = "/api/v1/devices/telemetry/batch"
	c.do(a, exchange{method: "POST", path: batch, headers: key(k), want: 201, validRequest: true, body: map[string]any{"records": records}})
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/telemetry", headers: key(k), want: 201, validRequest: true,
		body: map[string]any{"data": map[string]any{"temperature": -5, "label": "stale"}, "type": "calibration",
			"timestamp": seriesBase.Add(-time.Hour).Format(time.RFC3339)}})
}

// reader is a read as a device or as an admin: the path and credentials.
type reader struct {
	path    string
	headers []string
}

func (c *contract) get(a *api, rd reader, query string, want int) result {
	c.t.Helper()
	return c.do(a, exchange{method: "GET", path: rd.path + "?" + query, headers: rd.headers, want: want, validRequest: want == 200})
}

// wantMessage sends a request that must get status, with an error message
// that names what.
func (c *contract) wantMessage(a *api, rd reader, query string, status int, what string) {
	c.t.Helper()
	r := c.get(a, rd, query, status)
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, what) {
		c.t.Errorf("%s?%s: message %q does not name %q", rd.path, query, msg, what)
	}
}

// follow reads query and the pages its next_cursor leads to, and returns
// every page.
func (c *contract) follow(a *api, rd reader, query string) []result {
	c.t.Helper()
	var pages []result
	for next := ""; len(pages) < 50; {
		r := c.get(a, rd, query+next, 200)
		pages = append(pages, r)
		cursor, _ := r.body["next_cursor"].(string)
		if (cursor != "") != (r.body["has_more"] == true) {
			c.t.Fatalf("%s?%s: has_more %v with next_cursor %v", rd.path, query+next, r.body["has_more"], r.body["next_cursor"])
		}
		if cursor == "" {
			return pages
		}
		next = "&cursor=" + url.QueryEscape(cursor)
	}
	c.t.Fatalf("%s?%s: next_cursor never ends", rd.path, query)
	return nil
}

// contractSeries drives the time-series reads, the export and the ranges
// and cursors of the telemetry reads, as a device and as an admin.
func contractSeries(t *testing.T, c *contract, store iotflow.Store) {
	c.t = t
	a := contractAPI(t, store, httpapi.Deps{})
	id, k := c.registerDevice(a, "Series Sensor")
	quiet, _ := c.registerDevice(a, "Quiet Sensor")
	c.postSeriesReadings(a, k)
	for _, rd := range []reader{
		{"/api/v1/devices/telemetry/series", key(k)},
		{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/series", id), bearer},
	} {
		c.seriesReads(a, rd)
	}
	c.get(a, reader{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/series", quiet), bearer}, "format=columnar", 200)
	c.get(a, reader{"/api/v1/admin/devices/999999/telemetry/series", bearer}, "", 404)
	c.get(a, reader{"/api/v1/admin/devices/abc/telemetry/series", bearer}, "", 400)
	c.get(a, reader{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/series", id), nil}, "", 401)
	c.get(a, reader{"/api/v1/devices/telemetry/series", nil}, "", 401)

	c.latestAndKeys(a, id, quiet, k)
	c.export(a, id)
	for _, rd := range []reader{
		{"/api/v1/devices/telemetry", key(k)},
		{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry", id), bearer},
	} {
		c.readingRanges(a, rd, "limit")
	}
	c.readingRanges(a, reader{"/api/v1/admin/telemetry", bearer}, "per_page")
	c.get(a, reader{"/api/v1/admin/devices/999999/telemetry", bearer}, "", 404)
	c.get(a, reader{"/api/v1/admin/devices/abc/telemetry", bearer}, "", 400)
	c.get(a, reader{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry", id), nil}, "", 401)
	tel := reader{"/api/v1/admin/telemetry", bearer}
	c.wantMessage(a, tel, "hours=24&start="+at(0), 400, "'hours'")
	first := c.get(a, tel, "per_page=2", 200)
	c.get(a, tel, "per_page=2&page=2&cursor="+url.QueryEscape(first.body["next_cursor"].(string)), 400)
}

// seriesReads drives a series read: both formats, aggregated and raw, with
// fills, time zones and pages, and its errors.
func (c *contract) seriesReads(a *api, rd reader) {
	t := c.t
	rng := "start=" + at(-time.Hour) + "&end=" + atMillis(6*time.Hour)
	r := c.get(a, rd, rng+"&interval=1h&agg=avg,min,max,sum,count,first,last", 200)
	series := r.body["series"].(map[string]any)
	var keys []string
	for k := range series {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"door_open", "env.co2", "env.humidity", "metadata.battery", "temperature"}; !slices.Equal(keys, want) {
		t.Errorf("series keys %q, want %q (numbers and booleans only)", keys, want)
	}
	temp := series["temperature"].([]any)
	if len(temp) != 4 {
		t.Fatalf("temperature: %d buckets, want 4: %v", len(temp), temp)
	}
	b := temp[1].(map[string]any)
	if b["ts"] != shown(0) || b["avg"] != 22.5 || b["count"] != 6.0 || b["min"] != 20.0 || b["max"] != 25.0 ||
		b["sum"] != 135.0 || b["first"] != 20.0 || b["last"] != 25.0 {
		t.Errorf("temperature bucket of %s: %v", shown(0), b)
	}
	if d := series["door_open"].([]any)[0].(map[string]any); d["avg"] != 0.5 {
		t.Errorf("door_open bucket: %v, want avg 0.5 (true as 1)", d)
	}
	if r.body["start"] != shown(-time.Hour) || r.body["end"] != shown(6*time.Hour) || r.body["interval"] != "1h" || r.body["tz"] != "UTC" {
		t.Errorf("series: %s", r.raw)
	}

	// Fills: an empty bucket with nulls, or the previous bucket's values.
	r = c.get(a, rd, rng+"&interval=1h&fill=null&agg=avg,count", 200)
	temp = r.body["series"].(map[string]any)["temperature"].([]any)
	if e := temp[3].(map[string]any); len(temp) != 7 || e["avg"] != nil || e["count"] != 0.0 {
		t.Errorf("fill=null: %v", temp)
	}
	r = c.get(a, rd, rng+"&interval=1h&fill=previous&agg=avg,count", 200)
	temp = r.body["series"].(map[string]any)["temperature"].([]any)
	if e := temp[3].(map[string]any); len(temp) != 7 || e["avg"] != 28.5 || e["count"] != 0.0 {
		t.Errorf("fill=previous: %v", temp)
	}
	if e := r.body["series"].(map[string]any)["env.humidity"].([]any)[0].(map[string]any); e["avg"] != nil {
		t.Errorf("fill=previous before the first value: %v", e)
	}

	// Time zones: Berlin's day of the change has 23 hours; Kolkata's hours
	// start at half past UTC's.
	r = c.get(a, rd, "start="+at(-time.Hour)+"&end="+at(46*time.Hour)+"&interval=1d&tz=Europe/Berlin&fill=null&agg=count", 200)
	temp = r.body["series"].(map[string]any)["temperature"].([]any)
	if len(temp) != 2 || temp[0].(map[string]any)["ts"] != shown(-time.Hour) || temp[0].(map[string]any)["count"] != 14.0 ||
		temp[1].(map[string]any)["ts"] != shown(22*time.Hour) || r.body["tz"] != "Europe/Berlin" {
		t.Errorf("1d in Europe/Berlin: %s", r.raw)
	}
	r = c.get(a, rd, rng+"&interval=1h&tz=Asia/Kolkata&keys=temperature", 200)
	if b := r.body["series"].(map[string]any)["temperature"].([]any)[0].(map[string]any); b["ts"] != shown(-90*time.Minute) {
		t.Errorf("1h in Asia/Kolkata: first bucket %v, want %s", b, shown(-90*time.Minute))
	}

	// Columnar: the union of the keys' buckets, null where a key has none.
	r = c.get(a, rd, rng+"&interval=1h&format=columnar&keys=temperature,env.*&agg=avg,count", 200)
	if ts := r.body["ts"].([]any); len(ts) != 4 || ts[0] != float64(seriesBase.Add(-time.Hour).UnixMilli()) {
		t.Errorf("columnar ts: %v", ts)
	}
	for _, col := range []string{"temperature.avg", "temperature.count", "env.humidity.avg", "env.humidity.count", "env.co2.avg", "env.co2.count"} {
		if v, ok := r.body[col].([]any); !ok || len(v) != 4 {
			t.Errorf("columnar %s: %v", col, r.body[col])
		}
	}
	if len(r.body) != 14 || r.body["env.humidity.avg"].([]any)[0] != nil || r.body["temperature.avg"].([]any)[1] != 22.5 {
		t.Errorf("columnar: %s", r.raw)
	}

	// Raw: every value, oldest first, a page at a time.
	var values []any
	for _, p := range c.follow(a, rd, rng+"&interval=raw&keys=temperature&limit=5") {
		for _, pt := range p.body["series"].(map[string]any)["temperature"].([]any) {
			values = append(values, pt.(map[string]any)["value"])
		}
	}
	if len(values) != 14 || values[0] != -5.0 || values[13] != 30.0 {
		t.Errorf("raw temperature over its pages: %v", values)
	}
	r = c.get(a, rd, rng+"&interval=raw&format=columnar&keys=env.*", 200)
	if h := r.body["env.humidity.value"].([]any); len(r.body["ts"].([]any)) != 12 || len(h) != 12 || h[0] != 50.0 || r.body["interval"] != "raw" {
		t.Errorf("raw columnar: %s", r.raw)
	}

	// Buckets a page at a time; the cursor is bound to its query.
	pages := c.follow(a, rd, rng+"&interval=1h&limit=1")
	var starts []string
	for _, p := range pages {
		temp, _ := p.body["series"].(map[string]any)["temperature"].([]any) // none in an hour without readings
		for _, b := range temp {
			starts = append(starts, b.(map[string]any)["ts"].(string))
		}
	}
	if len(pages) != 7 || !slices.Equal(starts, []string{shown(-time.Hour), shown(0), shown(time.Hour), shown(5 * time.Hour)}) {
		t.Errorf("1h buckets over %d pages: %v", len(pages), starts)
	}
	cursor := pages[0].body["next_cursor"].(string)
	flip := map[bool]string{true: "B", false: "A"}[cursor[10] == 'A']
	tampered := cursor[:10] + flip + cursor[11:]
	c.wantMessage(a, rd, rng+"&interval=1h&limit=1&cursor="+tampered, 400, "'cursor'")
	c.wantMessage(a, rd, rng+"&interval=1h&fill=null&limit=1&cursor="+cursor, 400, "'cursor'")

	// The defaults: the last 24 hours (before end), in at most 1,000 buckets.
	r = c.get(a, rd, "", 200)
	if r.body["interval"] != "5m" || len(r.body["series"].(map[string]any)) != 0 {
		t.Errorf("series by default: %s", r.raw)
	}
	if r = c.get(a, rd, "end="+at(6*time.Hour), 200); r.body["start"] != shown(-18*time.Hour) {
		t.Errorf("series ending at %s: %s", shown(6*time.Hour), r.raw)
	}

	c.wantMessage(a, rd, rng+"&interval=1s", 400, "the smallest interval that fits is 5s")
	for _, bad := range []struct{ query, name string }{
		{"agg=avg,median", "agg"}, {"interval=2d", "interval"}, {"interval=500ms", "interval"}, {"interval=-1m", "interval"},
		{"tz=Mars/Olympus_Mons", "tz"}, {"tz=Local", "tz"}, {"fill=zero", "fill"}, {"format=xml", "format"},
		{"limit=0", "limit"}, {"start=yesterday", "start"}, {"end=" + at(0) + "&start=" + at(time.Hour), "end"},
		{"keys=a,%00", "keys"},
	} {
		c.wantMessage(a, rd, bad.query, 400, "'"+bad.name+"'")
	}
}

// latestAndKeys drives the newest values and the keys of a device.
func (c *contract) latestAndKeys(a *api, id, quiet int64, k string) {
	t := c.t
	for _, rd := range []reader{
		{"/api/v1/devices/telemetry/latest", key(k)},
		{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/latest", id), bearer},
	} {
		r := c.get(a, rd, "", 200)
		latest := r.body["latest"].(map[string]any)
		for name, want := range map[string]any{"temperature": 30.0, "label": "late", "door_open": false, "note": nil,
			"env.humidity": 61.0, "metadata.battery": 79.0} {
			if v, ok := latest[name].(map[string]any); !ok || v["value"] != want {
				t.Errorf("latest %s: %v, want the value %v", name, latest[name], want)
			}
		}
		if _, ok := latest["tags"]; ok || latest["temperature"].(map[string]any)["ts"] != shown(5*time.Hour) {
			t.Errorf("latest: %s", r.raw)
		}
		r = c.get(a, rd, "keys=env.*,+label", 200)
		if latest = r.body["latest"].(map[string]any); len(latest) != 3 || latest["env.co2"] == nil || latest["label"] == nil {
			t.Errorf("latest of env.* and label: %s", r.raw)
		}
		if r = c.get(a, rd, "keys=nothing", 200); len(r.body["latest"].(map[string]any)) != 0 {
			t.Errorf("latest of no key: %s", r.raw)
		}
		c.wantMessage(a, rd, "keys="+strings.Repeat("k", 201), 400, "'keys'")
	}
	c.get(a, reader{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/latest", quiet), bearer}, "", 200)
	c.get(a, reader{"/api/v1/admin/devices/999999/telemetry/latest", bearer}, "", 404)
	c.get(a, reader{"/api/v1/admin/devices/0/telemetry/latest", bearer}, "", 400)
	c.get(a, reader{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/latest", id), nil}, "", 401)
	c.get(a, reader{"/api/v1/devices/telemetry/latest", nil}, "", 401)

	keys := reader{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/keys", id), bearer}
	r := c.get(a, keys, "", 200)
	var got []string
	for _, k := range r.body["keys"].([]any) {
		k := k.(map[string]any)
		got = append(got, k["key"].(string)+":"+k["type"].(string))
		if k["key"] == "temperature" && k["last_ts"] != shown(5*time.Hour) {
			t.Errorf("keys: temperature %v", k)
		}
	}
	if want := []string{"door_open:boolean", "env.co2:number", "env.humidity:number", "label:string",
		"metadata.battery:number", "note:null", "temperature:number"}; !slices.Equal(got, want) {
		t.Errorf("keys %q, want %q", got, want)
	}
	if r = c.get(a, reader{fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/keys", quiet), bearer}, "", 200); len(r.body["keys"].([]any)) != 0 {
		t.Errorf("keys of a device without readings: %s", r.raw)
	}
	c.get(a, reader{"/api/v1/admin/devices/999999/telemetry/keys", bearer}, "", 404)
	c.get(a, reader{"/api/v1/admin/devices/x/telemetry/keys", bearer}, "", 400)
	c.get(a, reader{keys.path, nil}, "", 401)
}

var exportName = regexp.MustCompile(`^attachment; filename="iotflow-telemetry-(all|device-[0-9]+)-[0-9]{8}T[0-9]{6}Z\.(ndjson|csv)"$`)

// export drives the export in both formats: the validator validates each
// NDJSON line (see decodeNDJSON) and the CSV's syntax.
func (c *contract) export(a *api, id int64) {
	t := c.t
	ex := reader{"/api/v1/admin/telemetry/export", bearer}
	lines := func(r result, n int, name string) {
		t.Helper()
		if ct, cd := r.header.Get("Content-Type"), r.header.Get("Content-Disposition"); ct != "application/x-ndjson" ||
			!exportName.MatchString(cd) || !strings.Contains(cd, name) {
			t.Errorf("export: Content-Type %q, Content-Disposition %q", ct, cd)
		}
		ls := bytes.Split(bytes.TrimSuffix(r.raw, []byte("\n")), []byte("\n"))
		if len(r.raw) == 0 {
			ls = nil
		}
		if len(ls) != n {
			t.Fatalf("export: %d lines, want %d:\n%s", len(ls), n, r.raw)
		}
		prev := ""
		for _, l := range ls {
			if ts := string(l[bytes.Index(l, []byte(`"timestamp":"`))+13:][:32]); ts < prev {
				t.Errorf("export is not oldest first: %s after %s", ts, prev)
			} else {
				prev = ts
			}
		}
	}
	lines(c.get(a, ex, "", 200), 14, "-all-")
	lines(c.get(a, ex, fmt.Sprintf("device_id=%d&format=ndjson&start=%s&end=%s", id, at(0), atMillis(time.Hour)), 200), 6, fmt.Sprintf("-device-%d-", id))
	lines(c.get(a, ex, "type=calibration", 200), 1, "-all-")
	lines(c.get(a, ex, "type=none", 200), 0, "-all-")

	r := c.get(a, ex, fmt.Sprintf("device_id=%d&format=csv", id), 200)
	if ct, cd := r.header.Get("Content-Type"), r.header.Get("Content-Disposition"); ct != "text/csv; charset=utf-8" || !exportName.MatchString(cd) || !strings.HasSuffix(cd, `.csv"`) {
		t.Errorf("csv export: Content-Type %q, Content-Disposition %q", ct, cd)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.raw)).ReadAll()
	if err != nil || len(rows) != 15 {
		t.Fatalf("csv export: %d rows, %v:\n%s", len(rows), err, r.raw)
	}
	if want := []string{"id", "device_id", "device_name", "timestamp", "received_at", "data_type", "door_open", "env.co2",
		"env.humidity", "label", "metadata.battery", "note", "temperature"}; !slices.Equal(rows[0], want) {
		t.Errorf("csv header %q, want %q", rows[0], want)
	}
	if row := strings.Join(rows[1][5:], ","); row != "calibration,,,,stale,,,-5" {
		t.Errorf("csv row of the late reading: %q", row)
	}
	if row := strings.Join(rows[2][2:], ","); row != "Series Sensor,"+shown(0)+","+rows[2][4]+",sensor,true,400,50,ok,90,,20" {
		t.Errorf("csv row of the first reading: %q", row)
	}
	c.get(a, ex, "format=csv&start="+at(0), 200)

	c.wantMessage(a, ex, "format=xml", 400, "'format'")
	c.wantMessage(a, ex, "order=asc", 400, "'order'")
	c.wantMessage(a, ex, "cursor=abc", 400, "'cursor'")
	c.wantMessage(a, ex, "device_id=x", 400, "'device_id'")
	c.wantMessage(a, ex, "start=yesterday", 400, "'start'")
	c.wantMessage(a, ex, "start="+at(time.Hour)+"&end="+at(0), 400, "'end'")
	c.get(a, ex, "device_id=999999", 404)
	c.get(a, reader{ex.path, nil}, "", 401)
}

// readingRanges drives a read of raw readings by range, order and cursor;
// size names its page size parameter.
func (c *contract) readingRanges(a *api, rd reader, size string) {
	t := c.t
	rng := "start=" + atMillis(0) + "&end=" + at(2*time.Hour)
	if size == "per_page" {
		rng += "&type=sensor"
	}
	for _, order := range []string{"asc", "desc"} {
		var stamps []string
		seen := map[float64]bool{}
		pages := c.follow(a, rd, rng+"&order="+order+"&"+size+"=5")
		for _, p := range pages {
			for _, r := range p.body["telemetry"].([]any) {
				r := r.(map[string]any)
				seen[r["id"].(float64)] = true
				stamps = append(stamps, r["timestamp"].(string))
			}
		}
		sorted := slices.IsSorted(stamps)
		if order == "desc" {
			slices.Reverse(stamps)
			sorted = slices.IsSorted(stamps)
		}
		if len(pages) != 3 || len(stamps) != 12 || len(seen) != 12 || !sorted {
			t.Errorf("%s %s: %d readings (%d distinct) over %d pages, in order %v: %v", rd.path, order, len(stamps), len(seen), len(pages), sorted, stamps)
		}
	}
	first := c.get(a, rd, rng+"&"+size+"=5", 200)
	cursor := url.QueryEscape(first.body["next_cursor"].(string))
	c.wantMessage(a, rd, rng+"&order=asc&"+size+"=5&cursor="+cursor, 400, "'cursor'")
	c.wantMessage(a, rd, "start="+atMillis(time.Minute)+"&end="+at(2*time.Hour)+"&cursor="+cursor, 400, "'cursor'")
	if size == "limit" {
		c.wantMessage(a, rd, rng+"&offset=1&cursor="+cursor, 400, "'offset'")
	}
	c.wantMessage(a, rd, "order=sideways", 400, "'order'")
	c.wantMessage(a, rd, "start=yesterday", 400, "'start'")
	c.wantMessage(a, rd, "end=253402300800000", 400, "'end'")
	c.wantMessage(a, rd, "start="+at(time.Hour)+"&end="+at(time.Hour), 400, "'end'")
}
