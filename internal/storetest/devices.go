package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func testCreateDevice(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	full := device("sensor-1", "sensor", iotflow.StatusActive, at(0))
	full.UpdatedAt = at(time.Minute)
	key := createDevice(t, s, full)
	if full.ID == 0 || key.ID == 0 || key.DeviceID != full.ID {
		t.Fatalf("IDs not set: device %d, key %d for device %d", full.ID, key.ID, key.DeviceID)
	}
	// Only the required fields: empty optional strings must come back empty.
	bare := &iotflow.Device{Name: "bare", DeviceType: "gateway", Status: iotflow.StatusInactive,
		CreatedAt: at(time.Hour), UpdatedAt: at(time.Hour)}
	createDevice(t, s, bare)
	if bare.ID == 0 || bare.ID == full.ID {
		t.Fatalf("second device ID %d, first %d", bare.ID, full.ID)
	}

	for _, want := range []*iotflow.Device{full, bare} {
		got, err := s.Device(ctx, want.ID)
		ok(t, "Device", err)
		checkDevice(t, "Device", got, want)
		got, err = s.DeviceByName(ctx, want.Name)
		ok(t, "DeviceByName", err)
		checkDevice(t, "DeviceByName", got, want)
	}
	got, gotKey, err := s.DeviceByKeyHash(ctx, key.Hash)
	ok(t, "DeviceByKeyHash", err)
	checkDevice(t, "DeviceByKeyHash", got, full)
	checkKey(t, "DeviceByKeyHash key", gotKey, key)
	if got.LastSeen != nil || got.TelemetryCount != 0 {
		t.Errorf("new device: LastSeen %v, TelemetryCount %d, want nil and 0", got.LastSeen, got.TelemetryCount)
	}

	// Names compare case-sensitively: "Sensor-1" is another name.
	other := device("Sensor-1", "sensor", iotflow.StatusActive, at(0))
	createDevice(t, s, other)
	got, err = s.DeviceByName(ctx, "Sensor-1")
	ok(t, "DeviceByName", err)
	if got.ID != other.ID {
		t.Errorf("DeviceByName(Sensor-1) = device %d, want %d", got.ID, other.ID)
	}
	_, err = s.DeviceByName(ctx, "SENSOR-1")
	wantCode(t, "DeviceByName(SENSOR-1)", err, iotflow.ENOTFOUND)
}

func testCreateDeviceDuplicateName(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	first := device("dup", "sensor", iotflow.StatusActive, at(0))
	createDevice(t, s, first)
	second := device("dup", "camera", iotflow.StatusInactive, at(time.Minute))
	key := apiKey(t, at(time.Minute))
	err := s.CreateDevice(ctx, second, key)
	wantCode(t, "CreateDevice(duplicate)", err, iotflow.ECONFLICT)

	// The key of the failed device must not have been stored.
	_, _, err = s.DeviceByKeyHash(ctx, key.Hash)
	wantCode(t, "DeviceByKeyHash(key of failed device)", err, iotflow.ENOTFOUND)
	got, err := s.DeviceByName(ctx, "dup")
	ok(t, "DeviceByName", err)
	checkDevice(t, "first device", got, first)
	_, total, err := s.ListDevices(ctx, iotflow.DeviceFilter{Limit: 10})
	ok(t, "ListDevices", err)
	if total != 1 {
		t.Errorf("ListDevices total = %d, want 1", total)
	}
}

func testCreateDeviceReusedKeyHash(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	first := device("first", "sensor", iotflow.StatusActive, at(0))
	key := createDevice(t, s, first)
	second := device("second", "sensor", iotflow.StatusActive, at(0))
	reused := &iotflow.APIKey{Prefix: key.Prefix, Hash: key.Hash, Active: true, CreatedAt: at(0)}
	if err := s.CreateDevice(ctx, second, reused); err == nil {
		t.Fatal("CreateDevice with a key hash in use: no error")
	}
	// One transaction: the device of the failed key is not stored either.
	_, err := s.DeviceByName(ctx, "second")
	wantCode(t, "DeviceByName(second)", err, iotflow.ENOTFOUND)
	got, _, err := s.DeviceByKeyHash(ctx, key.Hash)
	ok(t, "DeviceByKeyHash", err)
	if got.ID != first.ID {
		t.Errorf("key hash belongs to device %d, want %d", got.ID, first.ID)
	}
}

