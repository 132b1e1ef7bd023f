package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotflow/iotflow/internal/procstat"
)

const benchMQTTUsage = `Usage: iotflow-bench mqtt [flags]

Measures the MQTT transport against a server it starts (as 'iotflow-bench
--help' describes; its database is --database, else an embedded SQLite).

Throughput: --rounds rounds, each of three runs of --duration after --warm
of warm-up, with --connections connections each sending one reading at a
time and waiting for its answer: HTTP (POST /api/v1/devices/telemetry,
keep-alive), MQTT to IoTFlow (QoS 1 on iotflow/devices/{id}/telemetry:
the PUBACK follows the durable commit), then MQTT again with --window
publishes in flight on each connection (what a device streaming readings
does, and HTTP/1.1 cannot) and, as a ceiling, that MQTT load against the
broker at --mosquitto (which stores nothing; "" skips it). Every reading
carries a message_id.

Fleet: --devices devices connect over MQTT and each publishes a reading at
QoS 1 every --every for --fleet-duration; it prints the server's resident
memory and the publish-to-PUBACK latencies. Then every device disconnects
and all reconnect at once (a connect storm): the time until all are back,
and how many were refused.

Opening --devices connections takes as many file descriptors here and in
the server: raise the limit (ulimit -n) beyond it.

Flags:
`

type mqttConfig struct {
	rounds          int
	duration, warm  time.Duration
	conns           int
	window          int
	mosquitto       string
	devices         int
	every, fleetFor time.Duration
	srv             serverFlags
}

func parseMQTTFlags(e env, args []string) (*mqttConfig, error) {
	fs := flag.NewFlagSet("iotflow-bench mqtt", flag.ContinueOnError)
	c := &mqttConfig{}
	fs.IntVar(&c.rounds, "rounds", 3, "throughput rounds (0 skips the throughput)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time of each run")
	fs.DurationVar(&c.warm, "warm", 2*time.Second, "warm-up before each run")
	fs.IntVar(&c.conns, "connections", 32, "connections of the throughput runs")
	fs.IntVar(&c.window, "window", 16, "QoS 1 publishes in flight on each connection in the pipelined MQTT runs (1 skips them)")
	fs.StringVar(&c.mosquitto, "mosquitto", "127.0.0.1:1883", "a broker that stores nothing, as the ceiling (\"\" skips it)")
	fs.IntVar(&c.devices, "devices", 10_000, "devices connected at once in the fleet part (0 skips it)")
	fs.DurationVar(&c.every, "every", 10*time.Second, "how often each fleet device publishes")
	fs.DurationVar(&c.fleetFor, "fleet-duration", time.Minute, "how long the fleet publishes")
	c.srv.register(fs)
	if err := parseFlags(fs, e, args, benchMQTTUsage); err != nil {
		return nil, helpOK(err)
	}
	if c.rounds < 0 || c.conns < 1 || c.window < 1 || c.devices < 0 || c.duration <= 0 || c.every <= 0 || c.fleetFor <= 0 {
		return nil, errors.New("--rounds and --devices must be at least 0, --connections 1, and the durations positive")
	}
	return c, nil
}

func runMQTT(ctx context.Context, e env, args []string) error {
	c, err := parseMQTTFlags(e, args)
	if c == nil || err != nil {
		return err
	}
	srv, err := startServer(ctx, e, c.srv)
	if err != nil {
		return err
	}
	defer srv.stop()
	broker, err := mqttAddress(ctx, srv.url)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "iotflow-bench mqtt: storage %s, MQTT on %s, %d CPUs\n", srv.storage, broker, numCPU())
	if c.rounds > 0 {
		if err := c.throughput(ctx, e, srv, broker); err != nil {
			return err
		}
	}
	if c.devices > 0 {
		return c.fleet(ctx, e, srv, broker)
	}
	return nil
}

