package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/iotflow/iotflow/internal/procstat"
)

// pageSize is the limit of a raw page read.
const pageSize = 1000

// The goals of BENCHMARKS.md: the 99th percentile of each read, and the
// rate of an export.
const (
	goalPage   = 10 * time.Millisecond
	goalDay    = 50 * time.Millisecond
	goalMonth  = 200 * time.Millisecond
	goalLatest = 2 * time.Millisecond
	goalExport = 100_000 // readings/s
)

// measureSeries times each read of bench series and prints it beside its
// goal; every answer is checked against what the layouts say it holds.
func measureSeries(ctx context.Context, e env, c *seriesConfig, s *seeded) error {
	get := func(path string, out any) (time.Duration, error) {
		took, body, err := timedRead(ctx, c.url+path, "Authorization", "Bearer "+c.token)
		if err == nil {
			if err = json.Unmarshal(body, out); err != nil {
				err = fmt.Errorf("GET %s: %w", path, err)
			}
		}
		return took, err
	}
	ord, heavy := s.ordinary(), s.heavy()

	pages := make([]time.Duration, 0, c.pages)
	for range c.pages {
		d := rand.IntN(len(s.Devices))
		want := min(ord.count(d), pageSize+rand.IntN(pageSize))
		start, end, ok := ord.window(d, want, rand.IntN)
		if !ok || want < pageSize {
			return fmt.Errorf("device %d holds fewer than the %d readings of a page", s.Devices[d].ID, pageSize)
		}
		path := fmt.Sprintf("/api/v1/admin/devices/%d/telemetry?start=%d&end=%d&limit=%d&order=asc",
			s.Devices[d].ID, start.UnixMilli(), end.UnixMilli(), pageSize)
		var out struct {
			Count   int  `json:"count"`
			HasMore bool `json:"has_more"`
		}
		took, err := get(path, &out)
		if err != nil {
			return err
		}
		if out.Count != pageSize || out.HasMore != (want > pageSize) {
			return fmt.Errorf("GET %s: %d readings (has_more %v) of a window holding %d", path, out.Count, out.HasMore, want)
		}
		pages = append(pages, took)
	}
	latencyLine(e.stdout, "raw page, 1000 readings of a device", pages, goalPage)

	days := heavy.wholeDays()
	if len(days) == 0 {
		return fmt.Errorf("the heavy device's readings span no whole day")
	}
	series := func(start, end time.Time, interval string, width time.Duration, n int) ([]time.Duration, error) {
		want := heavy.buckets(0, start, end, width)
		path := fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/series?start=%d&end=%d&interval=%s&keys=%s&agg=avg,min,max",
			s.Heavy.ID, start.UnixMilli(), end.UnixMilli(), interval, seriesKeys)
		ds := make([]time.Duration, 0, n)
		for range n {
			var out struct {
				Series  map[string][]json.RawMessage `json:"series"`
				HasMore bool                         `json:"has_more"`
			}
			took, err := get(path, &out)
			if err != nil {
				return nil, err
			}
			if err := checkBuckets(out.Series, want); err != nil || out.HasMore {
				return nil, fmt.Errorf("GET %s: %v (has_more %v)", path, err, out.HasMore)
			}
			ds = append(ds, took)
		}
		return ds, nil
	}
	var dayTimes []time.Duration
	for range c.daySamples {
		day := days[rand.IntN(len(days))]
		ds, err := series(day, day.Add(24*time.Hour), "1m", time.Minute, 1)
		if err != nil {
			return err
		}
		dayTimes = append(dayTimes, ds...)
	}
	latencyLine(e.stdout, "heavy device, a day at 1m, 3 keys x 3 aggs", dayTimes, goalDay)
	first, _ := heavy.span()
	month, err := series(first, first.Add(s.span()), "1h", time.Hour, c.monthSamples)
	if err != nil {
		return err
	}
	latencyLine(e.stdout, fmt.Sprintf("heavy device, %d days at 1h, 3 keys x 3 aggs", s.Days), month, goalMonth)

	all := append(slices.Clone(s.Devices), s.Heavy)
	latest := make([]time.Duration, 0, c.latestSamples)
	for range c.latestSamples {
		path := fmt.Sprintf("/api/v1/admin/devices/%d/telemetry/latest", all[rand.IntN(len(all))].ID)
		var out struct {
			Latest map[string]json.RawMessage `json:"latest"`
		}
		took, err := get(path, &out)
		if err != nil {
			return err
		}
		if len(out.Latest) != 3 {
			return fmt.Errorf("GET %s: %d keys, want the 3 of %s", path, len(out.Latest), seriesKeys)
		}
		latest = append(latest, took)
	}
	latencyLine(e.stdout, "latest values of a device", latest, goalLatest)

	for _, format := range []string{"ndjson", "csv"} {
		x, err := exportOnce(ctx, c, s.Heavy.ID, format)
		if err != nil {
			return err
		}
		if x.readings != heavy.n {
			return fmt.Errorf("export %s: %d readings, the heavy device holds %d", format, x.readings, heavy.n)
		}
		x.print(e.stdout, format, c.pid != 0)
	}
	return nil
}

