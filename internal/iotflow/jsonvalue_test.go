package iotflow

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestReadingValuesEveryStoreKeeps: values that PostgreSQL's jsonb refuses
// or expands (lone surrogate escapes, NUL, numbers beyond a float64 or
// with huge exponents) are refused on every store, naming the field, in
// data, metadata and keys alike; their valid neighbours are accepted.
func TestReadingValuesEveryStoreKeeps(t *testing.T) {
	for _, tc := range []struct {
		name, data, err string
	}{
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, ""},
		{"upper-case pair", `{"a":"\uD83D\uDE00 ok"}`, ""},
		{"escaped backslash before u", `{"a":"\\ud800"}`, ""},
		{"other escapes", `{"a":"\n\t\"\/\u00e9\uffff"}`, ""},
		{"lone high surrogate", `{"a":"\ud800"}`, "surrogate"},
		{"high surrogate then text", `{"a":"\ud800abcdef"}`, "surrogate"},
		{"high surrogate then other escape", `{"a":"\ud800\n"}`, "surrogate"},
		{"two high surrogates", `{"a":"\ud800\ud800"}`, "surrogate"},
		{"lone low surrogate", `{"a":"x\udc00"}`, "surrogate"},
		{"surrogate in a key", `{"\ud800":1}`, "surrogate"},
		{"surrogate deep down", `{"a":[{"b":["\udfff"]}]}`, "surrogate"},
		{"NUL", `{"a":"\u0000"}`, "NUL"},
		{"NUL in a key", `{"\u0000":1}`, "NUL"},
		{"plain numbers", `{"a":-0,"b":1.5e10,"c":-2E-5,"d":12345678901234567890,"e":1e308,"f":4.9e-324}`, ""},
		{"tiny but storable", `{"a":1e-999,"b":0e+999}`, ""},
		{"beyond float64", `{"a":1e309}`, "cannot be stored"},
		{"negative beyond float64", `{"a":[-1.8e308]}`, "cannot be stored"},
		{"huge exponent", `{"a":1e1000000}`, "cannot be stored"},
		{"huge negative exponent", `{"a":1e-16384}`, "cannot be stored"},
		{"zero with huge exponent", `{"a":0e99999}`, "cannot be stored"},
		{"long number", `{"a":0.` + strings.Repeat("0", 70) + `1}`, "cannot be stored"},
		{"64 characters", `{"a":` + strings.Repeat("1", 64) + `}`, ""},
		{"number-like strings are text", `{"a":"1e1000000","b":"\\u0000"}`, ""},
		{"true false null", `{"a":true,"b":false,"c":null}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !json.Valid([]byte(tc.data)) {
				t.Fatalf("fixture is not JSON: %s", tc.data)
			}
			for _, field := range []string{"data", "metadata"} {
				data, meta := json.RawMessage(tc.data), json.RawMessage(nil)
				if field == "metadata" {
					data, meta = json.RawMessage(`{"ok":1}`), json.RawMessage(tc.data)
				}
				_, _, err := ValidateReading(data, meta, "")
				if tc.err == "" {
					if err != nil {
						t.Fatalf("%s: unexpected %v", field, err)
					}
					continue
				}
				msg := ErrorMessage(err)
				if ErrorCode(err) != EINVALID || !strings.Contains(msg, tc.err) || !strings.Contains(msg, "'"+field+"'") {
					t.Fatalf("%s: err %v, want EINVALID %q naming the field", field, err, tc.err)
				}
			}
		})
	}
}

// TestTextFieldsRefuseNUL: PostgreSQL's text columns refuse NUL and SQLite
// stores it, so every text field refuses it on both.
func TestTextFieldsRefuseNUL(t *testing.T) {
	nul := "a\x00b"
	n := NewDevice{Name: "Sensor", DeviceType: "sensor"}
	for field, set := range map[string]func(*NewDevice){
		"name":             func(n *NewDevice) { n.Name = nul },
		"description":      func(n *NewDevice) { n.Description = nul },
		"device_type":      func(n *NewDevice) { n.DeviceType = nul },
		"location":         func(n *NewDevice) { n.Location = nul },
		"firmware_version": func(n *NewDevice) { n.FirmwareVersion = nul },
		"hardware_version": func(n *NewDevice) { n.HardwareVersion = nul },
	} {
		d := n
		set(&d)
		if err := d.Validate(); ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), "'"+field+"'") {
			t.Errorf("registration with NUL in %s: %v", field, err)
		}
	}
	if err := (&DeviceUpdate{Location: &nul}).Validate(); ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), "'location'") {
		t.Errorf("update with NUL in location: %v", err)
	}
	if _, _, err := ValidateReading(json.RawMessage(`{"a":1}`), nil, nul); ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), "'type'") {
		t.Errorf("reading type with NUL: %v", err)
	}
	if err := ValidateMessageID(nul, "message_id"); ErrorCode(err) != EINVALID {
		t.Errorf("message_id with NUL: %v", err)
	}
	if err := CheckText("search", "ok", 10); err != nil {
		t.Errorf("plain text refused: %v", err)
	}
}
