package httpapi_test

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// post stores a reading of the device with the given payload and time.
func (a *api) post(key string, data map[string]any, at time.Time) {
	a.t.Helper()
	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": data, "timestamp": at.UnixMilli()}).want(a.t, http.StatusCreated)
}

// TestSeriesThroughTheAPI: a device reads its own series, latest values
// and readings by time range and cursor, and an admin any device's; none
// of it ever shows another device's values.
func TestSeriesThroughTheAPI(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, key := a.register("series-a", "sensor")
		otherID, other := a.register("series-b", "sensor")
		base := time.Now().UTC().Add(-40 * time.Minute).Truncate(10 * time.Minute)
		for i := range 6 {
			a.post(key, map[string]any{"temperature": 20 + i, "env": map[string]any{"hum": 50}, "mode": "eco"}, base.Add(time.Duration(i)*time.Minute))
			a.post(other, map[string]any{"temperature": 1000 + i}, base.Add(time.Duration(i)*time.Minute))
		}
		q := url.Values{"start": {base.Format(time.RFC3339)}, "end": {base.Add(6 * time.Minute).Format(time.RFC3339)},
			"interval": {"2m"}, "agg": {"avg,count,max"}, "keys": {"temperature"}}
		r := a.device("GET", "/api/v1/devices/telemetry/series?"+q.Encode(), key, nil).want(t, http.StatusOK)
		wantKeys(t, r.body, "device_id", "start", "end", "interval", "tz", "series", "has_more", "next_cursor")
		temps := r.obj(t, "series")["temperature"].([]any)
		if len(temps) != 3 || temps[0].(map[string]any)["avg"] != 20.5 || temps[2].(map[string]any)["max"] != float64(25) ||
			temps[1].(map[string]any)["count"] != float64(2) || r.body["device_id"] != float64(id) {
			t.Fatalf("series %s", r.raw)
		}
		admin := a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/series?", otherID)+q.Encode(), nil).want(t, http.StatusOK)
		if got := admin.obj(t, "series")["temperature"].([]any)[0].(map[string]any)["avg"]; got != 1000.5 {
			t.Fatalf("admin series of the other device: %s", admin.raw)
		}
		q.Set("format", "columnar")
		col := a.device("GET", "/api/v1/devices/telemetry/series?"+q.Encode(), key, nil).want(t, http.StatusOK)
		if ts := col.list(t, "ts"); len(ts) != 3 || ts[0] != float64(base.UnixMilli()) || len(col.list(t, "temperature.avg")) != 3 {
			t.Fatalf("columnar %s", col.raw)
		}

		latest := a.device("GET", "/api/v1/devices/telemetry/latest", key, nil).want(t, http.StatusOK).obj(t, "latest")
		if latest["temperature"].(map[string]any)["value"] != float64(25) || latest["mode"].(map[string]any)["value"] != "eco" ||
			latest["env.hum"] == nil {
			t.Fatalf("latest %v", latest)
		}
		keys := a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/keys", id), nil).want(t, http.StatusOK).list(t, "keys")
		if len(keys) != 3 || keys[0].(map[string]any)["key"] != "env.hum" || keys[1].(map[string]any)["type"] != "string" {
			t.Fatalf("keys %v", keys)
		}

		// Pages by cursor: three of two, oldest first, this device's only.
		path := "/api/v1/devices/telemetry?order=asc&limit=2&start=" + url.QueryEscape(base.Format(time.RFC3339))
		var seen []float64
		for page := path; ; {
			r := a.device("GET", page, key, nil).want(t, http.StatusOK)
			for _, rd := range r.list(t, "telemetry") {
				seen = append(seen, rd.(map[string]any)["payload"].(map[string]any)["temperature"].(float64))
			}
			c, _ := r.body["next_cursor"].(string)
			if c == "" {
				if r.body["has_more"] != false {
					t.Fatalf("no cursor but has_more: %s", r.raw)
				}
				break
			}
			page = path + "&cursor=" + url.QueryEscape(c)
			// Another device cannot follow it.
			a.device("GET", page, other, nil).wantError(t, http.StatusBadRequest, "cursor")
		}
		if fmt.Sprint(seen) != "[20 21 22 23 24 25]" {
			t.Fatalf("pages gave %v", seen)
		}
		adminPage := a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d/telemetry?limit=4", id), nil).want(t, http.StatusOK)
		if len(adminPage.list(t, "telemetry")) != 4 || adminPage.body["has_more"] != true {
			t.Fatalf("admin page %s", adminPage.raw)
		}
	})
}

