package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

// flakyStore is a real store whose TouchDevices can be made to fail, and
// whose database can be made unreachable for the calls that look up or
// update a device: faults a real SQLite file cannot produce on demand and
// then recover from.
type flakyStore struct {
	iotflow.Store
	mu      sync.Mutex
	fail    bool
	away    bool // DeviceByKeyHash and UpdateDevice fail as with the database down
	touched int
	block   chan struct{} // when set, TouchDevices waits on it
}

var errAway = iotflow.Errorf(iotflow.EUNAVAILABLE, "Service unavailable", "The database is unavailable; try again later.")

func (f *flakyStore) isAway() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.away
}

func (f *flakyStore) DeviceByKeyHash(ctx context.Context, hash string) (*iotflow.Device, *iotflow.APIKey, error) {
	if f.isAway() {
		return nil, nil, errAway
	}
	return f.Store.DeviceByKeyHash(ctx, hash)
}

func (f *flakyStore) UpdateDevice(ctx context.Context, id int64, u iotflow.DeviceUpdate, now time.Time) (*iotflow.Device, error) {
	if f.isAway() {
		return nil, errAway
	}
	return f.Store.UpdateDevice(ctx, id, u, now)
}

func (f *flakyStore) TouchDevices(ctx context.Context, seen map[int64]time.Time) error {
	f.mu.Lock()
	fail, block := f.fail, f.block
	f.touched++
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if fail {
		return errors.New("database is away")
	}
	return f.Store.TouchDevices(ctx, seen)
}

func newService(t *testing.T) (*Service, *flakyStore, *time.Time) {
	fs := &flakyStore{Store: testdb.SQLite(t)}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	svc := New(fs, withDefaults(Options{OnlineTimeout: time.Minute, Now: func() time.Time { return now }}))
	return svc, fs, &now
}

