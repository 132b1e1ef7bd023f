package storetest

import (
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// addKey stores a further key of the device, created at created and
// changed by edit, and returns it.
func addKey(t *testing.T, s iotflow.Store, deviceID int64, created time.Time, edit func(k *iotflow.APIKey)) *iotflow.APIKey {
	t.Helper()
	k := apiKey(t, created)
	k.DeviceID = deviceID
	if edit != nil {
		edit(k)
	}
	if err := s.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatalf("CreateAPIKey for device %d: %v", deviceID, err)
	}
	return k
}

// storedKey fetches a key by its hash and fails the test on error.
func storedKey(t *testing.T, s iotflow.Store, hash string) *iotflow.APIKey {
	t.Helper()
	_, k, err := s.DeviceByKeyHash(t.Context(), hash)
	if err != nil {
		t.Fatalf("DeviceByKeyHash: %v", err)
	}
	return k
}

// checkKeys compares APIKeys(deviceID) with want, in order.
func checkKeys(t *testing.T, s iotflow.Store, deviceID int64, want ...*iotflow.APIKey) {
	t.Helper()
	got, err := s.APIKeys(t.Context(), deviceID)
	ok(t, "APIKeys", err)
	if got == nil {
		t.Errorf("APIKeys(%d) = nil, want an empty slice at least", deviceID)
	}
	if len(got) != len(want) {
		ids := make([]int64, len(got))
		for i, k := range got {
			ids[i] = k.ID
		}
		t.Fatalf("APIKeys(%d) = keys %v, want %d keys", deviceID, ids, len(want))
	}
	for i := range want {
		checkKey(t, "APIKeys["+string(rune('0'+i))+"]", got[i], want[i])
	}
}

func testCreateAPIKey(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := device("keyed", "sensor", iotflow.StatusActive, at(0))
	first := createDevice(t, s, d)
	second := addKey(t, s, d.ID, at(time.Hour), func(k *iotflow.APIKey) {
		k.ExpiresAt, k.LastUsedAt, k.UsageCount = ptr(at(48*time.Hour)), ptr(at(2*time.Hour)), 7
	})
	if second.ID == 0 || second.ID == first.ID {
		t.Fatalf("key ID %d, first key %d: want set and distinct", second.ID, first.ID)
	}
	gotDevice, gotKey, err := s.DeviceByKeyHash(ctx, second.Hash)
	ok(t, "DeviceByKeyHash", err)
	checkDevice(t, "device of the new key", gotDevice, d)
	checkKey(t, "new key", gotKey, second)
	checkKeys(t, s, d.ID, first, second)

	t.Run("unknown device", func(t *testing.T) {
		k := apiKey(t, at(0))
		k.DeviceID = 1_000_000
		wantCode(t, "CreateAPIKey(unknown device)", s.CreateAPIKey(ctx, k), iotflow.ENOTFOUND)
		if k.ID != 0 {
			t.Errorf("failed CreateAPIKey set ID %d", k.ID)
		}
		_, _, err := s.DeviceByKeyHash(ctx, k.Hash)
		wantCode(t, "DeviceByKeyHash(key of unknown device)", err, iotflow.ENOTFOUND)
	})
	t.Run("duplicate hash", func(t *testing.T) {
		other := device("other", "sensor", iotflow.StatusActive, at(0))
		otherKey := createDevice(t, s, other)
		for _, tt := range []struct {
			name     string
			deviceID int64
			hash     string
		}{
			{"same device", d.ID, first.Hash},
			{"other device's hash", d.ID, otherKey.Hash},
			{"to other device", other.ID, second.Hash},
		} {
			k := &iotflow.APIKey{DeviceID: tt.deviceID, Prefix: "iot_dup", Hash: tt.hash, Active: true, CreatedAt: at(0)}
			wantCode(t, "CreateAPIKey("+tt.name+")", s.CreateAPIKey(ctx, k), iotflow.ECONFLICT)
		}
		checkKeys(t, s, d.ID, first, second)
		checkKeys(t, s, other.ID, otherKey)
	})
}

