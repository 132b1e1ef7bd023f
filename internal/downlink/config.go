package downlink

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// The reference's later versions kept a device's configuration as typed
// keys; here they are the top-level members of the desired document, so
// a key set either way is read both ways.

// ConfigEntry is one key of a device's configuration.
type ConfigEntry struct {
	Value     json.RawMessage
	DataType  string // string, integer, float, boolean or json
	UpdatedAt *time.Time
}

// Config returns the desired document as typed keys.
func (s *Service) Config(ctx context.Context, deviceID int64) (map[string]ConfigEntry, error) {
	sh, err := s.store.Shadow(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(sh.Desired, &doc); err != nil {
		return nil, err
	}
	out := make(map[string]ConfigEntry, len(doc))
	for k, v := range doc {
		out[k] = ConfigEntry{Value: v, DataType: dataTypeOf(v), UpdatedAt: KeyTime(sh, k)}
	}
	return out, nil
}

// dataTypeOf names the type of a JSON value as the reference did.
func dataTypeOf(v json.RawMessage) string {
	switch v[0] {
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case '{', '[', 'n':
		return "json"
	}
	if bytes.ContainsAny(v, ".eE") {
		return "float"
	}
	return "integer"
}

// MaxConfigKey bounds the name of a configuration key.
const MaxConfigKey = 100

// SetConfig sets one desired key to value, read as dataType (string by
// default), and returns the value as the reference echoed it: as text.
func (s *Service) SetConfig(ctx context.Context, deviceID int64, key string, value json.RawMessage, dataType string) (string, *ShadowView, error) {
	if key == "" {
		return "", nil, iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field 'config_key' is required")
	}
	if err := iotflow.CheckText("config_key", key, MaxConfigKey); err != nil {
		return "", nil, err
	}
	if len(value) == 0 || string(value) == "null" {
		return "", nil, iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field 'config_value' is required")
	}
	if dataType == "" {
		dataType = "string"
	}
	typed, err := typedValue(value, dataType)
	if err != nil {
		return "", nil, err
	}
	patch, err := json.Marshal(map[string]json.RawMessage{key: typed})
	if err != nil {
		return "", nil, err
	}
	v, err := s.PatchDesired(ctx, deviceID, patch, nil)
	if err != nil {
		return "", nil, err
	}
	return asText(value), v, nil
}

// asText is a JSON value as text: a string as itself, anything else as
// its JSON.
func asText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

func badValue(dataType string) error {
	return iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field 'config_value' is not a valid %s", dataType)
}

// typedValue converts what was sent to the JSON value of its data type; a
// string holding the value (as the reference stored every value) is read.
func typedValue(v json.RawMessage, dataType string) (json.RawMessage, error) {
	text := asText(v)
	switch dataType {
	case "string":
		return json.Marshal(text)
	case "integer":
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return nil, badValue("integer")
		}
		return json.Marshal(n)
	case "float":
		t := strings.TrimSpace(text)
		f, err := strconv.ParseFloat(t, 64)
		if err != nil || len(t) > iotflow.MaxNumberLen || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, badValue("float")
		}
		out, _ := json.Marshal(f)
		if !bytes.ContainsAny(out, ".eE") {
			out = append(out, ".0"...) // still a float when read back
		}
		return out, nil
	case "boolean":
		switch strings.ToLower(strings.TrimSpace(text)) {
		case "true", "1", "yes":
			return json.RawMessage("true"), nil
		case "false", "0", "no":
			return json.RawMessage("false"), nil
		}
		return nil, badValue("boolean")
	case "json":
		if v[0] != '"' {
			return v, nil
		}
		if !json.Valid([]byte(text)) {
			return nil, badValue("JSON value")
		}
		return json.RawMessage(text), nil
	}
	return nil, iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field 'data_type' must be string, integer, float, boolean or json")
}
