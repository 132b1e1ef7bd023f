package storetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// t0 is the base time of the fixtures; its microseconds check that stores
// keep the full precision.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 123456000, time.UTC)

// at returns t0 moved by d.
func at(d time.Duration) time.Time {
	return iotflow.Truncate(t0.Add(d))
}

func ptr[T any](v T) *T {
	return &v
}

// device returns a device with every field set.
func device(name, deviceType, status string, created time.Time) *iotflow.Device {
	return &iotflow.Device{
		Name:            name,
		Description:     "the " + name + " device",
		DeviceType:      deviceType,
		Status:          status,
		Location:        "Room 1",
		FirmwareVersion: "1.0.0",
		HardwareVersion: "rev-b",
		CreatedAt:       created,
		UpdatedAt:       created,
	}
}

// apiKey returns an active key with a fresh random hash.
func apiKey(t *testing.T, created time.Time) *iotflow.APIKey {
	t.Helper()
	_, hash, prefix, err := iotflow.NewSecret(iotflow.APIKeyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return &iotflow.APIKey{Prefix: prefix, Hash: hash, Active: true, CreatedAt: created}
}

// createDevice stores d with a new key and returns the key.
func createDevice(t *testing.T, s iotflow.Store, d *iotflow.Device) *iotflow.APIKey {
	t.Helper()
	key := apiKey(t, d.CreatedAt)
	if err := s.CreateDevice(t.Context(), d, key); err != nil {
		t.Fatalf("CreateDevice(%q): %v", d.Name, err)
	}
	return key
}

// createSimple stores a sensor device created at t0 with the given name.
func createSimple(t *testing.T, s iotflow.Store, name string) *iotflow.Device {
	t.Helper()
	d := device(name, "sensor", iotflow.StatusActive, at(0))
	createDevice(t, s, d)
	return d
}

// reading returns a reading of the device taken at ts.
func reading(deviceID int64, ts time.Time, dataType string) *iotflow.Reading {
	return &iotflow.Reading{
		DeviceID:   deviceID,
		Timestamp:  ts,
		ReceivedAt: ts.Add(time.Second),
		DataType:   dataType,
		Payload:    json.RawMessage(fmt.Sprintf(`{"temperature": 21.5, "at": %q}`, ts.Format(time.RFC3339Nano))),
		Metadata:   json.RawMessage(`{}`),
	}
}

// insert stores readings and fails the test on error.
func insert(t *testing.T, s iotflow.Store, rs ...*iotflow.Reading) {
	t.Helper()
	if err := s.InsertReadings(t.Context(), rs); err != nil {
		t.Fatalf("InsertReadings: %v", err)
	}
}

// getDevice fetches a device and fails the test on error.
func getDevice(t *testing.T, s iotflow.Store, id int64) *iotflow.Device {
	t.Helper()
	d, err := s.Device(t.Context(), id)
	if err != nil {
		t.Fatalf("Device(%d): %v", id, err)
	}
	return d
}

// wantCode checks that err carries the application error code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := iotflow.ErrorCode(err); got != code {
		t.Errorf("%s: error code %q (err %v), want %q", what, got, err, code)
	}
}

// ok fails the test when err is not nil.
func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantCount checks CountReadings for f.
func wantCount(t *testing.T, s iotflow.Store, f iotflow.ReadingFilter, want int64) {
	t.Helper()
	n, err := s.CountReadings(t.Context(), f)
	ok(t, "CountReadings", err)
	if n != want {
		t.Errorf("CountReadings(%+v) = %d, want %d", f, n, want)
	}
}

// sameTime reports whether two optional times are both nil or equal.
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// checkUTC reports a time that does not come back in UTC, as the contract says.
func checkUTC(t *testing.T, what string, ts time.Time) {
	t.Helper()
	if ts.Location() != time.UTC {
		t.Errorf("%s: location %v, want UTC", what, ts.Location())
	}
}

