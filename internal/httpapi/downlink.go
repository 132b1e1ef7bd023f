package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iotflow/iotflow/internal/downlink"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// The downlink: commands and the shadow. The rules are downlink's; these
// handlers translate.

func commandView(c *iotflow.Command) downlink.CommandJSON { return downlink.CommandView(c) }

func commandViews(cs []*iotflow.Command) []downlink.CommandJSON { return downlink.CommandViews(cs) }

// commandID reads the {cid} path value.
func commandID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("cid"), 10, 64)
	if err != nil || id < 1 {
		return 0, invalid("Command id must be a positive integer")
	}
	return id, nil
}

// waitParam reads ?wait=N, in seconds, at most downlink.MaxWait.
func waitParam(r *http.Request) (time.Duration, error) {
	n, err := queryInt(r, "wait", 0, 0)
	if err != nil {
		return 0, err
	}
	if max := int(downlink.MaxWait / time.Second); n > max {
		return 0, invalid("Query parameter 'wait' must be at most %d seconds", max)
	}
	return time.Duration(n) * time.Second, nil
}

// holdOpen lets a long poll outlive the server's read and write timeouts,
// which would cut it off (the read one by ending the request's context).
func holdOpen(w http.ResponseWriter, wait time.Duration) {
	if wait <= 0 {
		return
	}
	rc := http.NewResponseController(w)
	until := time.Now().Add(wait + 15*time.Second)
	_ = rc.SetReadDeadline(until)
	_ = rc.SetWriteDeadline(until)
}

// commandRequest is the body of POST .../commands.
type commandRequest struct {
	Command        *string         `json:"command"`
	Parameters     json.RawMessage `json:"parameters"`
	TTLSeconds     *int64          `json:"ttl_seconds"`
	TimeoutSeconds *int64          `json:"timeout_seconds"`
}

// seconds converts a field in seconds: absent is 0 (the default), zero or
// less and absurdly large values stay out of range for validation.
func seconds(v *int64) time.Duration {
	switch {
	case v == nil:
		return 0
	case *v <= 0:
		return -1
	case *v > int64(iotflow.MaxCommandTTL/time.Second):
		return iotflow.MaxCommandTTL + time.Second
	}
	return time.Duration(*v) * time.Second
}

func (s *server) issueCommand(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	id, ok := s.adminDevice(w, r)
	if !ok {
		return
	}
	wait, err := waitParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req commandRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	in := downlink.CommandInput{Parameters: req.Parameters, TTL: seconds(req.TTLSeconds), Timeout: seconds(req.TimeoutSeconds),
		IdempotencyKey: strings.TrimSpace(r.Header.Get("Idempotency-Key"))}
	if req.Command != nil {
		in.Command = strings.TrimSpace(*req.Command)
	}
	ctx, cancel := s.withTimeout(r)
	c, created, err := s.Downlink.Issue(ctx, id, in)
	cancel()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if wait > 0 {
		holdOpen(w, wait)
		ctx, unbind := s.Database.Bind(r.Context())
		defer unbind()
		if c, err = s.Downlink.WaitEnd(ctx, c, wait); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	w.Header().Set("Location", "/api/v1/admin/commands/"+strconv.FormatInt(c.ID, 10))
	writeJSON(w, http.StatusCreated, commandView(c))
}

// maxCommandsPage caps ?limit= of a command list.
const maxCommandsPage = 1000

// downlinkInput is a command with the default time to live and timeout.
func downlinkInput(name string, params json.RawMessage) downlink.CommandInput {
	return downlink.CommandInput{Command: name, Parameters: params}
}

func (s *server) listCommands(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	id, ok := s.adminDevice(w, r)
	if !ok {
		return
	}
	limit, err := queryInt(r, "limit", 50, 1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status, err := queryText(r, "status")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.Downlink.ListCommands(r.Context(), id, status, r.URL.Query().Get("cursor"), min(limit, maxCommandsPage))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "success", "device_id": id, "commands": commandViews(page.Commands), "count": len(page.Commands),
		"has_more": page.HasMore, "next_cursor": nullable(page.NextCursor),
	})
}

