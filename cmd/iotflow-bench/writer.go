package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// writerStats are the write pipeline's counters, read from the server's
// /metrics: how many transactions committed, how many readings they held
// and how long they took in all.
type writerStats struct {
	transactions, readings float64
	seconds                float64
}

// writerUse is what the pipeline did over a measured window.
type writerUse struct {
	perTransaction float64       // readings per transaction
	perCommit      time.Duration // mean time of one transaction
	busy           float64       // share of the window spent in transactions
}

// between returns the use from a to b over elapsed, or ok false when there
// was no transaction.
func (a writerStats) between(b writerStats, elapsed time.Duration) (writerUse, bool) {
	n := b.transactions - a.transactions
	if n <= 0 || elapsed <= 0 {
		return writerUse{}, false
	}
	secs := b.seconds - a.seconds
	return writerUse{
		perTransaction: (b.readings - a.readings) / n,
		perCommit:      time.Duration(secs / n * float64(time.Second)),
		busy:           secs / elapsed.Seconds(),
	}, true
}

// scrapeWriter reads the pipeline's counters from url's /metrics with the
// admin token; ok is false when the server does not expose them.
func scrapeWriter(ctx context.Context, url, token string) (writerStats, bool) {
	if token == "" {
		return writerStats{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	if err != nil {
		return writerStats{}, false
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := benchClient.Do(req)
	if err != nil {
		return writerStats{}, false
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return writerStats{}, false
	}
	return parseWriterStats(res.Body)
}

// parseWriterStats picks the pipeline's counters out of the Prometheus text
// format; the commit time sums the series of every result.
func parseWriterStats(r io.Reader) (writerStats, bool) {
	var st writerStats
	found := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, _, _ := strings.Cut(name, "{")
		var dst *float64
		switch metric {
		case "iotflow_write_batch_readings_sum":
			dst = &st.readings
		case "iotflow_write_batch_readings_count":
			dst = &st.transactions
		case "iotflow_write_commit_duration_seconds_sum":
			dst = &st.seconds
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		*dst += v
		found++
	}
	return st, found >= 3 && sc.Err() == nil
}

func (u writerUse) String() string {
	return fmt.Sprintf("writer: %.1f readings per transaction, %.2f ms per transaction, busy %.0f%% of the time",
		u.perTransaction, float64(u.perCommit.Microseconds())/1000, 100*u.busy)
}
