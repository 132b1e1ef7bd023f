package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestSummaryStatusAgainstSingle: with single and status measured, the
// summary prints each mode's median and the per-round ratio of reads to
// writes, and counts only writes toward what must be stored.
func TestSummaryStatusAgainstSingle(t *testing.T) {
	var s summary
	for _, rps := range []struct{ single, status float64 }{{1000, 3000}, {1200, 3000}, {1000, 2000}} {
		s.add(single, "iotflow", &benchResult{mode: single, rps: rps.single, readingsPerSec: rps.single,
			ackedReadings: 10, failedRequests: 1, unsureReadings: 1})
		s.add(status, "iotflow", &benchResult{mode: status, rps: rps.status, p99: 2500 * time.Microsecond,
			failedRequests: 5})
		s.add(single, "bare", &benchResult{mode: single, rps: 2 * rps.single})
		s.add(status, "bare", &benchResult{mode: status, rps: 4 * rps.status})
	}
	var out bytes.Buffer
	s.print(&out, []mode{single, status})
	for _, want := range []string{
		"median iotflow single: 1000 req/s, 1000 readings/s,",
		"median iotflow status: 3000 reads/s,",
		"ratio single: median 50.0% of bare net/http (rounds: 50.0% 50.0% 50.0%)",
		"ratio status: median 25.0% of bare net/http",
		"status vs single: median 2.50x as many status reads/s as telemetry writes/s (rounds: 3.00x 2.50x 2.00x); status read p99 2.50ms",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if acked, failed, unsure := s.written("iotflow"); acked != 30 || failed != 3 || unsure != 3 {
		t.Errorf("written = %d, %d, %d; want the single runs' 30, 3, 3", acked, failed, unsure)
	}
}
