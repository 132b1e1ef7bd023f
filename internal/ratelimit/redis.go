package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is a GCRA limiter whose buckets live in Redis, so every node of the
// service enforces one shared limit. When Redis fails it answers from its
// fallback limiter until Redis answers again; it never returns a Redis error.
type Redis struct {
	rdb        *redis_rate.Limiter
	fallback   Limiter
	log        *slog.Logger
	now        func() time.Time
	prefix     string
	timeout    time.Duration
	probeEvery time.Duration

	degraded  atomic.Bool
	nextProbe atomic.Int64 // Unix nanoseconds before which a degraded limiter leaves Redis alone
	fallbacks atomic.Uint64
}

// NewRedis returns a limiter on client that answers from fallback (a new
// Memory when nil) while Redis fails; logger (may be nil) gets one warning
// when that starts and one message when it ends. It takes every Option.
func NewRedis(client *redis.Client, fallback Limiter, logger *slog.Logger, opts ...Option) *Redis {
	o := newOptions(opts)
	if fallback == nil {
		fallback = NewMemory(WithClock(o.now))
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Redis{
		rdb:        redis_rate.NewLimiter(client),
		fallback:   fallback,
		log:        logger,
		now:        o.now,
		prefix:     o.prefix,
		timeout:    o.timeout,
		probeEvery: o.probeEvery,
	}
}

// Degraded reports whether the limiter is answering from its fallback.
func (r *Redis) Degraded() bool { return r.degraded.Load() }

// Fallbacks returns how many calls the fallback limiter has answered.
func (r *Redis) Fallbacks() uint64 { return r.fallbacks.Load() }

// AllowN implements Limiter. While degraded, at most one call per probe
// interval tries Redis; the others go straight to the fallback.
func (r *Redis) AllowN(ctx context.Context, key string, l Limit, n int) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := l.check(n); err != nil {
		return Result{}, err
	}
	if r.degraded.Load() && !r.claimProbe() {
		return r.answerFromFallback(ctx, key, l, n)
	}
	res, err := r.allowRedis(ctx, key, l, n)
	if err == nil {
		if r.degraded.CompareAndSwap(true, false) {
			r.log.Info("rate limiter: Redis answers again, limits are shared again")
		}
		return res, nil
	}
	if ctx.Err() != nil {
		// The caller gave up; that says nothing about Redis.
		return Result{}, ctx.Err()
	}
	r.nextProbe.Store(r.now().Add(r.probeEvery).UnixNano())
	if r.degraded.CompareAndSwap(false, true) {
		r.log.Warn("rate limiter: Redis unavailable, limiting per node from memory until it answers", "err", err)
	} else {
		r.log.Debug("rate limiter: Redis probe failed", "err", err)
	}
	return r.answerFromFallback(ctx, key, l, n)
}

// claimProbe reports whether this call is the one that may try Redis now.
func (r *Redis) claimProbe() bool {
	now := r.now().UnixNano()
	next := r.nextProbe.Load()
	return now >= next && r.nextProbe.CompareAndSwap(next, now+int64(r.probeEvery))
}

func (r *Redis) answerFromFallback(ctx context.Context, key string, l Limit, n int) (Result, error) {
	r.fallbacks.Add(1)
	return r.fallback.AllowN(ctx, key, l, n)
}

// allowRedis asks Redis, giving up after the timeout even when the client
// ignores context deadlines on reads (ContextTimeoutEnabled false, its
// default): the abandoned command then ends on the client's own timeouts.
func (r *Redis) allowRedis(ctx context.Context, key string, l Limit, n int) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	type answer struct {
		res *redis_rate.Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		limit := redis_rate.Limit{Rate: l.Rate, Burst: l.Burst, Period: l.Period}
		res, err := r.rdb.AllowN(ctx, r.prefix+bucket(l, key), limit, n)
		done <- answer{res, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("redis rate limit %s: %w", l.Name, ctx.Err())
	}
	if a.err != nil {
		return Result{}, fmt.Errorf("redis rate limit %s: %w", l.Name, a.err)
	}
	res := Result{
		Allowed:    a.res.Allowed > 0 || n == 0,
		Limit:      l,
		Remaining:  a.res.Remaining,
		ResetAfter: a.res.ResetAfter,
	}
	if !res.Allowed {
		res.RetryAfter = a.res.RetryAfter
		if res.RetryAfter <= 0 { // the float seconds of an absurd batch overflowed
			res.RetryAfter = math.MaxInt64 / 4
		}
	}
	return res, nil
}
