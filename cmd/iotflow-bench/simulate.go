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
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const benchSimulateUsage = `Usage: iotflow-bench simulate --url URL [flags]

Runs --devices simulated devices against the running IoTFlow server at
--url, for demos and load, for --duration or until interrupted.

Each device sends a plausible reading every --every (a temperature that
wanders, humidity, a battery that slowly drains), each with a message_id of
its own: with --transport mqtt at QoS 1 on iotflow/devices/{id}/telemetry of
the broker at --mqtt (default: the MQTT listener the server's /health
names), with --transport http as POST /api/v1/devices/telemetry. It
executes the commands sent to it, taken over MQTT from its subscription to
iotflow/devices/{id}/commands, over HTTP from a long poll
(GET /api/v1/devices/commands?wait=30): each is answered acknowledged, then
completed with the result {"handled_by": "iotflow-bench simulate"}; a
command named "fail" is answered failed instead.

Without --keys it registers the devices (POST /api/v1/devices/register,
named sim-<run>-<i>). --keys FILE reuses the devices of FILE, one "id key"
line a device; when FILE does not exist, the devices registered are written
to it (mode 0600), for the next run. Registering waits out the server's
registration limit (IOTFLOW_REGISTER_RATE_LIMIT_PER_MINUTE, 10 a minute
from one address by default); the telemetry limit
(TELEMETRY_RATE_LIMIT_PER_MINUTE, 100 a minute a device by default) refuses
readings sent more often than every 600ms.

Every 10 s it prints a status line: devices connected, readings sent and
acknowledged (201, or the PUBACK), errors and commands answered; at the end
a summary. Errors (a refused connection, an answer other than 201, a
PUBACK that does not come) are counted and the first is printed; a reading
that failed is not sent again. A device whose connection drops connects
again after a pause (1 s, doubling up to 30 s).

Flags:
`

type simConfig struct {
	url, mqtt, transport, keys string
	devices                    int
	devicesSet                 bool // --devices was given
	every, duration            time.Duration
}

func parseSimulateFlags(e env, args []string) (*simConfig, error) {
	fs := flag.NewFlagSet("iotflow-bench simulate", flag.ContinueOnError)
	c := &simConfig{}
	fs.StringVar(&c.url, "url", "", "base URL of the running IoTFlow server (required), e.g. http://127.0.0.1:5000")
	fs.StringVar(&c.mqtt, "mqtt", "", "host:port of its MQTT listener (default: the one its /health names)")
	fs.IntVar(&c.devices, "devices", 10, "simulated devices")
	fs.StringVar(&c.transport, "transport", "mqtt", "what the devices speak: mqtt or http")
	fs.DurationVar(&c.every, "every", 5*time.Second, "how often each device sends a reading")
	fs.DurationVar(&c.duration, "duration", 0, "how long to run (0: until interrupted)")
	fs.StringVar(&c.keys, "keys", "", `file of "id key" lines: the devices to reuse; written with those registered when it does not exist`)
	if err := parseFlags(fs, e, args, benchSimulateUsage); err != nil {
		return nil, helpOK(err)
	}
	fs.Visit(func(f *flag.Flag) { c.devicesSet = c.devicesSet || f.Name == "devices" })
	c.url = strings.TrimRight(c.url, "/")
	switch {
	case c.url == "":
		return nil, errors.New("--url is required: the base URL of a running IoTFlow server")
	case !strings.HasPrefix(c.url, "http://") && !strings.HasPrefix(c.url, "https://"):
		return nil, fmt.Errorf("--url %q: want http:// or https://", c.url)
	case c.transport != "mqtt" && c.transport != "http":
		return nil, fmt.Errorf("--transport %q: want mqtt or http", c.transport)
	case c.mqtt != "" && c.transport != "mqtt":
		return nil, errors.New("--mqtt applies only with --transport mqtt")
	case c.devices < 1:
		return nil, errors.New("--devices must be at least 1")
	case c.every <= 0 || c.duration < 0:
		return nil, errors.New("--every must be positive and --duration at least 0")
	}
	if c.mqtt != "" {
		if _, _, err := net.SplitHostPort(c.mqtt); err != nil {
			return nil, fmt.Errorf("--mqtt %q: want host:port", c.mqtt)
		}
	}
	return c, nil
}

// simKey is a device's id and API key, as a --keys file holds them.
type simKey struct {
	id  int64
	key string
}

