package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisOptions returns the options of the test Redis. Without
// IOTFLOW_TEST_REDIS_URL the test is skipped; with it, an unreachable Redis
// fails the test.
func redisOptions(t *testing.T) *redis.Options {
	t.Helper()
	url := os.Getenv("IOTFLOW_TEST_REDIS_URL")
	if url == "" {
		t.Skip("IOTFLOW_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0); skipping the Redis test")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("IOTFLOW_TEST_REDIS_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rdb := newClient(t, opt, opt.Addr)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s (IOTFLOW_TEST_REDIS_URL): %v", opt.Addr, err)
	}
	return opt
}

// newClient returns a client like opt's connecting to addr, as another
// node of the service would have.
func newClient(t *testing.T, opt *redis.Options, addr string) *redis.Client {
	o := *opt
	o.Addr = addr
	rdb := redis.NewClient(&o)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// testPrefix returns a key prefix of this test alone and deletes its keys
// when the test ends.
func testPrefix(t *testing.T, opt *redis.Options) string {
	prefix := fmt.Sprintf("iotflow:rl:test:%s:%d:", t.Name(), time.Now().UnixNano())
	rdb := newClient(t, opt, opt.Addr)
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, "rate:"+prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("clean up %s*: %v", prefix, err)
		}
	})
	return prefix
}

// logBuffer collects log output for counting messages.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(level string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), "level="+level)
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestRedisBurst(t *testing.T) {
	opt := redisOptions(t)
	r := NewRedis(newClient(t, opt, opt.Addr), nil, nil, WithPrefix(testPrefix(t, opt)), WithTimeout(2*time.Second))
	got := burst(t, r, "dev-1", PerMinute("telemetry", 100), 130)
	if got < 100 || got > 102 {
		t.Fatalf("allowed %d of 130 at once, want 100 (up to 102 with refill)", got)
	}
	if r.Degraded() || r.Fallbacks() != 0 {
		t.Fatalf("Degraded %v, Fallbacks %d: answered from memory, not Redis", r.Degraded(), r.Fallbacks())
	}
}

func TestRedisOneLimitAcrossNodes(t *testing.T) {
	opt := redisOptions(t)
	prefix := testPrefix(t, opt)
	l := PerMinute("telemetry", 100)
	nodes := []*Redis{
		NewRedis(newClient(t, opt, opt.Addr), nil, nil, WithPrefix(prefix), WithTimeout(2*time.Second)),
		NewRedis(newClient(t, opt, opt.Addr), nil, nil, WithPrefix(prefix), WithTimeout(2*time.Second)),
	}
	allowed := make([]int, len(nodes))
	var wg sync.WaitGroup
	for i, r := range nodes {
		wg.Go(func() { allowed[i] = burst(t, r, "dev-1", l, 65) })
	}
	wg.Wait()
	if total := allowed[0] + allowed[1]; total < 100 || total > 102 {
		t.Fatalf("two nodes allowed %d + %d of 65 + 65, want 100 in total (up to 102)", allowed[0], allowed[1])
	}
	for _, r := range nodes {
		if r.Fallbacks() != 0 {
			t.Fatalf("a node answered %d calls from memory", r.Fallbacks())
		}
	}
}

// TestRedisMatchesMemory runs one sequence through both limiters: they
// implement the same algorithm, so only clock drift between calls may differ.
func TestRedisMatchesMemory(t *testing.T) {
	opt := redisOptions(t)
	r := NewRedis(newClient(t, opt, opt.Addr), nil, nil, WithPrefix(testPrefix(t, opt)), WithTimeout(2*time.Second))
	m := NewMemory()
	l := PerMinute("telemetry", 100)
	near := func(a, b time.Duration) bool { return (a - b).Abs() < 100*time.Millisecond }
	for _, n := range []int{1, 0, 9, 91, 101, 5, 85, 1} {
		want := mustAllow(t, m, "dev-1", l, n)
		got := mustAllow(t, r, "dev-1", l, n)
		if got.Allowed != want.Allowed || got.Remaining < want.Remaining-1 || got.Remaining > want.Remaining+1 ||
			!near(got.RetryAfter, want.RetryAfter) || !near(got.ResetAfter, want.ResetAfter) {
			t.Errorf("n=%d: Redis %+v, memory %+v", n, got, want)
		}
	}
}

