package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var metricsRE = regexp.MustCompile(`Metrics on (http://\S+/metrics)`)

// TestMetricsListener: with IOTFLOW_METRICS_ADDR, /metrics is served
// without a token on its own listener and shows every family the service
// reports, on both backends; the main listener still wants the admin token.
func TestMetricsListener(t *testing.T) {
	for name, envFor := range backendEnvs(t) {
		t.Run(name, func(t *testing.T) {
			env := envFor(t)
			env["IOTFLOW_METRICS_ADDR"] = "127.0.0.1:0"
			s := startServer(t, env)
			m := metricsRE.FindStringSubmatch(s.stdout.String())
			if m == nil {
				t.Fatalf("no metrics address printed:\n%s", s.stdout)
			}
			code, reg := call(t, "POST", s.base+"/api/v1/devices/register", map[string]string{"name": "metrics-1", "device_type": "sensor"}, nil)
			if code != 201 {
				t.Fatalf("register: %d %v", code, reg)
			}
			dev := map[string]string{"X-API-Key": reg["device"].(map[string]any)["api_key"].(string)}
			for i := range 3 {
				if code, out := call(t, "POST", s.base+"/api/v1/devices/telemetry", map[string]any{"data": map[string]any{"i": i}}, dev); code != 201 {
					t.Fatalf("telemetry: %d %v", code, out)
				}
			}

			// The main listener's /metrics is an admin route.
			res, err := http.Get(s.base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("main listener /metrics without a token: %d, want 401", res.StatusCode)
			}

			var body string
			deadline := time.Now().Add(5 * time.Second)
			for {
				res, err := http.Get(m[1])
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("metrics listener: %d %s", res.StatusCode, b)
				}
				body = string(b)
				if strings.Contains(body, `iotflow_telemetry_records_accepted_total{duplicate="false"} 3`) || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, want := range []string{
				`iotflow_telemetry_records_accepted_total{duplicate="false"} 3`,
				`iotflow_http_requests_total{method="POST",route="POST /api/v1/devices/telemetry",status="201"} 3`,
				"iotflow_http_request_duration_seconds_bucket{",
				"iotflow_write_batch_readings_bucket{",
				`iotflow_write_commit_duration_seconds_count{result="ok"}`,
				"iotflow_write_queue_depth 0",
				"iotflow_auth_cache_hits_total ",
				"iotflow_auth_cache_misses_total ",
				"iotflow_auth_cache_negative_hits_total ",
				"iotflow_db_pool_connections{",
				"iotflow_db_pool_max_connections{",
				"iotflow_mqtt_clients_connected 0",
				"go_goroutines ",
				"process_resident_memory_bytes ",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("metrics lack %q", want)
				}
			}
			if t.Failed() {
				t.Logf("metrics:\n%s", body)
			}
		})
	}
}
