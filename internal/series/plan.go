package series

import (
	"sort"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// Plan splits [start, end) into the segments a series read takes from the
// hour rollups, the minute rollups and the readings themselves: consecutive,
// in order, covering the range exactly, adjacent ones of different widths.
// edges are those of Buckets, nil for a raw interval, which reads only
// readings.
//
// A rollup row aggregates [t, t+W) and cannot be split, so it may serve a
// span only if it falls entirely inside one output bucket and inside the
// queried range: every edge strictly inside the span, and the span's own
// ends, must be multiples of W in UTC. The widest W to which all inner
// edges are aligned serves the aligned middle of the range; the ragged ends
// are planned the same way with the next narrower width, down to the
// readings. Edges at local midnight are minute aligned in every zone, as
// zone offsets are whole minutes, but hour aligned only in whole-hour zones.
func Plan(edges []time.Time, start, end time.Time) []iotflow.Segment {
	start, end = start.UTC(), end.UTC()
	var p planner
	w := time.Duration(0)
	if len(edges) >= 2 {
		w = widest(edges[1 : len(edges)-1])
	}
	p.add(start, end, w)
	return p.segs
}

// widest is the widest rollup width to which all the inner edges are
// aligned, or 0 if none is.
func widest(inner []time.Time) time.Duration {
	for _, w := range []time.Duration{iotflow.RollupHour, iotflow.RollupMinute} {
		aligned := true
		for _, e := range inner {
			if !e.Truncate(w).Equal(e) {
				aligned = false
				break
			}
		}
		if aligned {
			return w
		}
	}
	return 0
}

// narrower is the width below w: minute rollups below hour ones, readings
// below minute ones.
func narrower(w time.Duration) time.Duration {
	if w == iotflow.RollupHour {
		return iotflow.RollupMinute
	}
	return 0
}

type planner struct{ segs []iotflow.Segment }

// add plans [start, end) with rollups of w and narrower.
func (p *planner) add(start, end time.Time, w time.Duration) {
	if !start.Before(end) {
		return
	}
	if w == 0 {
		p.push(start, end, 0)
		return
	}
	// Time.Truncate works on time since the zero time, which is aligned
	// to UTC minutes and hours.
	a, b := start.Truncate(w), end.Truncate(w)
	if a.Before(start) {
		a = a.Add(w)
	}
	if !a.Before(b) {
		p.add(start, end, narrower(w))
		return
	}
	p.add(start, a, narrower(w))
	p.push(a, b, w)
	p.add(b, end, narrower(w))
}

// push appends a segment, merging it into the last if of the same width.
func (p *planner) push(start, end time.Time, w time.Duration) {
	if n := len(p.segs); n > 0 && p.segs[n-1].Width == w && p.segs[n-1].End.Equal(start) {
		p.segs[n-1].End = end
		return
	}
	p.segs = append(p.segs, iotflow.Segment{Start: start, End: end, Width: w})
}

// BucketIndex returns the bucket of edges in which t falls, i with
// edges[i] <= t < edges[i+1], or -1 if t lies outside them all.
func BucketIndex(edges []time.Time, t time.Time) int {
	i := sort.Search(len(edges), func(i int) bool { return edges[i].After(t) }) - 1
	if i < 0 || i >= len(edges)-1 {
		return -1
	}
	return i
}
