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
	doSeed := fs.Bool("seed", true, "register devices and store the readings first")
	keysFile := fs.String("keys", "", "file of the devices' API keys: written when seeding, read with --seed=false")
	var srvFlags serverFlags
	srvFlags.register(fs)
	if err := parseFlags(fs, e, args, benchQueryUsage); err != nil {
		return helpOK(err)
	}
	if err := checkReuse("query", srvFlags, *url, *keysFile, *doSeed); err != nil {
		return err
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
	if *doSeed {
		var err error
		if keys, _, err = registerDevices(ctx, base, *devices); err != nil {
			return err
		}
		if *keysFile != "" {
			if err := os.WriteFile(*keysFile, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
				return err
			}
		}
		if err := seed(ctx, e, base, keys, *readings, *days, *conns); err != nil {
			return err
		}
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

// checkReuse refuses the flags of a subcommand that seeds (name) where
// they cannot work: server flags beside --url, and --keys or --seed=false
// without one.
func checkReuse(name string, f serverFlags, url, keysFile string, doSeed bool) error {
	if err := f.check(url); err != nil {
		return err
	}
	if keysFile != "" && url == "" {
		return fmt.Errorf("--keys needs --url: the server bench %s starts itself is deleted when it ends", name)
	}
	if !doSeed && (keysFile == "" || url == "") {
		return fmt.Errorf("--seed=false needs --url and the --keys file of the run that seeded it")
	}
	return nil
}

func percentiles(ds []time.Duration) string {
	slices.Sort(ds)
	return fmt.Sprintf("n %d  p50 %.2fms  p99 %.2fms  max %.2fms", len(ds), ms(quantile(ds, 0.5)), ms(quantile(ds, 0.99)), ms(ds[len(ds)-1]))
}

// quantile is the q-quantile of ds, which is sorted.
func quantile(ds []time.Duration, q float64) time.Duration {
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// timedGet reads url with the header set, checks for a 200 with a JSON
// object, and returns the time from sending the request to the last byte
// of the answer.
func timedGet(ctx context.Context, url, header, value string) (time.Duration, error) {
	took, body, err := timedRead(ctx, url, header, value)
	if err == nil {
		var sink map[string]any // the client's decoding is not the service's latency
		if err = json.Unmarshal(body, &sink); err != nil {
			err = fmt.Errorf("GET %s: %w", url, err)
		}
	}
	return took, err
}

// timedRead reads url with the header set, checks for a 200, and returns
// the time from sending the request to the last byte of the answer, and
// the answer.
func timedRead(ctx context.Context, url, header, value string) (time.Duration, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set(header, value)
	start := time.Now()
	res, err := benchClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	took := time.Since(start)
	if err != nil || res.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("GET %s: status %d: %v %.200s", url, res.StatusCode, err, body)
	}
	return took, body, nil
}
