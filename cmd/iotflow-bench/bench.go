package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

const benchUsage = `Usage: iotflow-bench [flags]

Drives telemetry POSTs at an IoTFlow server and reports requests/s,
readings/s, latency percentiles, errors and the server's memory; then checks
that the stored rows equal the acknowledged writes.

'iotflow-bench query' measures reads at scale instead (see its --help).

Without --url it starts 'iotflow serve' (the binary named by --server) as a
child process in a fresh temporary directory, with a clean environment:
none of this shell's variables but PATH, and no .env file. Its database is
the PostgreSQL of --database, else an embedded SQLite in that directory.

With --baseline it first drives a bare net/http handler (same HTTP and JSON
work, no database) the same way, in its own process, and prints IoTFlow's
throughput as a share of it. With --floor it also drives the durable floor:
the bare handler made durable about as cheaply as possible, each reading
appended by a minimal group commit to a table with only a primary key, and
answered once committed: a practical bound on what a durable server, and so
IoTFlow, can reach on the machine. The floor needs --floor-database, a
PostgreSQL database where it creates its table iotflow_bench_floor afresh
and drops it at the end; it touches nothing else there.

Flags:
`

type benchConfig struct {
	url, adminToken string
	devices, conns  int
	duration, warm  time.Duration
	mode            string
	batchSize       int
	baseline        bool
	floor           bool
	rounds          int
	srv             serverFlags
	floorDatabase   string
}

