package series

import (
	"context"
	"log/slog"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// Retention removes the readings older than Keep, continuously: a bounded
// batch at a time (each one short transaction, counters lowered with it),
// with a pause between batches so that the writes go on beside it, until
// nothing older is left; then it looks again every Every.
type Retention struct {
	Store iotflow.Store
	Keep  time.Duration
	Batch int
	Pause time.Duration
	Every time.Duration
	Now   func() time.Time
	Log   *slog.Logger
}

// Run removes old readings until ctx ends.
func (r *Retention) Run(ctx context.Context) {
	failing := false
	for {
		n, err := r.Store.DeleteReadingsBefore(ctx, iotflow.RetentionCutoff(r.Now(), r.Keep), r.Batch)
		wait := r.Pause
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				r.Log.Warn("removing readings past IOTFLOW_RETENTION failed; retrying", "err", err)
			}
			failing, wait = true, r.Every
		case n < r.Batch:
			wait = r.Every
		}
		if err == nil && failing {
			r.Log.Info("removing readings past IOTFLOW_RETENTION works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
