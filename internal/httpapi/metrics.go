package httpapi

import (
	"errors"
	"net/http"

	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/metrics"
)

// metricMethod bounds the method label: a client may send any token.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// countTelemetry reports what a telemetry request did with its records.
func (s *server) countTelemetry(ri *requestInfo, status int) {
	s.Metrics.TelemetryAccepted(ri.accepted, ri.duplicates)
	s.Metrics.TelemetryRejected(metrics.ReasonInvalid, ri.invalid)
	if status < 400 || ri.accepted > 0 {
		return
	}
	// The request failed as a whole: its records, or the request itself
	// when they were never read, count under the failure's reason.
	n := ri.records - ri.invalid
	if ri.records == 0 {
		n = 1
	}
	s.Metrics.TelemetryRejected(rejectionReason(status, ri.reason), n)
}

func rejectionReason(status int, reason string) string {
	switch {
	case reason != "":
		return reason
	case status == http.StatusBadRequest:
		return metrics.ReasonInvalid
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return metrics.ReasonUnauthorized
	case status == http.StatusRequestEntityTooLarge:
		return metrics.ReasonTooLarge
	case status == http.StatusTooManyRequests:
		return metrics.ReasonRateLimited
	case status == http.StatusServiceUnavailable:
		return metrics.ReasonUnavailable
	}
	return metrics.ReasonOther
}

// failureReason names the write pipeline's own refusals, which the status
// alone (503) does not tell apart from a database failure.
func failureReason(err error) string {
	switch {
	case errors.Is(err, ingest.ErrQueueFull):
		return metrics.ReasonQueueFull
	case errors.Is(err, ingest.ErrClosed):
		return metrics.ReasonShuttingDown
	}
	return ""
}
