package iotflow

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Bounds of device-supplied timestamps.
var (
	// MinTimestamp is the earliest reading time accepted.
	MinTimestamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	// minEpochMillis is MinTimestamp in Unix milliseconds: a smaller number
	// is taken for seconds sent by mistake.
	minEpochMillis = MinTimestamp.UnixMilli()
)

// MaxMessageIDLen is the longest message_id accepted.
const MaxMessageIDLen = 128

// ParseTimestamp reads a device-supplied reading time: an RFC 3339 string
// or a number of Unix epoch milliseconds. Absent or null gives the zero
// time. It rejects numbers that look like seconds, times before 2000 and
// times more than maxSkew after now; field names the field in errors.
func ParseTimestamp(raw json.RawMessage, now time.Time, maxSkew time.Duration, field string) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, nil
	}
	var t time.Time
	switch {
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, Errorf(EINVALID, "Validation error", "Field '%s' must be an RFC 3339 time or Unix epoch milliseconds", field)
		}
		parsed, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
		if err != nil {
			return time.Time{}, Errorf(EINVALID, "Validation error", "Field '%s' must be an RFC 3339 time with a zone, such as 2026-01-02T15:04:05Z", field)
		}
		t = parsed
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		ms, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || ms != float64(int64(ms)) {
			return time.Time{}, Errorf(EINVALID, "Validation error", "Field '%s' must be a whole number of Unix epoch milliseconds", field)
		}
		if int64(ms) < minEpochMillis && int64(ms) > minEpochMillis/1000-1 {
			return time.Time{}, Errorf(EINVALID, "Validation error", "Field '%s' looks like Unix seconds; send milliseconds", field)
		}
		t = time.UnixMilli(int64(ms))
	default:
		return time.Time{}, Errorf(EINVALID, "Validation error", "Field '%s' must be an RFC 3339 time or Unix epoch milliseconds", field)
	}
	if t.Before(MinTimestamp) {
		return time.Time{}, Errorf(EINVALID, "Validation error", "Field '%s' lies before 2000-01-01", field)
	}
	if t.After(now.Add(maxSkew)) {
		return time.Time{}, Errorf(EINVALID, "Validation error", "Field '%s' lies more than %s in the future", field, maxSkew)
	}
	return Truncate(t), nil
}

// ValidateMessageID checks an optional message_id.
func ValidateMessageID(id, field string) error {
	return CheckText(field, id, MaxMessageIDLen)
}
