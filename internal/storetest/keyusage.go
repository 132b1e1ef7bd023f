package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// use is a KeyUsage of count requests, the last at last.
func use(count int64, last time.Time) iotflow.KeyUsage {
	return iotflow.KeyUsage{Count: count, LastUsed: last}
}

func testRecordKeyUsage(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	d := device("used", "sensor", iotflow.StatusActive, at(0))
	k1 := createDevice(t, s, d)
	k2 := addKey(t, s, d.ID, at(time.Second), nil)
	other := device("other", "sensor", iotflow.StatusActive, at(0))
	k3 := createDevice(t, s, other)
	type state struct {
		count int64
		last  *time.Time
	}
	steps := []struct {
		name       string
		usage      map[int64]iotflow.KeyUsage
		k1, k2, k3 state
	}{
		{"empty map", map[int64]iotflow.KeyUsage{}, state{}, state{}, state{}},
		{"nil map", nil, state{}, state{}, state{}},
		{"first use", map[int64]iotflow.KeyUsage{k1.ID: use(3, at(time.Minute))},
			state{3, ptr(at(time.Minute))}, state{}, state{}},
		{"zero time on an unused key", map[int64]iotflow.KeyUsage{k2.ID: use(1, time.Time{})},
			state{3, ptr(at(time.Minute))}, state{1, nil}, state{}},
		{"adds up", map[int64]iotflow.KeyUsage{k1.ID: use(2, at(2*time.Minute)), k2.ID: use(1, at(time.Minute))},
			state{5, ptr(at(2 * time.Minute))}, state{2, ptr(at(time.Minute))}, state{}},
		{"never backwards", map[int64]iotflow.KeyUsage{k1.ID: use(1, at(time.Second))},
			state{6, ptr(at(2 * time.Minute))}, state{2, ptr(at(time.Minute))}, state{}},
		{"zero time keeps the stored one", map[int64]iotflow.KeyUsage{k1.ID: use(1, time.Time{})},
			state{7, ptr(at(2 * time.Minute))}, state{2, ptr(at(time.Minute))}, state{}},
		{"several devices, unknown ignored", map[int64]iotflow.KeyUsage{
			k2.ID: use(4, at(time.Hour)), k3.ID: use(10, at(5*time.Minute)), 1_000_000: use(1, at(time.Hour)),
		}, state{7, ptr(at(2 * time.Minute))}, state{6, ptr(at(time.Hour))}, state{10, ptr(at(5 * time.Minute))}},
	}
	for _, st := range steps {
		ok(t, "RecordKeyUsage("+st.name+")", s.RecordKeyUsage(ctx, st.usage))
		for _, c := range []struct {
			key  *iotflow.APIKey
			want state
		}{{k1, st.k1}, {k2, st.k2}, {k3, st.k3}} {
			got := storedKey(t, s, c.key.Hash)
			if got.UsageCount != c.want.count || !sameTime(got.LastUsedAt, c.want.last) {
				t.Errorf("after %s: key %d usage %d last used %v, want %d %v",
					st.name, c.key.ID, got.UsageCount, got.LastUsedAt, c.want.count, c.want.last)
			}
		}
	}
	// Recording usage changes nothing else.
	want := *k1
	want.UsageCount, want.LastUsedAt = 7, ptr(at(2*time.Minute))
	checkKey(t, "used key", storedKey(t, s, k1.Hash), &want)
	checkDevice(t, "device of used keys", getDevice(t, s, d.ID), d)
}

// testConcurrentKeyUsage flushes key usage from several goroutines, as
// several nodes do, on overlapping keys while readings of the same devices
// are stored: no call may fail or deadlock, and no count may be lost.
func testConcurrentKeyUsage(t *testing.T, s iotflow.Store) {
	const workers, rounds, perFlush = 8, 15, 3
	var devices []*iotflow.Device
	var keys []*iotflow.APIKey
	for _, name := range []string{"one", "two"} {
		d := device(name, "sensor", iotflow.StatusActive, at(0))
		keys = append(keys, createDevice(t, s, d))
		for i := range 2 {
			keys = append(keys, addKey(t, s, d.ID, at(time.Duration(i+1)*time.Second), nil))
		}
		devices = append(devices, d)
	}
	// flush returns what worker w flushes in round i: perFlush keys spread
	// over both devices, overlapping with other workers' flushes.
	flush := func(w, i int) map[int64]iotflow.KeyUsage {
		u := make(map[int64]iotflow.KeyUsage)
		for j := range perFlush {
			k := keys[(w+i+2*j)%len(keys)]
			u[k.ID] = iotflow.KeyUsage{Count: int64(w + 1), LastUsed: at(time.Duration(w*rounds+i) * time.Millisecond)}
		}
		return u
	}
	wantCount := make(map[int64]int64)
	wantLast := make(map[int64]time.Time)
	for w := range workers {
		for i := range rounds {
			for id, u := range flush(w, i) {
				wantCount[id] += u.Count
				if u.LastUsed.After(wantLast[id]) {
					wantLast[id] = u.LastUsed
				}
			}
		}
	}

	// A deadlock that the database does not detect fails here, not at the
	// test binary's timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				if err := s.RecordKeyUsage(ctx, flush(w, i)); err != nil {
					t.Errorf("worker %d round %d: RecordKeyUsage: %v", w, i, err)
					return
				}
				// Both devices in one batch, in alternating order.
				a, b := devices[0], devices[1]
				if (w+i)%2 == 1 {
					a, b = b, a
				}
				ts := at(time.Duration(w*rounds+i) * time.Millisecond)
				err := s.InsertReadings(ctx, []*iotflow.Reading{reading(a.ID, ts, "sensor"), reading(b.ID, ts, "sensor")})
				if err != nil {
					t.Errorf("worker %d round %d: InsertReadings: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	for _, d := range devices {
		got, err := s.APIKeys(t.Context(), d.ID)
		ok(t, "APIKeys", err)
		for _, k := range got {
			if k.UsageCount != wantCount[k.ID] || k.LastUsedAt == nil || !k.LastUsedAt.Equal(wantLast[k.ID]) {
				t.Errorf("key %d: usage %d last used %v, want %d %v",
					k.ID, k.UsageCount, k.LastUsedAt, wantCount[k.ID], wantLast[k.ID])
			}
		}
		if n := getDevice(t, s, d.ID).TelemetryCount; n != workers*rounds {
			t.Errorf("TelemetryCount of %s = %d, want %d", d.Name, n, workers*rounds)
		}
	}
}
