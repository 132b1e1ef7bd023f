package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func render(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.Request("GET /health", "GET", 200, time.Millisecond)
	m.TelemetryAccepted(1, 0)
	m.TelemetryRejected(ReasonInvalid, 1)
	m.RateLimited("device")
	m.Commit(3, time.Millisecond, nil)
	m.GaugeFunc("x", "x", func() float64 { return 0 })
	m.Pools(func() []iotflow.PoolStats { return nil })
}

func TestSeries(t *testing.T) {
	m := New()
	m.Commit(3, 2*time.Millisecond, nil)
	m.Commit(5, 4*time.Millisecond, nil)
	m.Commit(7, time.Second, errors.New("connection refused"))
	m.TelemetryRejected(ReasonQueueFull, 2)
	m.TelemetryRejected(ReasonQueueFull, 0) // nothing
	depth := 0.0
	m.GaugeFunc("iotflow_test_depth", "test", func() float64 { return depth })
	m.Pools(func() []iotflow.PoolStats {
		return []iotflow.PoolStats{{Name: "postgres", InUse: 2, Idle: 3, Max: 8, WaitCount: 4, WaitDuration: 1500 * time.Millisecond}}
	})
	depth = 7
	out := render(t, m)
	for _, want := range []string{
		"iotflow_write_batch_readings_sum 8\n",
		"iotflow_write_batch_readings_count 2\n",
		`iotflow_write_batch_readings_bucket{le="4"} 1` + "\n",
		`iotflow_write_commit_duration_seconds_count{result="ok"} 2` + "\n",
		`iotflow_write_commit_duration_seconds_count{result="error"} 1` + "\n",
		`iotflow_telemetry_records_rejected_total{reason="queue_full"} 2` + "\n",
		"iotflow_test_depth 7\n",
		`iotflow_db_pool_connections{pool="postgres",state="in_use"} 2` + "\n",
		`iotflow_db_pool_connections{pool="postgres",state="idle"} 3` + "\n",
		`iotflow_db_pool_max_connections{pool="postgres"} 8` + "\n",
		`iotflow_db_pool_waits_total{pool="postgres"} 4` + "\n",
		`iotflow_db_pool_wait_seconds_total{pool="postgres"} 1.5` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
