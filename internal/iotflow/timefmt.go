package iotflow

import "time"

// TimeLayout is ISO 8601 with microseconds and a numeric zone, the form the
// reference service's isoformat() produced and every client parses.
const TimeLayout = "2006-01-02T15:04:05.000000-07:00"

// FormatTime writes t in TimeLayout, in UTC. Every answer carries a time
// (a page of 100 readings carries 200), so the digits are written directly
// rather than by Format, which parses the layout on each call.
func FormatTime(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(TimeLayout)
	}
	hour, minute, sec := t.Clock()
	var b [len("2006-01-02T15:04:05.000000+00:00")]byte
	digits := func(at, v, n int) {
		for i := at + n - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	digits(0, year, 4)
	b[4] = '-'
	digits(5, int(month), 2)
	b[7] = '-'
	digits(8, day, 2)
	b[10] = 'T'
	digits(11, hour, 2)
	b[13] = ':'
	digits(14, minute, 2)
	b[16] = ':'
	digits(17, sec, 2)
	b[19] = '.'
	digits(20, t.Nanosecond()/1000, 6)
	copy(b[26:], "+00:00")
	return string(b[:])
}

// FormatTimePtr is FormatTime of *t, or nil.
func FormatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := FormatTime(*t)
	return &s
}
