package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotflow/iotflow/internal/procstat"
)

const benchDownlinkUsage = `Usage: iotflow-bench downlink [flags]

Measures the downlink. Wake-up: a device waits in a long poll
(GET /api/v1/devices/commands?wait=30) on one node; once that node counts it
waiting (iotflow_long_polls_waiting in its /metrics), an admin issues a
command (POST /api/v1/admin/devices/{id}/commands) on a node, and the time
from sending that POST to the long poll's answer is one sample, --samples
of them, one at a time. It is measured on one node of the embedded SQLite;
with --database also on one node of PostgreSQL and across two nodes of that
database, which wake each other through LISTEN/NOTIFY; with --redis as well
across two nodes that wake each other through Redis.

Then, on one node of the embedded SQLite (and of --database when given), it
registers --polls devices and opens a long poll (wait=60, renewed when it
ends) for each, all at once; once the node counts them all waiting, it
prints the node's resident memory before and while they wait, and times
--poll-samples commands to waiting devices chosen in turn.

The servers are started as 'iotflow-bench --help' describes; every run
registers devices of its own. Opening --polls connections takes as many
file descriptors in this process and in the server: raise the limit
(ulimit -n) beyond it.

Flags:
`

type downlinkConfig struct {
	samples     int
	polls       int
	pollSamples int
	database    string
	redis       string
	srv         serverFlags
}

// parseDownlinkFlags returns nil and no error after --help.
func parseDownlinkFlags(e env, args []string) (*downlinkConfig, error) {
	fs := flag.NewFlagSet("iotflow-bench downlink", flag.ContinueOnError)
	c := &downlinkConfig{}
	fs.IntVar(&c.samples, "samples", 200, "wake-ups to time in each setup")
	fs.IntVar(&c.polls, "polls", 10_000, "long polls waiting at once (0 skips that part)")
	fs.IntVar(&c.pollSamples, "poll-samples", 200, "wake-ups to time while the --polls wait")
	fs.StringVar(&c.redis, "redis", "", "redis:// URL: also measure two nodes that wake each other through it (needs --database)")
	fs.StringVar(&c.srv.server, "server", "", "the iotflow binary to start (default: iotflow beside iotflow-bench, else in PATH)")
	fs.StringVar(&c.database, "database", "", "PostgreSQL URL: also measure one and two nodes on it")
	fs.Var(&c.srv.env, "server-env", "NAME=VALUE for the started servers (repeatable)")
	if err := parseFlags(fs, e, args, benchDownlinkUsage); err != nil {
		return nil, helpOK(err)
	}
	switch {
	case c.samples < 1 || c.polls < 0 || c.pollSamples < 1:
		return nil, errors.New("--samples and --poll-samples must be at least 1, --polls at least 0")
	case c.redis != "" && c.database == "":
		return nil, errors.New("--redis needs --database: nodes share their data through PostgreSQL")
	}
	return c, nil
}

// setup is a set of nodes to measure the wake-up across.
type setup struct {
	name            string
	database, redis string
	nodes           int
}

func runDownlink(ctx context.Context, e env, args []string) error {
	c, err := parseDownlinkFlags(e, args)
	if c == nil || err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "iotflow-bench downlink: %d wake-ups a setup, %d long polls waiting at once; %d CPUs\n", c.samples, c.polls, numCPU())
	setups := []setup{{name: "one node, SQLite", nodes: 1}}
	if c.database != "" {
		setups = append(setups, setup{"one node, PostgreSQL", c.database, "", 1},
			setup{"two nodes, PostgreSQL LISTEN/NOTIFY", c.database, "", 2})
		if c.redis != "" {
			setups = append(setups, setup{"two nodes, PostgreSQL + Redis", c.database, c.redis, 2})
		}
	}
	for _, s := range setups {
		if err := c.wakeUps(ctx, e, s); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if c.polls == 0 {
		return nil
	}
	for _, s := range setups {
		if s.nodes == 1 {
			if err := c.manyPolls(ctx, e, s); err != nil {
				return fmt.Errorf("%s, %d long polls: %w", s.name, c.polls, err)
			}
		}
	}
	return nil
}

