package iotflow

import (
	"encoding/json"
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

	// DeviceName is filled in by listings that span devices.
	DeviceName string
}

// ReadingFilter selects and pages readings, newest (by Timestamp, then ID) first.
type ReadingFilter struct {
	DeviceID int64      // 0 for every device
	DataType string     // exact data type, or "" for any
	Since    *time.Time // Timestamp at or after, or nil
	Limit    int
	Offset   int
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
	OnlineDevices   int64
	TotalReadings   int64
	RecentReadings  int64
	DeviceTypes     []TypeCount // by count descending, then type ascending
}

// TypeCount is the number of devices of one type.
type TypeCount struct {
	Type  string
	Count int64
}
