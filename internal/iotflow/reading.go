package iotflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// DefaultDataType is the telemetry type when a device names none.
const DefaultDataType = "sensor"

// Reading is one telemetry record of a device.
type Reading struct {
	ID       int64
	DeviceID int64
	// Timestamp is when the reading was taken: the device's own time when it
	// sent one, otherwise ReceivedAt. Reads order by it.
	Timestamp  time.Time
	ReceivedAt time.Time
	DataType   string
	Payload    json.RawMessage // a JSON object
	Metadata   json.RawMessage // a JSON object
	// MessageID, when set, identifies the reading among its device's
	// readings so that a retried submission is stored once.
	MessageID string
	// Duplicate is set by InsertReadings when the device had stored a
	// reading with the same MessageID; ID and Timestamp are then the
	// stored reading's.
	Duplicate bool

	// DeviceName is filled in by listings that span devices.
	DeviceName string
}

// ReadingFilter selects and pages readings, newest (by Timestamp, then ID)
// first unless Ascending.
type ReadingFilter struct {
	DeviceID int64      // 0 for every device
	DataType string     // exact data type, or "" for any
	Since    *time.Time // Timestamp at or after, or nil
	// Start and End bound Timestamp to [Start, End); nil leaves a side open.
	Start, End *time.Time
	// Ascending orders oldest first.
	Ascending bool
	// After, when set, selects only the readings that come after it in the
	// order: the page after the one that ended with it.
	After  *ReadingKey
	Limit  int
	Offset int
}

// ReadingStats summarises a device's readings.
type ReadingStats struct {
	Count  int64
	First  *time.Time // oldest Timestamp, nil without readings
	Latest *time.Time // newest Timestamp, nil without readings
}

// DashboardStats are the fleet-wide figures of the admin dashboard.
type DashboardStats struct {
	TotalDevices    int64
	ActiveDevices   int64
	InactiveDevices int64
	// MaintenanceDevices was added beside the reference's figures: the
	// total is active, inactive and maintenance.
	MaintenanceDevices int64
	OnlineDevices      int64
	TotalReadings      int64
	RecentReadings     int64
	DeviceTypes        []TypeCount // by count descending, then type ascending
}

// TypeCount is the number of devices of one type.
type TypeCount struct {
	Type  string
	Count int64
}

// ValidateReading checks what a device submits: data must be a JSON object,
// metadata a JSON object or absent, and the data type at most
// MaxDataTypeLen characters. It returns the metadata to store ({} when
// absent) and the data type (DefaultDataType when empty).
func ValidateReading(data, metadata json.RawMessage, dataType string) (json.RawMessage, string, error) {
	if t := trimJSONSpace(data); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, "", Errorf(EINVALID, "Validation error", "Field 'data' is required")
	}
	if !isObject(data) {
		return nil, "", Errorf(EINVALID, "Validation error", "Field 'data' must be a JSON object")
	}
	if err := checkJSON("data", data); err != nil {
		return nil, "", err
	}
	if t := trimJSONSpace(metadata); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		metadata = json.RawMessage("{}")
	} else if !isObject(metadata) {
		return nil, "", Errorf(EINVALID, "Validation error", "Field 'metadata' must be a JSON object")
	} else if err := checkJSON("metadata", metadata); err != nil {
		return nil, "", err
	}
	dataType = strings.TrimSpace(dataType)
	if dataType == "" {
		dataType = DefaultDataType
	}
	if err := CheckText("type", dataType, MaxDataTypeLen); err != nil {
		return nil, "", err
	}
	return metadata, dataType, nil
}

func isObject(raw json.RawMessage) bool {
	t := trimJSONSpace(raw)
	return len(t) > 0 && t[0] == '{' && json.Valid(raw)
}

// trimJSONSpace trims the white space JSON allows (not, say, a vertical tab).
func trimJSONSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// ReadingErrors is what a store, or the write pipeline in front of it,
// reports when it refused some readings of a submission for their content
// and stored the others: the refused ones by their index in the submitted
// slice, each with its EINVALID error.
type ReadingErrors map[int]error

func (e ReadingErrors) Error() string {
	return fmt.Sprintf("%d readings refused for their content", len(e))
}