// mqttAddress reads the server's MQTT listener from its /health.
func mqttAddress(ctx context.Context, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/health", nil)
	res, err := benchClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var h struct {
		MQTT struct {
			Status    string   `json:"status"`
			Listeners []string `json:"listeners"`
		} `json:"mqtt"`
	}
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		return "", err
	}
	for _, l := range h.MQTT.Listeners {
		if a, ok := strings.CutPrefix(l, "mqtt://"); ok {
			return a, nil
		}
	}
	return "", fmt.Errorf("the server serves no MQTT (status %q)", h.MQTT.Status)
}

// mqttDevice is a device's MQTT credentials and topic.
type mqttDevice struct {
	key   string
	topic string
}

func mqttDevices(keys []string, ids []int64) []mqttDevice {
	ds := make([]mqttDevice, len(keys))
	for i := range keys {
		ds[i] = mqttDevice{keys[i], fmt.Sprintf("iotflow/devices/%d/telemetry", ids[i])}
	}
	return ds
}

func dialMQTT(addr, id string, d mqttDevice, anonymous bool) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false).
		SetConnectRetry(false).SetConnectTimeout(60 * time.Second).SetKeepAlive(90 * time.Second).
		SetWriteTimeout(30 * time.Second).SetCleanSession(true)
	if !anonymous {
		o.SetUsername("device").SetPassword(d.key)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(90 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	return c, tok.Error()
}

// mqttRun is one measured MQTT run.
type mqttRun struct {
	rps        float64
	p50, p99   time.Duration
	errors     int64
	firstError string
	cpu        cpuUse
}

func (r mqttRun) String() string {
	s := fmt.Sprintf("%9.0f req/s  p50 %7.2fms  p99 %7.2fms  errors %d%s", r.rps, ms(r.p50), ms(r.p99), r.errors, cpuLine(r.cpu))
	if r.firstError != "" {
		s += "  first error: " + r.firstError
	}
	return s
}

// driveMQTT publishes from conns connections, one reading at a time each,
// and measures the answers after warm.
func driveMQTT(ctx context.Context, addr string, pid int, ds []mqttDevice, anonymous bool, window int, c *mqttConfig) (mqttRun, error) {
	run := randomHex(4)
	clients := make([]paho.Client, c.conns)
	for w := range clients {
		cl, err := dialMQTT(addr, fmt.Sprintf("bench-%s-%d", run, w), ds[w%len(ds)], anonymous)
		if err != nil {
			return mqttRun{}, fmt.Errorf("connect to %s: %w", addr, err)
		}
		clients[w] = cl
		defer cl.Disconnect(0)
	}
	var measuring, stop atomic.Bool
	var done, errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, c.conns)
	var wg sync.WaitGroup
	for w, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := ds[w%len(ds)]
			// The publisher keeps up to window publishes in flight; the
			// answers are awaited in order.
			type flight struct {
				tok   paho.Token
				start time.Time
			}
			flights := make(chan flight, window)
			slots := make(chan struct{}, window) // a slot a publish in flight
			var failed atomic.Bool
			go func() {
				defer close(flights)
				for i := 0; !stop.Load() && !failed.Load() && ctx.Err() == nil; i++ {
					slots <- struct{}{}
					body := fmt.Sprintf(`{"data":{"temperature":%d.%d,"humidity":%d,"battery":97},"metadata":{"fw":"1.2.3"},"type":"sensor","message_id":"m-%d-%d-%s"}`,
						18+i%10, i%10, 40+i%20, w, i, run)
					flights <- flight{cl.Publish(d.topic, 1, false, body), time.Now()}
				}
			}()
			for f := range flights {
				ok := f.tok.WaitTimeout(30*time.Second) && f.tok.Error() == nil
				took := time.Since(f.start)
				<-slots
				if !ok {
					firstErr.CompareAndSwap(nil, fmt.Sprint(f.tok.Error()))
					failed.Store(true) // the connection is gone
					if measuring.Load() {
						errs.Add(1)
					}
					continue
				}
				if measuring.Load() {
					done.Add(1)
					lat[w] = append(lat[w], took)
				}
			}
		}()
	}
	time.Sleep(c.warm)
	measuring.Store(true)
	start, cpu0 := time.Now(), sampleCPU(pid)
	time.Sleep(c.duration)
	measuring.Store(false)
	elapsed, cpu1 := time.Since(start), sampleCPU(pid)
	stop.Store(true)
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r := mqttRun{rps: float64(done.Load()) / elapsed.Seconds(), errors: errs.Load(), cpu: cpuBetween(cpu0, cpu1, done.Load())}
	if v := firstErr.Load(); v != nil {
		r.firstError = v.(string)
	}
	if len(all) > 0 {
		slices.Sort(all)
		r.p50, r.p99 = quantile(all, 0.5), quantile(all, 0.99)
	}
	return r, nil
}