func testAPIKeys(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := device("many-keys", "sensor", iotflow.StatusActive, at(0))
	k0 := createDevice(t, s, d)
	other := device("other", "sensor", iotflow.StatusActive, at(0))
	otherKey := createDevice(t, s, other)
	// Stored later, so with a higher ID, but created earlier: listed first.
	early := addKey(t, s, d.ID, at(-time.Hour), nil)
	// The same CreatedAt as k0: the ID breaks the tie.
	tie := addKey(t, s, d.ID, at(0), nil)
	expired := addKey(t, s, d.ID, at(time.Minute), func(k *iotflow.APIKey) { k.ExpiresAt = ptr(at(2 * time.Minute)) })
	revoked := addKey(t, s, d.ID, at(3*time.Minute), func(k *iotflow.APIKey) { k.LastUsedAt, k.UsageCount = ptr(at(4*time.Minute)), 3 })
	_, err := s.RevokeAPIKey(ctx, d.ID, revoked.ID, at(5*time.Minute))
	ok(t, "RevokeAPIKey", err)
	revoked.Active, revoked.RevokedAt = false, ptr(at(5*time.Minute))
	inactive := addKey(t, s, d.ID, at(6*time.Minute), func(k *iotflow.APIKey) { k.Active = false })

	checkKeys(t, s, d.ID, early, k0, tie, expired, revoked, inactive)
	checkKeys(t, s, other.ID, otherKey)
	checkKeys(t, s, 1_000_000, []*iotflow.APIKey{}...)
	checkKeys(t, s, 0, []*iotflow.APIKey{}...)
}

func testRevokeAPIKey(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := device("revoked", "sensor", iotflow.StatusActive, at(0))
	k := createDevice(t, s, d)
	kept := addKey(t, s, d.ID, at(time.Minute), func(k *iotflow.APIKey) { k.ExpiresAt = ptr(at(time.Hour)) })
	other := device("other", "sensor", iotflow.StatusActive, at(0))
	otherKey := createDevice(t, s, other)
	ok(t, "RecordKeyUsage", s.RecordKeyUsage(ctx, map[int64]iotflow.KeyUsage{k.ID: {Count: 4, LastUsed: at(time.Minute)}}))
	want := *k
	want.Active, want.RevokedAt = false, ptr(at(time.Hour))
	want.UsageCount, want.LastUsedAt = 4, ptr(at(time.Minute))

	got, err := s.RevokeAPIKey(ctx, d.ID, k.ID, at(time.Hour))
	ok(t, "RevokeAPIKey", err)
	checkKey(t, "returned key", got, &want)
	gotDevice, gotKey, err := s.DeviceByKeyHash(ctx, k.Hash)
	ok(t, "DeviceByKeyHash", err)
	checkDevice(t, "device of the revoked key", gotDevice, d)
	checkKey(t, "stored key", gotKey, &want)
	if gotKey.Usable(at(time.Minute)) {
		t.Error("revoked key is usable")
	}

	// Revoking again, later or earlier, keeps the first time.
	for _, again := range []time.Time{at(2 * time.Hour), at(time.Second)} {
		got, err = s.RevokeAPIKey(ctx, d.ID, k.ID, again)
		ok(t, "RevokeAPIKey(again)", err)
		checkKey(t, "revoked again", got, &want)
	}
	checkKeys(t, s, d.ID, &want, kept)

	for _, tt := range []struct {
		name            string
		deviceID, keyID int64
	}{
		{"key of another device", d.ID, otherKey.ID},
		{"wrong device", other.ID, kept.ID},
		{"unknown key", d.ID, 1_000_000},
		{"unknown device", 1_000_000, kept.ID},
	} {
		_, err := s.RevokeAPIKey(ctx, tt.deviceID, tt.keyID, at(time.Hour))
		wantCode(t, "RevokeAPIKey("+tt.name+")", err, iotflow.ENOTFOUND)
		if want := iotflow.KeyNotFound(tt.deviceID, tt.keyID); iotflow.ErrorMessage(err) != iotflow.ErrorMessage(want) {
			t.Errorf("RevokeAPIKey(%s) = %v, want %v", tt.name, err, want)
		}
	}
	// The refused calls changed nothing.
	checkKey(t, "other device's key", storedKey(t, s, otherKey.Hash), otherKey)
	checkKey(t, "other key of the device", storedKey(t, s, kept.Hash), kept)
}

