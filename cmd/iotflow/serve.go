package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/iotflow/iotflow/internal/config"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/logging"
	"github.com/iotflow/iotflow/internal/metrics"
)

func serveUsage() string {
	var b strings.Builder
	b.WriteString("Usage: iotflow serve\n\nRuns the HTTP service. Configuration (environment or ./.env):\n\n")
	for _, s := range config.Settings {
		def := s.Default
		if def == "" {
			def = "(unset)"
		}
		fmt.Fprintf(&b, "  %-28s default %s\n      %s\n", s.Name, def, s.Usage)
	}
	return b.String()
}

func runServe(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if err := parseFlags(fs, e, args, serveUsage()); err != nil {
		return helpOK(err)
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	log, closeLog, err := logging.New(e.stdout, logging.Options{Level: cfg.LogLevel, Format: cfg.LogFormat, File: cfg.LogFile, MaxSizeMB: cfg.LogMaxSizeMB, MaxBackups: cfg.LogMaxBackups})
	if err != nil {
		return fmt.Errorf("invalid LOG_FILE: %w", err)
	}
	defer closeLog.Close()
	tuneGC()
	// SIGHUP re-reads the certificate. It is caught from the start, and
	// even without TLS, so that a reload (systemctl reload) never kills
	// the service.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The key pair is checked before anything else starts, so a bad one
	// fails fast.
	var certs *certReloader
	if cfg.TLSCertFile != "" {
		if certs, err = newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, log); err != nil {
			return err
		}
	}

	db, desc, applied, err := openDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("database ready", "storage", desc, "migrations_applied", applied)

	m := metrics.New()
	watcher := watchDatabase(ctx, db, m, log)
	defer watcher.stop()
	pipeline := ingest.New(db, ingest.Options{
		MaxBatch: cfg.WriteBatch, QueueSize: cfg.WriteQueue, Writers: cfg.WriteWriters, Linger: cfg.WriteLinger,
		CommitTimeout: cfg.RequestTimeout, Logger: log, Observe: m.Commit, Bind: watcher.Bind,
	})
	cacheSize := cfg.AuthCacheSize
	if cacheSize == 0 {
		cacheSize = -1
	}
	svc := fleet.New(db, fleet.Options{
		OnlineTimeout: cfg.OnlineTimeout, StaticAdminToken: cfg.AdminToken, Logger: log,
		Submitter: pipeline, MaxClockSkew: cfg.MaxClockSkew, AuthCacheSize: cacheSize, AuthCacheTTL: cfg.AuthCacheTTL,
		KeyRotationGrace: cfg.KeyRotationGrace,
	})
	token, err := svc.EnsureAdminToken(ctx)
	if err != nil {
		return fmt.Errorf("create the initial admin token: %w", err)
	}
	if token != "" {
		// Printed, never logged: the log file must not hold secrets.
		fmt.Fprintf(e.stdout, "\nNo admin token existed, so one was created. It is shown only this once:\n\n    %s\n\n"+
			"Use it as 'Authorization: Bearer <token>' on /api/v1/admin/*. Mint more with 'iotflow admin create-token'.\n\n", token)
	}

	if cfg.ProvisioningToken == "" {
		log.Warn("registration is open to anyone who can reach this server; set IOTFLOW_PROVISIONING_TOKEN to require a token")
	}
	limits, closeLimits, err := newLimits(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeLimits.Close()
	registerMetrics(m, db, pipeline, svc, limits)
	if cfg.MetricsAddr != "" {
		mctx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
		defer stopMetrics()
		maddr, err := serveMetrics(mctx, cfg.MetricsAddr, m, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Metrics on http://%s/metrics\n", maddr)
	}

	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen on %s (HOST, PORT): %w", cfg.Addr(), err)
	}
	srv := &http.Server{
		Handler: httpapi.NewHandler(httpapi.Deps{
			Metrics: m, Database: watcher.Watcher,
			Service: svc, Logger: log, Version: version, RequestTimeout: cfg.RequestTimeout, Started: time.Now(),
			MaxBatch: cfg.MaxBatch, Limits: limits, ProvisioningToken: cfg.ProvisioningToken, MaxBodyBytes: cfg.MaxBodyBytes, MaxBatchBodyBytes: cfg.MaxBatchBodyBytes,
			CORSOrigins: cfg.CORSOrigins,
		}),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	scheme := "http"
	if certs != nil {
		scheme = "https"
		srv.TLSConfig = certs.tlsConfig()
		go certs.watch(watchCtx, hup)
	} else {
		go ignoreHUP(watchCtx, hup, log)
	}

	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		svc.RunFlusher(flushCtx, cfg.LastSeenFlush)
	}()

	served := make(chan error, 1)
	go func() {
		if certs != nil {
			// With TLSConfig.GetCertificate set, ServeTLS needs no file
			// names and still offers HTTP/2.
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()
	fmt.Fprintf(e.stdout, "IoTFlow %s listening on %s://%s (storage: %s)\n", version, scheme, ln.Addr(), desc)
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "version", version)

	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	// Shutdown has IOTFLOW_SHUTDOWN_TIMEOUT in all. Stop accepting and give
	// the requests in flight 70% of it (a client stalling its body is cut
	// off then, and the handlers' contexts end); the write queue gets until
	// 90% (then the transactions under way are cancelled and nothing more
	// is acknowledged); the kept last_seen times are written in the rest,
	// before the database closes (deferred above).
	t := cfg.ShutdownTimeout
	deadline := time.Now().Add(t)
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	hctx, cancelRequests := context.WithDeadline(sctx, deadline.Add(-t*3/10))
	defer cancelRequests()
	if serr := srv.Shutdown(hctx); serr != nil {
		log.Error("requests still in flight at shutdown were cut off", "err", serr)
		srv.Close()
	}
	qctx, cancelQueue := context.WithDeadline(sctx, deadline.Add(-t/10))
	defer cancelQueue()
	if perr := pipeline.Close(qctx); perr != nil {
		log.Error("write queue not drained: transactions under way were cancelled", "err", perr)
	}
	stopFlush()
	<-flushed
	if ferr := svc.FlushSeen(sctx); ferr != nil {
		log.Error("final last_seen and key usage flush failed", "err", ferr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("stopped")
	return err
}

// ignoreHUP logs SIGHUPs when there is nothing to reload.
func ignoreHUP(ctx context.Context, hup <-chan os.Signal, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: nothing to reload (no TLS certificate is configured)")
		}
	}
}

// tuneGC lets the heap grow to five times the live data between
// collections instead of twice (GOGC=400 rather than 100): the service's
// live heap is small (a few MB), so a collection after every few MB of
// request garbage costs a tenth of the CPU of a busy node. A soft limit of
// 256 MiB makes the collector work harder before memory grows past it.
// GOGC and GOMEMLIMIT, when set, win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(256 << 20)
	}
}
