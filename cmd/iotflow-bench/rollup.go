package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// rollupState is what the server's /metrics says of its time-series
// rollup: the readings it has taken in since the server started, and
// whether its last pass left more waiting.
type rollupState struct {
	rolled float64
	behind bool
}

// parseRollup reads the rollup's metrics from the Prometheus text format
// with the Prometheus client's own parser; ok is false when either is
// missing.
func parseRollup(r io.Reader) (rollupState, bool) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return rollupState{}, false
	}
	rolled, behind := families["iotflow_rollup_readings_total"].GetMetric(), families["iotflow_rollup_behind"].GetMetric()
	if len(rolled) != 1 || len(behind) != 1 || rolled[0].GetCounter() == nil || behind[0].GetGauge() == nil {
		return rollupState{}, false
	}
	return rollupState{rolled: rolled[0].GetCounter().GetValue(), behind: behind[0].GetGauge().GetValue() != 0}, true
}

// rollupWatch decides from successive scrapes when the rollup has caught
// up: it has taken in at least want readings and is not behind. With want
// 0 (the run seeded nothing, so there is nothing to count) it must not be
// behind twice in a row, so that one pass that happened to take fewer
// than its batch does not end the wait.
type rollupWatch struct {
	want float64
	calm int
}

func (w *rollupWatch) done(st rollupState) bool {
	if st.behind || st.rolled < w.want {
		w.calm = 0
		return false
	}
	w.calm++
	return w.want > 0 || w.calm >= 2
}

// rollupPoll is how often the wait for the rollup scrapes /metrics.
const rollupPoll = 500 * time.Millisecond

// awaitRollup waits until the server's rollup has taken in want readings
// (see rollupWatch) and says how long that took and how fast it went.
func awaitRollup(ctx context.Context, e env, c *seriesConfig, want float64) error {
	scrape := func() (rollupState, error) {
		b, err := getMetrics(ctx, c.url, c.token)
		if err != nil {
			return rollupState{}, err
		}
		st, ok := parseRollup(bytes.NewReader(b))
		if !ok {
			return rollupState{}, fmt.Errorf("the server's /metrics has no iotflow_rollup_readings_total and iotflow_rollup_behind")
		}
		return st, nil
	}
	waited := time.Now()
	first, err := scrape()
	if err != nil {
		return err
	}
	w := rollupWatch{want: want}
	st := first
	for !w.done(st) {
		if time.Since(waited) > c.rollupTimeout {
			return fmt.Errorf("the rollup did not catch up within --rollup-timeout %s: %.0f of %.0f readings taken in, behind %v",
				c.rollupTimeout, st.rolled, want, st.behind)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(rollupPoll):
		}
		if st, err = scrape(); err != nil {
			return err
		}
	}
	now := time.Now()
	after, rest := now.Sub(waited), st.rolled-first.rolled
	if c.seededAt.IsZero() {
		fmt.Fprintf(e.stdout, "rollup: caught up after %s; %.0f readings taken in meanwhile\n", after.Round(10*time.Millisecond), rest)
		return nil
	}
	all, seeded := now.Sub(c.seededAt), want-c.rolledBefore
	fmt.Fprintf(e.stdout, "rollup: caught up %s after seeding ended, %s after it began: %.0f readings/s over both",
		after.Round(10*time.Millisecond), all.Round(10*time.Millisecond), seeded/all.Seconds())
	if left := want - first.rolled; left > 0 {
		fmt.Fprintf(e.stdout, "; %.0f of the %.0f readings were left when seeding ended", left, seeded)
		// Fewer than a few passes' worth time the rollup's pause, not its pace.
		if left >= 100_000 {
			fmt.Fprintf(e.stdout, ", taken in at %.0f readings/s", rest/after.Seconds())
		}
	}
	fmt.Fprintln(e.stdout)
	return nil
}
