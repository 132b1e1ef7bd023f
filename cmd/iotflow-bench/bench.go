package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const benchUsage = `Usage: iotflow-bench [flags]

Drives an IoTFlow server and reports requests/s, readings/s, latency
percentiles, errors and the server's memory and CPU; then checks that the
stored rows equal the acknowledged writes. --mode says what a request does:
single posts one reading (POST /api/v1/devices/telemetry), batch posts
--batch-size of them (POST /api/v1/devices/telemetry/batch), status reads
the device's status (GET /api/v1/devices/status). A comma list such as
--mode single,status measures each mode in turn in every round, against
the same server, and compares status reads/s with telemetry writes/s.
--seed stores that many readings first, so that reads meet a filled
database.

'iotflow-bench query' measures reads at scale instead, 'iotflow-bench
series' the time-series reads and exports, and 'iotflow-bench downlink'
commands reaching long polls (see their --help). 'iotflow-bench simulate'
runs simulated devices against a running server, for demos and load.

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
PostgreSQL database where it creates its table iotflow_bench_floor (and
refuses to start if one is there) and drops it at the end; it touches
nothing else there. It measures single readings, beside --mode single.

Flags:
`

type benchConfig struct {
	url, adminToken string
	devices         int
	modes           []mode
	load            loadConfig
	seed            int
	baseline        bool
	floor           bool
	floorDatabase   string
	rounds          int
	srv             serverFlags
}

// Seeding writes spread over the last 30 days, a few requests at a time.
const (
	seedDays        = 30
	seedConnections = 8
)

func runBench(ctx context.Context, e env, args []string) error {
	c, err := parseBenchFlags(e, args)
	if c == nil || err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "iotflow-bench: mode %s, %d devices, %d connections, %d rounds of %s (each after %s warm-up), %d CPUs\n",
		joinModes(c.modes), c.devices, c.load.conns, c.rounds, c.load.duration, c.load.warm, numCPU())

	// The targets run side by side, each in its own process; every round
	// measures each of them in turn so that the machine's noise hits all
	// alike.
	var base, floor target
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
		base = target{url: url, pid: child.Process.Pid, keys: baseKeys}
	}
	if c.floor {
		child, url, err := spawnTarget(ctx, e, "floor", []string{floorDatabaseEnv + "=" + c.floorDatabase})
		if err != nil {
			return err
		}
		defer stopChild(child)
		floor = target{url: url, pid: child.Process.Pid, keys: baseKeys}
	}
	iot := target{url: c.url, token: c.adminToken}
	storage := "external"
	if iot.url == "" {
		srv, err := startServer(ctx, e, c.srv)
		if err != nil {
			return err
		}
		defer srv.stop()
		iot = target{url: srv.url, pid: srv.pid(), token: srv.token}
		storage = srv.storage
	}
	var ids []int64
	if iot.keys, ids, err = registerDevices(ctx, iot.url, c.devices); err != nil {
		return err
	}
	var sum summary
	if c.seed > 0 {
		if err := seed(ctx, e, iot.url, iot.keys, c.seed, seedDays, seedConnections); err != nil {
			return err
		}
		sum.seeded = int64(c.seed)
	}

	for round := 1; round <= c.rounds; round++ {
		for _, m := range c.modes {
			suffix := ""
			if len(c.modes) > 1 {
				suffix = " " + string(m)
			}
			if c.baseline {
				b, err := drive(ctx, base, m, c.load)
				if err != nil {
					return err
				}
				b.print(e.stdout, fmt.Sprintf("%d bare net/http%s", round, suffix))
				sum.add(m, "bare", b)
			}
			if c.floor && m == single {
				f, err := drive(ctx, floor, m, c.load)
				if err != nil {
					return err
				}
				f.print(e.stdout, fmt.Sprintf("%d durable floor", round))
				sum.add(m, "floor", f)
			}
			r, err := drive(ctx, iot, m, c.load)
			if err != nil {
				return err
			}
			r.print(e.stdout, fmt.Sprintf("%d iotflow%s (%s)", round, suffix, storage))
			sum.add(m, "iotflow", r)
		}
	}
	sum.print(e.stdout, c.modes)
	if c.floor {
		if err := verifyFloor(e, floor.url, sum); err != nil {
			return err
		}
	}
	if iot.token == "" {
		fmt.Fprintln(e.stdout, "verify: skipped (no --admin-token)")
		return nil
	}
	return verify(ctx, e, iot, ids, sum)
}

