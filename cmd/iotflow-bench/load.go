package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotflow/iotflow/internal/procstat"
)

func numCPU() int { return runtime.NumCPU() }

// target is a server to drive: IoTFlow, the bare handler or the floor.
type target struct {
	url   string
	pid   int      // when not 0, the server whose memory and CPU are sampled
	token string   // when set, the admin token to read the write pipeline's /metrics
	keys  []string // the devices' API keys
}

// loadConfig is how each measured run loads its target.
type loadConfig struct {
	conns          int
	duration, warm time.Duration
	batchSize      int
}

// benchResult is what one measured run produced.
type benchResult struct {
	mode             mode
	requests, errors int64
	// ackedReadings and failedRequests count every request, warm-up
	// included; unsureReadings are the readings of the failed requests,
	// which may have been stored without their answer arriving.
	ackedReadings, failedRequests, unsureReadings int64
	elapsed                                       time.Duration
	rps, readingsPerSec                           float64
	p50, p99, p999                                time.Duration
	peakRSSKB                                     int64
	cpu                                           cpuUse
	writer                                        *writerUse // nil when the server's metrics were not at hand
	firstError                                    string
}

func (r *benchResult) print(w io.Writer, name string) {
	readings := fmt.Sprintf("%10.0f", r.readingsPerSec)
	if r.mode == status {
		readings = fmt.Sprintf("%10s", "-") // a read stores none
	}
	fmt.Fprintf(w, "%-26s %9.0f req/s %s readings/s  p50 %7.2fms  p99 %7.2fms  p99.9 %7.2fms  errors %d",
		name, r.rps, readings, ms(r.p50), ms(r.p99), ms(r.p999), r.errors)
	if r.peakRSSKB > 0 {
		fmt.Fprintf(w, "  server RSS peak %.1f MB", float64(r.peakRSSKB)/1024)
	}
	fmt.Fprintln(w)
	if r.cpu.selfPerReq > 0 || r.cpu.machineBusy >= 0 {
		fmt.Fprintf(w, "  %-24s CPU per request:", "")
		if r.cpu.serverPerReq > 0 {
			fmt.Fprintf(w, " server %.0fµs,", float64(r.cpu.serverPerReq.Nanoseconds())/1e3)
		}
		fmt.Fprintf(w, " load generator %.0fµs;", float64(r.cpu.selfPerReq.Nanoseconds())/1e3)
		if r.cpu.machineBusy >= 0 {
			fmt.Fprintf(w, " machine CPU busy %.0f%%", 100*r.cpu.machineBusy)
		}
		fmt.Fprintln(w)
	}
	if r.writer != nil {
		fmt.Fprintf(w, "  %-24s %s\n", "", r.writer)
	}
	if r.firstError != "" {
		fmt.Fprintf(w, "  first error: %s\n", r.firstError)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

var benchClient = &http.Client{Timeout: 30 * time.Second}

// registerDevices registers n devices and returns their keys and ids.
func registerDevices(ctx context.Context, url string, n int) ([]string, []int64, error) {
	return registerMany(ctx, url, n, 1)
}

func postJSON(ctx context.Context, url, key string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	res, err := benchClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if out != nil {
		return res.StatusCode, json.NewDecoder(res.Body).Decode(out)
	}
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, err
}

// drive runs c.conns workers against t for the warm-up and c.duration,
// each request as m says, and measures the latter.
func drive(ctx context.Context, t target, m mode, c loadConfig) (*benchResult, error) {
	req := m.request(c.batchSize)
	tr := &http.Transport{MaxIdleConnsPerHost: c.conns, MaxConnsPerHost: c.conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	run := randomHex(4) // message ids are unique per drive, so no write is a retry
	var measuring, stop atomic.Bool
	var requests, errs, acked, failed atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, c.conns)
	var wg sync.WaitGroup
	for w := range c.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body bytes.Buffer
			for i := 0; !stop.Load(); i++ {
				key := t.keys[(w+i*c.conns)%len(t.keys)]
				body.Reset()
				if req.readings > 0 {
					writeBody(&body, m, req.readings, run, w, i)
				}
				start := time.Now()
				ok, msg := send(ctx, client, req, t.url, key, body.Bytes())
				took := time.Since(start)
				if ok {
					acked.Add(int64(req.readings))
				} else {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, msg)
				}
				if !measuring.Load() {
					continue
				}
				requests.Add(1)
				if !ok {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], took)
			}
		}()
	}
	time.Sleep(c.warm)
	var peak int64
	sample := func() {
		if t.pid != 0 {
			if kb, ok := procstat.RSS(t.pid); ok {
				peak = max(peak, kb)
			}
		}
	}
	w0, haveW0 := scrapeWriter(ctx, t.url, t.token)
	measuring.Store(true)
	start, cpu0 := time.Now(), sampleCPU(t.pid)
	for time.Since(start) < c.duration {
		sample()
		time.Sleep(100 * time.Millisecond)
	}
	measuring.Store(false)
	elapsed, cpu1 := time.Since(start), sampleCPU(t.pid)
	w1, haveW1 := scrapeWriter(ctx, t.url, t.token)
	stop.Store(true)
	wg.Wait()
	sample()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))]
	}
	r := &benchResult{
		mode: m, requests: requests.Load(), errors: errs.Load(), elapsed: elapsed,
		p50: pct(0.50), p99: pct(0.99), p999: pct(0.999), peakRSSKB: peak,
		ackedReadings: acked.Load(), failedRequests: failed.Load(),
	}
	r.unsureReadings = r.failedRequests * int64(req.readings)
	r.cpu = cpuBetween(cpu0, cpu1, r.requests)
	if use, ok := w0.between(w1, elapsed); ok && haveW0 && haveW1 {
		r.writer = &use
	}
	r.rps = float64(r.requests-r.errors) / elapsed.Seconds()
	r.readingsPerSec = r.rps * float64(req.readings)
	if v := firstErr.Load(); v != nil {
		r.firstError = v.(string)
	}
	return r, nil
}

