package storetest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func testDashboardEmpty(t *testing.T, s iotflow.Store) {
	got, err := s.Dashboard(t.Context(), at(0), at(0))
	ok(t, "Dashboard", err)
	if got.TotalDevices != 0 || got.ActiveDevices != 0 || got.InactiveDevices != 0 || got.OnlineDevices != 0 ||
		got.TotalReadings != 0 || got.RecentReadings != 0 || len(got.DeviceTypes) != 0 {
		t.Errorf("Dashboard of an empty store = %+v, want zeros", got)
	}
}

func testDashboard(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	now := at(24 * time.Hour)
	onlineSince, recentSince := now.Add(-5*time.Minute), now.Add(-time.Hour)
	fixtures := []struct {
		name, deviceType, status string
		lastSeen                 *time.Time
	}{
		{"a1", "sensor", iotflow.StatusActive, ptr(now.Add(-time.Minute))},
		{"a2", "sensor", iotflow.StatusActive, nil},
		{"a3", "thermostat", iotflow.StatusActive, ptr(now.Add(-2 * time.Minute))},
		{"a4", "sensor", iotflow.StatusActive, ptr(now.Add(-6 * time.Minute))},
		{"i1", "camera", iotflow.StatusInactive, ptr(now.Add(-10 * time.Minute))},
		{"i2", "gateway", iotflow.StatusInactive, nil},
		{"m1", "camera", iotflow.StatusMaintenance, ptr(onlineSince)}, // at onlineSince: online
	}
	seen := make(map[int64]time.Time)
	var a1 *iotflow.Device
	for _, f := range fixtures {
		d := device(f.name, f.deviceType, f.status, at(0))
		createDevice(t, s, d)
		if f.lastSeen != nil {
			seen[d.ID] = *f.lastSeen
		}
		if a1 == nil {
			a1 = d
		}
	}
	ok(t, "TouchDevices", s.TouchDevices(ctx, seen))
	// Received now, so only Timestamp can tell recent from old.
	var rs []*iotflow.Reading
	for _, ts := range []time.Time{now.Add(-2 * time.Hour), now.Add(-90 * time.Minute), recentSince,
		now.Add(-time.Minute), now} {
		r := reading(a1.ID, ts, "sensor")
		r.ReceivedAt = now
		rs = append(rs, r)
	}
	insert(t, s, rs...)

	got, err := s.Dashboard(ctx, onlineSince, recentSince)
	ok(t, "Dashboard", err)
	want := iotflow.DashboardStats{
		TotalDevices: 7, ActiveDevices: 4, InactiveDevices: 2, MaintenanceDevices: 1, OnlineDevices: 3,
		TotalReadings: 5, RecentReadings: 3,
		DeviceTypes: []iotflow.TypeCount{
			{Type: "sensor", Count: 3}, {Type: "camera", Count: 2},
			{Type: "gateway", Count: 1}, {Type: "thermostat", Count: 1},
		},
	}
	if got.TotalDevices != want.TotalDevices || got.ActiveDevices != want.ActiveDevices ||
		got.InactiveDevices != want.InactiveDevices || got.MaintenanceDevices != want.MaintenanceDevices ||
		got.OnlineDevices != want.OnlineDevices ||
		got.TotalReadings != want.TotalReadings || got.RecentReadings != want.RecentReadings ||
		!slices.Equal(got.DeviceTypes, want.DeviceTypes) {
		t.Errorf("Dashboard =\n %+v\nwant\n %+v", *got, want)
	}
}

func testAdminTokens(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	n, err := s.CountAdminTokens(ctx)
	ok(t, "CountAdminTokens", err)
	if n != 0 {
		t.Errorf("CountAdminTokens of an empty store = %d, want 0", n)
	}

	token := func(name string) *iotflow.AdminToken {
		_, hash, prefix, err := iotflow.NewSecret(iotflow.AdminTokenPrefix)
		ok(t, "NewSecret", err)
		return &iotflow.AdminToken{Name: name, Prefix: prefix, Hash: hash, CreatedAt: at(time.Minute)}
	}
	first, second := token("ops"), token("ci")
	ok(t, "CreateAdminToken", s.CreateAdminToken(ctx, first))
	ok(t, "CreateAdminToken", s.CreateAdminToken(ctx, second))
	if first.ID == 0 || second.ID == 0 || first.ID == second.ID {
		t.Fatalf("token IDs %d and %d, want distinct and set", first.ID, second.ID)
	}

	for _, want := range []*iotflow.AdminToken{first, second} {
		got, err := s.AdminTokenByHash(ctx, want.Hash)
		ok(t, "AdminTokenByHash", err)
		if got.ID != want.ID || got.Name != want.Name || got.Prefix != want.Prefix || got.Hash != want.Hash ||
			!got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("AdminTokenByHash = %+v, want %+v", got, want)
		}
		checkUTC(t, "token CreatedAt", got.CreatedAt)
	}

	err = s.CreateAdminToken(ctx, token("ops"))
	wantCode(t, "CreateAdminToken(duplicate name)", err, iotflow.ECONFLICT)
	_, err = s.AdminTokenByHash(ctx, iotflow.HashSecret("unknown"))
	wantCode(t, "AdminTokenByHash(unknown)", err, iotflow.ENOTFOUND)

	n, err = s.CountAdminTokens(ctx)
	ok(t, "CountAdminTokens", err)
	if n != 2 {
		t.Errorf("CountAdminTokens = %d, want 2", n)
	}
}