// checkBuckets checks that each key of the seeded readings has want
// buckets, and no other key is there.
func checkBuckets(series map[string][]json.RawMessage, want int) error {
	if len(series) != 3 {
		return fmt.Errorf("%d keys, want the 3 of %s", len(series), seriesKeys)
	}
	for key, buckets := range series {
		if len(buckets) != want {
			return fmt.Errorf("%s has %d buckets, want %d", key, len(buckets), want)
		}
	}
	return nil
}

// latencyLine prints the percentiles of ds beside the goal for the 99th.
func latencyLine(w io.Writer, name string, ds []time.Duration, goal time.Duration) {
	p := percentiles(ds) // sorts ds
	fmt.Fprintf(w, "%-46s %s   goal p99 <= %s: %s\n", name, p, goal, verdict(quantile(ds, 0.99) <= goal))
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

// exported is what one export took, and the server's RSS meanwhile in
// KiB: before the request, the peak while it streamed and after it.
type exported struct {
	readings            int
	bytes               int64
	took                time.Duration
	before, peak, after int64
}

func (x exported) print(w io.Writer, format string, rss bool) {
	rate := float64(x.readings) / x.took.Seconds()
	fmt.Fprintf(w, "%-46s %d readings, %.1f MB in %s: %.0f readings/s", "export "+format+" of the heavy device",
		x.readings, float64(x.bytes)/1e6, x.took.Round(10*time.Millisecond), rate)
	if rss {
		fmt.Fprintf(w, "; server RSS before %.1f MB, peak %.1f MB, after %.1f MB",
			float64(x.before)/1024, float64(x.peak)/1024, float64(x.after)/1024)
	} else {
		fmt.Fprint(w, "; server RSS not sampled (a --url server)")
	}
	fmt.Fprintf(w, "   goal >= %d readings/s: %s\n", goalExport, verdict(rate >= goalExport))
}

// streamClient reads exports: they may take longer than benchClient's
// timeout, and are measured as the server sends them, uncompressed.
var streamClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// exportOnce reads the whole export of a device in format, timed from
// sending the request to the last byte, and counts its readings (lines,
// less the header of a CSV) while it samples the server's RSS every 100ms.
func exportOnce(ctx context.Context, c *seriesConfig, id int64, format string) (exported, error) {
	var x exported
	rss := func() int64 {
		kb, _ := procstat.RSS(c.pid)
		return kb
	}
	url := fmt.Sprintf("%s/api/v1/admin/telemetry/export?device_id=%d&format=%s", c.url, id, format)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	stop, sampled := make(chan struct{}), make(chan struct{})
	if c.pid != 0 {
		x.before = rss()
		x.peak = x.before
		go func() {
			defer close(sampled)
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					x.peak = max(x.peak, rss()) // read only once this goroutine has ended
				}
			}
		}()
	} else {
		close(sampled)
	}
	start := time.Now()
	lines, err := readLines(streamClient, req, &x.bytes)
	x.took = time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		return x, fmt.Errorf("export %s: %w", format, err)
	}
	if c.pid != 0 {
		x.after = rss()
		x.peak = max(x.peak, x.after)
	}
	x.readings = lines
	if format == "csv" {
		x.readings-- // the header
	}
	return x, nil
}

// readLines sends req, reads the whole answer and counts its lines, and
// its bytes into n.
func readLines(client *http.Client, req *http.Request, n *int64) (int, error) {
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 200))
		return 0, fmt.Errorf("status %d: %s", res.StatusCode, b)
	}
	buf := make([]byte, 256<<10)
	lines := 0
	for {
		k, err := res.Body.Read(buf)
		lines += bytes.Count(buf[:k], []byte{'\n'})
		*n += int64(k)
		if err == io.EOF {
			return lines, nil
		}
		if err != nil {
			return lines, err
		}
	}
}
