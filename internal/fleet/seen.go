package fleet

import (
	"context"
	"sync"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// seenTracker keeps the last time each device was seen in memory and writes
// them to the store in batches, so that an authenticated request costs no
// database write. Readers merge its values over what the store returns, so
// nobody on this node sees a stale last_seen.
type seenTracker struct {
	store iotflow.Store

	mu       sync.Mutex
	pending  map[int64]time.Time // marked since the last flush began
	flushing map[int64]time.Time // handed to the store, not yet committed
	flushMu  sync.Mutex          // one flush at a time
}

func newSeenTracker(store iotflow.Store) *seenTracker {
	return &seenTracker{store: store, pending: map[int64]time.Time{}}
}

// mark records that device id was seen at t.
func (s *seenTracker) mark(id int64, t time.Time) {
	s.mu.Lock()
	if prev, ok := s.pending[id]; !ok || t.After(prev) {
		s.pending[id] = t
	}
	s.mu.Unlock()
}

// forget drops what is kept for a deleted device.
func (s *seenTracker) forget(id int64) {
	s.mu.Lock()
	delete(s.pending, id)
	delete(s.flushing, id)
	s.mu.Unlock()
}

// overlay sets d.LastSeen to the later of the stored and the kept time.
func (s *seenTracker) overlay(d *iotflow.Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range []map[int64]time.Time{s.pending, s.flushing} {
		if t, ok := m[d.ID]; ok && (d.LastSeen == nil || t.After(*d.LastSeen)) {
			t := t
			d.LastSeen = &t
		}
	}
}

// flush writes every kept time to the store. On failure the times are kept
// for the next attempt.
func (s *seenTracker) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()

	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.flushing, s.pending = s.pending, map[int64]time.Time{}
	batch := s.flushing
	s.mu.Unlock()

	err := s.store.TouchDevices(ctx, batch)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		for id, t := range batch {
			if prev, ok := s.pending[id]; !ok || t.After(prev) {
				s.pending[id] = t
			}
		}
	}
	s.flushing = nil
	return err
}