// TestSeriesRefusals: each bad parameter is a 400 naming it, an unknown
// device a 404, on every series read.
func TestSeriesRefusals(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, key := a.register("refusals", "sensor")
		for query, name := range map[string]string{
			"agg=median": "agg", "interval=3d": "interval", "tz=Nowhere/City": "tz", "fill=zero": "fill",
			"format=xml": "format", "start=yesterday": "start", "interval=1s&start=2020-01-01T00:00:00Z": "interval",
			"cursor=abc": "cursor", "limit=-1": "limit", "start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z": "end",
		} {
			a.device("GET", "/api/v1/devices/telemetry/series?"+query, key, nil).wantError(t, http.StatusBadRequest, "'"+name+"'")
		}
		a.device("GET", "/api/v1/devices/telemetry?order=up", key, nil).wantError(t, http.StatusBadRequest, "'order'")
		a.device("GET", "/api/v1/devices/telemetry?cursor=abc", key, nil).wantError(t, http.StatusBadRequest, "'cursor'")
		a.device("GET", "/api/v1/devices/telemetry/latest?keys=a%00b", key, nil).wantError(t, http.StatusBadRequest, "'keys'")
		for _, path := range []string{"/telemetry", "/telemetry/series", "/telemetry/latest", "/telemetry/keys"} {
			a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d", id+1000)+path, nil).wantError(t, http.StatusNotFound, "")
		}
		a.admin("GET", "/api/v1/admin/telemetry?hours=1&start=2026-01-01T00:00:00Z", nil).wantError(t, http.StatusBadRequest, "'hours'")
		a.admin("GET", "/api/v1/admin/telemetry/export?format=xlsx", nil).wantError(t, http.StatusBadRequest, "'format'")
		a.admin("GET", "/api/v1/admin/telemetry/export?device_id=0", nil).wantError(t, http.StatusBadRequest, "'device_id'")
		a.admin("GET", fmt.Sprintf("/api/v1/admin/telemetry/export?device_id=%d", id+1000), nil).wantError(t, http.StatusNotFound, "")
		a.admin("GET", "/api/v1/admin/telemetry/export?order=desc", nil).wantError(t, http.StatusBadRequest, "order")
	})
}

// TestExport: NDJSON gives a reading a line and CSV a row, oldest first,
// with a column a key; both are attachments with a file name.
func TestExport(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, key := a.register("exported", "sensor")
		_, other := a.register("also", "sensor")
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		for i := range 5 {
			a.post(key, map[string]any{"t": i, "env": map[string]any{"h": i * 10}, "note": "a,\"b\""}, base.Add(time.Duration(i)*time.Second))
		}
		a.post(other, map[string]any{"x": true}, base)
		get := func(query string) (*http.Response, string) {
			req, _ := http.NewRequest("GET", a.base+"/api/v1/admin/telemetry/export?"+query, nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("export %s: %d %s", query, res.StatusCode, b)
			}
			return res, string(b)
		}
		res, body := get(fmt.Sprintf("device_id=%d", id))
		if ct := res.Header.Get("Content-Type"); ct != "application/x-ndjson" ||
			!strings.HasPrefix(res.Header.Get("Content-Disposition"), fmt.Sprintf(`attachment; filename="iotflow-telemetry-device-%d-`, id)) {
			t.Fatalf("ndjson headers %v", res.Header)
		}
		sc := bufio.NewScanner(strings.NewReader(body))
		var ts []float64
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			if line["device_name"] != "exported" {
				t.Fatalf("line %v", line)
			}
			ts = append(ts, line["payload"].(map[string]any)["t"].(float64))
		}
		if fmt.Sprint(ts) != "[0 1 2 3 4]" {
			t.Fatalf("ndjson order %v", ts)
		}
		res, body = get("format=csv")
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") || !strings.Contains(res.Header.Get("Content-Disposition"), "-all-") {
			t.Fatalf("csv headers %v", res.Header)
		}
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		want := "id device_id device_name timestamp received_at data_type env.h note t x"
		if len(rows) != 7 || strings.Join(rows[0], " ") != want {
			t.Fatalf("csv header %v (%d rows), want %s", rows[0], len(rows), want)
		}
		if row := rows[1]; row[2] != "exported" || row[6] != "0" || row[7] != `a,"b"` || row[8] != "0" || row[9] != "" {
			t.Fatalf("csv row %q", row)
		}
		if row := rows[2]; row[2] != "also" || row[9] != "true" {
			t.Fatalf("csv row of the other device %q", row)
		}
		_, empty := get(fmt.Sprintf("format=csv&device_id=%d&start=%s", id, url.QueryEscape(time.Now().UTC().Format(time.RFC3339))))
		if strings.Count(empty, "\n") != 1 {
			t.Fatalf("an empty export should still have its header: %q", empty)
		}
	})
}

