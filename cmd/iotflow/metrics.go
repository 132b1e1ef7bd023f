package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/iotflow/iotflow/internal/dbhealth"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/metrics"
	"github.com/iotflow/iotflow/internal/ratelimit"
)

// registerMetrics adds the series read at scrape time from the parts that
// count for themselves: the write queue, the auth cache, the database
// pools and the shared rate limiter.
func registerMetrics(m *metrics.Metrics, db iotflow.Store, pipeline *ingest.Pipeline, svc *fleet.Service, limits *httpapi.Limits) {
	m.GaugeFunc("iotflow_write_queue_depth", "Telemetry requests waiting for a write transaction.",
		func() float64 { return float64(pipeline.Depth()) })
	m.CounterFunc("iotflow_auth_cache_hits_total", "API key authentications answered from memory.",
		func() float64 { return float64(svc.AuthCacheStats().Hits) })
	m.CounterFunc("iotflow_auth_cache_misses_total", "API key authentications that read the database.",
		func() float64 { return float64(svc.AuthCacheStats().Misses) })
	m.GaugeFunc("iotflow_auth_cache_entries", "API keys held in memory.",
		func() float64 { return float64(svc.AuthCacheStats().Entries) })
	m.CounterFunc("iotflow_auth_cache_negative_hits_total", "Wrong API keys and admin tokens refused from memory, without a database read.",
		func() float64 { return float64(svc.AuthCacheStats().NegativeHits) })
	if p, ok := db.(iotflow.PoolReporter); ok {
		m.Pools(p.PoolStats)
	}
	if r, ok := limits.Limiter.(*ratelimit.Redis); ok {
		m.GaugeFunc("iotflow_rate_limiter_degraded", "1 while Redis is unreachable and rate limits are kept in memory.",
			func() float64 {
				if r.Degraded() {
					return 1
				}
				return 0
			})
		m.CounterFunc("iotflow_rate_limiter_fallback_decisions_total", "Rate-limit decisions made in memory because Redis did not answer.",
			func() float64 { return float64(r.Fallbacks()) })
	}
}

// serveMetrics serves /metrics without a token on its own listener at
// addr, meant for a private interface. It returns once listening; the
// server stops when ctx ends.
func serveMetrics(ctx context.Context, addr string, m *metrics.Metrics, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (IOTFLOW_METRICS_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	if host, _, _ := net.SplitHostPort(addr); host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		log.Warn("IOTFLOW_METRICS_ADDR listens on every interface and /metrics there needs no token; bind it to a private address", "addr", addr)
	}
	return ln.Addr(), nil
}

// dbWatch is a running database watcher; Watcher is nil for a store that
// needs none (the embedded database cannot become unreachable).
type dbWatch struct {
	*dbhealth.Watcher
	stop func()
}

// watchDatabase probes a networked database every second, so that an
// outage is answered with fast 503s and healing is noticed.
func watchDatabase(ctx context.Context, db iotflow.Store, m *metrics.Metrics, log *slog.Logger) dbWatch {
	p, ok := db.(iotflow.Prober)
	if !ok {
		return dbWatch{stop: func() {}}
	}
	w := dbhealth.New(p.Probe, dbhealth.Options{OnDown: p.ResetConnections, Logger: log})
	m.GaugeFunc("iotflow_database_up", "1 while the database answers its probes, 0 while it does not.", func() float64 {
		if w.Down() {
			return 0
		}
		return 1
	})
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	return dbWatch{Watcher: w, stop: func() { cancel(); <-done }}
}
