package iotflow

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
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
	if err := checkText("data", data); err != nil {
		return nil, "", err
	}
	if err := checkShape("data", data); err != nil {
		return nil, "", err
	}
	if t := trimJSONSpace(metadata); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		metadata = json.RawMessage("{}")
	} else if !isObject(metadata) {
		return nil, "", Errorf(EINVALID, "Validation error", "Field 'metadata' must be a JSON object")
	} else if err := checkText("metadata", metadata); err != nil {
		return nil, "", err
	} else if err := checkShape("metadata", metadata); err != nil {
		return nil, "", err
	}
	dataType = strings.TrimSpace(dataType)
	if dataType == "" {
		dataType = DefaultDataType
	}
	if err := checkLen("type", dataType, MaxDataTypeLen); err != nil {
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

// Limits of a reading's JSON.
const (
	MaxJSONDepth   = 32  // nesting of objects and arrays
	MaxPayloadKeys = 256 // object keys, counted at every depth
)

// checkShape rejects JSON nested deeper than MaxJSONDepth or with more than
// MaxPayloadKeys keys. raw is valid JSON: outside strings, every ':'
// follows a key.
func checkShape(field string, raw json.RawMessage) error {
	depth, keys, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > MaxJSONDepth {
				return Errorf(EINVALID, "Validation error", "Field '%s' is nested deeper than %d levels", field, MaxJSONDepth)
			}
		case '}', ']':
			depth--
		case ':':
			if keys++; keys > MaxPayloadKeys {
				return Errorf(EINVALID, "Validation error", "Field '%s' has more than %d keys", field, MaxPayloadKeys)
			}
		}
	}
	return nil
}

// checkText rejects what not every backend can store: invalid UTF-8 and
// the NUL character (PostgreSQL's jsonb refuses \u0000).
func checkText(field string, raw json.RawMessage) error {
	if !utf8.Valid(raw) {
		return Errorf(EINVALID, "Validation error", "Field '%s' is not valid UTF-8", field)
	}
	for i := 0; ; {
		j := bytes.Index(raw[i:], []byte(`\u0000`))
		if j < 0 {
			return nil
		}
		j += i
		// The escape is real when an even number of backslashes precede it.
		n := 0
		for k := j - 1; k >= 0 && raw[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return Errorf(EINVALID, "Validation error", "Field '%s' contains the NUL character (\\u0000)", field)
		}
		i = j + 1
	}
}
