package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	body, err := getMetrics(ctx, url, token)
	if err != nil {
		return writerStats{}, false
	}
	return parseWriterStats(bytes.NewReader(body))
}

// getMetrics reads url's /metrics in the Prometheus text format with the
// admin token.
func getMetrics(ctx context.Context, url, token string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", string(expfmt.FmtText)) // the text format, not OpenMetrics
	res, err := benchClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", res.StatusCode)
	}
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return body, nil
}

// parseWriterStats reads the pipeline's counters from the Prometheus text
// format with the Prometheus client's own parser: the batch-size histogram
// gives transactions and readings, the commit-duration histogram the time,
// summed over every result (ok and error). ok is false when either
// histogram is missing.
func parseWriterStats(r io.Reader) (writerStats, bool) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return writerStats{}, false
	}
	batches, commits := families["iotflow_write_batch_readings"], families["iotflow_write_commit_duration_seconds"]
	if len(batches.GetMetric()) == 0 || len(commits.GetMetric()) == 0 {
		return writerStats{}, false
	}
	var st writerStats
	for _, m := range batches.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			return writerStats{}, false
		}
		st.transactions += float64(h.GetSampleCount())
		st.readings += h.GetSampleSum()
	}
	for _, m := range commits.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			return writerStats{}, false
		}
		st.seconds += h.GetSampleSum()
	}
	return st, true
}

func (u writerUse) String() string {
	return fmt.Sprintf("writer: %.1f readings per transaction, %.2f ms per transaction, busy %.0f%% of the time",
		u.perTransaction, float64(u.perCommit.Microseconds())/1000, 100*u.busy)
}
