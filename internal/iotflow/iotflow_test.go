package iotflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestNewDeviceValidate(t *testing.T) {
	ok := NewDevice{Name: "Sensor", DeviceType: "sensor"}
	long := func(n int) string { return strings.Repeat("é", n) } // runes, not bytes
	for _, tc := range []struct {
		name  string
		edit  func(*NewDevice)
		field string // "" when valid
	}{
		{"valid", func(*NewDevice) {}, ""},
		{"max lengths", func(n *NewDevice) {
			n.Name, n.DeviceType, n.Location = long(100), long(50), long(200)
			n.FirmwareVersion, n.HardwareVersion = long(20), long(20)
		}, ""},
		{"blank name", func(n *NewDevice) { n.Name = "   " }, "name"},
		{"missing type", func(n *NewDevice) { n.DeviceType = "" }, "device_type"},
		{"long name", func(n *NewDevice) { n.Name = long(101) }, "name"},
		{"long type", func(n *NewDevice) { n.DeviceType = long(51) }, "device_type"},
		{"long location", func(n *NewDevice) { n.Location = long(201) }, "location"},
		{"long firmware", func(n *NewDevice) { n.FirmwareVersion = long(21) }, "firmware_version"},
		{"long hardware", func(n *NewDevice) { n.HardwareVersion = long(21) }, "hardware_version"},
		{"long description", func(n *NewDevice) { n.Description = long(1001) }, "description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := ok
			tc.edit(&n)
			n.Normalize()
			err := n.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), "'"+tc.field+"'") {
				t.Fatalf("err = %v, want EINVALID naming %s", err, tc.field)
			}
		})
	}
}

func TestDeviceUpdateValidate(t *testing.T) {
	s := func(v string) *string { return &v }
	if err := (&DeviceUpdate{Status: s("maintenance")}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []DeviceUpdate{
		{Status: s("broken")},
		{Status: s("")},
		{Name: s("")},
		{Location: s(strings.Repeat("x", 201))},
	} {
		if err := u.Validate(); ErrorCode(err) != EINVALID {
			t.Errorf("%+v: err = %v, want EINVALID", u, err)
		}
	}
	if !(&DeviceUpdate{}).Empty() || (&DeviceUpdate{Location: s("")}).Empty() {
		t.Error("Empty is wrong")
	}
}

func TestValidateReading(t *testing.T) {
	for _, tc := range []struct {
		data, meta, typ string
		wantMeta        string
		wantType        string
		err             string
	}{
		{`{"t":1}`, ``, ``, `{}`, "sensor", ""},
		{`{"t":1}`, `null`, `  alarm `, `{}`, "alarm", ""},
		{`{"t":1}`, `{"unit":"C"}`, `sensor`, `{"unit":"C"}`, "sensor", ""},
		{``, ``, ``, ``, ``, "'data' is required"},
		{`null`, ``, ``, ``, ``, "'data' is required"},
		{`[1,2]`, ``, ``, ``, ``, "'data' must be a JSON object"},
		{`"x"`, ``, ``, ``, ``, "'data' must be a JSON object"},
		{`{"t":1}`, `[1]`, ``, ``, ``, "'metadata' must be a JSON object"},
		{`{"t":1}`, ``, strings.Repeat("t", 51), ``, ``, "'type'"},
		{`{"t":"a\u0000b"}`, ``, ``, ``, ``, "NUL"},
		{`{"t":1}`, `{"m":"\u0000"}`, ``, ``, ``, "NUL"},
		{`{"t":"\\u0000"}`, ``, ``, `{}`, "sensor", ""},
		{"{\"t\":\"\xff\"}", ``, ``, ``, ``, "UTF-8"},
	} {
		meta, typ, err := ValidateReading(json.RawMessage(tc.data), json.RawMessage(tc.meta), tc.typ)
		if tc.err != "" {
			if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.data, err, tc.err)
			}
			continue
		}
		if err != nil || string(meta) != tc.wantMeta || typ != tc.wantType {
			t.Errorf("%s: got %s %q %v", tc.data, meta, typ, err)
		}
	}
}

func TestSecrets(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		secret, hash, shown, err := NewSecret(APIKeyPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "iot_") || len(secret) < 4+43 {
			t.Fatalf("secret %q: want iot_ and 43 random characters", secret)
		}
		if seen[secret] {
			t.Fatal("duplicate secret")
		}
		seen[secret] = true
		if len(hash) != 64 || hash != HashSecret(secret) || strings.Contains(hash, secret[4:]) {
			t.Fatalf("hash %q", hash)
		}
		if shown != secret[:ShownPrefixLen] {
			t.Fatalf("shown %q", shown)
		}
		if !SecretMatches(secret, hash) || SecretMatches(secret+"x", hash) || SecretMatches("", hash) {
			t.Fatal("SecretMatches is wrong")
		}
	}
}

func TestAPIKeyUsable(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	for _, tc := range []struct {
		k    APIKey
		want bool
	}{
		{APIKey{Active: true}, true},
		{APIKey{Active: false}, false},
		{APIKey{Active: true, ExpiresAt: &future}, true},
		{APIKey{Active: true, ExpiresAt: &past}, false},
		{APIKey{Active: true, RevokedAt: &past}, false},
	} {
		if got := tc.k.Usable(now); got != tc.want {
			t.Errorf("%+v: Usable = %v", tc.k, got)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	e := Errorf(ENOTFOUND, "Device not found", "no device %d", 7)
	wrapped := fmt.Errorf("lookup: %w", e)
	if ErrorCode(wrapped) != ENOTFOUND || ErrorMessage(wrapped) != "no device 7" || ErrorTitle(wrapped) != "Device not found" {
		t.Errorf("wrapped app error lost: %q %q %q", ErrorCode(wrapped), ErrorMessage(wrapped), ErrorTitle(wrapped))
	}
	other := errors.New("pq: secret detail")
	if ErrorCode(other) != EINTERNAL || strings.Contains(ErrorMessage(other), "secret") || ErrorTitle(other) != "Internal server error" {
		t.Error("internal detail leaks")
	}
	if ErrorCode(nil) != "" {
		t.Error("nil has a code")
	}
}

func TestIsOnline(t *testing.T) {
	now := time.Now()
	seen := now.Add(-299 * time.Second)
	old := now.Add(-301 * time.Second)
	if !(&Device{LastSeen: &seen}).IsOnline(now, 300*time.Second) || (&Device{LastSeen: &old}).IsOnline(now, 300*time.Second) ||
		(&Device{}).IsOnline(now, 300*time.Second) {
		t.Error("IsOnline is wrong")
	}
}