// TestSeriesEdges: cursors of reads whose range runs to "now" follow on;
// filled pages keep their keys; a raw columnar row a reading, times
// shared or not; an overflowing sum is null, not a failure.
func TestSeriesEdges(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, key := a.register("edges", "sensor")
		now := time.Now().UTC()
		at := now.Add(-90 * time.Minute).Truncate(time.Minute)
		a.post(key, map[string]any{"t": 1e308}, at)
		a.post(key, map[string]any{"t": 1e308}, at)
		a.post(key, map[string]any{"t": 2}, at.Add(time.Minute))

		// hours and a cursor: the window slides, the cursor still belongs to it.
		r := a.admin("GET", "/api/v1/admin/telemetry?hours=24&per_page=1", nil).want(t, http.StatusOK)
		c := r.body["next_cursor"].(string)
		a.admin("GET", "/api/v1/admin/telemetry?hours=24&per_page=1&cursor="+url.QueryEscape(c), nil).want(t, http.StatusOK)
		a.admin("GET", "/api/v1/admin/telemetry?hours=24&per_page=1&page=2&cursor="+url.QueryEscape(c), nil).
			wantError(t, http.StatusBadRequest, "'page'")

		// A series without end: its cursor carries the first page's end.
		r = a.device("GET", "/api/v1/devices/telemetry/series?interval=1h&limit=2&fill=null", key, nil).want(t, http.StatusOK)
		next := r.body["next_cursor"].(string)
		r2 := a.device("GET", "/api/v1/devices/telemetry/series?interval=1h&limit=2&fill=null&cursor="+url.QueryEscape(next), key, nil).
			want(t, http.StatusOK)
		if r2.body["end"] != r.body["end"] || len(r2.obj(t, "series")["t"].([]any)) != 2 {
			t.Fatalf("second page %s after %s", r2.raw, r.raw)
		}

		// A sum past a float64 is null.
		q := url.Values{"start": {at.Format(time.RFC3339)}, "end": {at.Add(2 * time.Minute).Format(time.RFC3339)}, "interval": {"1m"}, "agg": {"sum,max"}}
		sum := a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/series?", id)+q.Encode(), nil).want(t, http.StatusOK)
		b := sum.obj(t, "series")["t"].([]any)[0].(map[string]any)
		if b["sum"] != nil || b["max"] != 1e308 {
			t.Fatalf("overflowing sum %s", sum.raw)
		}

		// Raw columnar: two readings at one time are two rows.
		q.Set("interval", "raw")
		q.Set("format", "columnar")
		col := a.device("GET", "/api/v1/devices/telemetry/series?"+q.Encode(), key, nil).want(t, http.StatusOK)
		if ts := col.list(t, "ts"); len(ts) != 3 || ts[0] != ts[1] || len(col.list(t, "t.value")) != 3 {
			t.Fatalf("raw columnar %s", col.raw)
		}
	})
}