// readSimKeys reads a --keys file: "id key" lines; blank lines and lines
// starting with # are skipped.
func readSimKeys(path string) ([]simKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ks []simKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		id, err := strconv.ParseInt(f[0], 10, 64)
		if len(f) != 2 || err != nil || id < 1 {
			return nil, fmt.Errorf("%s:%d: want a device id and its key", path, n)
		}
		ks = append(ks, simKey{id, f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%s holds no devices", path)
	}
	return ks, nil
}

// writeSimKeys writes ks to path, readable by its owner alone, whole or
// not at all.
func writeSimKeys(path string, ks []simKey) error {
	var b bytes.Buffer
	for _, k := range ks {
		fmt.Fprintf(&b, "%d %s\n", k.id, k.key)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path) // CreateTemp made it 0600
}

// simRegister registers n devices named sim-<run>-<i>, waiting out the
// registration limit.
func simRegister(ctx context.Context, e env, url string, n int) ([]simKey, error) {
	run := randomHex(3)
	ks := make([]simKey, 0, n)
	told := false
	for i := 0; i < n; {
		body := fmt.Sprintf(`{"name":"sim-%s-%d","device_type":"sensor","location":"iotflow-bench simulate","firmware_version":"sim-1.0"}`, run, i)
		req, _ := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/devices/register", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := benchClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("register device sim-%s-%d: %w", run, i, err)
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		b = bytes.TrimSpace(b)
		switch res.StatusCode {
		case http.StatusCreated:
			var out struct {
				Device struct {
					ID     int64  `json:"id"`
					APIKey string `json:"api_key"`
				} `json:"device"`
			}
			if err := json.Unmarshal(b, &out); err != nil || out.Device.ID == 0 || out.Device.APIKey == "" {
				return nil, fmt.Errorf("register device sim-%s-%d: unexpected answer %.200s", run, i, b)
			}
			ks = append(ks, simKey{out.Device.ID, out.Device.APIKey})
			i++
		case http.StatusTooManyRequests:
			wait, err := strconv.Atoi(res.Header.Get("Retry-After"))
			if err != nil || wait < 1 {
				wait = 5
			}
			if !told {
				fmt.Fprintf(e.stdout, "simulate: the server's registration limit was reached after %d devices; registering the rest as it allows\n", i)
				told = true
			}
			if !pause(ctx, time.Duration(wait)*time.Second) {
				return nil, ctx.Err()
			}
		default:
			return nil, fmt.Errorf("register device sim-%s-%d: status %d: %.200s", run, i, res.StatusCode, b)
		}
	}
	return ks, nil
}

// simMQTTAddress is the server's MQTT listener from its /health; a
// wildcard host (it listens on all addresses) becomes the host of url.
func simMQTTAddress(ctx context.Context, url string) (string, error) {
	addr, err := mqttAddress(ctx, url)
	if err != nil {
		return "", fmt.Errorf("find the MQTT listener in %s/health (or give --mqtt): %w", url, err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("the MQTT listener %q in /health: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if u, err := neturl.Parse(url); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
	}
	return net.JoinHostPort(host, port), nil
}

// simStats is what every device adds to.
type simStats struct {
	sent, acked, errors         atomic.Int64
	answered, completed, failed atomic.Int64
	mu                          sync.Mutex
	first                       string
	stderr                      io.Writer
}

// fail counts an error; the first is printed at once.
func (s *simStats) fail(d *simDevice, format string, args ...any) {
	s.errors.Add(1)
	msg := fmt.Sprintf("device %d: ", d.id) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == "" {
		s.first = msg
		fmt.Fprintf(s.stderr, "iotflow-bench simulate: first error: %s\n", msg)
	}
}

func (s *simStats) firstError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// simDevice is one simulated device and its sensors.
type simDevice struct {
	simKey
	index int
	up    atomic.Bool // connected (MQTT), or its last request was answered (HTTP)

	// The sensors and the reading counter: only the device's reading
	// loop touches them.
	temp, humidity, battery float64
	n                       int

	// Commands answered in full, so that a command delivered again is
	// not counted twice: only the device's command loop touches it.
	done map[int64]bool
}

func newSimDevice(k simKey, i int) *simDevice {
	return &simDevice{simKey: k, index: i, done: map[int64]bool{},
		temp: 18 + 6*rand.Float64(), humidity: 40 + 20*rand.Float64(), battery: 85 + 15*rand.Float64()}
}

// reading moves the sensors on and returns the next reading.
func (d *simDevice) reading(run string) []byte {
	d.temp = min(max(d.temp+rand.NormFloat64()*0.2+(21-d.temp)*0.02, -10), 45)
	d.humidity = min(max(d.humidity+rand.NormFloat64()*0.5+(50-d.humidity)*0.02, 5), 95)
	d.battery = max(d.battery-0.01-0.02*rand.Float64(), 0)
	d.n++
	round := func(v float64) float64 { return math.Round(v*100) / 100 }
	b, _ := json.Marshal(map[string]any{
		"data":       map[string]float64{"temperature": round(d.temp), "humidity": round(d.humidity), "battery": round(d.battery)},
		"metadata":   map[string]any{"simulated": true, "firmware": "sim-1.0"},
		"type":       "sensor",
		"message_id": fmt.Sprintf("sim-%s-%d-%d", run, d.id, d.n),
	})
	return b
}

// simCommand is what a device reads of a command.
type simCommand struct {
	ID      int64  `json:"id"`
	Command string `json:"command"`
}

// simAnswers is a command's answers, acknowledged first.
func simAnswers(c simCommand) []string {
	if c.Command == "fail" {
		return []string{`{"status":"acknowledged"}`,
			`{"status":"failed","result":{"handled_by":"iotflow-bench simulate","error":"the command was named fail"}}`}
	}
	return []string{`{"status":"acknowledged"}`, `{"status":"completed","result":{"handled_by":"iotflow-bench simulate"}}`}
}

// simulation is one run of the simulator.
type simulation struct {
	c       *simConfig
	broker  string
	run     string // in every message_id and client id of the run
	devices []*simDevice
	stats   *simStats
	client  *http.Client
}

func runSimulate(ctx context.Context, e env, args []string) error {
	c, err := parseSimulateFlags(e, args)
	if c == nil || err != nil {
		return err
	}
	s := &simulation{c: c, run: randomHex(4), stats: &simStats{stderr: e.stderr}}
	if c.transport == "mqtt" {
		if s.broker = c.mqtt; s.broker == "" {
			if s.broker, err = simMQTTAddress(ctx, c.url); err != nil {
				return err
			}
		}
	}
	keys, err := s.devicesToRun(ctx, e)
	if err != nil {
		return err
	}
	for i, k := range keys {
		s.devices = append(s.devices, newSimDevice(k, i))
	}
	s.client = &http.Client{
		Timeout:   60 * time.Second, // above the long poll's 30 s
		Transport: &http.Transport{MaxIdleConnsPerHost: 2*len(keys) + 4, IdleConnTimeout: 90 * time.Second},
	}
	defer s.client.CloseIdleConnections()

	over := c.transport
	if s.broker != "" {
		over += " (" + s.broker + ")"
	}
	until := "until interrupted"
	if c.duration > 0 {
		until = "for " + c.duration.String()
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}
	fmt.Fprintf(e.stdout, "simulate: %d devices over %s, a reading every %s, %s\n", len(s.devices), over, c.every, until)

	began := time.Now()
	var wg sync.WaitGroup
	for _, d := range s.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.transport == "mqtt" {
				s.deviceMQTT(ctx, d)
			} else {
				s.deviceHTTP(ctx, d)
			}
		}()
	}
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fmt.Fprintf(e.stdout, "simulate %s: %s\n", time.Since(began).Round(time.Second), s.status())
			}
		}
	}()
	wg.Wait()
	<-statusDone
	st := s.stats
	fmt.Fprintf(e.stdout, "simulate: done after %s: %d devices, readings %d sent, %d acknowledged, %d errors, %d commands answered (%d completed, %d failed)\n",
		time.Since(began).Round(100*time.Millisecond), len(s.devices), st.sent.Load(), st.acked.Load(), st.errors.Load(),
		st.answered.Load(), st.completed.Load(), st.failed.Load())
	if first := st.firstError(); first != "" {
		fmt.Fprintf(e.stdout, "simulate: first error: %s\n", first)
	}
	if st.acked.Load() == 0 && st.errors.Load() > 0 {
		return errors.New("simulate: no reading was acknowledged")
	}
	return nil
}

