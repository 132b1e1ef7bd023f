package dbhealth

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatcher(t *testing.T) {
	var fail atomic.Bool
	var downs atomic.Int32
	w := New(func(ctx context.Context) error {
		if fail.Load() {
			return errors.New("connection refused")
		}
		return nil
	}, Options{OnDown: func() { downs.Add(1) }})
	ctx := t.Context()

	w.Check(ctx)
	if w.Down() {
		t.Fatal("down after a good probe")
	}
	inflight, done := w.Bind(ctx)
	defer done()

	fail.Store(true)
	w.Check(ctx)
	w.Check(ctx) // still down: OnDown runs once per outage
	if !w.Down() || downs.Load() != 1 {
		t.Fatalf("Down %v, OnDown ran %d times; want true, 1", w.Down(), downs.Load())
	}
	select {
	case <-inflight.Done():
		if !errors.Is(context.Cause(inflight), ErrDown) {
			t.Fatalf("cause %v, want ErrDown", context.Cause(inflight))
		}
	case <-time.After(time.Second):
		t.Fatal("a request bound before the outage was not let go")
	}
	late, done2 := w.Bind(ctx)
	defer done2()
	if late.Err() == nil {
		t.Fatal("a request bound during the outage is not cancelled at once")
	}

	fail.Store(false)
	w.Check(ctx)
	if w.Down() {
		t.Fatal("still down after a good probe")
	}
	fresh, done3 := w.Bind(ctx)
	defer done3()
	if fresh.Err() != nil {
		t.Fatal("a request bound after recovery is cancelled")
	}
}

func TestSlowProbeCountsAsDown(t *testing.T) {
	w := New(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, Options{Timeout: 20 * time.Millisecond})
	start := time.Now()
	w.Check(t.Context())
	if !w.Down() || time.Since(start) > time.Second {
		t.Fatalf("Down %v after %v; want a probe that hangs to count as down after its timeout", w.Down(), time.Since(start))
	}
}

func TestNilWatcher(t *testing.T) {
	var w *Watcher
	if w.Down() {
		t.Fatal("a nil watcher is down")
	}
	ctx, done := w.Bind(t.Context())
	defer done()
	if ctx.Err() != nil {
		t.Fatal("a nil watcher cancels")
	}
}

func TestShutdownIsNotAnOutage(t *testing.T) {
	w := New(func(ctx context.Context) error { return ctx.Err() }, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	w.Check(ctx)
	if w.Down() {
		t.Fatal("a probe cut short by shutdown declared the database down")
	}
}
