package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// exitBound is how soon after SIGTERM or SIGINT the server must have exited.
const exitBound = 10 * time.Second

// TestSIGTERMUnderLoad signals the server while 32 clients write to it and
// checks the graceful shutdown: it exits 0 within exitBound, requests in
// flight at the signal are answered, every acknowledged reading is stored
// exactly once, and the last_seen times kept in memory are written.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	signals := []struct {
		name string
		sig  os.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGINT", syscall.SIGINT}}
	for name, envFor := range backendEnvs(t) {
		for _, s := range signals {
			if s.name == "SIGINT" && name != "sqlite" {
				continue // the signal, not the database, differs: once is enough
			}
			t.Run(name+"/"+s.name, func(t *testing.T) { testShutdownUnderLoad(t, envFor(t), s.sig) })
		}
	}
}

// loadDevice is a registered device of the load.
type loadDevice struct {
	id  int64
	key string
}

// shutdownLoad is what the clients saw.
type shutdownLoad struct {
	signalled atomic.Bool

	mu         sync.Mutex
	acked      map[string]int64    // message id -> telemetry id, of acknowledged readings
	device     map[string]int64    // message id -> device id, of every reading sent
	unanswered map[string]bool     // message ids of requests cut off by the shutdown
	heartbeat  map[int64]time.Time // device id -> latest acknowledged heartbeat
	bad        []string            // answers that a graceful shutdown does not give
	afterSig   int                 // requests answered after the signal
}

func (l *shutdownLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) < 20 {
		l.bad = append(l.bad, fmt.Sprintf(format, args...))
	}
}

func testShutdownUnderLoad(t *testing.T, env map[string]string, sig os.Signal) {
	// json logs to find the "stopped" line; last_seen is flushed only at
	// shutdown; the rate limits are lifted as for the benchmark.
	env["LOG_LEVEL"], env["LOG_FORMAT"] = "INFO", "json"
	env["IOTFLOW_LAST_SEEN_FLUSH"] = "1h"
	for _, k := range []string{"RATE_LIMIT_PER_MINUTE", "TELEMETRY_RATE_LIMIT_PER_MINUTE",
		"IOTFLOW_REGISTER_RATE_LIMIT_PER_MINUTE", "IOTFLOW_ADMIN_RATE_LIMIT_PER_MINUTE"} {
		env[k] = "100000000"
	}
	srv := startChild(t, env)
	addr := strings.TrimPrefix(srv.base, "http://")

	devices := make([]loadDevice, 20)
	for i := range devices {
		code, reg := call(t, "POST", srv.base+"/api/v1/devices/register",
			map[string]string{"name": fmt.Sprintf("Shutdown %d", i), "device_type": "sensor"}, nil)
		if code != 201 {
			t.Fatalf("register: %d %v", code, reg)
		}
		d := reg["device"].(map[string]any)
		devices[i] = loadDevice{int64(d["id"].(float64)), d["api_key"].(string)}
	}

	l := &shutdownLoad{acked: map[string]int64{}, device: map[string]int64{}, unanswered: map[string]bool{},
		heartbeat: map[int64]time.Time{}}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	stop, signalled := make(chan struct{}), make(chan struct{})
	stopOnce := sync.OnceFunc(func() { close(stop) })
	release := sync.OnceFunc(func() { close(signalled) })
	var wg sync.WaitGroup
	defer wg.Wait()
	defer release()
	defer stopOnce()
	// Four writers send only heartbeats, so that some are answered in any
	// window of the shutdown in which the server still takes requests.
	for w := range 32 {
		wg.Go(func() { l.write(client, srv.base, devices[w%len(devices)], w, w < 4, stop) })
	}

	// Requests in flight across the signal: their headers are in, their
	// bodies are finished only after it, so the server must wait for them.
	// (A request whose headers are still arriving at the signal is not
	// in flight: net/http closes its connection without an answer.)
	for i := range 4 {
		d, msg := devices[i], fmt.Sprintf("slow-%d", i)
		body := fmt.Sprintf(`{"data":{"slow":%d},"message_id":%q}`, i, msg)
		conn := sendPartial(t, addr, fmt.Sprintf("POST /api/v1/devices/telemetry HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", addr, d.key, len(body), body[:10]))
		l.sent(d.id, msg)
		wg.Go(func() {
			code, out, err := finishPartial(conn, body[10:], signalled)
			if err != nil || code != 201 {
				l.fail("reading in flight at the signal: %d %v %v", code, out, err)
				return
			}
			l.ack(msg, out)
		})
	}
	time.Sleep(1500 * time.Millisecond)

	l.signalled.Store(true)
	sigAt := time.Now()
	if err := srv.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	release()
	exited := make(chan error, 1)
	go func() { <-srv.outDone; exited <- srv.cmd.Wait() }()
	var took time.Duration
	select {
	case err := <-exited:
		took = time.Since(sigAt)
		if err != nil {
			t.Fatalf("the server exited %v, %v after %v:\n%s", err, took.Round(time.Millisecond), sig, tail(srv.out.String(), 40))
		}
	case <-time.After(exitBound):
		srv.cmd.Process.Kill()
		<-exited
		t.Fatalf("the server had not exited %v after %v:\n%s", exitBound, sig, tail(srv.out.String(), 40))
	}
	if took > exitBound {
		t.Fatalf("the server exited %v after %v; the bound is %v", took.Round(time.Millisecond), sig, exitBound)
	}
	stopOnce()
	wg.Wait()
	for _, b := range l.bad {
		t.Error(b)
	}
	if len(l.acked) < 100 {
		t.Errorf("only %d readings were acknowledged: the load was not real", len(l.acked))
	}
	checkShutdownLog(t, srv.out.String())
	checkStored(t, env, devices, l)
	t.Logf("exit %v after %v; %d readings acknowledged (%d requests answered after the signal), %d cut off",
		took.Round(time.Millisecond), sig, len(l.acked), l.afterSig, len(l.unanswered))
}

