package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// batchRequest is the body of POST /api/v1/devices/telemetry/batch.
type batchRequest struct {
	Records []json.RawMessage `json:"records"`
}

// recordJSON is the outcome of one record of a batch.
type recordJSON struct {
	Index       int    `json:"index"`
	Status      int    `json:"status"`
	TelemetryID int64  `json:"telemetry_id,omitempty"`
	Timestamp   string `json:"timestamp,omitempty"`
	Duplicate   bool   `json:"duplicate,omitempty"`
	Error       string `json:"error,omitempty"`
	Message     string `json:"message,omitempty"`
}

// submitBatch stores up to MaxBatch readings in one transaction: 201 when
// all are stored, 207 with a status per record when some are rejected (the
// valid ones are stored), 400 when none is valid or the body is not a batch.
func (s *server) submitBatch(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBatchBodyBytes)
	var req batchRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case req.Records == nil:
		s.writeError(w, r, invalid("Field 'records' is required: a list of telemetry records"))
		return
	case len(req.Records) == 0:
		s.writeError(w, r, invalid("Field 'records' is empty; send 1 to %d records", s.MaxBatch))
		return
	case len(req.Records) > s.MaxBatch:
		s.writeError(w, r, invalid("Field 'records' holds %d records; at most %d are allowed", len(req.Records), s.MaxBatch))
		return
	}
	ri := info(r.Context())
	ri.records = len(req.Records)
	if !s.allowBatch(w, r, d.ID, len(req.Records)) {
		return
	}
	results, err := s.Service.SubmitBatch(r.Context(), d, req.Records)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]recordJSON, len(results))
	accepted := 0
	for i, res := range results {
		if res.Err != nil {
			ri.invalid++
			out[i] = recordJSON{Index: i, Status: http.StatusBadRequest, Error: iotflow.ErrorTitle(res.Err), Message: iotflow.ErrorMessage(res.Err)}
			continue
		}
		accepted++
		if res.Reading.Duplicate {
			ri.duplicates++
		}
		out[i] = recordJSON{Index: i, Status: http.StatusCreated, TelemetryID: res.Reading.ID,
			Timestamp: formatTime(res.Reading.Timestamp), Duplicate: res.Reading.Duplicate}
	}
	ri.accepted = accepted
	body := map[string]any{"accepted": accepted, "rejected": len(results) - accepted, "results": out,
		"pending_commands": d.PendingCommands, "shadow_version": d.ShadowVersion}
	switch {
	case accepted == len(results):
		body["message"] = "Telemetry batch stored successfully"
		writeJSON(w, http.StatusCreated, body)
	case accepted > 0:
		body["message"] = "Some records were rejected; the others are stored"
		writeJSON(w, http.StatusMultiStatus, body)
	default:
		delete(body, "pending_commands")
		delete(body, "shadow_version")
		body["error"], body["message"] = "Validation error", "No record of the batch is valid; nothing was stored"
		writeJSON(w, http.StatusBadRequest, body)
	}
}