// parseBenchFlags returns nil and no error after --help.
func parseBenchFlags(e env, args []string) (*benchConfig, error) {
	fs := flag.NewFlagSet("iotflow-bench", flag.ContinueOnError)
	var c benchConfig
	modes := fs.String("mode", "single", "single (POST /telemetry), batch (POST /telemetry/batch), status (GET /devices/status), or a comma list of them measured in turn")
	fs.StringVar(&c.url, "url", "", "an IoTFlow server to drive (default: start one)")
	fs.StringVar(&c.adminToken, "admin-token", "", "admin token of the --url server, to verify stored rows")
	fs.IntVar(&c.devices, "devices", 100, "devices to register and write as")
	fs.IntVar(&c.load.conns, "connections", 32, "concurrent connections")
	fs.DurationVar(&c.load.duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&c.load.warm, "warmup", 2*time.Second, "load before measuring")
	fs.IntVar(&c.load.batchSize, "batch-size", 100, "records per batch request in batch mode")
	fs.IntVar(&c.seed, "seed", 0, "readings to store over the devices (batch endpoint) before the rounds")
	fs.BoolVar(&c.baseline, "baseline", false, "also measure the bare net/http handler and print the ratio")
	fs.BoolVar(&c.floor, "floor", false, "also measure the durable floor (the bare handler with a minimal group commit to --floor-database); with --baseline, print its ratio")
	fs.StringVar(&c.floorDatabase, "floor-database", "", "PostgreSQL URL where --floor creates and drops its table "+floorTable)
	fs.IntVar(&c.rounds, "rounds", 3, "measurements of each target and mode, alternating; the median counts")
	c.srv.register(fs)
	if err := parseFlags(fs, e, args, benchUsage); err != nil {
		return nil, helpOK(err)
	}
	var err error
	if c.modes, err = parseModes(*modes); err != nil {
		return nil, err
	}
	if c.devices < 1 || c.load.conns < 1 || c.load.batchSize < 1 || c.load.duration <= 0 || c.rounds < 1 {
		return nil, fmt.Errorf("--devices, --connections, --batch-size and --duration must be positive")
	}
	if c.seed < 0 || c.load.warm < 0 {
		return nil, fmt.Errorf("--seed and --warmup must not be negative")
	}
	if err := c.srv.check(c.url); err != nil {
		return nil, err
	}
	if c.floor && c.floorDatabase == "" {
		return nil, fmt.Errorf("--floor needs --floor-database URL: a PostgreSQL database where the floor creates and drops its table %s", floorTable)
	}
	if c.floorDatabase != "" && !c.floor {
		return nil, fmt.Errorf("--floor-database is for --floor")
	}
	if c.floor && !hasMode(c.modes, single) {
		return nil, fmt.Errorf("--floor measures single readings only: --mode must include single")
	}
	return &c, nil
}

// verifyFloor checks that the floor stored what it acknowledged.
func verifyFloor(e env, url string, sum summary) error {
	var out struct{ Count int64 }
	res, err := benchClient.Get(url + "/floor/count")
	if err == nil {
		err = jsonDecodeBody(res, &out)
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("count: status %d", res.StatusCode)
		}
	}
	if err != nil {
		return fmt.Errorf("verify floor: %w", err)
	}
	acked, failed, _ := sum.written("floor")
	fmt.Fprintf(e.stdout, "verify floor: %d readings acknowledged, %d stored, %d requests failed\n", acked, out.Count, failed)
	// As for IoTFlow below: a failed request may have been stored.
	if acked == 0 || out.Count < acked || out.Count > acked+failed {
		return fmt.Errorf("verify floor: stored rows (%d) do not match acknowledged writes (%d)", out.Count, acked)
	}
	return nil
}

// verify checks that IoTFlow stored every reading it acknowledged, seeded
// ones included, once.
func verify(ctx context.Context, e env, iot target, ids []int64, sum summary) error {
	stored, err := countStored(ctx, iot.url, iot.token, ids)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	acked, failed, unsure := sum.written("iotflow")
	acked += sum.seeded
	included := "warm-ups included"
	if sum.seeded > 0 {
		included = fmt.Sprintf("warm-ups and %d seeded included", sum.seeded)
	}
	fmt.Fprintf(e.stdout, "verify: %d readings acknowledged (%s), %d stored, %d requests failed\n",
		acked, included, stored, failed)
	// A failed request may have been stored without its answer arriving;
	// nothing more.
	if stored < acked || stored > acked+unsure {
		return fmt.Errorf("verify: stored rows (%d) do not match acknowledged writes (%d)", stored, acked)
	}
	return nil
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

func joinModes(ms []mode) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ",")
}
