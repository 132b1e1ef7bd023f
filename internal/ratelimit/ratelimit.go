// Package ratelimit limits how often a device, a client IP or an admin token
// may call the service. Both limiters implement GCRA (the generic cell rate
// algorithm) with the semantics of github.com/go-redis/redis_rate: Memory
// keeps its buckets in process, Redis shares them between nodes and falls
// back to a Memory limiter while Redis is unreachable.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limit is a named rate: Rate events per Period, of which at most Burst may
// happen at once. Burst never exceeds Rate. Name identifies the bucket
// together with the key and names the policy in the RateLimit headers.
type Limit struct {
	Name   string
	Rate   int
	Period time.Duration
	Burst  int
}

// PerMinute returns the limit of n events a minute, all of which may come at once.
func PerMinute(name string, n int) Limit {
	return Limit{Name: name, Rate: n, Period: time.Minute, Burst: n}
}

// check reports a limit or an event count that AllowN cannot work with;
// such an error is a programming mistake, not a denial.
func (l Limit) check(n int) error {
	switch {
	case l.Name == "":
		return errors.New("ratelimit: limit has no name")
	case l.Rate < 1 || l.Period < time.Duration(l.Rate):
		return fmt.Errorf("ratelimit: limit %q: need Rate >= 1 and Period >= Rate nanoseconds, have %d per %s", l.Name, l.Rate, l.Period)
	case l.Burst < 1 || l.Burst > l.Rate:
		return fmt.Errorf("ratelimit: limit %q: Burst %d is outside 1..Rate (%d)", l.Name, l.Burst, l.Rate)
	case n < 0:
		return fmt.Errorf("ratelimit: limit %q: negative event count %d", l.Name, n)
	}
	return nil
}

// bucket is the name under which the state of key under l is kept, so the
// same key under two limits (a device's telemetry and its commands) never
// shares a bucket.
func bucket(l Limit, key string) string { return l.Name + ":" + key }

// Result is the outcome of one AllowN call.
type Result struct {
	// Allowed reports whether the n events were allowed (and consumed).
	Allowed bool
	// Limit is the limit the call was checked against.
	Limit Limit
	// Remaining is how many more events would be allowed right now. Like
	// redis_rate it is 0 on every denial, even when fewer than n would fit.
	Remaining int
	// RetryAfter is, on a denial, how long until the same n events would be
	// allowed (for n > Burst, when they would have been: never); 0 when allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again (Remaining == Burst).
	ResetAfter time.Duration
}

// Limiter decides whether events are allowed under a limit.
type Limiter interface {
	// AllowN reports whether n events for key are allowed under l now, and
	// consumes them if so. n == 0 only reports the state. n > l.Burst is
	// never allowed: callers should refuse such batches as too large. It
	// returns an error only for an invalid limit or n, or when ctx is done.
	AllowN(ctx context.Context, key string, l Limit, n int) (Result, error)
}

var (
	_ Limiter = (*Memory)(nil)
	_ Limiter = (*Redis)(nil)
)

// Defaults of the options.
const (
	DefaultPrefix        = "iotflow:rl:"          // Redis key prefix (see WithPrefix)
	DefaultTimeout       = 250 * time.Millisecond // bound of one Redis call, so a dead Redis never stalls a request
	DefaultProbeInterval = 5 * time.Second        // how often a degraded limiter tries Redis again
)

// Option configures NewMemory or NewRedis; an option that does not apply to
// a limiter is ignored by it.
type Option func(*options)

type options struct {
	now        func() time.Time
	prefix     string
	timeout    time.Duration
	probeEvery time.Duration
}

func newOptions(opts []Option) options {
	o := options{now: time.Now, prefix: DefaultPrefix, timeout: DefaultTimeout, probeEvery: DefaultProbeInterval}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithClock replaces time.Now, so tests can move time without sleeping.
// Redis buckets follow the Redis server's clock; there it only paces probes.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithPrefix sets the Redis key prefix (DefaultPrefix). redis_rate puts
// "rate:" before it: a bucket's key is "rate:" + prefix + name + ":" + key.
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithTimeout bounds each Redis call (DefaultTimeout); a call that takes
// longer counts as a Redis failure.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithProbeInterval sets how often a degraded Redis limiter tries Redis
// again (DefaultProbeInterval).
func WithProbeInterval(d time.Duration) Option { return func(o *options) { o.probeEvery = d } }
