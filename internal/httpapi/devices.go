package httpapi

import (
	"net/http"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// registerRequest is the body of POST /api/v1/devices/register.
type registerRequest struct {
	Name            string `json:"name"`
	Description     string `json:"description"`
	DeviceType      string `json:"device_type"`
	Location        string `json:"location"`
	FirmwareVersion string `json:"firmware_version"`
	HardwareVersion string `json:"hardware_version"`
}

func (s *server) register() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The token is checked before the registration limit is counted:
		// strangers without it use up the address's failed
		// authentications, not the registrations of the devices beside them.
		if s.ProvisioningToken != "" && !iotflow.SecretMatches(r.Header.Get("X-Provisioning-Token"), iotflow.HashSecret(s.ProvisioningToken)) {
			s.authFailed(w, r, iotflow.Errorf(iotflow.EUNAUTHORIZED, "Provisioning token required",
				"Registration needs the provisioning token in the X-Provisioning-Token header"))
			return
		}
		if !s.allow(w, r, "ip:"+clientIP(r), s.Limits.register(), 1, "from this address") {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.MaxBodyBytes)
		var req registerRequest
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		ctx, cancel := s.withTimeout(r)
		defer cancel()
		r = r.WithContext(ctx)
		d, key, err := s.Service.Register(ctx, iotflow.NewDevice(req))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		info(r.Context()).deviceID = d.ID
		type registered struct {
			deviceJSON
			APIKey string `json:"api_key"`
		}
		writeJSON(w, http.StatusCreated, map[string]any{
			"message": "Device registered successfully",
			"device":  registered{deviceJSON: deviceView(d), APIKey: key},
		})
	})
}

func (s *server) deviceStatus(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	v, err := s.Service.DeviceStatus(r.Context(), d)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "device": deviceSummary(*v)})
}

func (s *server) submitTelemetry(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	var in fleet.ReadingInput
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	rd, err := s.Service.SubmitReading(r.Context(), d, &in)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ri := info(r.Context())
	ri.accepted = 1
	if rd.Duplicate {
		ri.duplicates = 1
	}
	writeJSON(w, http.StatusCreated, telemetryAck{
		Message: "Telemetry data received successfully", TelemetryID: rd.ID,
		Timestamp: formatTime(rd.Timestamp), Duplicate: rd.Duplicate,
		PendingCommands: d.PendingCommands, ShadowVersion: d.ShadowVersion,
	})
}

// telemetryAck answers a stored reading; a struct, not a map, because it
// is the hottest response of the service.
type telemetryAck struct {
	Message     string `json:"message"`
	TelemetryID int64  `json:"telemetry_id"`
	Timestamp   string `json:"timestamp"`
	Duplicate   bool   `json:"duplicate,omitempty"`
	// PendingCommands and ShadowVersion tell a device that only posts
	// that it has commands to take or a configuration to apply.
	PendingCommands int64 `json:"pending_commands"`
	ShadowVersion   int64 `json:"shadow_version"`
}

// maxDeviceTelemetryLimit caps GET /api/v1/devices/telemetry?limit=.
const maxDeviceTelemetryLimit = 1000

func (s *server) deviceTelemetry(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	s.readings(w, r, d.ID, maxDeviceTelemetryLimit)
}

// configRequest is the body of PUT /api/v1/devices/config.
type configRequest struct {
	Status          *string `json:"status"`
	Location        *string `json:"location"`
	FirmwareVersion *string `json:"firmware_version"`
	HardwareVersion *string `json:"hardware_version"`
}

func (s *server) updateConfig(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	var req configRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u := iotflow.DeviceUpdate{Status: req.Status, Location: req.Location,
		FirmwareVersion: req.FirmwareVersion, HardwareVersion: req.HardwareVersion}
	if u.Empty() {
		s.writeError(w, r, invalid("Send at least one of status, location, firmware_version, hardware_version"))
		return
	}
	updated, err := s.Service.UpdateOwnConfig(r.Context(), d, u)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"message": "Device configuration updated successfully",
		"device":  deviceView(updated),
	})
}

func (s *server) heartbeat(w http.ResponseWriter, r *http.Request, d *iotflow.Device) {
	at := s.Service.Heartbeat(r.Context(), d)
	writeJSON(w, http.StatusOK, map[string]any{
		"message":          "Heartbeat received",
		"device_id":        d.ID,
		"timestamp":        formatTime(at),
		"status":           "online",
		"pending_commands": d.PendingCommands,
		"shadow_version":   d.ShadowVersion,
	})
}
