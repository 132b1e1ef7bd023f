package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// The reference's later versions: device control under
// /api/v1/devices/{id}/control, called with the device's own key, and a
// typed key/value configuration. Same paths, fields and statuses; what
// they stored in memory or never built is stored and built here.

// ownDevice checks that the {id} of a path is the authenticated device: a
// device may address only itself.
func (s *server) ownDevice(w http.ResponseWriter, r *http.Request, d *iotflow.Device) bool {
	id, err := pathID(r)
	if err == nil && id != d.ID {
		err = iotflow.Errorf(iotflow.EFORBIDDEN, "Unauthorized", "A device may only address itself; this key is device %d's", d.ID)
	}
	if err != nil {
		s.writeError(w, r, err)
		return false
	}
	return true
}

// controlRequest is the body of POST .../control.
type controlRequest struct {
	Command    *string         `json:"command"`
	Parameters json.RawMessage `json:"parameters"`
}

func (s *server) controlDevice(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	if !s.ownDevice(w, r, d) {
		return
	}
	var req controlRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Command == nil || strings.TrimSpace(*req.Command) == "" {
		s.writeError(w, r, iotflow.Errorf(iotflow.EINVALID, "Command is required", "Field 'command' is required"))
		return
	}
	c, _, err := s.Downlink.Issue(r.Context(), d.ID, downlinkInput(strings.TrimSpace(*req.Command), req.Parameters))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, commandView(c))
}

// pendingControls lists the device's commands it has not answered, oldest
// first: those waiting are taken (sent) now; those taken before and not
// yet acknowledged are listed again, as the reference listed a command
// until the device set its status.
func (s *server) pendingControls(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	if !s.ownDevice(w, r, d) {
		return
	}
	taken, err := s.Downlink.Take(r.Context(), d.ID, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sent, err := s.Downlink.ListCommands(r.Context(), d.ID, iotflow.CommandSent, "", maxCommandsPage)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	all := append(taken, sent.Commands...)
	slices.SortFunc(all, func(a, b *iotflow.Command) int { return int(a.ID - b.ID) })
	all = slices.CompactFunc(all, func(a, b *iotflow.Command) bool { return a.ID == b.ID })
	writeJSON(w, http.StatusOK, commandViews(all))
}

// controlStatus reads one command of the device: the endpoint the
// reference's dashboard called and the reference never built.
func (s *server) controlStatus(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	if !s.ownDevice(w, r, d) {
		return
	}
	id, err := commandID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.Downlink.DeviceCommand(r.Context(), d.ID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, commandView(c))
}

// setControlStatus takes the reference's status update as an answer;
// "pending" changes nothing of a command that has not ended.
func (s *server) setControlStatus(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	if !s.ownDevice(w, r, d) {
		return
	}
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
	switch {
	case req.Status == nil || *req.Status == "":
		s.writeError(w, r, iotflow.Errorf(iotflow.EINVALID, "Status is required", "Field 'status' is required"))
		return
	case !slices.Contains([]string{"pending", "acknowledged", "completed", "failed"}, *req.Status):
		s.writeError(w, r, iotflow.Errorf(iotflow.EINVALID, "Invalid status", "Field 'status' must be pending, acknowledged, completed or failed"))
		return
	}
	var c *iotflow.Command
	if *req.Status == iotflow.CommandPending {
		if c, err = s.Downlink.DeviceCommand(r.Context(), d.ID, id); err == nil && iotflow.CommandEnded(c.Status) {
			err = iotflow.Errorf(iotflow.ECONFLICT, "Command has ended", "Command %d is %s already", c.ID, c.Status)
		}
	} else {
		c, err = s.Downlink.Answer(r.Context(), d.ID, id, iotflow.CommandAnswer{Status: *req.Status, Result: req.Result})
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, commandView(c))
}

// configEntryJSON is one key of the reference's configuration.
type configEntryJSON struct {
	Value     json.RawMessage `json:"value"`
	DataType  string          `json:"data_type"`
	UpdatedAt *string         `json:"updated_at"`
}

func (s *server) getConfig(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	cfg, err := s.Downlink.Config(r.Context(), d.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make(map[string]configEntryJSON, len(cfg))
	for k, e := range cfg {
		out[k] = configEntryJSON{Value: e.Value, DataType: e.DataType, UpdatedAt: formatTimePtr(e.UpdatedAt)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "device_id": d.ID, "configuration": out})
}

// setConfigRequest is the body of POST /api/v1/devices/config.
type setConfigRequest struct {
	ConfigKey   *string         `json:"config_key"`
	ConfigValue json.RawMessage `json:"config_value"`
	DataType    *string         `json:"data_type"`
}

func (s *server) setConfig(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	var req setConfigRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	var key, dataType string
	if req.ConfigKey != nil {
		key = strings.TrimSpace(*req.ConfigKey)
	}
	if req.DataType != nil {
		dataType = strings.TrimSpace(*req.DataType)
	}
	text, v, err := s.Downlink.SetConfig(r.Context(), d.ID, key, req.ConfigValue, dataType)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if dataType == "" {
		dataType = "string"
	}
	w.Header().Set("ETag", etag(v.Version))
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "success", "message": "Configuration updated successfully",
		"config_key": key, "config_value": text, "data_type": dataType,
	})
}
