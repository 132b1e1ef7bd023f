package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseWriterStats(t *testing.T) {
	text := `# HELP iotflow_write_batch_readings Readings per committed transaction.
# TYPE iotflow_write_batch_readings histogram
iotflow_write_batch_readings_bucket{le="1"} 3
iotflow_write_batch_readings_sum 1240
iotflow_write_batch_readings_count 100
iotflow_write_commit_duration_seconds_bucket{result="ok",le="0.001"} 10
iotflow_write_commit_duration_seconds_sum{result="error"} 0.5
iotflow_write_commit_duration_seconds_sum{result="ok"} 0.2
iotflow_write_commit_duration_seconds_count{result="ok"} 99
go_goroutines 12
`
	a, ok := parseWriterStats(strings.NewReader(text))
	if !ok || a != (writerStats{transactions: 100, readings: 1240, seconds: 0.7}) {
		t.Fatalf("parseWriterStats = %+v, %v", a, ok)
	}
	b := writerStats{transactions: 300, readings: 3740, seconds: 1.7}
	use, ok := a.between(b, 2*time.Second)
	if !ok || use.perTransaction != 12.5 || use.perCommit != 5*time.Millisecond || use.busy != 0.5 {
		t.Errorf("between = %+v, %v; want 12.5 readings, 5ms, 50%% busy", use, ok)
	}
	if _, ok := a.between(a, time.Second); ok {
		t.Error("between reported use over a window without transactions")
	}
	if _, ok := parseWriterStats(strings.NewReader("go_goroutines 12\n")); ok {
		t.Error("parseWriterStats found the pipeline's counters in metrics without them")
	}
}
