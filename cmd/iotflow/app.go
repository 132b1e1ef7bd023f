package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/iotflow/iotflow/internal/config"
	"github.com/iotflow/iotflow/internal/downlink"
	"github.com/iotflow/iotflow/internal/events"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/metrics"
	"github.com/iotflow/iotflow/internal/mqtt"
	"github.com/iotflow/iotflow/internal/series"
)

// app is the service wired from its configuration: the database, the
// write pipeline, the use cases and the HTTP handler over them. It knows
// nothing of listeners or signals; runServe does.
type app struct {
	cfg      *config.Config
	log      *slog.Logger
	db       database
	storage  string // what the log and the banner call the database
	metrics  *metrics.Metrics
	watcher  dbWatch
	pipeline *ingest.Pipeline
	svc      *fleet.Service
	series   *series.Service
	roller   *series.Roller
	downlink *downlink.Service
	notifier events.Notifier
	// mqtt is the MQTT transport, started by runServe.
	mqtt      *mqtt.Broker
	mqttState mqttState
	// runNotifier carries other nodes' wake-ups while it runs.
	runNotifier func(context.Context)
	handler     http.Handler

	closers []io.Closer // closed in reverse by close
}

// newApp opens the database (applying its migrations), mints the initial
// admin token when there is none (printing it to stdout, never to the
// log) and wires the service. On error, what it opened is closed again.
func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) (_ *app, err error) {
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	db, desc, applied, err := openDatabase(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.db, a.storage = db, desc
	a.closers = append(a.closers, db)
	log.Info("database ready", "storage", desc, "migrations_applied", applied)

	a.metrics = metrics.New()
	a.watcher = watchDatabase(ctx, db, a.metrics, log)
	a.closers = append(a.closers, closerFunc(a.watcher.stop))
	a.pipeline = ingest.New(db, ingest.Options{
		MaxBatch: cfg.WriteBatch, QueueSize: cfg.WriteQueue, Writers: cfg.WriteWriters, Linger: cfg.WriteLinger,
		CommitTimeout: cfg.RequestTimeout, Logger: log, Observe: a.metrics.Commit, Bind: a.watcher.Bind,
	})
	// drain closes it in time on shutdown; this is for a start that fails.
	a.closers = append(a.closers, closerFunc(func() { a.pipeline.Close(context.Background()) }))
	a.svc = fleet.New(db, fleet.Options{
		OnlineTimeout: cfg.OnlineTimeout, StaticAdminToken: cfg.AdminToken, Logger: log,
		Submitter: a.pipeline, MaxClockSkew: cfg.MaxClockSkew, AuthCacheSize: cfg.AuthCacheSize, AuthCacheTTL: cfg.AuthCacheTTL,
		KeyRotationGrace: cfg.KeyRotationGrace, Retention: cfg.Retention,
	})
	token, err := a.svc.EnsureAdminToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("create the initial admin token: %w", err)
	}
	if token != "" {
		fmt.Fprintf(stdout, "\nNo admin token existed, so one was created. It is shown only this once:\n\n    %s\n\n"+
			"Use it as 'Authorization: Bearer <token>' on /api/v1/admin/*. Mint more with 'iotflow admin create-token'.\n\n", token)
	}
	if cfg.ProvisioningToken == "" {
		log.Warn("registration is open to anyone who can reach this server; set IOTFLOW_PROVISIONING_TOKEN to require a token")
	}
	rdb, err := newRedis(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if rdb != nil {
		a.closers = append(a.closers, rdb)
	}
	limits := newLimits(cfg, rdb, log)
	registerMetrics(a.metrics, db, a.pipeline, a.svc, limits)
	var wakeups string
	a.notifier, a.runNotifier, wakeups = newNotifier(cfg, db, rdb, log)
	log.Info("downlink wake-ups", "across_nodes", wakeups)
	a.downlink = newDownlink(db, a.notifier, a.svc, a.metrics, log)

	if a.mqtt, err = newMQTT(cfg, a, limits, log); err != nil {
		return nil, err
	}
	a.metrics.GaugeFunc("iotflow_mqtt_clients_connected", "MQTT clients connected to this node.",
		func() float64 { return float64(a.mqtt.Connected()) })

	a.series = &series.Service{Store: db}
	a.roller = &series.Roller{Store: db, Batch: 5000, Every: time.Second, Log: log}
	a.metrics.CounterFunc("iotflow_rollup_readings_total", "Readings the time-series rollup has taken in since start.",
		func() float64 { return float64(a.roller.Rolled()) })
	a.metrics.GaugeFunc("iotflow_rollup_behind", "1 while the rollup has more readings waiting than its last pass took.",
		func() float64 {
			if a.roller.Behind() {
				return 1
			}
			return 0
		})
	a.handler = httpapi.NewHandler(httpapi.Deps{
		Metrics: a.metrics, Database: a.watcher.Watcher, Series: a.series, Downlink: a.downlink,
		Service: a.svc, Logger: log, Version: version, RequestTimeout: cfg.RequestTimeout, Started: time.Now(),
		MaxBatch: cfg.MaxBatch, Limits: limits, ProvisioningToken: cfg.ProvisioningToken, MaxBodyBytes: cfg.MaxBodyBytes, MaxBatchBodyBytes: cfg.MaxBatchBodyBytes,
		CORSOrigins: cfg.CORSOrigins, MQTT: a.mqttState.get,
	})
	return a, nil
}

// runFlusher writes the last_seen times and key usage kept in memory
// every IOTFLOW_LAST_SEEN_FLUSH until the returned stop is called, which
// waits for it to end.
func (a *app) runFlusher(ctx context.Context) (stop func()) {
	return a.background(ctx, func(ctx context.Context) { a.svc.RunFlusher(ctx, a.cfg.LastSeenFlush) })
}

// runUpkeep keeps the time-series rollups and, with IOTFLOW_RETENTION,
// removes old readings; carries wake-ups from other nodes and sweeps the
// commands that expired or timed out; until the returned stop is called,
// which waits for all to end.
func (a *app) runUpkeep(ctx context.Context) (stop func()) {
	stopNotifier := a.background(ctx, a.runNotifier)
	stopSweeper := a.background(ctx, func(ctx context.Context) { a.downlink.RunSweeper(ctx, time.Second) })
	stopRoller := a.background(ctx, a.roller.Run)
	stopRetention := func() {}
	if a.cfg.Retention > 0 {
		r := &series.Retention{Store: a.db, Keep: a.cfg.Retention, Batch: 5000, Pause: 50 * time.Millisecond,
			Every: time.Minute, Now: time.Now, Log: a.log}
		stopRetention = a.background(ctx, r.Run)
	}
	return func() { stopRetention(); stopRoller(); stopSweeper(); stopNotifier() }
}

// background runs fn until the returned stop is called, which waits for it.
func (a *app) background(ctx context.Context, fn func(context.Context)) (stop func()) {
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(bctx)
	}()
	return func() { cancel(); <-done }
}

// drain ends the service's work once its listeners have stopped: the write
// queue is committed by queueDeadline (then the transactions under way are
// cancelled, and nothing more is acknowledged), and the kept last_seen
// times and key usage are written by ctx's deadline.
func (a *app) drain(ctx context.Context, queueDeadline time.Time, stopFlusher func()) {
	qctx, cancel := context.WithDeadline(ctx, queueDeadline)
	defer cancel()
	if err := a.pipeline.Close(qctx); err != nil {
		a.log.Error("write queue not drained: transactions under way were cancelled", "err", err)
	}
	stopFlusher()
	if err := a.svc.FlushSeen(ctx); err != nil {
		a.log.Error("final last_seen and key usage flush failed", "err", err)
	}
}

// close releases what newApp opened, the database last.
func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i].Close(); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Warn("closing on shutdown failed", "err", err)
		}
	}
	a.closers = nil
}

// closerFunc makes a function an io.Closer.
type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }
