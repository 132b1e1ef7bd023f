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
	start := time.Now()
	if err := seedReadings(ctx, base, keys, n, days, conns); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(e.stdout, "seeded %d readings over %d devices in %s (%.0f readings/s)\n",
		n, len(keys), el.Round(10*time.Millisecond), float64(n)/el.Seconds())
	return nil
}

// seedReadings stores n readings through the batch endpoint, with
// timestamps spread evenly over the last days: up to 1000 a request, fewer
// when that spreads them over more of the devices.
func seedReadings(ctx context.Context, base string, keys []string, n, days, conns int) error {
	per := min(1000, max(1, n/len(keys)))
	span := time.Duration(days) * 24 * time.Hour
	now := time.Now().Add(-time.Minute)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b strings.Builder
			for {
				start := int(next.Add(int64(per))) - per
				if start >= n || firstErr.Load() != nil {
					return
				}
				count := min(per, n-start)
				key := keys[(start/per)%len(keys)]
				b.Reset()
				b.WriteString(`{"records":[`)
				for j := range count {
					if j > 0 {
						b.WriteByte(',')
					}
					at := now.Add(-time.Duration(float64(span) * float64(start+j) / float64(n)))
					fmt.Fprintf(&b, `{"data":{"temperature":%d.5,"humidity":%d},"timestamp":%d}`, 15+j%15, 30+j%40, at.UnixMilli())
				}
				b.WriteString(`]}`)
				status, err := postJSON(ctx, base+"/api/v1/devices/telemetry/batch", key, []byte(b.String()), nil)
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