// write sends readings, batches and heartbeats (or only heartbeats) as
// device d until the server refuses connections or stop is closed.
func (l *shutdownLoad) write(client *http.Client, base string, d loadDevice, w int, beatOnly bool, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		var err error
		switch {
		case beatOnly || i%16 == 0:
			err = l.sendHeartbeat(client, base, d)
		case i%8 == 7:
			err = l.sendBatch(client, base, d, fmt.Sprintf("w%d-%d", w, i), i%16 == 7)
		default:
			err = l.sendReading(client, base, d, fmt.Sprintf("w%d-%d", w, i))
		}
		if err == nil {
			continue
		}
		if !l.signalled.Load() {
			l.fail("before the signal: %v", err)
			return
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return // the server has stopped accepting
		}
	}
}

func (l *shutdownLoad) sendReading(client *http.Client, base string, d loadDevice, msg string) error {
	l.sent(d.id, msg)
	var out map[string]any
	code, err := l.post(client, base+"/api/v1/devices/telemetry", d, fmt.Sprintf(`{"data":{"v":1},"message_id":%q}`, msg), &out)
	if err != nil {
		l.cutOff(msg)
		return err
	}
	if code != 201 {
		l.fail("reading %s: %d %v", msg, code, out)
		return nil
	}
	l.ack(msg, out)
	return nil
}

// sendBatch sends ten records; with invalid, the sixth lacks its data, so
// the answer is 207 and that record must not be stored.
func (l *shutdownLoad) sendBatch(client *http.Client, base string, d loadDevice, prefix string, invalid bool) error {
	msgs, records := make([]string, 10), make([]string, 10)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("%s-r%d", prefix, i)
		records[i] = fmt.Sprintf(`{"data":{"r":%d},"message_id":%q}`, i, msgs[i])
		if invalid && i == 5 {
			records[i] = fmt.Sprintf(`{"message_id":%q}`, msgs[i])
		}
		l.sent(d.id, msgs[i])
	}
	var out struct {
		Results []map[string]any `json:"results"`
	}
	code, err := l.post(client, base+"/api/v1/devices/telemetry/batch", d, `{"records":[`+strings.Join(records, ",")+`]}`, &out)
	if err != nil {
		for _, m := range msgs {
			l.cutOff(m)
		}
		return err
	}
	if want := map[bool]int{false: 201, true: 207}[invalid]; code != want || len(out.Results) != len(msgs) {
		l.fail("batch %s: %d %v, want %d", prefix, code, out, want)
		return nil
	}
	for i, r := range out.Results {
		switch {
		case invalid && i == 5:
			if r["status"] != 400.0 {
				l.fail("invalid record %s: %v", msgs[i], r)
			}
		case r["status"] != 201.0:
			l.fail("record %s: %v", msgs[i], r)
		default:
			l.ack(msgs[i], r)
		}
	}
	return nil
}

func (l *shutdownLoad) sendHeartbeat(client *http.Client, base string, d loadDevice) error {
	var out map[string]any
	code, err := l.post(client, base+"/api/v1/devices/heartbeat", d, "", &out)
	if err != nil {
		return err
	}
	if code != 200 {
		l.fail("heartbeat: %d %v", code, out)
		return nil
	}
	l.beat(d.id, out)
	return nil
}

// post returns the status and decoded body of an answer, or the error of
// a request that got none.
func (l *shutdownLoad) post(client *http.Client, url string, d loadDevice, body string, out any) (int, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-Key", d.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return 0, fmt.Errorf("%d answer cut off: %w", res.StatusCode, err)
	}
	if l.signalled.Load() {
		l.mu.Lock()
		l.afterSig++
		l.mu.Unlock()
	}
	return res.StatusCode, nil
}

func (l *shutdownLoad) sent(device int64, msg string) {
	l.mu.Lock()
	l.device[msg] = device
	l.mu.Unlock()
}

func (l *shutdownLoad) cutOff(msg string) {
	l.mu.Lock()
	l.unanswered[msg] = true
	l.mu.Unlock()
}

// ack records the telemetry id that a reading was acknowledged with.
func (l *shutdownLoad) ack(msg string, out map[string]any) {
	id, ok := out["telemetry_id"].(float64)
	if !ok || id <= 0 || out["duplicate"] == true {
		l.fail("acknowledgement of %s: %v", msg, out)
		return
	}
	l.mu.Lock()
	l.acked[msg] = int64(id)
	l.mu.Unlock()
}

// beat records the time a heartbeat was acknowledged with.
func (l *shutdownLoad) beat(device int64, out map[string]any) {
	s, _ := out["timestamp"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		l.fail("heartbeat answer %v: %v", out, err)
		return
	}
	l.mu.Lock()
	if at.After(l.heartbeat[device]) {
		l.heartbeat[device] = at
	}
	l.mu.Unlock()
}