func testDeviceNotFound(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := createSimple(t, s, "present")
	tests := []struct {
		name string
		call func() error
	}{
		{"Device", func() error { _, err := s.Device(ctx, d.ID+1000); return err }},
		{"Device zero", func() error { _, err := s.Device(ctx, 0); return err }},
		{"DeviceByName", func() error { _, err := s.DeviceByName(ctx, "absent"); return err }},
		{"DeviceByName prefix", func() error { _, err := s.DeviceByName(ctx, "pres"); return err }},
		{"DeviceByKeyHash", func() error { _, _, err := s.DeviceByKeyHash(ctx, iotflow.HashSecret("x")); return err }},
		{"DeviceByKeyHash empty", func() error { _, _, err := s.DeviceByKeyHash(ctx, ""); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.name, tt.call(), iotflow.ENOTFOUND)
		})
	}
	// What the API shows is made once, by the store, the same on each.
	_, err := s.Device(ctx, d.ID+1000)
	if want := iotflow.DeviceNotFound(d.ID + 1000); iotflow.ErrorMessage(err) != iotflow.ErrorMessage(want) ||
		iotflow.ErrorTitle(err) != iotflow.ErrorTitle(want) {
		t.Errorf("Device(unknown) = %v, want %v", err, want)
	}
}

func testDeviceByKeyHash(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	tests := []struct {
		name string
		key  func(k *iotflow.APIKey)
	}{
		{"active without expiry", func(k *iotflow.APIKey) {}},
		{"active with expiry", func(k *iotflow.APIKey) { k.ExpiresAt = ptr(at(365 * 24 * time.Hour)) }},
		// "whatever its state": inactive and expired keys are found too.
		{"inactive", func(k *iotflow.APIKey) { k.Active = false }},
		{"expired", func(k *iotflow.APIKey) { k.ExpiresAt = ptr(at(-time.Hour)) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := device("device-"+string(rune('a'+i)), "sensor", iotflow.StatusActive, at(0))
			key := apiKey(t, at(time.Duration(i)*time.Second))
			tt.key(key)
			ok(t, "CreateDevice", s.CreateDevice(ctx, d, key))
			gotDevice, gotKey, err := s.DeviceByKeyHash(ctx, key.Hash)
			ok(t, "DeviceByKeyHash", err)
			checkDevice(t, "device", gotDevice, d)
			checkKey(t, "key", gotKey, key)
			if gotKey.DeviceID != d.ID || gotKey.UsageCount != 0 || gotKey.LastUsedAt != nil {
				t.Errorf("key device %d usage %d last used %v, want %d, 0, nil",
					gotKey.DeviceID, gotKey.UsageCount, gotKey.LastUsedAt, d.ID)
			}
		})
	}
}

