package httpapi

import (
	"encoding/json"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// deviceJSON is the device object of the API contract.
type deviceJSON struct {
	ID              int64   `json:"id"`
	Name            string  `json:"name"`
	Description     *string `json:"description"`
	DeviceType      string  `json:"device_type"`
	Status          string  `json:"status"`
	Location        *string `json:"location"`
	FirmwareVersion *string `json:"firmware_version"`
	HardwareVersion *string `json:"hardware_version"`
	CreatedAt       string  `json:"created_at"`
	UpdatedAt       string  `json:"updated_at"`
	LastSeen        *string `json:"last_seen"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deviceView(d *iotflow.Device) deviceJSON {
	return deviceJSON{
		ID: d.ID, Name: d.Name, Description: nullable(d.Description), DeviceType: d.DeviceType,
		Status: d.Status, Location: nullable(d.Location),
		FirmwareVersion: nullable(d.FirmwareVersion), HardwareVersion: nullable(d.HardwareVersion),
		CreatedAt: formatTime(d.CreatedAt), UpdatedAt: formatTime(d.UpdatedAt), LastSeen: formatTimePtr(d.LastSeen),
	}
}

// deviceSummaryJSON is a device with its telemetry count and online state.
type deviceSummaryJSON struct {
	deviceJSON
	TelemetryCount int64 `json:"telemetry_count"`
	IsOnline       bool  `json:"is_online"`
}

func deviceSummary(v fleet.DeviceView) deviceSummaryJSON {
	return deviceSummaryJSON{deviceJSON: deviceView(v.Device), TelemetryCount: v.TelemetryCount, IsOnline: v.IsOnline}
}

// telemetryJSON is the telemetry object of the API contract.
type telemetryJSON struct {
	ID         int64           `json:"id"`
	DeviceID   int64           `json:"device_id"`
	Payload    json.RawMessage `json:"payload"`
	Timestamp  string          `json:"timestamp"`
	Metadata   json.RawMessage `json:"metadata"`
	DataType   string          `json:"data_type"`
	ReceivedAt string          `json:"received_at"`
	MessageID  string          `json:"message_id,omitempty"`
}

func telemetryView(r *iotflow.Reading) telemetryJSON {
	return telemetryJSON{
		ID: r.ID, DeviceID: r.DeviceID, Payload: r.Payload, Timestamp: formatTime(r.Timestamp),
		Metadata: r.Metadata, DataType: r.DataType, ReceivedAt: formatTime(r.ReceivedAt), MessageID: r.MessageID,
	}
}

func telemetryViews(rs []*iotflow.Reading) []telemetryJSON {
	out := make([]telemetryJSON, len(rs))
	for i, r := range rs {
		out[i] = telemetryView(r)
	}
	return out
}

// paginationJSON is the pagination object of the API contract.
type paginationJSON struct {
	Page    int   `json:"page"`
	PerPage int   `json:"per_page"`
	Total   int64 `json:"total"`
	Pages   int64 `json:"pages"`
	HasNext bool  `json:"has_next"`
	HasPrev bool  `json:"has_prev"`
}

func pagination(page, perPage int, total int64) paginationJSON {
	pages := (total + int64(perPage) - 1) / int64(perPage)
	return paginationJSON{
		Page: page, PerPage: perPage, Total: total, Pages: pages,
		HasNext: int64(page) < pages, HasPrev: page > 1,
	}
}