func (s *server) getCommand(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	id, err := commandID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.Downlink.Command(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, commandView(c))
}

func (s *server) cancelCommand(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	id, err := commandID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.Downlink.Cancel(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, commandView(c))
}

// takeCommands is the device's long poll.
func (s *server) takeCommands(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	wait, err := waitParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	holdOpen(w, wait)
	cs, err := s.Downlink.Take(r.Context(), d.ID, wait)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"commands": commandViews(cs)})
}

// answerRequest is the body of a device's answer to a command.
type answerRequest struct {
	Status *string         `json:"status"`
	Result json.RawMessage `json:"result"`
}

func (s *server) answerCommand(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	id, err := commandID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req answerRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Status == nil {
		s.writeError(w, r, iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field 'status' is required: acknowledged, completed or failed"))
		return
	}
	c, err := s.Downlink.Answer(r.Context(), d.ID, id, iotflow.CommandAnswer{Status: *req.Status, Result: req.Result})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, commandView(c))
}

// The shadow.

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// writeShadow answers a shadow with its ETag.
func writeShadow(w http.ResponseWriter, v *downlink.ShadowView) {
	w.Header().Set("ETag", etag(v.Version))
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, v.JSON())
}

// etagVersions reads the versions of an If-Match or If-None-Match header:
// a list of ETags, or "*" (any, returned as all).
func etagVersions(h string) (versions []int64, all bool) {
	for _, part := range strings.Split(h, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == "*" {
			return nil, true
		}
		if v, err := strconv.ParseInt(strings.Trim(part, `"`), 10, 64); err == nil {
			versions = append(versions, v)
		}
	}
	return versions, false
}

func matches(h string, version int64) bool {
	versions, all := etagVersions(h)
	if all {
		return true
	}
	for _, v := range versions {
		if v == version {
			return true
		}
	}
	return false
}

// shadow answers GET of a shadow: 304 when If-None-Match names the current
// version, after waiting up to ?wait= for another.
func (s *server) shadow(w http.ResponseWriter, r *http.Request, deviceID int64) {
	wait, err := waitParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r)
	v, err := s.Downlink.Shadow(ctx, deviceID)
	cancel()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	inm := r.Header.Get("If-None-Match")
	if inm != "" && matches(inm, v.Version) && wait > 0 {
		holdOpen(w, wait)
		if v, err = s.Downlink.WaitShadow(r.Context(), deviceID, v.Version, wait); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if inm != "" && matches(inm, v.Version) {
		w.Header().Set("ETag", etag(v.Version))
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeShadow(w, v)
}

func (s *server) adminShadow(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.shadow(w, r, id)
}

func (s *server) deviceShadow(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	s.shadow(w, r, d.ID)
}

func (s *server) patchDesired(w http.ResponseWriter, r *http.Request, _ *fleet.AdminIdentity) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body map[string]json.RawMessage
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	desired, ok := body["desired"]
	if !ok || len(body) != 1 {
		s.writeError(w, r, iotflow.Errorf(iotflow.EINVALID, "Validation error",
			"Send {\"desired\": {...}}: a merge patch of the desired document, and nothing else"))
		return
	}
	var ifMatch func(int64) bool
	if h := r.Header.Get("If-Match"); h != "" {
		ifMatch = func(v int64) bool { return matches(h, v) }
	}
	v, err := s.Downlink.PatchDesired(r.Context(), id, desired, ifMatch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeShadow(w, v)
}

func (s *server) patchReported(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	var patch json.RawMessage
	if err := decodeJSON(r, &patch); err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.Downlink.PatchReported(r.Context(), d.ID, patch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeShadow(w, v)
}
