package series

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// Roller keeps the rollups: it reads the readings above the store's
// watermark, a bounded number at a time, aggregates each key's numeric
// values per device and UTC minute and hour, notes each key's newest
// value, and applies that with the watermark's move in one transaction.
// Off the write path, a reading costs it one read and a share of an upsert
// per key and bucket, whatever the load's shape. Any number of nodes may
// run one: a pass that finds the watermark moved is discarded.
type Roller struct {
	Store iotflow.Store
	// Batch is the most readings one pass takes.
	Batch int
	// Every is the pause between passes once the rollups have caught up.
	Every time.Duration
	Log   *slog.Logger

	rolled atomic.Int64 // readings taken in since start
	behind atomic.Bool  // the last pass was full: more are waiting
}

// Rolled is how many readings the passes of this roller have taken in.
func (r *Roller) Rolled() int64 { return r.rolled.Load() }

// Behind reports whether the last pass found more readings than it took.
func (r *Roller) Behind() bool { return r.behind.Load() }

// Run rolls up until ctx ends.
func (r *Roller) Run(ctx context.Context) {
	failing := false
	for {
		n, err := r.Pass(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && iotflow.ErrorCode(err) != iotflow.ECONFLICT:
			if !failing {
				r.Log.Warn("rolling up telemetry failed; retrying", "err", err)
			}
			failing = true
		case failing:
			r.Log.Info("rolling up telemetry works again")
			failing = false
		}
		if n == r.Batch && err == nil {
			continue // behind: at once again
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.Every):
		}
	}
}

// Pass rolls up at most Batch readings and returns how many it took in.
func (r *Roller) Pass(ctx context.Context) (int, error) {
	from, upTo, rs, err := r.Store.UnrolledReadings(ctx, r.Batch)
	if err != nil {
		return 0, err
	}
	if upTo == from {
		r.behind.Store(false)
		return 0, nil
	}
	u := Rollups(rs)
	u.From, u.UpTo = from, upTo
	if err := r.Store.ApplyRollups(ctx, u); err != nil {
		return 0, err
	}
	r.rolled.Add(int64(len(rs)))
	r.behind.Store(len(rs) == r.Batch)
	return len(rs), nil
}

// Rollups aggregates the values of rs into minute and hour rollups and key
// states, one of each per device, key and bucket.
func Rollups(rs []*iotflow.Reading) iotflow.RollupUpdate {
	type rollupKey struct {
		device int64
		key    string
		width  time.Duration
		bucket int64
	}
	type stateKey struct {
		device int64
		key    string
	}
	aggs := map[rollupKey]*iotflow.Agg{}
	var order []rollupKey
	states := map[stateKey]*iotflow.KeyState{}
	var stateOrder []stateKey
	for _, rd := range rs {
		at := rd.Timestamp.UTC()
		iotflow.ReadingValues(rd.Payload, rd.Metadata, func(v iotflow.Value) {
			sk := stateKey{rd.DeviceID, v.Key}
			st := &iotflow.KeyState{DeviceID: rd.DeviceID, Key: v.Key, Kind: v.Kind, At: at, ReadingID: rd.ID, Value: v.JSON}
			if cur, ok := states[sk]; !ok {
				states[sk] = st
				stateOrder = append(stateOrder, sk)
			} else if st.Newer(cur) {
				*cur = *st
			}
			if !v.Kind.Numeric() {
				return
			}
			for _, w := range []time.Duration{iotflow.RollupMinute, iotflow.RollupHour} {
				k := rollupKey{rd.DeviceID, v.Key, w, at.Truncate(w).UnixMicro()}
				a, ok := aggs[k]
				if !ok {
					a = &iotflow.Agg{}
					aggs[k] = a
					order = append(order, k)
				}
				a.Add(v.Num, at, rd.ID)
			}
		})
	}
	u := iotflow.RollupUpdate{Rollups: make([]iotflow.Rollup, len(order)), Keys: make([]iotflow.KeyState, len(stateOrder))}
	for i, k := range order {
		u.Rollups[i] = iotflow.Rollup{DeviceID: k.device, Key: k.key, Width: k.width, Bucket: time.UnixMicro(k.bucket).UTC(), Agg: *aggs[k]}
	}
	for i, k := range stateOrder {
		st := *states[k]
		st.Value = append([]byte(nil), st.Value...) // not the reading's buffer
		u.Keys[i] = st
	}
	return u
}