func (c *mqttConfig) throughput(ctx context.Context, e env, srv *iotflowServer, broker string) error {
	keys, ids, err := registerDevices(ctx, srv.url, 100)
	if err != nil {
		return err
	}
	ds := mqttDevices(keys, ids)
	var httpRPS, mqttRPS, pipeRPS, mosqRPS []float64
	for r := range c.rounds {
		h, err := drive(ctx, target{url: srv.url, pid: srv.pid(), keys: keys}, single, loadConfig{conns: c.conns, duration: c.duration, warm: c.warm})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "round %d  HTTP single       %9.0f req/s  p50 %7.2fms  p99 %7.2fms  errors %d%s\n", r+1, h.rps, ms(h.p50), ms(h.p99), h.errors, cpuLine(h.cpu))
		httpRPS = append(httpRPS, h.rps)
		m, err := driveMQTT(ctx, broker, srv.pid(), ds, false, 1, c)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "round %d  MQTT QoS 1        %s\n", r+1, m)
		mqttRPS = append(mqttRPS, m.rps)
		if c.window > 1 {
			m, err := driveMQTT(ctx, broker, srv.pid(), ds, false, c.window, c)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "round %d  MQTT QoS 1 x%-5d %s\n", r+1, c.window, m)
			pipeRPS = append(pipeRPS, m.rps)
		}
		if c.mosquitto != "" {
			q, err := driveMQTT(ctx, c.mosquitto, 0, ds, true, c.window, c)
			if err != nil {
				return fmt.Errorf("the ceiling broker: %w", err)
			}
			fmt.Fprintf(e.stdout, "round %d  Mosquitto x%-5d  %s\n", r+1, c.window, q)
			mosqRPS = append(mosqRPS, q.rps)
		}
	}
	ratio := middle(mqttRPS) / middle(httpRPS)
	fmt.Fprintf(e.stdout, "median: HTTP %.0f, MQTT one at a time %.0f req/s: %.2fx HTTP\n", middle(httpRPS), middle(mqttRPS), ratio)
	best := middle(mqttRPS)
	if len(pipeRPS) > 0 {
		best = middle(pipeRPS)
		ratio = best / middle(httpRPS)
		fmt.Fprintf(e.stdout, "median: MQTT with %d in flight %.0f req/s: %.2fx HTTP\n", c.window, best, ratio)
	}
	fmt.Fprintf(e.stdout, "MQTT is %.2fx HTTP   goal >= 2x: %s\n", ratio, verdict(ratio >= 2))
	if len(mosqRPS) > 0 {
		fmt.Fprintf(e.stdout, "median: Mosquitto %.0f req/s: IoTFlow's MQTT is %.0f%% of it\n", middle(mosqRPS), 100*best/middle(mosqRPS))
	}
	return nil
}

