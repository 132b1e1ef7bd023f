package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"
)

// sweepEvery is how often Memory drops the buckets that are full again. A
// bucket therefore outlives its last use by at most its Period plus this.
const sweepEvery = time.Minute

// Memory is an in-process GCRA limiter, safe for concurrent use. Its size is
// bounded by the keys used within the last Period (plus sweepEvery): a
// bucket that has refilled is the same as no bucket, so it is forgotten.
type Memory struct {
	now  func() time.Time
	base time.Time // instants are kept as offsets from base

	mu    sync.Mutex
	tats  map[string]time.Duration // theoretical arrival time of each bucket
	swept time.Duration
}

// NewMemory returns an empty in-memory limiter; it takes WithClock.
func NewMemory(opts ...Option) *Memory {
	o := newOptions(opts)
	return &Memory{now: o.now, base: o.now(), tats: make(map[string]time.Duration)}
}

// AllowN implements Limiter.
func (m *Memory) AllowN(ctx context.Context, key string, l Limit, n int) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := l.check(n); err != nil {
		return Result{}, err
	}
	k := bucket(l, key)

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().Sub(m.base)
	if now-m.swept >= sweepEvery {
		m.sweep(now)
	}
	tat, ok := m.tats[k]
	if !ok {
		tat = now
	}
	res, tat := gcra(l, n, now, tat)
	if res.Allowed {
		if tat > now {
			m.tats[k] = tat
		} else {
			delete(m.tats, k)
		}
	}
	return res, nil
}

// sweep forgets every bucket that is full again. The caller holds m.mu.
func (m *Memory) sweep(now time.Duration) {
	for k, tat := range m.tats {
		if tat <= now {
			delete(m.tats, k)
		}
	}
	m.swept = now
}

// gcra applies n events at now to a bucket whose theoretical arrival time
// is tat, computing exactly what redis_rate's Lua script computes, and
// returns the result and the new tat (unchanged on a denial).
func gcra(l Limit, n int, now, tat time.Duration) (Result, time.Duration) {
	interval := l.Period / time.Duration(l.Rate) // one event's share of the period
	tat = max(tat, now)
	owed := tat - now // until the bucket is full again
	// wait is how long until n more events fit; zero or less: they fit now.
	wait := owed + scale(n-l.Burst, interval)
	if wait > 0 {
		return Result{Limit: l, RetryAfter: wait, ResetAfter: owed}, tat
	}
	cost := time.Duration(n) * interval // n <= Burst here, so at most Period
	return Result{Allowed: true, Limit: l, Remaining: int(-wait / interval), ResetAfter: owed + cost}, tat + cost
}

// scale returns k*d, saturating for the huge k of an absurd batch so the
// waiting time of a denial cannot overflow into a negative one.
func scale(k int, d time.Duration) time.Duration {
	const most = math.MaxInt64 / 4
	if k > 0 && int64(k) > most/int64(d) {
		return most
	}
	return time.Duration(k) * d
}