// startNodes starts s's nodes one after the other (the first migrates).
func (c *downlinkConfig) startNodes(ctx context.Context, e env, s setup) ([]*iotflowServer, func(), error) {
	f := serverFlags{server: c.srv.server, database: s.database, env: slices.Clone(c.srv.env)}
	if s.redis != "" {
		f.env = append(f.env, "REDIS_URL="+s.redis)
	}
	var nodes []*iotflowServer
	stop := func() {
		for _, n := range nodes {
			n.stop()
		}
	}
	for range s.nodes {
		n, err := startServer(ctx, e, f)
		if err != nil {
			stop()
			return nil, nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, stop, nil
}

// wakeUps times c.samples commands issued on the first node of s to a
// long poll waiting on its last.
func (c *downlinkConfig) wakeUps(ctx context.Context, e env, s setup) error {
	nodes, stop, err := c.startNodes(ctx, e, s)
	if err != nil {
		return err
	}
	defer stop()
	admin, poller := nodes[0], nodes[len(nodes)-1]
	keys, ids, err := registerDevices(ctx, admin.url, 1)
	if err != nil {
		return err
	}
	client := &http.Client{}
	var took []time.Duration
	for range c.samples {
		answer := make(chan pollAnswer, 1)
		go func() { answer <- longPoll(ctx, client, poller.url, keys[0], 30) }()
		if err := awaitWaiting(ctx, poller, 1); err != nil {
			return err
		}
		start := time.Now()
		if err := issueCommand(ctx, admin, ids[0]); err != nil {
			return err
		}
		a := <-answer
		if a.err != nil || a.commands != 1 {
			return fmt.Errorf("the long poll answered %d commands: %v", a.commands, a.err)
		}
		took = append(took, a.at.Sub(start))
	}
	fmt.Fprintf(e.stdout, "%-46s %s\n", s.name+":", latencies(took))
	return nil
}

// manyPolls keeps c.polls long polls waiting on one node of s, measures
// its memory, and times wake-ups meanwhile.
func (c *downlinkConfig) manyPolls(ctx context.Context, e env, s setup) error {
	nodes, stop, err := c.startNodes(ctx, e, s)
	if err != nil {
		return err
	}
	defer stop()
	node := nodes[0]
	began := time.Now()
	keys, ids, err := registerMany(ctx, node.url, c.polls, 16)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: registered %d devices in %s\n", s.name, c.polls, time.Since(began).Round(time.Second))
	before, _ := procstat.RSS(node.pid())

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.polls + 100, IdleConnTimeout: 2 * time.Minute}}
	woken := make(chan pollAnswer, 16)
	var failed atomic.Int64
	var wg sync.WaitGroup
	began = time.Now()
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pctx.Err() == nil {
				a := longPoll(pctx, client, node.url, k, 60)
				switch {
				case pctx.Err() != nil:
				case a.err != nil:
					failed.Add(1)
					time.Sleep(100 * time.Millisecond)
				case a.commands > 0:
					a.device = i
					select {
					case woken <- a:
					case <-pctx.Done():
					}
				}
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	if err := awaitWaiting(ctx, node, c.polls); err != nil {
		return fmt.Errorf("%w (%d polls failed)", err, failed.Load())
	}
	fmt.Fprintf(e.stdout, "%s: %d long polls waiting %s after the first was sent\n", s.name, c.polls, time.Since(began).Round(100*time.Millisecond))
	var during int64
	for range 10 { // the peak over a few seconds of waiting
		if rss, ok := procstat.RSS(node.pid()); ok {
			during = max(during, rss)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var took []time.Duration
	for j := range c.pollSamples {
		i := j * 7919 % c.polls // devices spread over the lot
		start := time.Now()
		if err := issueCommand(ctx, node, ids[i]); err != nil {
			return err
		}
		for a := range woken {
			if a.device == i {
				took = append(took, a.at.Sub(start))
				break
			}
		}
	}
	after, _ := procstat.RSS(node.pid())
	waiting, _ := pollsWaiting(ctx, node)
	fmt.Fprintf(e.stdout, "%s: RSS %s before, %s while %d wait (peak), %s after the samples; %.1f KiB a waiting poll; %d polls failed\n",
		s.name, mib(before), mib(during), c.polls, mib(after), float64(during-before)/float64(c.polls), failed.Load())
	fmt.Fprintf(e.stdout, "%-46s %s (%v waiting at the end)\n", s.name+", wake-ups among them:", latencies(took), waiting)
	return nil
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// latencies is the percentiles of ds, which it sorts.
func latencies(ds []time.Duration) string {
	slices.Sort(ds)
	return fmt.Sprintf("n %d  p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms", len(ds),
		ms(quantile(ds, 0.5)), ms(quantile(ds, 0.9)), ms(quantile(ds, 0.99)), ms(ds[len(ds)-1]))
}

// pollAnswer is how a long poll ended.
type pollAnswer struct {
	at       time.Time // when its answer was read
	commands int
	device   int
	err      error
}

// longPoll waits up to wait seconds for device key's commands.
func longPoll(ctx context.Context, client *http.Client, url, key string, wait int) pollAnswer {
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/devices/commands?wait="+strconv.Itoa(wait), nil)
	if err != nil {
		return pollAnswer{err: err}
	}
	req.Header.Set("X-API-Key", key)
	res, err := client.Do(req)
	if err != nil {
		return pollAnswer{err: err}
	}
	defer res.Body.Close()
	var out struct {
		Commands []json.RawMessage `json:"commands"`
	}
	body, err := io.ReadAll(res.Body)
	at := time.Now()
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d: %.200s", res.StatusCode, body)
	}
	if err == nil {
		err = json.Unmarshal(body, &out)
	}
	return pollAnswer{at: at, commands: len(out.Commands), err: err}
}

func issueCommand(ctx context.Context, node *iotflowServer, id int64) error {
	req, err := http.NewRequestWithContext(ctx, "POST", fmt.Sprintf("%s/api/v1/admin/devices/%d/commands", node.url, id),
		strings.NewReader(`{"command":"bench","parameters":{"n":1},"ttl_seconds":300,"timeout_seconds":300}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+node.token)
	res, err := benchClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("issue a command: status %d: %.200s", res.StatusCode, body)
	}
	return nil
}

// awaitWaiting returns once node counts at least n long polls waiting.
func awaitWaiting(ctx context.Context, node *iotflowServer, n int) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got, err := pollsWaiting(ctx, node)
		if err != nil {
			return err
		}
		if got >= float64(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %v of %d long polls wait after 3 minutes", got, n)
		}
		wait := 2 * time.Millisecond
		if n > 1 {
			wait = 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func pollsWaiting(ctx context.Context, node *iotflowServer) (float64, error) {
	text, err := getMetrics(ctx, node.url, node.token)
	if err != nil {
		return 0, err
	}
	v, ok := gauge(text, "iotflow_long_polls_waiting")
	if !ok {
		return 0, errors.New("the server's /metrics has no iotflow_long_polls_waiting")
	}
	return v, nil
}

// gauge reads an unlabelled metric of the Prometheus text format.
func gauge(text []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// registerMany registers n devices over conns connections.
func registerMany(ctx context.Context, url string, n, conns int) ([]string, []int64, error) {
	keys, ids := make([]string, n), make([]int64, n)
	run := randomHex(4)
	var next atomic.Int64
	errs := make(chan error, conns)
	for range conns {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				body := fmt.Sprintf(`{"name":"bench-%s-%d","device_type":"sensor","location":"bench"}`, run, i)
				var out struct {
					Device struct {
						ID     int64  `json:"id"`
						APIKey string `json:"api_key"`
					} `json:"device"`
				}
				status, err := postJSON(ctx, url+"/api/v1/devices/register", "", []byte(body), &out)
				if err != nil || status != http.StatusCreated {
					errs <- fmt.Errorf("register device %d: status %d: %v", i, status, err)
					next.Store(int64(n))
					return
				}
				keys[i], ids[i] = out.Device.APIKey, out.Device.ID
			}
		}()
	}
	var first error
	for range conns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return keys, ids, first
}
