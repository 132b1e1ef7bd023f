package storetest

import (
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func testUpdateDevice(t *testing.T, s iotflow.Store) {
	tests := []struct {
		name   string
		update iotflow.DeviceUpdate
		apply  func(d *iotflow.Device)
	}{
		{"nothing", iotflow.DeviceUpdate{}, func(d *iotflow.Device) {}},
		{"description only", iotflow.DeviceUpdate{Description: ptr("new text")},
			func(d *iotflow.Device) { d.Description = "new text" }},
		{"status only", iotflow.DeviceUpdate{Status: ptr(iotflow.StatusMaintenance)},
			func(d *iotflow.Device) { d.Status = iotflow.StatusMaintenance }},
		{"every field", iotflow.DeviceUpdate{
			Name: ptr("renamed"), Description: ptr("d2"), Status: ptr(iotflow.StatusInactive),
			Location: ptr("Hall 7"), FirmwareVersion: ptr("2.0.0"), HardwareVersion: ptr("rev-c"),
		}, func(d *iotflow.Device) {
			d.Name, d.Description, d.Status = "renamed", "d2", iotflow.StatusInactive
			d.Location, d.FirmwareVersion, d.HardwareVersion = "Hall 7", "2.0.0", "rev-c"
		}},
		{"clear optional fields", iotflow.DeviceUpdate{
			Description: ptr(""), Location: ptr(""), FirmwareVersion: ptr(""), HardwareVersion: ptr(""),
		}, func(d *iotflow.Device) {
			d.Description, d.Location, d.FirmwareVersion, d.HardwareVersion = "", "", "", ""
		}},
		{"clear location only", iotflow.DeviceUpdate{Location: ptr("")},
			func(d *iotflow.Device) { d.Location = "" }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			d := createSimple(t, s, "update-"+string(rune('a'+i)))
			// Update must keep what other methods maintain.
			insert(t, s, reading(d.ID, at(time.Second), "sensor"))
			ok(t, "TouchDevices", s.TouchDevices(ctx, map[int64]time.Time{d.ID: at(time.Minute)}))
			want := getDevice(t, s, d.ID)

			updatedAt := at(time.Hour)
			got, err := s.UpdateDevice(ctx, d.ID, tt.update, updatedAt)
			ok(t, "UpdateDevice", err)
			tt.apply(want)
			want.UpdatedAt = updatedAt
			checkDevice(t, "returned", got, want)
			checkDevice(t, "stored", getDevice(t, s, d.ID), want)
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		_, err := s.UpdateDevice(t.Context(), 1_000_000, iotflow.DeviceUpdate{Status: ptr("active")}, at(0))
		wantCode(t, "UpdateDevice(unknown)", err, iotflow.ENOTFOUND)
	})
}

func testUpdateDeviceName(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	a := createSimple(t, s, "alpha")
	b := createSimple(t, s, "bravo")

	t.Run("taken by another", func(t *testing.T) {
		_, err := s.UpdateDevice(ctx, a.ID, iotflow.DeviceUpdate{Name: ptr("bravo"), Location: ptr("x")}, at(time.Hour))
		wantCode(t, "rename to taken name", err, iotflow.ECONFLICT)
		// Nothing of the failed update is applied.
		checkDevice(t, "after conflict", getDevice(t, s, a.ID), a)
		checkDevice(t, "other device", getDevice(t, s, b.ID), b)
	})
	t.Run("own name", func(t *testing.T) {
		got, err := s.UpdateDevice(ctx, a.ID, iotflow.DeviceUpdate{Name: ptr("alpha")}, at(time.Hour))
		ok(t, "rename to own name", err)
		if got.Name != "alpha" {
			t.Errorf("name %q, want alpha", got.Name)
		}
	})
	t.Run("new name", func(t *testing.T) {
		_, err := s.UpdateDevice(ctx, a.ID, iotflow.DeviceUpdate{Name: ptr("Zulu Ärger")}, at(2*time.Hour))
		ok(t, "rename", err)
		got, err := s.DeviceByName(ctx, "Zulu Ärger")
		ok(t, "DeviceByName(new)", err)
		if got.ID != a.ID {
			t.Errorf("DeviceByName(new) = device %d, want %d", got.ID, a.ID)
		}
		_, err = s.DeviceByName(ctx, "alpha")
		wantCode(t, "DeviceByName(old)", err, iotflow.ENOTFOUND)
		// Search must see the new name, not the old one.
		list, total, err := s.ListDevices(ctx, iotflow.DeviceFilter{Search: "zulu ä", Limit: 10})
		ok(t, "ListDevices", err)
		if total != 1 || len(list) != 1 || list[0].ID != a.ID {
			t.Errorf("search new name: %q total %d, want [Zulu Ärger] 1", deviceNames(list), total)
		}
		_, total, err = s.ListDevices(ctx, iotflow.DeviceFilter{Search: "alpha", Limit: 10})
		ok(t, "ListDevices", err)
		if total != 0 {
			t.Errorf("search old name: total %d, want 0", total)
		}
		// The old name is free again.
		createSimple(t, s, "alpha")
	})
	t.Run("case only", func(t *testing.T) {
		got, err := s.UpdateDevice(ctx, b.ID, iotflow.DeviceUpdate{Name: ptr("BRAVO")}, at(time.Hour))
		ok(t, "rename to other case", err)
		if got.Name != "BRAVO" {
			t.Errorf("name %q, want BRAVO", got.Name)
		}
	})
}

func testDeleteDevice(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	a := device("doomed", "sensor", iotflow.StatusActive, at(0))
	keyA := createDevice(t, s, a)
	b := device("keeper", "sensor", iotflow.StatusActive, at(0))
	keyB := createDevice(t, s, b)
	insert(t, s, reading(a.ID, at(1*time.Second), "sensor"), reading(b.ID, at(2*time.Second), "sensor"),
		reading(a.ID, at(3*time.Second), "sensor"), reading(a.ID, at(4*time.Second), "event"))
	insert(t, s, reading(b.ID, at(5*time.Second), "sensor"))
	ok(t, "TouchDevices", s.TouchDevices(ctx, map[int64]time.Time{a.ID: at(time.Minute), b.ID: at(time.Minute)}))
	before := getDevice(t, s, a.ID)
	keeper := getDevice(t, s, b.ID)

	deleted, err := s.DeleteDevice(ctx, a.ID)
	ok(t, "DeleteDevice", err)
	checkDevice(t, "returned device", deleted, before)
	if deleted.TelemetryCount != 3 || deleted.LastSeen == nil {
		t.Errorf("returned TelemetryCount %d LastSeen %v, want 3 and set", deleted.TelemetryCount, deleted.LastSeen)
	}

	_, err = s.Device(ctx, a.ID)
	wantCode(t, "Device(deleted)", err, iotflow.ENOTFOUND)
	_, err = s.DeviceByName(ctx, "doomed")
	wantCode(t, "DeviceByName(deleted)", err, iotflow.ENOTFOUND)
	_, _, err = s.DeviceByKeyHash(ctx, keyA.Hash)
	wantCode(t, "DeviceByKeyHash(deleted)", err, iotflow.ENOTFOUND)
	st, err := s.ReadingStats(ctx, a.ID)
	ok(t, "ReadingStats", err)
	if st != (iotflow.ReadingStats{}) {
		t.Errorf("ReadingStats(deleted) = %+v, want zero", st)
	}
	wantCount(t, s, iotflow.ReadingFilter{DeviceID: a.ID}, 0)
	wantCount(t, s, iotflow.ReadingFilter{DeviceID: a.ID, DataType: "sensor"}, 0)
	rs, err := s.ListReadings(ctx, iotflow.ReadingFilter{DeviceID: a.ID, Limit: 10})
	ok(t, "ListReadings", err)
	if len(rs) != 0 {
		t.Errorf("ListReadings(deleted) = %d readings, want 0", len(rs))
	}

	// The other device and its data are untouched.
	checkDevice(t, "other device", getDevice(t, s, b.ID), keeper)
	_, gotKey, err := s.DeviceByKeyHash(ctx, keyB.Hash)
	ok(t, "DeviceByKeyHash(other)", err)
	checkKey(t, "other key", gotKey, keyB)
	wantCount(t, s, iotflow.ReadingFilter{}, 2)
	wantCount(t, s, iotflow.ReadingFilter{DataType: "sensor"}, 2)
	rs, err = s.ListReadings(ctx, iotflow.ReadingFilter{Limit: 10})
	ok(t, "ListReadings", err)
	if len(rs) != 2 || rs[0].DeviceID != b.ID || rs[1].DeviceID != b.ID {
		t.Errorf("ListReadings after delete = %v, want the 2 readings of device %d", readingIDs(rs), b.ID)
	}
	dash, err := s.Dashboard(ctx, at(0), at(0))
	ok(t, "Dashboard", err)
	if dash.TotalDevices != 1 || dash.TotalReadings != 2 || dash.RecentReadings != 2 {
		t.Errorf("Dashboard after delete = %+v, want 1 device and 2 readings", dash)
	}

	_, err = s.DeleteDevice(ctx, a.ID)
	wantCode(t, "DeleteDevice(again)", err, iotflow.ENOTFOUND)
	_, err = s.DeleteDevice(ctx, 1_000_000)
	wantCode(t, "DeleteDevice(unknown)", err, iotflow.ENOTFOUND)
}

func testTouchDevices(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	a := createSimple(t, s, "a")
	b := createSimple(t, s, "b")
	c := createSimple(t, s, "c")
	steps := []struct {
		name  string
		seen  map[int64]time.Time
		wantA *time.Time
		wantB *time.Time
	}{
		{"empty map", map[int64]time.Time{}, nil, nil},
		{"nil map", nil, nil, nil},
		{"first sighting", map[int64]time.Time{a.ID: at(time.Minute)}, ptr(at(time.Minute)), nil},
		{"forward", map[int64]time.Time{a.ID: at(2 * time.Minute)}, ptr(at(2 * time.Minute)), nil},
		{"never backwards", map[int64]time.Time{a.ID: at(time.Second)}, ptr(at(2 * time.Minute)), nil},
		{"same time", map[int64]time.Time{a.ID: at(2 * time.Minute)}, ptr(at(2 * time.Minute)), nil},
		{"several, unknown ignored", map[int64]time.Time{
			a.ID: at(time.Second), b.ID: at(time.Hour), 1_000_000: at(time.Hour),
		}, ptr(at(2 * time.Minute)), ptr(at(time.Hour))},
		{"both forward", map[int64]time.Time{a.ID: at(3 * time.Hour), b.ID: at(2 * time.Hour)},
			ptr(at(3 * time.Hour)), ptr(at(2 * time.Hour))},
	}
	for _, st := range steps {
		ok(t, "TouchDevices("+st.name+")", s.TouchDevices(ctx, st.seen))
		gotA, gotB := getDevice(t, s, a.ID), getDevice(t, s, b.ID)
		if !sameTime(gotA.LastSeen, st.wantA) || !sameTime(gotB.LastSeen, st.wantB) {
			t.Errorf("after %s: LastSeen a=%v b=%v, want %v %v", st.name, gotA.LastSeen, gotB.LastSeen, st.wantA, st.wantB)
		}
	}
	// Touching changes nothing else.
	got := getDevice(t, s, c.ID)
	checkDevice(t, "untouched device", got, c)
	want := *a
	want.LastSeen = ptr(at(3 * time.Hour))
	checkDevice(t, "touched device", getDevice(t, s, a.ID), &want)
}

// testMarkOffline: a device whose connection ended is offline from then,
// in its own state and in the dashboard's count, until it is seen after.
func testMarkOffline(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	a := createSimple(t, s, "a")
	b := createSimple(t, s, "b")
	online := func(what string, wantA, wantB bool, wantCount int64) {
		t.Helper()
		now := at(time.Hour + time.Second)
		gotA, gotB := getDevice(t, s, a.ID), getDevice(t, s, b.ID)
		if gotA.IsOnline(now, time.Hour) != wantA || gotB.IsOnline(now, time.Hour) != wantB {
			t.Errorf("%s: online a=%v b=%v, want %v %v (a seen %v, offline %v)", what,
				gotA.IsOnline(now, time.Hour), gotB.IsOnline(now, time.Hour), wantA, wantB, gotA.LastSeen, gotA.OfflineAt)
		}
		dash, err := s.Dashboard(ctx, at(time.Second), at(0))
		ok(t, "Dashboard", err)
		if dash.OnlineDevices != wantCount {
			t.Errorf("%s: the dashboard counts %d online, want %d", what, dash.OnlineDevices, wantCount)
		}
	}
	ok(t, "TouchDevices", s.TouchDevices(ctx, map[int64]time.Time{a.ID: at(time.Hour), b.ID: at(time.Hour)}))
	online("both seen", true, true, 2)
	ok(t, "MarkOffline", s.MarkOffline(ctx, map[int64]time.Time{a.ID: at(time.Hour), 1_000_000: at(time.Hour)}))
	online("a disconnected when last seen", false, true, 1)
	if got := getDevice(t, s, a.ID); !sameTime(got.OfflineAt, ptr(at(time.Hour))) || got.OfflineAt.Location() != time.UTC {
		t.Errorf("OfflineAt %v, want %v in UTC", got.OfflineAt, at(time.Hour))
	}
	ok(t, "MarkOffline", s.MarkOffline(ctx, map[int64]time.Time{a.ID: at(time.Minute)}))
	if got := getDevice(t, s, a.ID); !sameTime(got.OfflineAt, ptr(at(time.Hour))) {
		t.Errorf("OfflineAt moved back to %v", got.OfflineAt)
	}
	ok(t, "MarkOffline", s.MarkOffline(ctx, nil))
	ok(t, "TouchDevices", s.TouchDevices(ctx, map[int64]time.Time{a.ID: at(time.Hour + time.Millisecond)}))
	online("a seen again", true, true, 2)
	want := *b
	want.LastSeen = ptr(at(time.Hour))
	checkDevice(t, "a device never offline", getDevice(t, s, b.ID), &want)
}
