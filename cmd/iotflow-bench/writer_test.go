package main

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/metrics"
)

// TestParseWriterStats reads what the server's own registry serves.
func TestParseWriterStats(t *testing.T) {
	m := metrics.New()
	scrape := func() (writerStats, bool) {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return parseWriterStats(rec.Body)
	}
	if _, ok := scrape(); ok {
		t.Fatal("parseWriterStats found commit times before any commit")
	}
	// Times exact in binary, so that the sums below are too.
	m.Commit(4, 125*time.Millisecond, nil)
	m.Commit(8, 250*time.Millisecond, nil)
	m.Commit(5, 625*time.Millisecond, errors.New("connection refused")) // its time counts; its readings were not stored
	a, ok := scrape()
	if !ok || a != (writerStats{transactions: 2, readings: 12, seconds: 1}) {
		t.Fatalf("parseWriterStats = %+v, %v; want 2 transactions, 12 readings, 1s", a, ok)
	}

	b := writerStats{transactions: 202, readings: 2512, seconds: 2.0}
	use, ok := a.between(b, 2*time.Second)
	if !ok || use.perTransaction != 12.5 || use.perCommit != 5*time.Millisecond || use.busy != 0.5 {
		t.Errorf("between = %+v, %v; want 12.5 readings, 5ms, 50%% busy", use, ok)
	}
	if _, ok := a.between(a, time.Second); ok {
		t.Error("between reported use over a window without transactions")
	}
	for _, text := range []string{
		"go_goroutines 12\n",
		"iotflow_write_batch_readings_sum{", // not the text format
	} {
		if _, ok := parseWriterStats(strings.NewReader(text)); ok {
			t.Errorf("parseWriterStats found the pipeline's counters in %q", text)
		}
	}
}
