package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/iotflow/iotflow/internal/dbhealth"
)

// MQTTState is how the MQTT transport stands, as /health shows it.
type MQTTState struct {
	// Status is listening, off (IOTFLOW_MQTT_ADDR=off) or unavailable
	// (the default port was taken).
	Status    string   `json:"status"`
	Listeners []string `json:"listeners"`
	Connected int64    `json:"connected"`
	Reason    string   `json:"reason,omitempty"`
}

func (s *server) index() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"name":          "IoTFlow",
			"description":   "IoT device connectivity layer",
			"version":       s.Version,
			"endpoints":     s.endpoints(),
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
		if s.MQTT != nil {
			body["mqtt"] = s.MQTT()
		}
		status := http.StatusOK
		if err := s.ping(ctx); err != nil {
			s.Logger.Warn("health check: database unreachable", "err", err)
			body["status"], body["message"], body["database"] = "unhealthy", "The database is unreachable", "unreachable"
			body["error"] = "Service unavailable"
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "5")
		}
		writeJSON(w, status, body)
	})
}

// livez answers 200 while the process serves requests; it checks nothing
// else, so that an orchestrator restarts only a process that is stuck.
func (s *server) livez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "alive"})
	})
}

// readyz answers 200 when the database answers and its schema is up to
// date, so that a load balancer sends traffic only to nodes that can serve
// it; 503 with Retry-After otherwise.
func (s *server) readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		body := map[string]any{"status": "ready", "database": "connected", "migrations": "applied"}
		notReady := func(msg string) {
			body["status"], body["error"], body["message"] = "not_ready", "Service unavailable", msg
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusServiceUnavailable, body)
		}
		if err := s.ping(ctx); err != nil {
			s.Logger.Warn("readiness check: database unreachable", "err", err)
			body["database"], body["migrations"] = "unreachable", "unknown"
			notReady("The database is unreachable")
			return
		}
		pending, err := s.Service.Store().PendingMigrations(ctx)
		if err != nil {
			s.Logger.Warn("readiness check: cannot read the schema version", "err", err)
			body["migrations"] = "unknown"
			notReady("The database schema cannot be read")
			return
		}
		if len(pending) > 0 {
			body["migrations"] = "pending"
			body["pending_migrations"] = pending
			notReady("Database migrations are pending; run 'iotflow migrate'")
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
}

// ping checks the database; while the watcher finds it down, without
// waiting for it.
func (s *server) ping(ctx context.Context) error {
	if s.Database.Down() {
		return dbhealth.ErrDown
	}
	return s.Service.Store().Ping(ctx)
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

// endpoints is the map shown at GET /, without /metrics when metrics are
// off (the route does not exist then).
func (s *server) endpoints() map[string]any {
	if s.Metrics != nil {
		return endpoints
	}
	out := make(map[string]any, len(endpoints))
	for k, v := range endpoints {
		if k != "metrics" {
			out[k] = v
		}
	}
	return out
}
