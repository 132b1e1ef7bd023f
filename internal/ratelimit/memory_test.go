package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time source for WithClock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// burst fires n concurrent single events for key and returns how many were
// allowed, failing the test on errors and on denials without RetryAfter.
func burst(t *testing.T, lim Limiter, key string, l Limit, n int) int {
	t.Helper()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			res, err := lim.AllowN(context.Background(), key, l, 1)
			if err != nil {
				t.Errorf("AllowN: %v", err)
				return
			}
			if res.Allowed {
				allowed.Add(1)
			} else if res.RetryAfter <= 0 {
				t.Errorf("denied with RetryAfter %v, want > 0", res.RetryAfter)
			}
		})
	}
	wg.Wait()
	return int(allowed.Load())
}

func mustAllow(t *testing.T, lim Limiter, key string, l Limit, n int) Result {
	t.Helper()
	res, err := lim.AllowN(context.Background(), key, l, n)
	if err != nil {
		t.Fatalf("AllowN(%q, %d): %v", key, n, err)
	}
	return res
}

func TestMemoryBurst(t *testing.T) {
	m := NewMemory(WithClock(newClock().Now))
	if got := burst(t, m, "dev-1", PerMinute("telemetry", 100), 130); got != 100 {
		t.Fatalf("allowed %d of 130 at once, want 100", got)
	}
	// With the real clock refill during the burst may let one more through.
	m = NewMemory()
	if got := burst(t, m, "dev-1", PerMinute("telemetry", 100), 130); got < 100 || got > 101 {
		t.Fatalf("real clock: allowed %d of 130 at once, want 100 or 101", got)
	}
}

func TestMemoryResultValues(t *testing.T) {
	c := newClock()
	m := NewMemory(WithClock(c.Now))
	l := PerMinute("telemetry", 100) // one event every 600ms
	ms := time.Millisecond
	steps := []struct {
		name    string
		advance time.Duration
		n       int
		want    Result
	}{
		{"first", 0, 1, Result{Allowed: true, Remaining: 99, ResetAfter: 600 * ms}},
		{"peek", 0, 0, Result{Allowed: true, Remaining: 99, ResetAfter: 600 * ms}},
		{"batch", 0, 9, Result{Allowed: true, Remaining: 90, ResetAfter: 6 * time.Second}},
		{"too many", 0, 91, Result{RetryAfter: 600 * ms, ResetAfter: 6 * time.Second}},
		{"refilled one", 600 * ms, 91, Result{Allowed: true, Remaining: 0, ResetAfter: 60 * time.Second}},
		{"empty", 0, 1, Result{RetryAfter: 600 * ms, ResetAfter: 60 * time.Second}},
		{"half way", 300 * ms, 1, Result{RetryAfter: 300 * ms, ResetAfter: 59700 * ms}},
		{"batch waits", 0, 5, Result{RetryAfter: 2700 * ms, ResetAfter: 59700 * ms}},
		{"above burst", 0, 101, Result{RetryAfter: 60300 * ms, ResetAfter: 59700 * ms}},
		{"one refilled", 300 * ms, 1, Result{Allowed: true, Remaining: 0, ResetAfter: 60 * time.Second}},
		{"full again", time.Hour, 0, Result{Allowed: true, Remaining: 100}},
		{"whole burst", 0, 100, Result{Allowed: true, Remaining: 0, ResetAfter: 60 * time.Second}},
	}
	for _, s := range steps {
		c.Advance(s.advance)
		s.want.Limit = l
		if got := mustAllow(t, m, "dev-1", l, s.n); got != s.want {
			t.Errorf("%s: AllowN(n=%d)\n got %+v\nwant %+v", s.name, s.n, got, s.want)
		}
	}
}