func testCancelledContext(t *testing.T, s iotflow.Store) {
	d := device("existing", "sensor", iotflow.StatusActive, at(0))
	dKey := createDevice(t, s, d)
	key := apiKey(t, at(0))
	further := apiKey(t, at(0))
	further.DeviceID = d.ID
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()

	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"CreateDevice", func(ctx context.Context) error {
			return s.CreateDevice(ctx, device("new", "sensor", "active", at(0)), key)
		}},
		{"Device", func(ctx context.Context) error { _, err := s.Device(ctx, d.ID); return err }},
		{"DeviceByName", func(ctx context.Context) error { _, err := s.DeviceByName(ctx, d.Name); return err }},
		{"DeviceByKeyHash", func(ctx context.Context) error { _, _, err := s.DeviceByKeyHash(ctx, key.Hash); return err }},
		{"ListDevices", func(ctx context.Context) error {
			_, _, err := s.ListDevices(ctx, iotflow.DeviceFilter{Limit: 10})
			return err
		}},
		{"UpdateDevice", func(ctx context.Context) error {
			_, err := s.UpdateDevice(ctx, d.ID, iotflow.DeviceUpdate{Name: ptr("changed")}, at(time.Hour))
			return err
		}},
		{"DeleteDevice", func(ctx context.Context) error { _, err := s.DeleteDevice(ctx, d.ID); return err }},
		{"TouchDevices", func(ctx context.Context) error {
			return s.TouchDevices(ctx, map[int64]time.Time{d.ID: at(time.Hour)})
		}},
		{"InsertReadings", func(ctx context.Context) error {
			return s.InsertReadings(ctx, []*iotflow.Reading{reading(d.ID, at(0), "sensor")})
		}},
		{"CreateAPIKey", func(ctx context.Context) error { return s.CreateAPIKey(ctx, further) }},
		{"APIKeys", func(ctx context.Context) error { _, err := s.APIKeys(ctx, d.ID); return err }},
		{"RevokeAPIKey", func(ctx context.Context) error {
			_, err := s.RevokeAPIKey(ctx, d.ID, dKey.ID, at(time.Hour))
			return err
		}},
		{"ExpireAPIKey", func(ctx context.Context) error {
			_, err := s.ExpireAPIKey(ctx, d.ID, dKey.ID, at(time.Hour))
			return err
		}},
		{"RecordKeyUsage", func(ctx context.Context) error {
			return s.RecordKeyUsage(ctx, map[int64]iotflow.KeyUsage{dKey.ID: {Count: 1, LastUsed: at(time.Hour)}})
		}},
		{"ListReadings", func(ctx context.Context) error {
			_, err := s.ListReadings(ctx, iotflow.ReadingFilter{Limit: 10})
			return err
		}},
		{"CountReadings", func(ctx context.Context) error { _, err := s.CountReadings(ctx, iotflow.ReadingFilter{}); return err }},
		{"ReadingStats", func(ctx context.Context) error { _, err := s.ReadingStats(ctx, d.ID); return err }},
		{"Dashboard", func(ctx context.Context) error { _, err := s.Dashboard(ctx, at(0), at(0)); return err }},
		{"CreateAdminToken", func(ctx context.Context) error {
			return s.CreateAdminToken(ctx, &iotflow.AdminToken{Name: "t", Prefix: "p", Hash: "h", CreatedAt: at(0)})
		}},
		{"AdminTokenByHash", func(ctx context.Context) error { _, err := s.AdminTokenByHash(ctx, "h"); return err }},
		{"CountAdminTokens", func(ctx context.Context) error { _, err := s.CountAdminTokens(ctx); return err }},
		{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(cancelled); err == nil {
				t.Error("cancelled context: no error")
			}
			if err := c.call(expired); err == nil {
				t.Error("expired deadline: no error")
			}
		})
	}

	// None of the refused writes happened.
	checkDevice(t, "device after refused writes", getDevice(t, s, d.ID), d)
	checkKeys(t, s, d.ID, dKey)
	wantCount(t, s, iotflow.ReadingFilter{}, 0)
	n, err := s.CountAdminTokens(t.Context())
	ok(t, "CountAdminTokens", err)
	if n != 0 {
		t.Errorf("CountAdminTokens = %d, want 0", n)
	}
}

