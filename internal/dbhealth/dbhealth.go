// Package dbhealth watches whether the database answers, so that requests
// fail fast while it does not. A Watcher probes the database on its own
// schedule; when a probe fails it declares the database down, cancels the
// contexts of the requests waiting on it and lets the store drop its
// connections; the first probe that succeeds declares it up again.
package dbhealth

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Options configure a Watcher.
type Options struct {
	// Interval is the time between probes (default 1s).
	Interval time.Duration
	// Timeout bounds one probe (default 2s). A database slower than this
	// to answer a trivial query counts as down.
	Timeout time.Duration
	// OnDown runs when the database is declared down, such as to close
	// the pool's connections, which may hang on a silent network.
	OnDown func()
	Logger *slog.Logger
}

// Watcher tracks the database's reachability.
type Watcher struct {
	probe func(context.Context) error
	opts  Options
	log   *slog.Logger

	mu     sync.Mutex
	down   bool
	ctx    context.Context // cancelled while the database is down
	cancel context.CancelFunc
	since  time.Time
}

// New returns a Watcher that calls probe; the database counts as up until
// a probe fails. Call Run to start probing.
func New(probe func(context.Context) error, opts Options) *Watcher {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{probe: probe, opts: opts, log: log, since: time.Now()}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w
}

// Run probes until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		w.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check probes once and updates the state.
func (w *Watcher) Check(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	err := w.probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down, not an outage
	}
	w.mu.Lock()
	wentDown := false
	switch {
	case err != nil && !w.down:
		w.down, w.since, wentDown = true, time.Now(), true
		w.cancel()
		w.log.Error("database unreachable; requests that need it get 503 until it answers", "err", err)
	case err == nil && w.down:
		w.log.Info("database reachable again", "down_for", time.Since(w.since).Round(time.Millisecond).String())
		w.down, w.since = false, time.Now()
		w.ctx, w.cancel = context.WithCancel(context.Background())
	}
	w.mu.Unlock()
	if wentDown && w.opts.OnDown != nil {
		w.opts.OnDown() // outside the lock: it may take a while
	}
}

// Down reports whether the last probe failed.
func (w *Watcher) Down() bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.down
}

// Bind returns a context derived from ctx that is also cancelled when the
// database is declared down (at once, when it is down already), so that a
// request waiting on a database that stopped answering is let go. Call
// the returned cancel when done.
func (w *Watcher) Bind(ctx context.Context) (context.Context, context.CancelFunc) {
	if w == nil {
		return ctx, func() {}
	}
	w.mu.Lock()
	up := w.ctx
	w.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	if up.Err() != nil {
		cancel(ErrDown) // now, not from AfterFunc's goroutine
		return ctx, func() {}
	}
	stop := context.AfterFunc(up, func() { cancel(ErrDown) })
	return ctx, func() { stop(); cancel(nil) }
}

// ErrDown is the cause of contexts that Bind cancelled.
var ErrDown = errDown{}

type errDown struct{}

func (errDown) Error() string { return "the database is unreachable" }
