package fleet

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// seenTracker keeps the last time each device was seen, and when each
// device's connection last ended, in memory and writes them to the store
// in batches, so that an authenticated request (or a disconnect) costs no
// database write. Readers merge its values over what the store returns,
// so nobody on this node sees a stale last_seen.
type seenTracker struct {
	store iotflow.Store

	mu      sync.Mutex
	seen    kept
	offline kept
	flushMu sync.Mutex // one flush at a time
}

// kept is a map of times by device, and the part of it being written.
type kept struct {
	pending  map[int64]time.Time // marked since the last flush began
	flushing map[int64]time.Time // handed to the store, not yet committed
}

func (k *kept) mark(id int64, t time.Time) {
	if prev, ok := k.pending[id]; !ok || t.After(prev) {
		k.pending[id] = t
	}
}

// latest moves *p to the later of *p and the kept time of id.
func (k *kept) latest(id int64, p **time.Time) {
	for _, m := range []map[int64]time.Time{k.pending, k.flushing} {
		if t, ok := m[id]; ok && (*p == nil || t.After(**p)) {
			t := t
			*p = &t
		}
	}
}

// take hands the pending times to a flush.
func (k *kept) take() map[int64]time.Time {
	k.flushing, k.pending = k.pending, map[int64]time.Time{}
	return k.flushing
}

// done ends a flush of batch; on failure its times are kept for the next.
func (k *kept) done(batch map[int64]time.Time, failed bool) {
	if failed {
		for id, t := range batch {
			k.mark(id, t)
		}
	}
	k.flushing = nil
}

func newSeenTracker(store iotflow.Store) *seenTracker {
	return &seenTracker{store: store,
		seen: kept{pending: map[int64]time.Time{}}, offline: kept{pending: map[int64]time.Time{}}}
}

// mark records that device id was seen at t.
func (s *seenTracker) mark(id int64, t time.Time) {
	s.mu.Lock()
	s.seen.mark(id, t)
	s.mu.Unlock()
}

// markOffline records that device id was seen at t and its connection
// ended then.
func (s *seenTracker) markOffline(id int64, t time.Time) {
	s.mu.Lock()
	s.seen.mark(id, t)
	s.offline.mark(id, t)
	s.mu.Unlock()
}

// forget drops what is kept for a deleted device.
func (s *seenTracker) forget(id int64) {
	s.mu.Lock()
	for _, k := range []*kept{&s.seen, &s.offline} {
		delete(k.pending, id)
		delete(k.flushing, id)
	}
	s.mu.Unlock()
}

// overlay sets d.LastSeen and d.OfflineAt to the later of the stored and
// the kept times.
func (s *seenTracker) overlay(d *iotflow.Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen.latest(d.ID, &d.LastSeen)
	s.offline.latest(d.ID, &d.OfflineAt)
}

// flush writes every kept time to the store. On failure the times are kept
// for the next attempt.
func (s *seenTracker) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()

	s.mu.Lock()
	if len(s.seen.pending) == 0 && len(s.offline.pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	seen, offline := s.seen.take(), s.offline.take()
	s.mu.Unlock()

	seenErr := s.store.TouchDevices(ctx, seen)
	var offlineErr error
	if len(offline) > 0 {
		offlineErr = s.store.MarkOffline(ctx, offline)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen.done(seen, seenErr != nil)
	s.offline.done(offline, offlineErr != nil)
	return errors.Join(seenErr, offlineErr)
}