func (s *simulation) status() string {
	up := 0
	for _, d := range s.devices {
		if d.up.Load() {
			up++
		}
	}
	st := s.stats
	return fmt.Sprintf("%d/%d devices connected, readings %d sent, %d acknowledged, %d errors, %d commands answered",
		up, len(s.devices), st.sent.Load(), st.acked.Load(), st.errors.Load(), st.answered.Load())
}

// devicesToRun reads the --keys file, or registers the devices (and
// writes them to the --keys file when it names one).
func (s *simulation) devicesToRun(ctx context.Context, e env) ([]simKey, error) {
	c := s.c
	if c.keys != "" {
		ks, err := readSimKeys(c.keys)
		switch {
		case err == nil:
			if c.devicesSet && len(ks) < c.devices {
				return nil, fmt.Errorf("--keys %s holds %d devices, fewer than --devices %d", c.keys, len(ks), c.devices)
			}
			if c.devicesSet {
				ks = ks[:c.devices]
			}
			fmt.Fprintf(e.stdout, "simulate: %d devices of %s\n", len(ks), c.keys)
			return ks, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("--keys: %w", err)
		}
	}
	ks, err := simRegister(ctx, e, c.url, c.devices)
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("simulate: registered %d devices (ids %d to %d)", len(ks), ks[0].id, ks[len(ks)-1].id)
	if c.keys != "" {
		if err := writeSimKeys(c.keys, ks); err != nil {
			return nil, fmt.Errorf("--keys: %w", err)
		}
		msg += "; their keys are in " + c.keys
	}
	fmt.Fprintln(e.stdout, msg)
	return ks, nil
}