// writeBody writes a request body: a reading with a unique message_id, or
// a batch of them.
func writeBody(b *bytes.Buffer, m mode, n int, run string, worker, i int) {
	record := func(j int) {
		fmt.Fprintf(b, `{"data":{"temperature":%d.%d,"humidity":%d,"battery":97},"metadata":{"fw":"1.2.3"},"type":"sensor","message_id":"%d-%d-%d-%s"}`,
			18+j%10, i%10, 40+i%20, worker, i, j, run)
	}
	if m == single {
		record(0)
		return
	}
	b.WriteString(`{"records":[`)
	for j := range n {
		if j > 0 {
			b.WriteByte(',')
		}
		record(j)
	}
	b.WriteString(`]}`)
}

// send makes one request of req as the device key; body is empty for a
// read. It reports whether the answer was req's success.
func send(ctx context.Context, client *http.Client, req request, url, key string, body []byte) (bool, string) {
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, url+req.path, rd)
	if err != nil {
		return false, err.Error()
	}
	if rd != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	hr.Header.Set("X-API-Key", key)
	res, err := client.Do(hr)
	if err != nil {
		return false, err.Error()
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != req.want {
		return false, strconv.Itoa(res.StatusCode) + " " + string(b)
	}
	return true, ""
}

// countStored counts the stored rows of the given devices through the
// admin API: a type filter makes the server count rows, not read counters.
func countStored(ctx context.Context, url, token string, ids []int64) (int64, error) {
	var total int64
	for _, id := range ids {
		req, _ := http.NewRequestWithContext(ctx, "GET",
			fmt.Sprintf("%s/api/v1/admin/telemetry?device_id=%d&type=sensor&per_page=1", url, id), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := benchClient.Do(req)
		if err != nil {
			return 0, err
		}
		var out struct {
			Pagination struct {
				Total int64 `json:"total"`
			} `json:"pagination"`
		}
		err = json.NewDecoder(res.Body).Decode(&out)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("count readings of device %d: status %d: %v", id, res.StatusCode, err)
		}
		total += out.Pagination.Total
	}
	return total, nil
}