// fleet keeps c.devices connected, each publishing every c.every, then
// disconnects them all and reconnects them at once.
func (c *mqttConfig) fleet(ctx context.Context, e env, srv *iotflowServer, broker string) error {
	began := time.Now()
	keys, ids, err := registerMany(ctx, srv.url, c.devices, 16)
	if err != nil {
		return err
	}
	ds := mqttDevices(keys, ids)
	fmt.Fprintf(e.stdout, "fleet: registered %d devices in %s\n", c.devices, time.Since(began).Round(time.Second))
	before, _ := procstat.RSS(srv.pid())

	clients := make([]paho.Client, len(ds))
	connectAll := func(name string) (time.Duration, int64, error) {
		var refused atomic.Int64
		var firstErr atomic.Value
		start := time.Now()
		var wg sync.WaitGroup
		for i, d := range ds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl, err := dialMQTT(broker, fmt.Sprintf("%s-%d", name, i), d, false)
				if err != nil {
					refused.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				clients[i] = cl
			}()
		}
		wg.Wait()
		var err error
		if v := firstErr.Load(); v != nil {
			err = errors.New(v.(string))
		}
		return time.Since(start), refused.Load(), err
	}
	took, refused, err := connectAll("fleet")
	fmt.Fprintf(e.stdout, "fleet: %d devices connected in %s, %d refused (%v)\n", c.devices-int(refused), took.Round(100*time.Millisecond), refused, err)
	if refused > 0 {
		return fmt.Errorf("%d devices could not connect: %v", refused, err)
	}

	// Each publishes every c.every, at its own offset within the period.
	pctx, stop := context.WithTimeout(ctx, c.fleetFor)
	defer stop()
	lat := make([][]time.Duration, len(clients))
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			offset := time.Duration(int64(c.every) * int64(i) / int64(len(clients)))
			if !pause(pctx, offset) {
				return
			}
			t := time.NewTicker(c.every)
			defer t.Stop()
			for n := 0; ; n++ {
				start := time.Now()
				tok := cl.Publish(ds[i].topic, 1, false, fmt.Sprintf(`{"data":{"temperature":21.%d},"message_id":"f-%d-%d"}`, n%10, i, n))
				if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
					failed.Add(1)
				} else {
					lat[i] = append(lat[i], time.Since(start))
				}
				select {
				case <-pctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	var peak int64
	for pctx.Err() == nil {
		if rss, ok := procstat.RSS(srv.pid()); ok {
			peak = max(peak, rss)
		}
		pause(pctx, 500*time.Millisecond)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return errors.New("the fleet published nothing")
	}
	slices.Sort(all)
	p99 := quantile(all, 0.99)
	fmt.Fprintf(e.stdout, "fleet: RSS %s before connecting, %s peak with %d connected; goal <= 500 MB: %s\n",
		mib(before), mib(peak), c.devices, verdict(float64(peak)*1024 <= 500e6))
	fmt.Fprintf(e.stdout, "fleet: publish to PUBACK %s, %d failed   goal p99 <= 50 ms: %s\n",
		latencies(all), failed.Load(), verdict(p99 <= 50*time.Millisecond))

	// The connect storm.
	for _, cl := range clients {
		cl.Disconnect(0)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := connectedNow(ctx, srv.url); n == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took, refused, err = connectAll("storm")
	fmt.Fprintf(e.stdout, "storm: %d devices reconnecting at once were all back in %s, %d refused (%v)   goal <= 30 s, none refused: %s\n",
		c.devices, took.Round(100*time.Millisecond), refused, err, verdict(took <= 30*time.Second && refused == 0))
	for _, cl := range clients {
		if cl != nil {
			cl.Disconnect(0)
		}
	}
	return nil
}

// cpuLine is the CPU a request took of the server and of this load
// generator, and how busy the machine was.
func cpuLine(u cpuUse) string {
	s := ""
	if u.serverPerReq > 0 {
		s += fmt.Sprintf("  server %.0fµs", float64(u.serverPerReq.Nanoseconds())/1e3)
	}
	s += fmt.Sprintf("  load generator %.0fµs", float64(u.selfPerReq.Nanoseconds())/1e3)
	if u.machineBusy >= 0 {
		s += fmt.Sprintf("  machine busy %.0f%%", 100*u.machineBusy)
	}
	return s + " a request"
}

// connectedNow is the server's count of connected MQTT clients.
func connectedNow(ctx context.Context, url string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/health", nil)
	res, err := benchClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var h struct {
		MQTT struct {
			Connected int64 `json:"connected"`
		} `json:"mqtt"`
	}
	err = json.NewDecoder(res.Body).Decode(&h)
	return h.MQTT.Connected, err
}

// pause waits d, or until ctx ends; false when it did.
func pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