func runBench(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("iotflow-bench", flag.ContinueOnError)
	var c benchConfig
	fs.StringVar(&c.url, "url", "", "an IoTFlow server to drive (default: start one)")
	fs.StringVar(&c.adminToken, "admin-token", "", "admin token of the --url server, to verify stored rows")
	fs.IntVar(&c.devices, "devices", 100, "devices to register and write as")
	fs.IntVar(&c.conns, "connections", 32, "concurrent connections")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&c.warm, "warmup", 2*time.Second, "load before measuring")
	fs.StringVar(&c.mode, "mode", "single", "single (POST /telemetry) or batch (POST /telemetry/batch)")
	fs.IntVar(&c.batchSize, "batch-size", 100, "records per batch request in batch mode")
	fs.BoolVar(&c.baseline, "baseline", false, "also measure the bare net/http handler and print the ratio")
	fs.BoolVar(&c.floor, "floor", false, "also measure the durable floor (the bare handler with a minimal group commit to --floor-database); with --baseline, print its ratio")
	fs.StringVar(&c.floorDatabase, "floor-database", "", "PostgreSQL URL where --floor creates and drops its table "+floorTable)
	fs.IntVar(&c.rounds, "rounds", 3, "measurements of each target, alternating with --baseline; the median counts")
	c.srv.register(fs)
	if err := parseFlags(fs, e, args, benchUsage); err != nil {
		return helpOK(err)
	}
	if c.mode != "single" && c.mode != "batch" {
		return fmt.Errorf("--mode must be single or batch")
	}
	if c.devices < 1 || c.conns < 1 || c.batchSize < 1 || c.duration <= 0 || c.rounds < 1 {
		return fmt.Errorf("--devices, --connections, --batch-size and --duration must be positive")
	}
	if err := c.srv.check(c.url); err != nil {
		return err
	}
	if c.floor && c.floorDatabase == "" {
		return fmt.Errorf("--floor needs --floor-database URL: a PostgreSQL database where the floor creates and drops its table %s", floorTable)
	}
	if c.floorDatabase != "" && !c.floor {
		return fmt.Errorf("--floor-database is for --floor")
	}
	if c.floor && c.mode != "single" {
		return fmt.Errorf("--floor measures single readings only (--mode single)")
	}

	fmt.Fprintf(e.stdout, "iotflow-bench: mode %s, %d devices, %d connections, %d rounds of %s (each after %s warm-up), %d CPUs\n",
		c.mode, c.devices, c.conns, c.rounds, c.duration, c.warm, numCPU())

	// Both servers run side by side, in their own processes; the rounds
	// alternate between them so that the machine's noise hits both alike.
	var baseURL string
	var basePID int
	// The bare handler and the floor take any key.
	baseKeys := make([]string, c.devices)
	for i := range baseKeys {
		baseKeys[i] = fmt.Sprintf("baseline-key-%d", i)
	}
	if c.baseline {
		child, url, err := spawnTarget(ctx, e, "baseline", nil)
		if err != nil {
			return err
		}
		defer stopChild(child)
		baseURL, basePID = url, child.Process.Pid
	}
	var floorURL string
	var floorPID int
	if c.floor {
		child, url, err := spawnTarget(ctx, e, "floor", []string{floorDatabaseEnv + "=" + c.floorDatabase})
		if err != nil {
			return err
		}
		defer stopChild(child)
		floorURL, floorPID = url, child.Process.Pid
	}
	url, token := c.url, c.adminToken
	pid := 0
	storage := "external"
	if url == "" {
		srv, err := startServer(ctx, e, c.srv)
		if err != nil {
			return err
		}
		defer srv.stop()
		url, pid, token, storage = srv.url, srv.pid(), srv.token, srv.storage
	}
	keys, ids, err := registerDevices(ctx, url, c.devices)
	if err != nil {
		return err
	}
	var bases, floors, runs []*benchResult
	var acked, failed, floorAcked, floorFailed int64
	for round := 1; round <= c.rounds; round++ {
		if c.baseline {
			b, err := drive(ctx, baseURL, baseKeys, c, basePID, "")
			if err != nil {
				return err
			}
			b.print(e.stdout, fmt.Sprintf("%d bare net/http", round))
			bases = append(bases, b)
		}
		if c.floor {
			f, err := drive(ctx, floorURL, baseKeys, c, floorPID, "")
			if err != nil {
				return err
			}
			f.print(e.stdout, fmt.Sprintf("%d durable floor", round))
			floors = append(floors, f)
			floorAcked, floorFailed = floorAcked+f.ackedReadings, floorFailed+f.failedRequests
		}
		r, err := drive(ctx, url, keys, c, pid, token)
		if err != nil {
			return err
		}
		r.print(e.stdout, fmt.Sprintf("%d iotflow (%s)", round, storage))
		runs = append(runs, r)
		acked, failed = acked+r.ackedReadings, failed+r.failedRequests
	}
	med := median(runs)
	fmt.Fprintf(e.stdout, "median iotflow: %.0f req/s, %.0f readings/s, p50 %.2fms, p99 %.2fms, p99.9 %.2fms, server RSS peak %.1f MB\n",
		med.rps, med.readingsPerSec, ms(med.p50), ms(med.p99), ms(med.p999), float64(maxRSS(runs))/1024)
	if c.floor {
		mf := median(floors)
		fmt.Fprintf(e.stdout, "median durable floor: %.0f req/s, p50 %.2fms, p99 %.2fms, p99.9 %.2fms\n",
			mf.rps, ms(mf.p50), ms(mf.p99), ms(mf.p999))
	}
	if c.baseline {
		mb := median(bases)
		ratios := make([]float64, len(runs))
		for i := range runs {
			ratios[i] = 100 * runs[i].rps / bases[i].rps
		}
		slices.Sort(ratios)
		fmt.Fprintf(e.stdout, "ratio: median %.1f%% of bare net/http (rounds: %s); medians %.0f vs %.0f req/s\n",
			ratios[len(ratios)/2], fmtPercents(ratios), med.rps, mb.rps)
		if c.floor {
			for i := range floors {
				ratios[i] = 100 * floors[i].rps / bases[i].rps
			}
			slices.Sort(ratios)
			fmt.Fprintf(e.stdout, "floor: median %.1f%% of bare net/http (rounds: %s); median %.0f req/s\n",
				ratios[len(ratios)/2], fmtPercents(ratios), median(floors).rps)
		}
	}
	if c.floor {
		var out struct{ Count int64 }
		res, err := benchClient.Get(floorURL + "/floor/count")
		if err == nil {
			err = jsonDecodeBody(res, &out)
		}
		if err != nil {
			return fmt.Errorf("verify floor: %w", err)
		}
		fmt.Fprintf(e.stdout, "verify floor: %d readings acknowledged, %d stored, %d requests failed\n", floorAcked, out.Count, floorFailed)
		// As for IoTFlow below: a failed request may have been stored.
		if floorAcked == 0 || out.Count < floorAcked || out.Count > floorAcked+floorFailed {
			return fmt.Errorf("verify floor: stored rows (%d) do not match acknowledged writes (%d)", out.Count, floorAcked)
		}
	}
	if token == "" {
		fmt.Fprintln(e.stdout, "verify: skipped (no --admin-token)")
		return nil
	}
	stored, err := countStored(ctx, url, token, ids)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	fmt.Fprintf(e.stdout, "verify: %d readings acknowledged (warm-ups included), %d stored, %d requests failed\n",
		acked, stored, failed)
	// Every acknowledged reading must be stored, once. A failed request
	// may have been stored without its answer arriving; nothing more.
	perReq := int64(1)
	if c.mode == "batch" {
		perReq = int64(c.batchSize)
	}
	if stored < acked || stored > acked+failed*perReq {
		return fmt.Errorf("verify: stored rows (%d) do not match acknowledged writes (%d)", stored, acked)
	}
	return nil
}

// median returns the run with the median throughput.
func median(rs []*benchResult) *benchResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b *benchResult) int { return cmp.Compare(a.rps, b.rps) })
	return s[len(s)/2]
}

func maxRSS(rs []*benchResult) int64 {
	var m int64
	for _, r := range rs {
		m = max(m, r.peakRSSKB)
	}
	return m
}

func fmtPercents(ps []float64) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%.1f%%", p)
	}
	return strings.Join(parts, " ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func jsonDecodeBody(res *http.Response, out any) error {
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(out)
}