// offset spreads the devices' readings over the period.
func (s *simulation) offset(d *simDevice) time.Duration {
	return time.Duration(int64(s.c.every) * int64(d.index) / int64(len(s.devices)))
}

// backoff is the pause before connecting again: 1 s, doubling up to 30 s.
type backoff time.Duration

func (b *backoff) next() time.Duration {
	d := max(time.Duration(*b), time.Second)
	*b = backoff(min(2*d, 30*time.Second))
	return d
}

func (b *backoff) reset() { *b = 0 }

// deviceMQTT keeps d connected over MQTT until ctx ends.
func (s *simulation) deviceMQTT(ctx context.Context, d *simDevice) {
	var wait backoff
	first := true
	for ctx.Err() == nil {
		if !first && !pause(ctx, wait.next()) {
			return
		}
		first = false
		m, err := s.connectMQTT(d)
		if err != nil {
			s.stats.fail(d, "%v", err)
			continue
		}
		wait.reset()
		d.up.Store(true)
		err = s.sessionMQTT(ctx, d, m)
		d.up.Store(false)
		m.close(250)
		if err == nil {
			return
		}
	}
}

// mqttConn is a device's MQTT connection: its commands arrive on
// commands, and lost says when it drops.
type mqttConn struct {
	paho.Client
	commands chan simCommand
	lost     chan error
	closed   chan struct{} // the connection is over: handlers stop waiting
	once     sync.Once
}

// close ends the connection and its handlers' waits.
func (m *mqttConn) close(quiesce uint) {
	m.once.Do(func() { close(m.closed) })
	m.Disconnect(quiesce)
}

// connectMQTT connects d and subscribes it to its commands.
func (s *simulation) connectMQTT(d *simDevice) (*mqttConn, error) {
	m := &mqttConn{commands: make(chan simCommand, 64), lost: make(chan error, 1), closed: make(chan struct{})}
	o := paho.NewClientOptions().AddBroker("tcp://" + s.broker).
		SetClientID(fmt.Sprintf("sim-%s-%d", s.run, d.id)).
		SetUsername(strconv.FormatInt(d.id, 10)).SetPassword(d.key).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).SetWriteTimeout(10 * time.Second).
		SetOrderMatters(false). // handlers may block: none stalls the PUBACKs
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			m.once.Do(func() { close(m.closed) })
			m.lost <- err
		})
	m.Client = paho.NewClient(o)
	if tok := m.Connect(); !tok.WaitTimeout(15 * time.Second) {
		m.close(0)
		return nil, fmt.Errorf("connect to %s: timed out", s.broker)
	} else if tok.Error() != nil {
		m.close(0)
		return nil, fmt.Errorf("connect to %s: %w", s.broker, tok.Error())
	}
	topic := fmt.Sprintf("iotflow/devices/%d/commands", d.id)
	tok := m.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) {
		var c simCommand
		if err := json.Unmarshal(msg.Payload(), &c); err != nil || c.ID == 0 {
			s.stats.fail(d, "a command that is not one: %.200s", msg.Payload())
			return
		}
		select {
		case m.commands <- c:
		case <-m.closed:
		}
	})
	var err error
	switch {
	case !tok.WaitTimeout(15 * time.Second):
		err = errors.New("timed out")
	case tok.Error() != nil:
		err = tok.Error()
	case tok.(*paho.SubscribeToken).Result()[topic] >= 0x80:
		err = fmt.Errorf("refused (0x%02x)", tok.(*paho.SubscribeToken).Result()[topic])
	}
	if err != nil {
		m.close(0)
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	return m, nil
}