func TestRedisUnreachableFallsBack(t *testing.T) {
	var logs logBuffer
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { dead.Close() })
	r := NewRedis(dead, nil, logs.logger())
	l := PerMinute("telemetry", 100)
	allowed := 0
	for range 130 {
		start := time.Now()
		res := mustAllow(t, r, "dev-1", l, 1)
		if took := time.Since(start); took > DefaultTimeout+250*time.Millisecond {
			t.Fatalf("AllowN took %v with Redis down", took)
		}
		if res.Allowed {
			allowed++
		}
	}
	if allowed < 100 || allowed > 101 {
		t.Errorf("allowed %d of 130 from memory, want 100", allowed)
	}
	if !r.Degraded() || r.Fallbacks() != 130 {
		t.Errorf("Degraded %v, Fallbacks %d; want true, 130", r.Degraded(), r.Fallbacks())
	}
	if n := logs.count("WARN"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.b.String())
	}
}

func TestRedisHangingTimesOut(t *testing.T) {
	p := newProxy(t, "")
	p.set("hang")
	rdb := redis.NewClient(&redis.Options{Addr: p.addr()})
	t.Cleanup(func() { rdb.Close() })
	r := NewRedis(rdb, nil, nil, WithTimeout(100*time.Millisecond))
	start := time.Now()
	res := mustAllow(t, r, "dev-1", PerMinute("telemetry", 100), 1)
	if took := time.Since(start); took > 600*time.Millisecond {
		t.Fatalf("AllowN took %v against a Redis that never answers (timeout 100ms)", took)
	}
	if !res.Allowed || !r.Degraded() || r.Fallbacks() != 1 {
		t.Fatalf("result %+v, Degraded %v, Fallbacks %d; want allowed from memory", res, r.Degraded(), r.Fallbacks())
	}
}

func TestRedisCallerContextIsNoRedisFailure(t *testing.T) {
	p := newProxy(t, "")
	p.set("hang")
	rdb := redis.NewClient(&redis.Options{Addr: p.addr()})
	t.Cleanup(func() { rdb.Close() })
	r := NewRedis(rdb, nil, nil, WithTimeout(5*time.Second))
	l := PerMinute("telemetry", 100)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.AllowN(ctx, "dev-1", l, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller deadline passed: err %v, want context.DeadlineExceeded", err)
	}
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := r.AllowN(cancelled, "dev-1", l, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err %v, want context.Canceled", err)
	}
	if r.Degraded() || r.Fallbacks() != 0 {
		t.Fatalf("Degraded %v, Fallbacks %d after caller cancellations; want false, 0", r.Degraded(), r.Fallbacks())
	}
}

func TestRedisRecovers(t *testing.T) {
	opt := redisOptions(t)
	prefix := testPrefix(t, opt)
	p := newProxy(t, opt.Addr)
	c := newClock() // paces the probes; Redis keeps its own time
	var logs logBuffer
	r := NewRedis(newClient(t, opt, p.addr()), nil, logs.logger(),
		WithPrefix(prefix), WithClock(c.Now), WithProbeInterval(5*time.Second))
	l := PerMinute("telemetry", 100)
	check := func(step string, degraded bool, fallbacks uint64) {
		t.Helper()
		if !mustAllow(t, r, "dev-1", l, 1).Allowed {
			t.Fatalf("%s: denied", step)
		}
		if r.Degraded() != degraded || r.Fallbacks() != fallbacks {
			t.Fatalf("%s: Degraded %v, Fallbacks %d; want %v, %d", step, r.Degraded(), r.Fallbacks(), degraded, fallbacks)
		}
	}

	check("Redis up", false, 0)
	p.set("down")
	check("Redis cut", true, 1)
	check("still cut, no probe yet", true, 2)
	p.set("up")
	check("Redis back, no probe yet", true, 3)
	p.set("down")
	c.Advance(5 * time.Second)
	check("probe while cut", true, 4)
	check("after the failed probe", true, 5)
	p.set("up")
	c.Advance(5 * time.Second)
	check("probe with Redis back", false, 5)
	check("Redis again", false, 5)

	n, err := newClient(t, opt, opt.Addr).Exists(context.Background(), "rate:"+prefix+"telemetry:dev-1").Result()
	if err != nil || n != 1 {
		t.Fatalf("bucket in Redis: exists %d, err %v", n, err)
	}
	if w, i := logs.count("WARN"), logs.count("INFO"); w != 1 || i != 1 {
		t.Fatalf("%d warnings and %d infos, want 1 and 1:\n%s", w, i, logs.b.String())
	}
}
