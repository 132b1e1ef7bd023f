package httpapi

import (
	"context"
	"net/http"
	"time"
)

func (s *server) index() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"name":          "IoTFlow",
			"description":   "IoT device connectivity layer",
			"version":       s.Version,
			"endpoints":     endpoints,
			"documentation": "Devices authenticate with the X-API-Key header; the admin API takes 'Authorization: Bearer <token>'.",
		})
	})
}

// health keeps the reference's shape and adds the database state and the
// uptime; 503 when the database does not answer.
func (s *server) health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		body := map[string]any{
			"status":         "healthy",
			"message":        "IoTFlow is running",
			"version":        s.Version,
			"database":       "connected",
			"uptime_seconds": int64(time.Since(s.Started).Seconds()),
		}
		if d, ok := s.limiterState(); ok {
			body["rate_limiter"] = d
		}
		status := http.StatusOK
		if err := s.Service.Store().Ping(ctx); err != nil {
			s.Logger.Warn("health check: database unreachable", "err", err)
			body["status"], body["message"], body["database"] = "unhealthy", "The database is unreachable", "unreachable"
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "5")
		}
		writeJSON(w, status, body)
	})
}

// degradable is a limiter that can fall back from a shared store.
type degradable interface {
	Degraded() bool
	Fallbacks() uint64
}

// limiterState describes a shared rate limiter: whether it has fallen back
// to memory and how many decisions it made there.
func (s *server) limiterState() (map[string]any, bool) {
	if s.Limits == nil {
		return nil, false
	}
	d, ok := s.Limits.Limiter.(degradable)
	if !ok {
		return map[string]any{"backend": "memory"}, true
	}
	return map[string]any{"backend": "redis", "degraded": d.Degraded(), "fallback_decisions": d.Fallbacks()}, true
}
