package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const benchQueryUsage = `Usage: iotflow-bench query [flags]

Fills a database with readings spread over --days through the batch endpoint
(skip with --seed=false on a filled --url server, giving the --keys file the
seeding run wrote), then measures the read paths at that scale: a device's
newest 100 readings and the admin dashboard, timed from sending the request
to the last byte of the answer.

Flags:
`

func runQuery(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("iotflow-bench query", flag.ContinueOnError)
	url := fs.String("url", "", "an IoTFlow server (default: start one)")
	token := fs.String("admin-token", "", "admin token of the --url server")
	devices := fs.Int("devices", 1000, "devices to register")
	readings := fs.Int("readings", 10_000_000, "readings to store")
	days := fs.Int("days", 30, "the readings' timestamps spread over this many days before now")
	conns := fs.Int("connections", 8, "concurrent connections while seeding")
	samples := fs.Int("samples", 2000, "newest-100 reads to time")
	dashboards := fs.Int("dashboards", 50, "dashboard reads to time")
	seed := fs.Bool("seed", true, "register devices and store the readings first")
	keysFile := fs.String("keys", "", "file of the devices' API keys: written when seeding, read with --seed=false")
	var srvFlags serverFlags
	srvFlags.register(fs)
	if err := parseFlags(fs, e, args, benchQueryUsage); err != nil {
		return helpOK(err)
	}
	if err := srvFlags.check(*url); err != nil {
		return err
	}
	if *keysFile != "" && *url == "" {
		return fmt.Errorf("--keys needs --url: the server bench query starts itself is deleted when it ends")
	}
	if !*seed && (*keysFile == "" || *url == "") {
		return fmt.Errorf("--seed=false needs --url and the --keys file of the run that seeded it")
	}
	base, admin := *url, *token
	if base == "" {
		srv, err := startServer(ctx, e, srvFlags)
		if err != nil {
			return err
		}
		defer srv.stop()
		base, admin = srv.url, srv.token
	}
	var keys []string
	if *seed {
		var err error
		if keys, _, err = registerDevices(ctx, base, *devices); err != nil {
			return err
		}
		if *keysFile != "" {
			if err := os.WriteFile(*keysFile, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
				return err
			}
		}
		start := time.Now()
		if err := seedReadings(ctx, base, keys, *readings, *days, *conns); err != nil {
			return err
		}
		el := time.Since(start)
		fmt.Fprintf(e.stdout, "seeded %d readings over %d devices in %s (%.0f readings/s)\n",
			*readings, *devices, el.Round(time.Second), float64(*readings)/el.Seconds())
	} else {
		b, err := os.ReadFile(*keysFile)
		if err != nil {
			return err
		}
		if keys = strings.Fields(string(b)); len(keys) == 0 {
			return fmt.Errorf("%s holds no keys", *keysFile)
		}
	}

	newest := make([]time.Duration, 0, *samples)
	for range *samples {
		key := keys[rand.IntN(len(keys))]
		took, err := timedGet(ctx, base+"/api/v1/devices/telemetry?limit=100", "X-API-Key", key)
		if err != nil {
			return err
		}
		newest = append(newest, took)
	}
	dash := make([]time.Duration, 0, *dashboards)
	for range *dashboards {
		took, err := timedGet(ctx, base+"/api/v1/admin/dashboard", "Authorization", "Bearer "+admin)
		if err != nil {
			return err
		}
		dash = append(dash, took)
	}
	fmt.Fprintf(e.stdout, "newest 100 of a device: %s\n", percentiles(newest))
	fmt.Fprintf(e.stdout, "admin dashboard:        %s\n", percentiles(dash))
	return nil
}

func percentiles(ds []time.Duration) string {
	slices.Sort(ds)
	p := func(q float64) float64 { return ms(ds[min(len(ds)-1, int(q*float64(len(ds))))]) }
	return fmt.Sprintf("n %d  p50 %.2fms  p99 %.2fms  max %.2fms", len(ds), p(0.5), p(0.99), ms(ds[len(ds)-1]))
}

func timedGet(ctx context.Context, url, header, value string) (time.Duration, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set(header, value)
	start := time.Now()
	res, err := benchClient.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	took := time.Since(start) // the service's latency; the client's decoding below is not
	var sink map[string]any
	if err == nil {
		err = json.Unmarshal(body, &sink)
	}
	if err != nil || res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d: %v", url, res.StatusCode, err)
	}
	return took, nil
}

// seedReadings stores n readings through the batch endpoint, 1000 a
// request, with timestamps spread evenly over the last days.
func seedReadings(ctx context.Context, base string, keys []string, n, days, conns int) error {
	const per = 1000
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
				start := int(next.Add(per)) - per
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
