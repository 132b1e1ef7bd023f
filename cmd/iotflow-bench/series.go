package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"
)

const benchSeriesUsage = `Usage: iotflow-bench series [flags]

Measures the time-series reads at scale. It stores --readings readings over
--devices devices, spread over the last --days, and one heavy device with a
reading every --heavy-every over the same days, all through the batch
endpoint; waits until the server's rollup has taken them in (its /metrics);
then times, one request at a time from sending it to the last byte of the
answer, against the admin API: a page of 1000 raw readings of a device, a
day of the heavy device at 1-minute buckets, its --days at 1-hour buckets,
a device's latest values, and exports of the heavy device as NDJSON and
CSV, with the server's memory meanwhile. Each figure is printed beside its
goal.

Without --url it starts a server as 'iotflow-bench --help' describes. To
measure a filled --url server again, give --seed=false and the --keys file
the seeding run wrote: the devices, the readings and their times come from
it, not from --devices, --readings, --days and --heavy-every.

Flags:
`

// seriesKeys are the keys of every seeded reading, as the reads ask for them.
const seriesKeys = "temperature,humidity,battery"

type seriesConfig struct {
	url, token        string
	devices, readings int
	days              int
	heavyEvery        time.Duration
	conns             int
	pages, daySamples int
	monthSamples      int
	latestSamples     int
	doSeed            bool
	keysFile          string
	rollupTimeout     time.Duration
	srv               serverFlags
	pid               int       // the server's process when the bench started it, else 0
	rolledBefore      float64   // the rollup's count when seeding began
	storage           string    // as the started server announced it
	seededAt          time.Time // when seeding began; zero without it
}

func runSeries(ctx context.Context, e env, args []string) error {
	c, err := parseSeriesFlags(e, args)
	if c == nil || err != nil {
		return err
	}
	if c.url == "" {
		srv, err := startServer(ctx, e, c.srv)
		if err != nil {
			return err
		}
		defer srv.stop()
		c.url, c.token, c.pid, c.storage = srv.url, srv.token, srv.pid(), srv.storage
	}
	s := &seeded{End: time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC(),
		Readings: c.readings, Days: c.days, HeavyEvery: c.heavyEvery}
	if !c.doSeed {
		if s, err = readSeeded(c.keysFile); err != nil {
			return err
		}
	}
	devices := c.devices
	if !c.doSeed {
		devices = len(s.Devices)
	}
	fmt.Fprintf(e.stdout, "iotflow-bench series: %d devices with %d readings over %d days, a heavy device with %d (one every %s); storage %s, %d CPUs\n",
		devices, s.Readings, s.Days, s.heavy().n, s.HeavyEvery, c.storageName(), numCPU())
	var want float64 // readings the rollup must have taken in; 0 when this run seeded none
	if c.doSeed {
		m, err := getMetrics(ctx, c.url, c.token)
		if err != nil {
			return err
		}
		before, ok := parseRollup(bytes.NewReader(m))
		if !ok {
			return fmt.Errorf("the server's /metrics has no iotflow_rollup_readings_total and iotflow_rollup_behind")
		}
		if err := seedSeries(ctx, e, c, s); err != nil {
			return err
		}
		c.rolledBefore = before.rolled
		want = before.rolled + float64(s.Readings+s.heavy().n)
	}
	if err := awaitRollup(ctx, e, c, want); err != nil {
		return err
	}
	return measureSeries(ctx, e, c, s)
}

func (c *seriesConfig) storageName() string {
	if c.storage == "" {
		return "of the --url server"
	}
	return c.storage
}

