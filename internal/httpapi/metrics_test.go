package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/metrics"
	"github.com/iotflow/iotflow/internal/ratelimit"
	"github.com/iotflow/iotflow/internal/testdb"
)

// scrape fetches /metrics with the given Authorization header ("" for none).
func scrape(t *testing.T, a *api, auth string) (int, string) {
	t.Helper()
	r, _ := http.NewRequest("GET", a.base+"/metrics", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestMetrics(t *testing.T) {
	m := metrics.New()
	limits := testLimits()
	limits.Telemetry = ratelimit.PerMinute("telemetry", 4)
	a := newAPIWith(t, testdb.SQLite(t), httpapi.Deps{Metrics: m, Limits: limits})
	_, key := a.register("m-1", "sensor")

	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]any{"t": 1}, "message_id": "a"}).want(t, 201)
	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]any{"t": 1}, "message_id": "a"}).want(t, 201)
	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": "not an object"}).want(t, 400)
	a.device("POST", "/api/v1/devices/telemetry", "iot_wrong", map[string]any{"data": map[string]any{"t": 1}}).want(t, 401)
	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]any{"t": 2}}).want(t, 201)
	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]any{"t": 3}}).want(t, 429)
	// A batch of 3 over the exhausted limit is refused whole; then one
	// with a bad record gives 207 once the backlog allowance lets it in.
	a.device("POST", "/api/v1/devices/telemetry/batch", key, map[string]any{"records": []any{
		map[string]any{"data": map[string]any{"t": 4}}, map[string]any{"data": 5}}}).want(t, 207)

	checks := []struct {
		series string
		want   string
	}{
		{`iotflow_telemetry_records_accepted_total{duplicate="false"}`, "3"},
		{`iotflow_telemetry_records_accepted_total{duplicate="true"}`, "1"},
		{`iotflow_telemetry_records_rejected_total{reason="invalid"}`, "2"},
		{`iotflow_telemetry_records_rejected_total{reason="unauthorized"}`, "1"},
		{`iotflow_telemetry_records_rejected_total{reason="rate_limited"}`, "1"},
		{`iotflow_rate_limit_rejections_total{limit="telemetry"}`, "1"},
		{`iotflow_http_requests_total{method="POST",route="POST /api/v1/devices/telemetry",status="201"}`, "3"},
		{`iotflow_http_requests_total{method="POST",route="POST /api/v1/devices/telemetry/batch",status="207"}`, "1"},
		{`iotflow_http_requests_total{method="POST",route="POST /api/v1/devices/register",status="201"}`, "1"},
		{`iotflow_http_request_duration_seconds_count{method="POST",route="POST /api/v1/devices/telemetry"}`, "6"},
	}

	// A made-up method must not become a label value of its own.
	for _, m := range []string{"FROB", "XYZZY"} {
		r, _ := http.NewRequest(m, a.base+"/api/v1/devices/status", nil)
		if res, err := http.DefaultClient.Do(r); err == nil {
			res.Body.Close()
		}
	}
	checks = append(checks, struct {
		series string
		want   string
	}{`iotflow_http_requests_total{method="OTHER",route="unmatched",status="405"}`, "2"})

	status, body := scrape(t, a, "")
	if status != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without a token: %d, want 401", status)
	}
	status, body = scrape(t, a, "Bearer "+adminToken)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	for _, c := range checks {
		if !strings.Contains(body, c.series+" "+c.want+"\n") {
			t.Errorf("metrics lack %s %s", c.series, c.want)
		}
	}
	if strings.Contains(body, "FROB") {
		t.Error("a client's made-up method became a label value")
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, "\n"+name+" ") {
			t.Errorf("metrics lack the Go runtime series %s", name)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

// TestMetricsRouteAbsent: without Metrics there is no /metrics.
func TestMetricsRouteAbsent(t *testing.T) {
	a := newAPI(t, testdb.SQLite(t))
	if status, _ := scrape(t, a, "Bearer "+adminToken); status != http.StatusNotFound {
		t.Fatalf("GET /metrics without metrics configured: %d, want 404", status)
	}
}