// sessionMQTT publishes d's readings and answers its commands until ctx
// ends (nil) or the connection fails (its error, already counted).
func (s *simulation) sessionMQTT(ctx context.Context, d *simDevice, m *mqttConn) error {
	telemetry := fmt.Sprintf("iotflow/devices/%d/telemetry", d.id)
	publish := func(topic string, body []byte) error {
		tok := m.Publish(topic, 1, false, body)
		if !tok.WaitTimeout(30 * time.Second) {
			return errors.New("no PUBACK within 30s")
		}
		return tok.Error()
	}
	tick := time.NewTimer(s.offset(d))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-m.lost:
			s.stats.fail(d, "connection lost: %v", err)
			return err
		case c := <-m.commands:
			if err := s.execute(d, c, func(body string) error {
				return publish(fmt.Sprintf("iotflow/devices/%d/commands/%d/result", d.id, c.ID), []byte(body))
			}); err != nil {
				return err
			}
		case <-tick.C:
			tick.Reset(s.c.every)
			s.stats.sent.Add(1)
			if err := publish(telemetry, d.reading(s.run)); err != nil {
				s.stats.fail(d, "publish a reading: %v", err)
				return err
			}
			s.stats.acked.Add(1)
		}
	}
}

// execute answers c with answer, once in full; its error is counted.
func (s *simulation) execute(d *simDevice, c simCommand, answer func(body string) error) error {
	if d.done[c.ID] {
		return nil
	}
	for _, body := range simAnswers(c) {
		if err := answer(body); err != nil {
			s.stats.fail(d, "answer command %d: %v", c.ID, err)
			return err
		}
	}
	d.done[c.ID] = true
	s.stats.answered.Add(1)
	if c.Command == "fail" {
		s.stats.failed.Add(1)
	} else {
		s.stats.completed.Add(1)
	}
	return nil
}

// deviceHTTP posts d's readings and runs its long polls until ctx ends.
func (s *simulation) deviceHTTP(ctx context.Context, d *simDevice) {
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		s.pollHTTP(ctx, d)
	}()
	defer func() { <-polled }()
	if !pause(ctx, s.offset(d)) {
		return
	}
	var wait backoff
	t := time.NewTicker(s.c.every)
	defer t.Stop()
	for {
		s.stats.sent.Add(1)
		status, body, err := s.request(ctx, d, "POST", "/api/v1/devices/telemetry", d.reading(s.run))
		switch {
		case err != nil:
			d.up.Store(false)
			s.stats.fail(d, "post a reading: %v", err)
			if !pause(ctx, wait.next()) {
				return
			}
		case status != http.StatusCreated:
			d.up.Store(true)
			s.stats.fail(d, "post a reading: status %d: %.200s", status, body)
		default:
			d.up.Store(true)
			wait.reset()
			s.stats.acked.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pollHTTP takes d's commands with long polls and answers them.
func (s *simulation) pollHTTP(ctx context.Context, d *simDevice) {
	var wait backoff
	for ctx.Err() == nil {
		cs, err := s.longPoll(ctx, d)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.stats.fail(d, "long poll: %v", err)
			if !pause(ctx, wait.next()) {
				return
			}
			continue
		}
		wait.reset()
		for _, c := range cs {
			s.execute(d, c, func(body string) error {
				status, b, err := s.request(ctx, d, "POST", fmt.Sprintf("/api/v1/devices/commands/%d/result", c.ID), []byte(body))
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("status %d: %.200s", status, b)
				}
				return err
			})
		}
	}
}

func (s *simulation) longPoll(ctx context.Context, d *simDevice) ([]simCommand, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", s.c.url+"/api/v1/devices/commands?wait=30", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-Key", d.key)
	res, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %.200s", res.StatusCode, b)
	}
	var out struct {
		Commands []simCommand `json:"commands"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%w: %.200s", err, b)
	}
	return out.Commands, nil
}

// request sends one request as d. It is not cut short when ctx ends: a
// reading or an answer under way at the end is seen through.
func (s *simulation) request(ctx context.Context, d *simDevice, method, path string, body []byte) (int, []byte, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, s.c.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", d.key)
	res, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, bytes.TrimSpace(b), err
}