func testExpireAPIKey(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := device("rotated", "sensor", iotflow.StatusActive, at(0))
	k := createDevice(t, s, d)
	other := device("other", "sensor", iotflow.StatusActive, at(0))
	otherKey := createDevice(t, s, other)
	want := *k
	steps := []struct {
		name string
		at   time.Time
		want time.Time
	}{
		{"no expiry yet", at(2 * time.Hour), at(2 * time.Hour)},
		{"never extends", at(3 * time.Hour), at(2 * time.Hour)},
		{"same time", at(2 * time.Hour), at(2 * time.Hour)},
		{"earlier", at(time.Hour), at(time.Hour)},
	}
	for _, st := range steps {
		got, err := s.ExpireAPIKey(ctx, d.ID, k.ID, st.at)
		ok(t, "ExpireAPIKey("+st.name+")", err)
		want.ExpiresAt = ptr(st.want)
		checkKey(t, st.name+": returned key", got, &want)
		checkKey(t, st.name+": stored key", storedKey(t, s, k.Hash), &want)
	}
	// The grace period: the key works until the new expiry, not at it.
	if !want.Usable(at(time.Hour-time.Microsecond)) || want.Usable(at(time.Hour)) {
		t.Errorf("Usable around the expiry %v is wrong", want.ExpiresAt)
	}

	// A key stored with an early expiry keeps it.
	early := addKey(t, s, d.ID, at(0), func(k *iotflow.APIKey) { k.ExpiresAt = ptr(at(time.Minute)) })
	got, err := s.ExpireAPIKey(ctx, d.ID, early.ID, at(time.Hour))
	ok(t, "ExpireAPIKey(early)", err)
	checkKey(t, "key with an earlier expiry", got, early)

	for _, tt := range []struct {
		name            string
		deviceID, keyID int64
	}{
		{"key of another device", d.ID, otherKey.ID},
		{"wrong device", other.ID, k.ID},
		{"unknown key", d.ID, 1_000_000},
	} {
		_, err := s.ExpireAPIKey(ctx, tt.deviceID, tt.keyID, at(time.Minute))
		wantCode(t, "ExpireAPIKey("+tt.name+")", err, iotflow.ENOTFOUND)
	}
	checkKey(t, "other device's key", storedKey(t, s, otherKey.Hash), otherKey)
	checkKeys(t, s, d.ID, &want, early)
}

func testDeleteDeviceKeys(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := device("doomed", "sensor", iotflow.StatusActive, at(0))
	first := createDevice(t, s, d)
	second := addKey(t, s, d.ID, at(time.Minute), nil)
	other := device("keeper", "sensor", iotflow.StatusActive, at(0))
	otherKey := createDevice(t, s, other)

	_, err := s.DeleteDevice(ctx, d.ID)
	ok(t, "DeleteDevice", err)
	checkKeys(t, s, d.ID, []*iotflow.APIKey{}...)
	for _, k := range []*iotflow.APIKey{first, second} {
		_, _, err := s.DeviceByKeyHash(ctx, k.Hash)
		wantCode(t, "DeviceByKeyHash(key of deleted device)", err, iotflow.ENOTFOUND)
	}
	_, err = s.RevokeAPIKey(ctx, d.ID, second.ID, at(time.Hour))
	wantCode(t, "RevokeAPIKey(deleted)", err, iotflow.ENOTFOUND)
	_, err = s.ExpireAPIKey(ctx, d.ID, second.ID, at(time.Hour))
	wantCode(t, "ExpireAPIKey(deleted)", err, iotflow.ENOTFOUND)
	err = s.CreateAPIKey(ctx, &iotflow.APIKey{DeviceID: d.ID, Prefix: "p", Hash: "h", Active: true, CreatedAt: at(0)})
	wantCode(t, "CreateAPIKey(deleted device)", err, iotflow.ENOTFOUND)
	// Usage buffered before the delete and flushed after it is ignored.
	ok(t, "RecordKeyUsage(deleted keys)", s.RecordKeyUsage(ctx, map[int64]iotflow.KeyUsage{
		first.ID: {Count: 1, LastUsed: at(time.Hour)}, second.ID: {Count: 1, LastUsed: at(time.Hour)},
	}))
	checkKeys(t, s, other.ID, otherKey)
}
