package main

import (
	"sort"
	"time"
)

// A layout says where seeded readings go: n of them, per to a request,
// the readings of batch b (readings b*per up to (b+1)*per) to the device
// of index device(b), reading i at at(i), which is monotonic in i.
type layout struct {
	n, per int
	device func(batch int) int
	at     func(i int) time.Time
}

// spread is seedReadings' layout: n readings over devices, timestamps
// spread evenly over span before end, newest first, each batch of
// consecutive readings to the next device in turn.
func spread(n, devices int, span time.Duration, end time.Time) layout {
	per := min(1000, max(1, n/devices))
	return layout{
		n: n, per: per,
		device: func(b int) int { return b % devices },
		at:     func(i int) time.Time { return end.Add(-time.Duration(float64(span) * float64(i) / float64(n))) },
	}
}

// batches is how many requests store l.
func (l layout) batches() int { return (l.n + l.per - 1) / l.per }

// steady is one device sending a reading every every over span before
// end, oldest first, 1000 to a request: the heavy device of bench series.
func steady(span, every time.Duration, end time.Time) layout {
	n := int(span / every)
	first := end.Add(-time.Duration(n) * every)
	return layout{
		n: n, per: 1000,
		device: func(int) int { return 0 },
		at:     func(i int) time.Time { return first.Add(time.Duration(i) * every) },
	}
}

// size is how many readings batch b holds.
func (l layout) size(b int) int { return min(l.per, l.n-b*l.per) }

// stored is the time the server keeps for reading i: post sends epoch
// milliseconds.
func (l layout) stored(i int) time.Time { return time.UnixMilli(l.at(i).UnixMilli()).UTC() }

// count is how many readings device d holds.
func (l layout) count(d int) int {
	n := 0
	for b := range l.batches() {
		if l.device(b) == d {
			n += l.size(b)
		}
	}
	return n
}

// nth is the index of device d's k-th reading (from 0) in index order.
func (l layout) nth(d, k int) int {
	for b := range l.batches() {
		if l.device(b) != d {
			continue
		}
		if k < l.size(b) {
			return b*l.per + k
		}
		k -= l.size(b)
	}
	return -1
}

// window returns a span [start, end) of time that holds exactly want
// readings of device d, consecutive in time and chosen with intn (as
// rand.IntN), or false when d holds fewer.
func (l layout) window(d, want int, intn func(int) int) (start, end time.Time, ok bool) {
	total := l.count(d)
	if want < 1 || total < want {
		return time.Time{}, time.Time{}, false
	}
	k := intn(total - want + 1)
	a, b := l.stored(l.nth(d, k)), l.stored(l.nth(d, k+want-1))
	if b.Before(a) {
		a, b = b, a
	}
	return a, b.Add(time.Millisecond), true
}

// span is the time from the oldest reading to the newest, both included.
func (l layout) span() (first, last time.Time) {
	first, last = l.stored(0), l.stored(l.n-1)
	if last.Before(first) {
		first, last = last, first
	}
	return first, last
}

// buckets is how many buckets of width, aligned to the Unix epoch as UTC
// minutes, hours and days are, hold readings of device d in [start, end):
// what a series read without fill returns for each key.
func (l layout) buckets(d int, start, end time.Time, width time.Duration) int {
	asc := l.n < 2 || !l.at(1).Before(l.at(0))
	// Readings before start in the order of index, and from end on.
	before := func(t time.Time) func(int) bool {
		if asc {
			return func(i int) bool { return !l.stored(i).Before(t) }
		}
		return func(i int) bool { return l.stored(i).Before(t) }
	}
	lo, hi := sort.Search(l.n, before(start)), sort.Search(l.n, before(end))
	if !asc {
		lo, hi = hi, lo
	}
	n, prev := 0, int64(-1)
	w := width.Milliseconds()
	for i := lo; i < hi; i++ {
		if l.device(i/l.per) != d {
			continue
		}
		if k := l.stored(i).UnixMilli() / w; k != prev {
			n, prev = n+1, k
		}
	}
	return n
}

// wholeDays are the UTC days that lie wholly within the readings' span.
func (l layout) wholeDays() []time.Time {
	first, last := l.span()
	day := first.Truncate(24 * time.Hour)
	if day.Before(first) {
		day = day.Add(24 * time.Hour)
	}
	var days []time.Time
	for ; !day.Add(24 * time.Hour).After(last); day = day.Add(24 * time.Hour) {
		days = append(days, day)
	}
	return days
}