func TestMemoryRefill(t *testing.T) {
	c := newClock()
	m := NewMemory(WithClock(c.Now))
	l := PerMinute("telemetry", 100)
	if got := burst(t, m, "dev-1", l, 100); got != 100 {
		t.Fatalf("allowed %d, want 100", got)
	}
	if res := mustAllow(t, m, "dev-1", l, 1); res.Allowed {
		t.Fatal("allowed beyond the burst")
	}
	c.Advance(6 * time.Second) // ten events' worth
	if got := burst(t, m, "dev-1", l, 15); got != 10 {
		t.Fatalf("after 6s allowed %d, want 10", got)
	}
	c.Advance(time.Minute)
	if got := burst(t, m, "dev-1", l, 130); got != 100 {
		t.Fatalf("after a minute allowed %d, want 100", got)
	}
}

func TestMemoryKeysAndLimitsIsolated(t *testing.T) {
	m := NewMemory(WithClock(newClock().Now))
	l := PerMinute("telemetry", 10)
	burst(t, m, "dev-1", l, 10)
	if mustAllow(t, m, "dev-1", l, 1).Allowed {
		t.Fatal("dev-1 allowed beyond its limit")
	}
	if !mustAllow(t, m, "dev-2", l, 1).Allowed {
		t.Fatal("dev-2 denied by dev-1's use")
	}
	if !mustAllow(t, m, "dev-1", PerMinute("commands", 10), 1).Allowed {
		t.Fatal("dev-1 denied under another limit by its telemetry use")
	}
}

func TestMemoryBatchAboveBurst(t *testing.T) {
	m := NewMemory(WithClock(newClock().Now))
	l := Limit{Name: "ingest", Rate: 100, Period: time.Minute, Burst: 20}
	for _, n := range []int{21, 100, 1 << 40} {
		res := mustAllow(t, m, "dev-1", l, n)
		if res.Allowed || res.RetryAfter <= 0 {
			t.Errorf("n=%d on a full bucket of 20: %+v, want a denial with RetryAfter > 0", n, res)
		}
	}
	if res := mustAllow(t, m, "dev-1", l, 20); !res.Allowed || res.Remaining != 0 {
		t.Fatalf("n=20: %+v, want allowed, nothing left (denials must not consume)", res)
	}
}

func TestMemoryEvictsFullBuckets(t *testing.T) {
	c := newClock()
	m := NewMemory(WithClock(c.Now))
	l := PerMinute("register", 5)
	for i := range 100_000 {
		mustAllow(t, m, fmt.Sprintf("10.0.%d.%d", i/256, i%256), l, 1)
	}
	slow := Limit{Name: "hourly", Rate: 10, Period: time.Hour, Burst: 10}
	mustAllow(t, m, "admin", slow, 1) // full again only after 6 minutes
	if got := m.len(); got != 100_001 {
		t.Fatalf("tracking %d buckets, want 100001", got)
	}
	c.Advance(2 * time.Minute)
	mustAllow(t, m, "10.9.9.9", l, 1)
	if got := m.len(); got != 2 {
		t.Fatalf("after the sweep tracking %d buckets, want 2 (hourly and the new one)", got)
	}
	c.Advance(10 * time.Minute)
	mustAllow(t, m, "10.9.9.9", l, 0)
	if got := m.len(); got != 0 {
		t.Fatalf("tracking %d buckets, want 0", got)
	}
}

func (m *Memory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tats)
}

func TestInvalidLimits(t *testing.T) {
	cases := []struct {
		name string
		l    Limit
		n    int
	}{
		{"no name", Limit{Rate: 1, Period: time.Minute, Burst: 1}, 1},
		{"zero rate", Limit{Name: "x", Period: time.Minute, Burst: 1}, 1},
		{"zero period", Limit{Name: "x", Rate: 1, Burst: 1}, 1},
		{"burst above rate", Limit{Name: "x", Rate: 10, Period: time.Minute, Burst: 11}, 1},
		{"zero burst", Limit{Name: "x", Rate: 10, Period: time.Minute}, 1},
		{"negative n", PerMinute("x", 10), -1},
	}
	for _, tc := range cases {
		if _, err := NewMemory().AllowN(context.Background(), "k", tc.l, tc.n); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewMemory().AllowN(ctx, "k", PerMinute("x", 1), 1); err != context.Canceled {
		t.Errorf("cancelled context: err %v, want context.Canceled", err)
	}
}
