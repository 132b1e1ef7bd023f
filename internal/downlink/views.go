package downlink

import (
	"encoding/json"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// CommandJSON is a command as the API shows it, over HTTP and MQTT.
type CommandJSON struct {
	ID             int64           `json:"id"`
	DeviceID       int64           `json:"device_id"`
	Command        string          `json:"command"`
	Parameters     json.RawMessage `json:"parameters"`
	Status         string          `json:"status"`
	CreatedAt      string          `json:"created_at"`
	ExpiresAt      string          `json:"expires_at"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
	SentAt         *string         `json:"sent_at"`
	AcknowledgedAt *string         `json:"acknowledged_at"`
	CompletedAt    *string         `json:"completed_at"`
	Result         json.RawMessage `json:"result"`
	// UpdatedAt is the time of the latest change: the reference's field.
	UpdatedAt string `json:"updated_at"`
}

// CommandView is c as the API shows it.
func CommandView(c *iotflow.Command) CommandJSON {
	updated := c.CreatedAt
	for _, t := range []*time.Time{c.SentAt, c.AcknowledgedAt, c.CompletedAt} {
		if t != nil && t.After(updated) {
			updated = *t
		}
	}
	return CommandJSON{
		ID: c.ID, DeviceID: c.DeviceID, Command: c.Command, Parameters: c.Parameters, Status: c.Status,
		CreatedAt: iotflow.FormatTime(c.CreatedAt), ExpiresAt: iotflow.FormatTime(c.ExpiresAt), TimeoutSeconds: c.Timeout.Seconds(),
		SentAt: iotflow.FormatTimePtr(c.SentAt), AcknowledgedAt: iotflow.FormatTimePtr(c.AcknowledgedAt), CompletedAt: iotflow.FormatTimePtr(c.CompletedAt),
		Result: c.Result, UpdatedAt: iotflow.FormatTime(updated),
	}
}

// CommandViews is CommandView of each of cs.
func CommandViews(cs []*iotflow.Command) []CommandJSON {
	out := make([]CommandJSON, len(cs))
	for i, c := range cs {
		out[i] = CommandView(c)
	}
	return out
}

// ShadowJSON is a shadow as the API shows it, over HTTP and MQTT.
type ShadowJSON struct {
	DeviceID          int64           `json:"device_id"`
	Desired           json.RawMessage `json:"desired"`
	Reported          json.RawMessage `json:"reported"`
	Delta             json.RawMessage `json:"delta"`
	Version           int64           `json:"version"`
	DesiredVersion    int64           `json:"desired_version"`
	DesiredUpdatedAt  *string         `json:"desired_updated_at"`
	ReportedUpdatedAt *string         `json:"reported_updated_at"`
}

// JSON is v as the API shows it.
func (v *ShadowView) JSON() ShadowJSON {
	return ShadowJSON{
		DeviceID: v.DeviceID, Desired: v.Desired, Reported: v.Reported, Delta: v.Delta, Version: v.Version,
		DesiredVersion: v.DesiredVersion, DesiredUpdatedAt: iotflow.FormatTimePtr(v.DesiredUpdatedAt),
		ReportedUpdatedAt: iotflow.FormatTimePtr(v.ReportedUpdatedAt),
	}
}