func testConcurrentInserts(t *testing.T, s iotflow.Store) {
	const writers, batches = 8, 50
	devices := []*iotflow.Device{createSimple(t, s, "one"), createSimple(t, s, "two")}
	ctx := t.Context()
	done := make(chan struct{})
	var writing, querying sync.WaitGroup
	ids := make([][]int64, writers)
	for w := range writers {
		writing.Go(func() {
			for i := range batches {
				r := reading(devices[(w+i)%2].ID, at(time.Duration(w*batches+i)*time.Millisecond), "sensor")
				if err := s.InsertReadings(ctx, []*iotflow.Reading{r}); err != nil {
					t.Errorf("writer %d batch %d: %v", w, i, err)
					return
				}
				ids[w] = append(ids[w], r.ID)
			}
		})
	}
	// Readers run beside the writers; they must neither fail nor block them.
	for range 2 {
		querying.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.CountReadings(ctx, iotflow.ReadingFilter{DataType: "sensor"}); err != nil {
					t.Errorf("concurrent CountReadings: %v", err)
					return
				}
				if _, err := s.ListReadings(ctx, iotflow.ReadingFilter{Limit: 5}); err != nil {
					t.Errorf("concurrent ListReadings: %v", err)
					return
				}
			}
		})
	}
	writing.Wait()
	close(done)
	querying.Wait()

	total := int64(writers * batches)
	wantCount(t, s, iotflow.ReadingFilter{}, total)
	wantCount(t, s, iotflow.ReadingFilter{DataType: "sensor"}, total)
	for _, d := range devices {
		wantCount(t, s, iotflow.ReadingFilter{DeviceID: d.ID}, total/2)
		if n := getDevice(t, s, d.ID).TelemetryCount; n != total/2 {
			t.Errorf("TelemetryCount of %s = %d, want %d", d.Name, n, total/2)
		}
	}
	seen := make(map[int64]bool)
	for _, w := range ids {
		for _, id := range w {
			if id == 0 || seen[id] {
				t.Fatalf("reading ID %d is zero or given twice", id)
			}
			seen[id] = true
		}
	}
}

// testDeleteDeviceWhileWriting deletes a device while batches of its
// readings are being inserted: every insert either commits before the
// delete (and its readings go with the device) or fails with ENOTFOUND;
// no reading outlives its device, and the fleet-wide counts stay exact.
func testDeleteDeviceWhileWriting(t *testing.T, s iotflow.Store) {
	doomed, kept := createSimple(t, s, "doomed"), createSimple(t, s, "kept")
	ctx := t.Context()
	var writing sync.WaitGroup
	var keptStored atomic.Int64
	started := make(chan struct{})
	for w := range 4 {
		writing.Go(func() {
			for i := 0; ; i++ {
				if w == 0 && i == 3 {
					close(started)
				}
				ts := at(time.Duration(w*1000+i) * time.Millisecond)
				rs := []*iotflow.Reading{reading(doomed.ID, ts, "sensor"), reading(doomed.ID, ts, "sensor")}
				err := s.InsertReadings(ctx, rs)
				if iotflow.ErrorCode(err) == iotflow.ENOTFOUND {
					return
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if i > 200 {
					t.Errorf("writer %d: still writing a deleted device after %d batches", w, i)
					return
				}
				insert(t, s, reading(kept.ID, ts, "sensor"))
				keptStored.Add(1)
			}
		})
	}
	<-started
	_, err := s.DeleteDevice(ctx, doomed.ID)
	ok(t, "DeleteDevice", err)
	writing.Wait()

	wantCount(t, s, iotflow.ReadingFilter{DeviceID: doomed.ID}, 0)
	wantCount(t, s, iotflow.ReadingFilter{}, keptStored.Load())
	st, err := s.Dashboard(ctx, at(-time.Hour), at(-48*time.Hour))
	ok(t, "Dashboard", err)
	if st.TotalReadings != keptStored.Load() || st.RecentReadings != keptStored.Load() {
		t.Errorf("Dashboard counts %d total, %d recent; want %d: the deleted device's readings must be gone from both",
			st.TotalReadings, st.RecentReadings, keptStored.Load())
	}
}