// parseSeriesFlags returns nil and no error after --help.
func parseSeriesFlags(e env, args []string) (*seriesConfig, error) {
	fs := flag.NewFlagSet("iotflow-bench series", flag.ContinueOnError)
	c := &seriesConfig{}
	fs.StringVar(&c.url, "url", "", "an IoTFlow server (default: start one)")
	fs.StringVar(&c.token, "admin-token", "", "admin token of the --url server (required with --url)")
	fs.IntVar(&c.devices, "devices", 1000, "ordinary devices to register")
	fs.IntVar(&c.readings, "readings", 10_000_000, "readings to store over the ordinary devices")
	fs.IntVar(&c.days, "days", 30, "the readings' timestamps spread over this many days before now")
	fs.DurationVar(&c.heavyEvery, "heavy-every", time.Second, "the heavy device's reading interval over the --days (at least 1ms)")
	fs.IntVar(&c.conns, "connections", 8, "concurrent connections while seeding")
	fs.IntVar(&c.pages, "samples", 500, "raw pages of 1000 readings to time")
	fs.IntVar(&c.daySamples, "day-samples", 100, "days at 1-minute buckets to time")
	fs.IntVar(&c.monthSamples, "month-samples", 50, "--days at 1-hour buckets to time")
	fs.IntVar(&c.latestSamples, "latest-samples", 500, "latest-value reads to time")
	fs.BoolVar(&c.doSeed, "seed", true, "register the devices and store the readings first")
	fs.StringVar(&c.keysFile, "keys", "", "file of the seeded devices and their readings' layout: written when seeding, read with --seed=false")
	fs.DurationVar(&c.rollupTimeout, "rollup-timeout", 2*time.Hour, "how long to wait for the server's rollup to catch up")
	c.srv.register(fs)
	if err := parseFlags(fs, e, args, benchSeriesUsage); err != nil {
		return nil, helpOK(err)
	}
	if err := checkReuse("series", c.srv, c.url, c.keysFile, c.doSeed); err != nil {
		return nil, err
	}
	if c.url != "" && c.token == "" {
		return nil, fmt.Errorf("--url needs --admin-token: the series reads and /metrics are the admin's")
	}
	if c.devices < 1 || c.readings < 1 || c.days < 1 || c.conns < 1 || c.heavyEvery < time.Millisecond ||
		c.pages < 1 || c.daySamples < 1 || c.monthSamples < 1 || c.latestSamples < 1 || c.rollupTimeout <= 0 {
		return nil, fmt.Errorf("--devices, --readings, --days, --connections, the samples and --rollup-timeout must be positive, --heavy-every at least 1ms")
	}
	if c.doSeed && c.readings/c.devices < pageSize {
		return nil, fmt.Errorf("--readings %d over --devices %d gives a device fewer than the %d readings of a raw page", c.readings, c.devices, pageSize)
	}
	if c.doSeed && time.Duration(c.days)*24*time.Hour/c.heavyEvery < 1 {
		return nil, fmt.Errorf("--heavy-every %s is longer than --days %d", c.heavyEvery, c.days)
	}
	return c, nil
}

// seeded is what a series run stored, written to --keys so that a run
// with --seed=false reads the same readings: the devices, and what the
// layouts of their readings are made of.
type seeded struct {
	End        time.Time      `json:"end"`
	Readings   int            `json:"readings"`
	Days       int            `json:"days"`
	HeavyEvery time.Duration  `json:"heavy_every_ns"`
	Devices    []seededDevice `json:"devices"`
	Heavy      seededDevice   `json:"heavy"`
}

type seededDevice struct {
	ID  int64  `json:"id"`
	Key string `json:"key"`
}

func (s *seeded) span() time.Duration { return time.Duration(s.Days) * 24 * time.Hour }

// ordinary is the layout of the ordinary devices' readings: a device's
// index in it is its index in Devices.
func (s *seeded) ordinary() layout { return spread(s.Readings, len(s.Devices), s.span(), s.End) }

// heavy is the layout of the heavy device's readings.
func (s *seeded) heavy() layout { return steady(s.span(), s.HeavyEvery, s.End) }

// seedSeries registers the devices of s and stores their readings, and
// writes --keys. s.End lies a minute before now: the server refuses times
// far in the future.
func seedSeries(ctx context.Context, e env, c *seriesConfig, s *seeded) error {
	keys, ids, err := registerDevices(ctx, c.url, c.devices+1)
	if err != nil {
		return err
	}
	s.Heavy = seededDevice{ids[c.devices], keys[c.devices]}
	for i := range c.devices {
		s.Devices = append(s.Devices, seededDevice{ids[i], keys[i]})
	}
	if c.keysFile != "" {
		b, _ := json.Marshal(s)
		if err := os.WriteFile(c.keysFile, b, 0o600); err != nil {
			return err
		}
	}
	c.seededAt = time.Now()
	if err := seedTimed(ctx, e, c.url, keys[:c.devices], s.ordinary(), c.conns, fmt.Sprintf("over %d devices", c.devices)); err != nil {
		return err
	}
	if err := seedTimed(ctx, e, c.url, keys[c.devices:], s.heavy(), c.conns, "of the heavy device"); err != nil {
		return err
	}
	took, n := time.Since(c.seededAt), s.Readings+s.heavy().n
	fmt.Fprintf(e.stdout, "seeded %d readings in all in %s (%.0f readings/s)\n",
		n, took.Round(10*time.Millisecond), float64(n)/took.Seconds())
	return nil
}

// readSeeded reads the --keys file of the run that seeded the server.
func readSeeded(path string) (*seeded, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s seeded
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s is not the --keys file of a bench series run: %w", path, err)
	}
	if len(s.Devices) == 0 || s.Heavy.ID == 0 || s.Readings < 1 || s.Days < 1 || s.HeavyEvery < time.Millisecond {
		return nil, fmt.Errorf("%s is not the --keys file of a bench series run", path)
	}
	return &s, nil
}
