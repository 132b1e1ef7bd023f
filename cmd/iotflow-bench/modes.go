package main

import (
	"fmt"
	"slices"
	"strings"
)

// A mode is what each request of a measured run does.
type mode string

const (
	single mode = "single" // POST one reading
	batch  mode = "batch"  // POST --batch-size readings in one request
	status mode = "status" // GET the device's status: one read
)

// parseModes reads --mode: one mode or a comma list of distinct ones,
// measured in that order in every round.
func parseModes(s string) ([]mode, error) {
	var ms []mode
	for part := range strings.SplitSeq(s, ",") {
		m := mode(strings.TrimSpace(part))
		switch m {
		case single, batch, status:
		default:
			return nil, fmt.Errorf("--mode %q: each mode must be single, batch or status", s)
		}
		if slices.Contains(ms, m) {
			return nil, fmt.Errorf("--mode %q names %s twice", s, m)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func hasMode(ms []mode, m mode) bool { return slices.Contains(ms, m) }

// request is the HTTP side of a mode: what one request sends, the status
// that answers it when it succeeds, and the readings that success stores.
type request struct {
	method, path string
	want         int
	readings     int
}

func (m mode) request(batchSize int) request {
	switch m {
	case batch:
		return request{"POST", "/api/v1/devices/telemetry/batch", 201, batchSize}
	case status:
		return request{"GET", "/api/v1/devices/status", 200, 0}
	}
	return request{"POST", "/api/v1/devices/telemetry", 201, 1}
}
