package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDeviceTimestamps(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		_, key := a.register("Clocked", "sensor")
		post := func(ts any) response {
			return a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"v": 1}, "timestamp": ts})
		}
		r := post("2026-01-02T03:04:05.123Z").want(t, http.StatusCreated)
		if got := wantTime(t, r.body["timestamp"]); !got.Equal(time.Date(2026, 1, 2, 3, 4, 5, 123e6, time.UTC)) {
			t.Errorf("RFC 3339 timestamp stored as %v", got)
		}
		r = post(int64(1767323045000)).want(t, http.StatusCreated) // 2026-01-02T03:04:05Z in ms
		if got := wantTime(t, r.body["timestamp"]); !got.Equal(time.UnixMilli(1767323045000)) {
			t.Errorf("epoch ms stored as %v", got)
		}
		post("2026-01-01T00:00:00+02:00").want(t, http.StatusCreated)

		for _, bad := range []any{int64(1767323045), "1999-12-31T23:59:59Z", time.Now().Add(time.Hour).Format(time.RFC3339),
			"yesterday", "2026-01-02 03:04:05", true, 1.5e12 + 0.5, int64(-5)} {
			post(bad).wantError(t, http.StatusBadRequest, "timestamp")
		}
		// A small skew into the future is fine.
		post(time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)).want(t, http.StatusCreated)

		// Reads order by the reading's time, not by arrival.
		l := a.device("GET", "/api/v1/devices/telemetry", key, nil).want(t, http.StatusOK).list(t, "telemetry")
		var prev time.Time
		for i, e := range l {
			ts := wantTime(t, e.(map[string]any)["timestamp"])
			if i > 0 && ts.After(prev) {
				t.Fatalf("not newest first by timestamp: %v after %v", ts, prev)
			}
			prev = ts
			if e.(map[string]any)["received_at"] == nil {
				t.Fatal("received_at missing")
			}
		}
		if len(l) != 4 {
			t.Fatalf("%d readings stored, want 4", len(l))
		}
	})
}

func TestMessageIDMakesRetriesSafe(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		_, key := a.register("Retrier", "sensor")
		body := map[string]any{"data": map[string]int{"v": 1}, "message_id": "msg-0001"}
		first := a.device("POST", "/api/v1/devices/telemetry", key, body).want(t, http.StatusCreated)
		again := a.device("POST", "/api/v1/devices/telemetry", key, body).want(t, http.StatusCreated)
		if again.body["telemetry_id"] != first.body["telemetry_id"] || again.body["duplicate"] != true ||
			again.body["timestamp"] != first.body["timestamp"] {
			t.Fatalf("retry %s, first %s", again.raw, first.raw)
		}
		// The same id in a batch, twice, is the same reading again.
		r := a.device("POST", "/api/v1/devices/telemetry/batch", key, map[string]any{"records": []any{
			map[string]any{"data": map[string]int{"v": 1}, "message_id": "msg-0001"},
			map[string]any{"data": map[string]int{"v": 2}, "message_id": "msg-0002"},
			map[string]any{"data": map[string]int{"v": 2}, "message_id": "msg-0002"},
		}}).want(t, http.StatusCreated)
		res := r.list(t, "results")
		if res[0].(map[string]any)["telemetry_id"] != first.body["telemetry_id"] || res[0].(map[string]any)["duplicate"] != true ||
			res[2].(map[string]any)["telemetry_id"] != res[1].(map[string]any)["telemetry_id"] {
			t.Fatalf("batch results %s", r.raw)
		}
		st := a.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK).obj(t, "device")
		if st["telemetry_count"] != float64(2) {
			t.Fatalf("telemetry_count %v, want 2 rows for 2 message ids", st["telemetry_count"])
		}
		l := a.device("GET", "/api/v1/devices/telemetry", key, nil).want(t, http.StatusOK).list(t, "telemetry")
		if l[0].(map[string]any)["message_id"] != "msg-0002" {
			t.Errorf("message_id not shown: %v", l[0])
		}
		a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"v": 1},
			"message_id": strings.Repeat("m", 129)}).wantError(t, http.StatusBadRequest, "message_id")
		a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"v": 1},
			"message_id": 7}).wantError(t, http.StatusBadRequest, "message_id")
	})
}

func TestBatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		_, key := a.register("Batcher", "sensor")
		records := make([]any, 250)
		for i := range records {
			records[i] = map[string]any{"data": map[string]int{"i": i}, "type": "sensor",
				"timestamp": time.Now().Add(-time.Duration(250-i) * time.Second).UnixMilli()}
		}
		r := a.device("POST", "/api/v1/devices/telemetry/batch", key, map[string]any{"records": records}).want(t, http.StatusCreated)
		if r.body["accepted"] != float64(250) || r.body["rejected"] != float64(0) || len(r.list(t, "results")) != 250 {
			t.Fatalf("batch: %.300s", r.raw)
		}
		ids := map[float64]bool{}
		for i, e := range r.list(t, "results") {
			e := e.(map[string]any)
			if e["index"] != float64(i) || e["status"] != float64(201) || ids[e["telemetry_id"].(float64)] {
				t.Fatalf("result %d: %v", i, e)
			}
			ids[e["telemetry_id"].(float64)] = true
		}

		// Some records invalid: 207, the valid ones stored, each rejection named.
		r = a.device("POST", "/api/v1/devices/telemetry/batch", key, map[string]any{"records": []any{
			map[string]any{"data": map[string]int{"ok": 1}},
			map[string]any{"data": "not an object"},
			map[string]any{"data": map[string]int{"ok": 2}, "timestamp": int64(1700000000)},
			"not a record",
			map[string]any{"data": map[string]int{"ok": 3}, "type": 9},
			map[string]any{"data": map[string]int{"ok": 4}, "metadata": map[string]string{"m": "x"}},
		}}).want(t, http.StatusMultiStatus)
		if r.body["accepted"] != float64(2) || r.body["rejected"] != float64(4) {
			t.Fatalf("partial batch: %s", r.raw)
		}
		res := r.list(t, "results")
		for i, mention := range map[int]string{1: "records[1].data", 2: "records[2].timestamp", 3: "records[3]", 4: "records[4].type"} {
			e := res[i].(map[string]any)
			if e["status"] != float64(400) || !strings.Contains(e["message"].(string), mention) {
				t.Errorf("record %d: %v, want 400 naming %s", i, e, mention)
			}
		}
		if n := a.device("GET", "/api/v1/devices/status", key, nil).obj(t, "device")["telemetry_count"]; n != float64(252) {
			t.Fatalf("telemetry_count %v, want 252", n)
		}

		// Invalid bodies are refused at once.
		a.device("POST", "/api/v1/devices/telemetry/batch", key, map[string]any{"records": []any{}}).wantError(t, http.StatusBadRequest, "empty")
		a.device("POST", "/api/v1/devices/telemetry/batch", key, map[string]any{}).wantError(t, http.StatusBadRequest, "records")
		a.device("POST", "/api/v1/devices/telemetry/batch", key, map[string]any{"records": "x"}).wantError(t, http.StatusBadRequest, "records")
		a.device("POST", "/api/v1/devices/telemetry/batch", key, `{"records": [`).wantError(t, http.StatusBadRequest, "")
		a.device("POST", "/api/v1/devices/telemetry/batch", key, map[string]any{"records": []any{map[string]any{"data": 1}}}).
			wantError(t, http.StatusBadRequest, "")
		big := make([]any, 1001)
		for i := range big {
			big[i] = map[string]any{"data": map[string]int{"i": i}}
		}
		a.device("POST", "/api/v1/devices/telemetry/batch", key, map[string]any{"records": big}).wantError(t, http.StatusBadRequest, "1000")
		a.req("POST", "/api/v1/devices/telemetry/batch", map[string]any{"records": records}).wantError(t, http.StatusUnauthorized, "")
		if n := a.device("GET", "/api/v1/devices/status", key, nil).obj(t, "device")["telemetry_count"]; n != float64(252) {
			t.Fatalf("refused batches stored readings: %v", n)
		}
	})
}

// TestChangesReachTheAuthCacheAtOnce: a key cached by use is refused as soon
// as this node deactivates or deletes its device.
func TestChangesReachTheAuthCacheAtOnce(t *testing.T) {
	a := newAPI(t, sqliteStore(t))
	id, key := a.register("Cached", "sensor")
	for range 3 {
		a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"v": 1}}).want(t, http.StatusCreated)
	}
	a.admin("PUT", fmt.Sprintf("/api/v1/admin/devices/%d", id), map[string]string{"status": "inactive"}).want(t, http.StatusOK)
	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"v": 1}}).wantError(t, http.StatusForbidden, "")
	a.admin("PUT", fmt.Sprintf("/api/v1/admin/devices/%d", id), map[string]string{"status": "active"}).want(t, http.StatusOK)
	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"v": 1}}).want(t, http.StatusCreated)
	a.admin("DELETE", fmt.Sprintf("/api/v1/admin/devices/%d", id), nil).want(t, http.StatusOK)
	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"v": 1}}).wantError(t, http.StatusUnauthorized, "")
}
