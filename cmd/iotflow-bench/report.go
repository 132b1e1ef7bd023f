package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// summary holds the measured runs by mode and target ("iotflow", "bare",
// "floor"), in round order, and the readings seeded before them.
type summary struct {
	runs   map[mode]map[string][]*benchResult
	seeded int64
}

func (s *summary) add(m mode, name string, r *benchResult) {
	if s.runs == nil {
		s.runs = map[mode]map[string][]*benchResult{}
	}
	if s.runs[m] == nil {
		s.runs[m] = map[string][]*benchResult{}
	}
	s.runs[m][name] = append(s.runs[m][name], r)
}

func (s summary) get(m mode, name string) []*benchResult { return s.runs[m][name] }

// written sums the writes to target name over every mode: readings
// acknowledged, write requests failed, and the readings of those, which
// may have been stored.
func (s summary) written(name string) (acked, failed, unsure int64) {
	for m, byName := range s.runs {
		if m == status {
			continue
		}
		for _, r := range byName[name] {
			acked, failed, unsure = acked+r.ackedReadings, failed+r.failedRequests, unsure+r.unsureReadings
		}
	}
	return acked, failed, unsure
}

// print writes the medians of every mode, the ratios to the bare handler,
// and, when both were measured, status reads against telemetry writes.
func (s summary) print(w io.Writer, modes []mode) {
	label := func(m mode) string {
		if len(modes) > 1 {
			return " " + string(m)
		}
		return ""
	}
	for _, m := range modes {
		runs := s.get(m, "iotflow")
		med := median(runs)
		if m == status {
			fmt.Fprintf(w, "median iotflow%s: %.0f reads/s, p50 %.2fms, p99 %.2fms, p99.9 %.2fms, server RSS peak %.1f MB\n",
				label(m), med.rps, ms(med.p50), ms(med.p99), ms(med.p999), float64(maxRSS(runs))/1024)
			continue
		}
		fmt.Fprintf(w, "median iotflow%s: %.0f req/s, %.0f readings/s, p50 %.2fms, p99 %.2fms, p99.9 %.2fms, server RSS peak %.1f MB\n",
			label(m), med.rps, med.readingsPerSec, ms(med.p50), ms(med.p99), ms(med.p999), float64(maxRSS(runs))/1024)
	}
	floors := s.get(single, "floor")
	if len(floors) > 0 {
		mf := median(floors)
		fmt.Fprintf(w, "median durable floor: %.0f req/s, p50 %.2fms, p99 %.2fms, p99.9 %.2fms\n",
			mf.rps, ms(mf.p50), ms(mf.p99), ms(mf.p999))
	}
	for _, m := range modes {
		bases := s.get(m, "bare")
		if len(bases) == 0 {
			continue
		}
		runs := s.get(m, "iotflow")
		ratios := perRound(runs, bases, 100)
		fmt.Fprintf(w, "ratio%s: median %.1f%% of bare net/http (rounds: %s); medians %.0f vs %.0f req/s\n",
			label(m), middle(ratios), fmtList(ratios, "%.1f%%"), median(runs).rps, median(bases).rps)
		if m == single && len(floors) > 0 {
			ratios := perRound(floors, bases, 100)
			fmt.Fprintf(w, "floor: median %.1f%% of bare net/http (rounds: %s); median %.0f req/s\n",
				middle(ratios), fmtList(ratios, "%.1f%%"), median(floors).rps)
		}
	}
	if hasMode(modes, single) && hasMode(modes, status) {
		reads, writes := s.get(status, "iotflow"), s.get(single, "iotflow")
		ratios := perRound(reads, writes, 1)
		fmt.Fprintf(w, "status vs single: median %.2fx as many status reads/s as telemetry writes/s (rounds: %s); status read p99 %.2fms\n",
			middle(ratios), fmtList(ratios, "%.2fx"), ms(median(reads).p99))
	}
}

// perRound returns scale × a[i].rps / b[i].rps for each round i.
func perRound(a, b []*benchResult, scale float64) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = scale * a[i].rps / b[i].rps
	}
	return out
}

// middle returns the median of xs.
func middle(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
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

func fmtList(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, " ")
}
