package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// seed stores n readings over the devices of keys, as seedReadings does,
// and says how long that took.
func seed(ctx context.Context, e env, base string, keys []string, n, days, conns int) error {
	l := spread(n, len(keys), time.Duration(days)*24*time.Hour, time.Now().Add(-time.Minute))
	return seedTimed(ctx, e, base, keys, l, conns, fmt.Sprintf("over %d devices", len(keys)))
}

// seedTimed stores l's readings and prints how long that took, naming
// them by what.
func seedTimed(ctx context.Context, e env, base string, keys []string, l layout, conns int, what string) error {
	start := time.Now()
	if err := l.post(ctx, base, keys, conns); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(e.stdout, "seeded %d readings %s in %s (%.0f readings/s)\n",
		l.n, what, el.Round(10*time.Millisecond), float64(l.n)/el.Seconds())
	return nil
}

// seedReadings stores n readings through the batch endpoint, with
// timestamps spread evenly over the last days: up to 1000 a request, fewer
// when that spreads them over more of the devices.
func seedReadings(ctx context.Context, base string, keys []string, n, days, conns int) error {
	l := spread(n, len(keys), time.Duration(days)*24*time.Hour, time.Now().Add(-time.Minute))
	return l.post(ctx, base, keys, conns)
}

// post stores l's readings through the batch endpoint, conns requests at
// a time, timestamps in epoch milliseconds, as the devices of keys.
func (l layout) post(ctx context.Context, base string, keys []string, conns int) error {
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b strings.Builder
			for {
				batch := int(next.Add(1)) - 1
				if batch >= l.batches() || firstErr.Load() != nil {
					return
				}
				start := batch * l.per
				b.Reset()
				b.WriteString(`{"records":[`)
				for i := start; i < min(start+l.per, l.n); i++ {
					if i > start {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"data":{"temperature":%d.%d,"humidity":%d,"battery":%d},"timestamp":%d}`,
						15+(i/7)%15, i%10, 30+i%40, 100-(i/13)%60, l.at(i).UnixMilli())
				}
				b.WriteString(`]}`)
				status, err := postJSON(ctx, base+"/api/v1/devices/telemetry/batch", keys[l.device(batch)], []byte(b.String()), nil)
				if err != nil || status != http.StatusCreated {
					firstErr.CompareAndSwap(nil, fmt.Sprintf("seed batch: status %d: %v", status, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if v := firstErr.Load(); v != nil {
		return fmt.Errorf("%s", v)
	}
	return nil
}
