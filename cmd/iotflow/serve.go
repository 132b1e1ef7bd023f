package main

import (
	"context"
	"crypto/tls"
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
	"github.com/iotflow/iotflow/internal/logging"
)

func serveUsage() string {
	var b strings.Builder
	b.WriteString("Usage: iotflow serve\n\nRuns the service: HTTP, and MQTT on IOTFLOW_MQTT_ADDR. Configuration (environment or ./.env):\n\n")
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
	a, err := newApp(ctx, cfg, log, e.stdout)
	if err != nil {
		return err
	}
	defer a.close()
	if cfg.MetricsAddr != "" {
		mctx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
		defer stopMetrics()
		maddr, err := serveMetrics(mctx, cfg.MetricsAddr, a.metrics, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Metrics on http://%s/metrics\n", maddr)
	}

	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen on %s (HOST, PORT): %w", cfg.Addr(), err)
	}
	var mqttTLS *tls.Config
	if certs != nil {
		mqttTLS = certs.tlsConfig()
		mqttTLS.NextProtos = nil // not HTTP's h2 and http/1.1
	}
	if err := a.startMQTT(cfg, mqttTLS, e.stdout); err != nil {
		ln.Close()
		return err
	}
	// Devices on MQTT are let go with the HTTP requests in flight, before
	// the write queue drains: nothing is acknowledged after.
	defer a.mqtt.Close()
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Long polls answer at once with what they have when shutdown begins,
	// rather than hold it up for their minute.
	srv.RegisterOnShutdown(a.downlink.Close)
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
	stopFlusher := a.runFlusher(ctx)
	stopUpkeep := a.runUpkeep(ctx)
	defer stopUpkeep()

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
	fmt.Fprintf(e.stdout, "IoTFlow %s listening on %s://%s (storage: %s)\n", version, scheme, ln.Addr(), a.storage)
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "version", version)

	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	// Shutdown has IOTFLOW_SHUTDOWN_TIMEOUT in all. Stop accepting and give
	// the requests in flight 70% of it (a client stalling its body is cut
	// off then, and the handlers' contexts end); the write queue gets until
	// 90%; the kept last_seen times are written in the rest, before the
	// database closes (a.close, deferred above).
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
	a.mqtt.Close()
	a.drain(sctx, deadline.Add(-t/10), stopFlusher)
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
// 432 MiB makes the collector work harder before memory grows past it,
// within a budget of 500 MB of resident memory. It sits above what 10,000
// MQTT connections or long polls hold live (300 to 400 MB, see
// BENCHMARKS.md): a soft limit below the live memory makes the collector
// run without pause, and every request waits for it. GOGC and GOMEMLIMIT,
// when set, win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(432 << 20)
	}
}