// checkDevice compares every field of got with want.
func checkDevice(t *testing.T, what string, got, want *iotflow.Device) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil device", what)
	}
	g, w := *got, *want
	if !g.CreatedAt.Equal(w.CreatedAt) || !g.UpdatedAt.Equal(w.UpdatedAt) || !sameTime(g.LastSeen, w.LastSeen) {
		t.Errorf("%s: times created %v updated %v last seen %v, want %v %v %v",
			what, g.CreatedAt, g.UpdatedAt, g.LastSeen, w.CreatedAt, w.UpdatedAt, w.LastSeen)
	}
	checkUTC(t, what+" CreatedAt", g.CreatedAt)
	checkUTC(t, what+" UpdatedAt", g.UpdatedAt)
	if g.LastSeen != nil {
		checkUTC(t, what+" LastSeen", *g.LastSeen)
	}
	if !sameTime(g.OfflineAt, w.OfflineAt) {
		t.Errorf("%s: offline at %v, want %v", what, g.OfflineAt, w.OfflineAt)
	}
	g.CreatedAt, g.UpdatedAt, g.LastSeen, g.OfflineAt = time.Time{}, time.Time{}, nil, nil
	w.CreatedAt, w.UpdatedAt, w.LastSeen, w.OfflineAt = time.Time{}, time.Time{}, nil, nil
	if g != w {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// checkKey compares every field of got with want.
func checkKey(t *testing.T, what string, got, want *iotflow.APIKey) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil key", what)
	}
	g, w := *got, *want
	if !g.CreatedAt.Equal(w.CreatedAt) || !sameTime(g.ExpiresAt, w.ExpiresAt) ||
		!sameTime(g.LastUsedAt, w.LastUsedAt) || !sameTime(g.RevokedAt, w.RevokedAt) {
		t.Errorf("%s: times created %v expires %v last used %v revoked %v, want %v %v %v %v", what,
			g.CreatedAt, g.ExpiresAt, g.LastUsedAt, g.RevokedAt, w.CreatedAt, w.ExpiresAt, w.LastUsedAt, w.RevokedAt)
	}
	checkUTC(t, what+" CreatedAt", g.CreatedAt)
	for _, p := range []*time.Time{g.ExpiresAt, g.LastUsedAt, g.RevokedAt} {
		if p != nil {
			checkUTC(t, what+" optional time", *p)
		}
	}
	g.CreatedAt, g.ExpiresAt, g.LastUsedAt, g.RevokedAt = time.Time{}, nil, nil, nil
	w.CreatedAt, w.ExpiresAt, w.LastUsedAt, w.RevokedAt = time.Time{}, nil, nil, nil
	if g != w {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// sameJSON reports whether a and b hold equal JSON values, whatever the
// order of keys or the spacing (PostgreSQL's jsonb changes both).
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// checkReading compares every field of got with want.
func checkReading(t *testing.T, what string, got, want *iotflow.Reading, deviceName string) {
	t.Helper()
	if got.ID != want.ID || got.DeviceID != want.DeviceID || got.DataType != want.DataType ||
		got.DeviceName != deviceName {
		t.Errorf("%s: id %d device %d %q type %q, want %d %d %q %q", what,
			got.ID, got.DeviceID, got.DeviceName, got.DataType, want.ID, want.DeviceID, deviceName, want.DataType)
	}
	if !got.Timestamp.Equal(want.Timestamp) || !got.ReceivedAt.Equal(want.ReceivedAt) {
		t.Errorf("%s: timestamp %v received %v, want %v %v", what,
			got.Timestamp, got.ReceivedAt, want.Timestamp, want.ReceivedAt)
	}
	checkUTC(t, what+" Timestamp", got.Timestamp)
	checkUTC(t, what+" ReceivedAt", got.ReceivedAt)
	if !sameJSON(got.Payload, want.Payload) || !sameJSON(got.Metadata, want.Metadata) {
		t.Errorf("%s: payload %s metadata %s, want %s %s", what, got.Payload, got.Metadata, want.Payload, want.Metadata)
	}
}

// readingIDs returns the IDs of rs in order.
func readingIDs(rs []*iotflow.Reading) []int64 {
	ids := make([]int64, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids
}

// deviceNames returns the names of ds in order.
func deviceNames(ds []*iotflow.Device) []string {
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	return names
}