func TestAuthenticateMarksSeenWithoutWriting(t *testing.T) {
	svc, fs, now := newService(t)
	ctx := t.Context()
	d, key, err := svc.Register(ctx, iotflow.NewDevice{Name: "n", DeviceType: "t"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := svc.Authenticate(ctx, key)
	if err != nil || got.ID != d.ID || got.LastSeen == nil || !got.LastSeen.Equal(*now) {
		t.Fatalf("Authenticate: %+v %v", got, err)
	}
	if fs.touched != 0 {
		t.Fatal("authentication wrote to the database")
	}
	stored, _ := fs.Device(ctx, d.ID)
	if stored.LastSeen != nil {
		t.Fatal("last_seen stored before a flush")
	}
	// The admin views see it at once.
	det, err := svc.Device(ctx, d.ID)
	if err != nil || det.LastSeen == nil || !det.IsOnline {
		t.Fatalf("detail: %+v %v", det, err)
	}
	*now = now.Add(2 * time.Minute)
	if det, _ := svc.Device(ctx, d.ID); det.IsOnline {
		t.Fatal("online after the timeout")
	}
}

func TestFlushKeepsTimesWhenTheStoreFails(t *testing.T) {
	svc, fs, now := newService(t)
	ctx := t.Context()
	d, key, _ := svc.Register(ctx, iotflow.NewDevice{Name: "n", DeviceType: "t"})
	if _, err := svc.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	fs.fail = true
	if err := svc.FlushSeen(ctx); err == nil {
		t.Fatal("flush did not report the failure")
	}
	fs.fail = false
	if err := svc.FlushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	stored, _ := fs.Device(ctx, d.ID)
	if stored.LastSeen == nil || !stored.LastSeen.Equal(*now) {
		t.Fatalf("last_seen lost after a failed flush: %v", stored.LastSeen)
	}
	// Nothing pending: no write.
	before := fs.touched
	if err := svc.FlushSeen(ctx); err != nil || fs.touched != before {
		t.Fatalf("an empty flush wrote: %v", err)
	}
}

func TestReadersSeeTimesWhileAFlushIsUnderWay(t *testing.T) {
	svc, fs, _ := newService(t)
	ctx := t.Context()
	d, key, _ := svc.Register(ctx, iotflow.NewDevice{Name: "n", DeviceType: "t"})
	if _, err := svc.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	fs.block = make(chan struct{})
	done := make(chan error)
	go func() { done <- svc.FlushSeen(ctx) }()
	for {
		fs.mu.Lock()
		n := fs.touched
		fs.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	views, _, err := svc.ListDevices(ctx, iotflow.DeviceFilter{Limit: 10})
	if err != nil || len(views) != 1 || views[0].LastSeen == nil {
		t.Fatalf("reader missed last_seen during a flush: %+v %v", views, err)
	}
	close(fs.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = d
}

func TestRunFlusherWritesPeriodically(t *testing.T) {
	svc, fs, _ := newService(t)
	ctx, cancel := context.WithCancel(t.Context())
	d, key, _ := svc.Register(ctx, iotflow.NewDevice{Name: "n", DeviceType: "t"})
	done := make(chan struct{})
	go func() { svc.RunFlusher(ctx, 10*time.Millisecond); close(done) }()
	if _, err := svc.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		stored, _ := fs.Device(context.Background(), d.ID)
		if stored.LastSeen != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flusher did not write last_seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunFlusher did not return when its context ended")
	}
}

func TestDeletedDeviceIsForgotten(t *testing.T) {
	svc, fs, _ := newService(t)
	ctx := t.Context()
	d, key, _ := svc.Register(ctx, iotflow.NewDevice{Name: "n", DeviceType: "t"})
	svc.Authenticate(ctx, key)
	if _, err := svc.DeleteDevice(ctx, &AdminIdentity{TokenName: "test"}, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, key); iotflow.ErrorCode(err) != iotflow.EUNAUTHORIZED {
		t.Fatalf("deleted device's key: %v", err)
	}
	if err := svc.FlushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	if fs.touched != 0 {
		t.Fatal("flushed a deleted device")
	}
}

func TestAdminTokens(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := t.Context()
	first, err := svc.EnsureAdminToken(ctx)
	if err != nil || first == "" {
		t.Fatalf("EnsureAdminToken: %q %v", first, err)
	}
	if again, err := svc.EnsureAdminToken(ctx); err != nil || again != "" {
		t.Fatalf("second EnsureAdminToken minted %q %v", again, err)
	}
	who, err := svc.AuthenticateAdmin(ctx, first)
	if err != nil || who.TokenName != "initial" {
		t.Fatalf("AuthenticateAdmin: %+v %v", who, err)
	}
	for _, bad := range []string{"", "iotadm_nope", first[:len(first)-1]} {
		if _, err := svc.AuthenticateAdmin(ctx, bad); iotflow.ErrorCode(err) != iotflow.EUNAUTHORIZED {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	if _, _, err := svc.CreateAdminToken(ctx, ""); iotflow.ErrorCode(err) != iotflow.EINVALID {
		t.Errorf("empty name: %v", err)
	}
}

// TestUpdatesAndTheAuthCache: a device's cached key is dropped when an
// update of the device succeeds or finds it gone, and kept when the
// database could not be reached, so that what needs no database (a
// heartbeat) keeps working through an outage.
func TestUpdatesAndTheAuthCache(t *testing.T) {
	svc, fs, _ := newService(t)
	ctx := t.Context()
	d, key, err := svc.Register(ctx, iotflow.NewDevice{Name: "n", DeviceType: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	roof, inactive := "roof", iotflow.StatusInactive

	fs.mu.Lock()
	fs.away = true
	fs.mu.Unlock()
	if _, err := svc.UpdateOwnConfig(ctx, d, iotflow.DeviceUpdate{Location: &roof}); iotflow.ErrorCode(err) != iotflow.EUNAVAILABLE {
		t.Fatalf("update with the database away: %v", err)
	}
	if _, err := svc.Authenticate(ctx, key); err != nil {
		t.Fatalf("after an update that could not reach the database, the cached key: %v", err)
	}
	fs.mu.Lock()
	fs.away = false
	fs.mu.Unlock()

	if _, err := svc.UpdateOwnConfig(ctx, d, iotflow.DeviceUpdate{Status: &inactive}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, key); iotflow.ErrorCode(err) != iotflow.EFORBIDDEN {
		t.Fatalf("after the device deactivated itself: %v, want %s at once", err, iotflow.EFORBIDDEN)
	}

	// Deleted behind this node's back (another node): an update finds it
	// gone, and its key goes with it.
	other, otherKey, err := svc.Register(ctx, iotflow.NewDevice{Name: "o", DeviceType: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, otherKey); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Store.DeleteDevice(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UpdateOwnConfig(ctx, other, iotflow.DeviceUpdate{Location: &roof}); iotflow.ErrorCode(err) != iotflow.ENOTFOUND {
		t.Fatalf("update of a device deleted elsewhere: %v", err)
	}
	if _, err := svc.Authenticate(ctx, otherKey); iotflow.ErrorCode(err) != iotflow.EUNAUTHORIZED {
		t.Fatalf("key of a device found deleted: %v, want %s", err, iotflow.EUNAUTHORIZED)
	}
}

// TestReadingsBeforeTheRetentionWindowAreRefused: with a retention, a
// reading too old to be kept is a 400 naming its timestamp, alone in a
// batch.
func TestReadingsBeforeTheRetentionWindowAreRefused(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 30, 0, 0, time.UTC)
	svc := New(testdb.SQLite(t), withDefaults(Options{Retention: 48 * time.Hour, Now: func() time.Time { return now }}))
	d, _, err := svc.Register(t.Context(), iotflow.NewDevice{Name: "kept", DeviceType: "sensor"})
	if err != nil {
		t.Fatal(err)
	}
	old := json.RawMessage(fmt.Sprint(now.Add(-49 * time.Hour).UnixMilli()))
	if _, err := svc.SubmitReading(t.Context(), d, &ReadingInput{Data: json.RawMessage(`{"t":1}`), Timestamp: old}); iotflow.ErrorCode(err) != iotflow.EINVALID ||
		!strings.Contains(iotflow.ErrorMessage(err), "'timestamp' lies before the retention window") {
		t.Fatalf("a reading past the retention: %v", err)
	}
	recent := json.RawMessage(fmt.Sprint(now.Add(-47 * time.Hour).UnixMilli()))
	results, err := svc.SubmitBatch(t.Context(), d, []json.RawMessage{
		json.RawMessage(`{"data":{"t":1},"timestamp":` + string(old) + `}`),
		json.RawMessage(`{"data":{"t":1},"timestamp":` + string(recent) + `}`),
	})
	if err != nil || results[0].Err == nil || !strings.Contains(iotflow.ErrorMessage(results[0].Err), "records[0].timestamp") || results[1].Err != nil {
		t.Fatalf("batch: %+v, %v", results, err)
	}
}
