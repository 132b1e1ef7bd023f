package httpapi_test

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ratelimit"
	"github.com/iotflow/iotflow/internal/testdb"
)

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.b.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// TestAccessLog: one line per request with method, route pattern, status,
// duration, bytes, request id (kept from X-Request-ID, else made up, and
// echoed) and device id; failures of authentication and rate limits at
// WARN; never a key.
func TestAccessLog(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	limits := testLimits()
	limits.Device = ratelimit.PerMinute("device", 1)
	a := newAPIWith(t, testdb.SQLite(t), httpapi.Deps{Logger: log, Limits: limits})
	id, key := a.register("logged", "sensor")

	r := a.req("POST", "/api/v1/devices/telemetry", map[string]any{"data": map[string]any{"t": 1}},
		"X-API-Key", key, "X-Request-ID", "trace-42")
	r.want(t, 201)
	if got := r.header.Get("X-Request-ID"); got != "trace-42" {
		t.Errorf("X-Request-ID echoed as %q, want trace-42", got)
	}
	made := a.device("GET", "/api/v1/devices/status", key, nil).want(t, 200).header.Get("X-Request-ID")
	if made == "" {
		t.Error("no X-Request-ID made up for a request without one")
	}
	a.device("GET", "/api/v1/devices/status", key, nil).want(t, 429)
	a.device("GET", "/api/v1/devices/status", "iot_not-a-key", nil).want(t, 401)

	lines := buf.lines(t)
	if len(lines) != 5 {
		t.Fatalf("%d access lines for 5 requests", len(lines))
	}
	tel := lines[1]
	for k, want := range map[string]any{"level": "INFO", "method": "POST", "route": "POST /api/v1/devices/telemetry",
		"status": float64(201), "request_id": "trace-42", "device_id": float64(id)} {
		if tel[k] != want {
			t.Errorf("telemetry line %s = %v, want %v", k, tel[k], want)
		}
	}
	for _, k := range []string{"duration_ms", "bytes", "remote"} {
		if _, ok := tel[k]; !ok {
			t.Errorf("telemetry line lacks %s: %v", k, tel)
		}
	}
	if lines[2]["request_id"] != made {
		t.Errorf("logged request id %v, answered %q", lines[2]["request_id"], made)
	}
	if lines[3]["level"] != "WARN" || lines[3]["status"] != float64(429) {
		t.Errorf("rate-limited line: %v, want WARN 429", lines[3])
	}
	if lines[4]["level"] != "WARN" || lines[4]["status"] != float64(401) {
		t.Errorf("unauthenticated line: %v, want WARN 401", lines[4])
	}
	if strings.Contains(buf.b.String(), key) || strings.Contains(buf.b.String(), "iot_not-a-key") {
		t.Error("an API key reached the log")
	}
}