func testListDevices(t *testing.T, s iotflow.Store) {
	// Created in this order, so IDs ascend; created_at ties are broken by ID.
	fixtures := []struct {
		name, deviceType, status string
		created                  time.Duration
	}{
		{"alpha", "sensor", iotflow.StatusActive, 0},
		{"Beta", "camera", iotflow.StatusInactive, time.Minute},
		{"gamma_1", "sensor", iotflow.StatusMaintenance, 2 * time.Minute},
		{"delta%", "sensor", iotflow.StatusActive, 2 * time.Minute},
		{"ÄRGER", "camera", iotflow.StatusActive, 3 * time.Minute},
		{"bär-1", "thermostat", iotflow.StatusInactive, time.Minute},
		{"omega", "sensor", iotflow.StatusActive, -time.Minute},
	}
	byName := make(map[string]*iotflow.Device)
	for _, f := range fixtures {
		d := device(f.name, f.deviceType, f.status, at(f.created))
		createDevice(t, s, d)
		byName[f.name] = d
	}
	all := []string{"ÄRGER", "delta%", "gamma_1", "bär-1", "Beta", "alpha", "omega"}

	tests := []struct {
		name   string
		filter iotflow.DeviceFilter
		want   []string
		total  int64
	}{
		{"all", iotflow.DeviceFilter{Limit: 100}, all, 7},
		{"status active", iotflow.DeviceFilter{Status: "active", Limit: 100}, []string{"ÄRGER", "delta%", "alpha", "omega"}, 4},
		{"status inactive", iotflow.DeviceFilter{Status: "inactive", Limit: 100}, []string{"bär-1", "Beta"}, 2},
		{"status maintenance", iotflow.DeviceFilter{Status: "maintenance", Limit: 100}, []string{"gamma_1"}, 1},
		{"type camera", iotflow.DeviceFilter{DeviceType: "camera", Limit: 100}, []string{"ÄRGER", "Beta"}, 2},
		{"type and status", iotflow.DeviceFilter{DeviceType: "sensor", Status: "active", Limit: 100}, []string{"delta%", "alpha", "omega"}, 3},
		{"unknown type", iotflow.DeviceFilter{DeviceType: "Sensor", Limit: 100}, []string{}, 0},
		{"search upper", iotflow.DeviceFilter{Search: "ALP", Limit: 100}, []string{"alpha"}, 1},
		{"search lower", iotflow.DeviceFilter{Search: "beta", Limit: 100}, []string{"Beta"}, 1},
		{"search non-ASCII lower", iotflow.DeviceFilter{Search: "ä", Limit: 100}, []string{"ÄRGER", "bär-1"}, 2},
		{"search non-ASCII upper", iotflow.DeviceFilter{Search: "Ä", Limit: 100}, []string{"ÄRGER", "bär-1"}, 2},
		{"search word non-ASCII", iotflow.DeviceFilter{Search: "ärg", Limit: 100}, []string{"ÄRGER"}, 1},
		{"search a is not ä", iotflow.DeviceFilter{Search: "a", Limit: 100}, []string{"delta%", "gamma_1", "Beta", "alpha", "omega"}, 5},
		{"search percent literal", iotflow.DeviceFilter{Search: "%", Limit: 100}, []string{"delta%"}, 1},
		{"search percent after", iotflow.DeviceFilter{Search: "a%", Limit: 100}, []string{"delta%"}, 1},
		{"search underscore literal", iotflow.DeviceFilter{Search: "_", Limit: 100}, []string{"gamma_1"}, 1},
		{"search underscore after", iotflow.DeviceFilter{Search: "a_", Limit: 100}, []string{"gamma_1"}, 1},
		{"search no match", iotflow.DeviceFilter{Search: "zzz", Limit: 100}, []string{}, 0},
		{"search and status", iotflow.DeviceFilter{Search: "A", Status: "active", Limit: 100}, []string{"delta%", "alpha", "omega"}, 3},
		{"page 1", iotflow.DeviceFilter{Limit: 3}, all[:3], 7},
		{"page 2", iotflow.DeviceFilter{Limit: 3, Offset: 3}, all[3:6], 7},
		{"page 3", iotflow.DeviceFilter{Limit: 3, Offset: 6}, all[6:], 7},
		{"past the end", iotflow.DeviceFilter{Limit: 3, Offset: 10}, []string{}, 7},
		{"filtered page", iotflow.DeviceFilter{Status: "active", Limit: 2, Offset: 1}, []string{"delta%", "alpha"}, 4},
		{"search page", iotflow.DeviceFilter{Search: "a", Limit: 2}, []string{"delta%", "gamma_1"}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total, err := s.ListDevices(t.Context(), tt.filter)
			ok(t, "ListDevices", err)
			if names := deviceNames(got); !slices.Equal(names, tt.want) || total != tt.total {
				t.Errorf("ListDevices(%+v) = %q, total %d; want %q, total %d", tt.filter, names, total, tt.want, tt.total)
			}
			for _, d := range got {
				checkDevice(t, "listed "+d.Name, d, byName[d.Name])
			}
		})
	}
}
