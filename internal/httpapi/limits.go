package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/ratelimit"
)

// Limits are the rate limits the API enforces; a nil *Limits enforces none.
type Limits struct {
	Limiter ratelimit.Limiter
	// Device bounds a device's status, config, heartbeat and telemetry reads.
	Device ratelimit.Limit
	// Telemetry bounds a device's readings, single or in batches.
	Telemetry ratelimit.Limit
	// Backlog is a device's further allowance for batches that the
	// telemetry limit refuses: a device back from an outage can flush
	// what it buffered.
	Backlog ratelimit.Limit
	// Register bounds registrations per client address.
	Register ratelimit.Limit
	// AuthFailures bounds failed authentications per client address; past
	// it, the address's failing requests get 429 instead of 401. Requests
	// with valid credentials are never refused by it.
	AuthFailures ratelimit.Limit
	// Admin bounds requests per admin token.
	Admin ratelimit.Limit
}

// describe names a limit for people: "telemetry limit of 100 per minute".
func describe(l ratelimit.Limit) string {
	per := "per " + l.Period.String()
	switch l.Period {
	case time.Minute:
		per = "per minute"
	case time.Hour:
		per = "per hour"
	}
	return fmt.Sprintf("%s limit of %d %s", l.Name, l.Rate, per)
}

// allow checks n events of key under l. On a denial it writes the 429 and
// returns false; otherwise it sets the RateLimit header and returns true.
// A limiter error (a bad limit, a finished request) lets the request pass:
// limits protect the service and must not take it down.
func (s *server) allow(w http.ResponseWriter, r *http.Request, key string, l ratelimit.Limit, n int, who string) bool {
	if s.Limits == nil {
		return true
	}
	res, err := s.Limits.Limiter.AllowN(r.Context(), key, l, n)
	if err != nil {
		if r.Context().Err() == nil {
			s.Logger.Error("rate limiter failed; request let through", "limit", l.Name, "err", err)
		}
		return true
	}
	res.Headers(w.Header())
	if res.Allowed {
		return true
	}
	msg := fmt.Sprintf("The %s was exceeded %s; retry in %d s", describe(l), who, int64(res.RetryAfter/time.Second)+1)
	if n > l.Burst {
		msg = fmt.Sprintf("%d events exceed the %s at once %s", n, describe(l), who)
	}
	s.Logger.Warn("rate limit exceeded", "limit", l.Name, "key", key, "events", n)
	s.Metrics.RateLimited(l.Name)
	s.writeError(w, r, iotflow.Errorf(iotflow.ERATELIMIT, "Rate limit exceeded", "%s", msg))
	return false
}

// authFailed answers a request whose credentials failed (err, an
// EUNAUTHORIZED) and counts the failure against the client address: 401
// while the address is within its limit, 429 once it has used it up, so
// guessing stops paying. Only failures are limited: a valid credential
// from the same address (another device behind the same NAT) is served.
func (s *server) authFailed(w http.ResponseWriter, r *http.Request, err error) {
	if s.Limits == nil {
		s.writeError(w, r, err)
		return
	}
	l := s.Limits.AuthFailures
	res, lerr := s.Limits.Limiter.AllowN(r.Context(), clientIP(r), l, 1)
	if lerr != nil || res.Allowed {
		if lerr != nil && r.Context().Err() == nil {
			s.Logger.Error("rate limiter failed; failed authentication not counted", "limit", l.Name, "err", lerr)
		}
		s.writeError(w, r, err)
		return
	}
	res.Headers(w.Header())
	s.Logger.Warn("rate limit exceeded", "limit", l.Name, "key", clientIP(r))
	s.Metrics.RateLimited(l.Name)
	s.writeError(w, r, iotflow.Errorf(iotflow.ERATELIMIT, "Rate limit exceeded",
		"Too many failed authentications from this address (the %s); retry later", describe(l)))
}

// clientIP is the address the connection comes from. Behind a proxy it is
// the proxy's: limits per address then apply to the proxy as a whole.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func deviceKey(id int64) string { return "device:" + strconv.FormatInt(id, 10) }

// The accessors let a nil *Limits stand for "no limits"; allow checks it.
func (l *Limits) device() ratelimit.Limit {
	return l.get(func(l *Limits) ratelimit.Limit { return l.Device })
}
func (l *Limits) telemetry() ratelimit.Limit {
	return l.get(func(l *Limits) ratelimit.Limit { return l.Telemetry })
}
func (l *Limits) admin() ratelimit.Limit {
	return l.get(func(l *Limits) ratelimit.Limit { return l.Admin })
}
func (l *Limits) register() ratelimit.Limit {
	return l.get(func(l *Limits) ratelimit.Limit { return l.Register })
}

func (l *Limits) get(f func(*Limits) ratelimit.Limit) ratelimit.Limit {
	if l == nil {
		return ratelimit.Limit{}
	}
	return f(l)
}

// allowBatch counts a batch of n readings against the telemetry limit and,
// when that refuses it, against the backlog allowance.
func (s *server) allowBatch(w http.ResponseWriter, r *http.Request, deviceID int64, n int) bool {
	if s.Limits == nil {
		return true
	}
	key := deviceKey(deviceID)
	res, err := s.Limits.Limiter.AllowN(r.Context(), key, s.Limits.Telemetry, n)
	if err == nil && res.Allowed {
		res.Headers(w.Header())
		return true
	}
	return s.allow(w, r, key, s.Limits.Backlog, n, "by this device (its telemetry limit was used up too)")
}
