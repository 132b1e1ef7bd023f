package iotflow

import (
	"encoding/json"
	"time"
)

// The widths of the rollups kept of every key's numeric values, aligned
// to UTC: every zone's offset is a whole number of minutes, so minute
// rollups serve buckets of whole minutes in any zone, and hour rollups
// those whose edges fall on UTC hours.
const (
	RollupMinute = time.Minute
	RollupHour   = time.Hour
)

// Agg aggregates numeric values: their count, sum, least and greatest,
// and the first and last by the reading's own time (then its id).
type Agg struct {
	Count    int64
	Sum      float64
	Min, Max float64

	FirstAt time.Time
	FirstID int64
	First   float64
	LastAt  time.Time
	LastID  int64
	Last    float64
}

// Add takes in the value v of reading id, taken at at.
func (a *Agg) Add(v float64, at time.Time, id int64) {
	a.Merge(Agg{Count: 1, Sum: v, Min: v, Max: v, FirstAt: at, FirstID: id, First: v, LastAt: at, LastID: id, Last: v})
}

// Merge takes in the values b aggregates.
func (a *Agg) Merge(b Agg) {
	if b.Count == 0 {
		return
	}
	if a.Count == 0 {
		*a = b
		return
	}
	a.Count += b.Count
	a.Sum += b.Sum
	a.Min, a.Max = min(a.Min, b.Min), max(a.Max, b.Max)
	if before(b.FirstAt, b.FirstID, a.FirstAt, a.FirstID) {
		a.FirstAt, a.FirstID, a.First = b.FirstAt, b.FirstID, b.First
	}
	if before(a.LastAt, a.LastID, b.LastAt, b.LastID) {
		a.LastAt, a.LastID, a.Last = b.LastAt, b.LastID, b.Last
	}
}

// Avg is the mean of the values.
func (a *Agg) Avg() float64 { return a.Sum / float64(a.Count) }

// before orders readings by their own time, then by id.
func before(at time.Time, id int64, than time.Time, thanID int64) bool {
	return at.Before(than) || at.Equal(than) && id < thanID
}

// Rollup aggregates the numeric values of one key of one device within one
// bucket, [Bucket, Bucket+Width), of a rollup width.
type Rollup struct {
	DeviceID int64
	Key      string
	Width    time.Duration // RollupMinute or RollupHour
	Bucket   time.Time     // UTC, a multiple of Width
	Agg
}

// KeyState is what is known of one key of a device: the kind and value of
// the newest reading (by its own time, then id) that holds it.
type KeyState struct {
	DeviceID  int64
	Key       string
	Kind      ValueKind
	At        time.Time
	ReadingID int64
	Value     json.RawMessage
}

// Newer reports whether s is from a newer reading than t.
func (s *KeyState) Newer(t *KeyState) bool { return before(t.At, t.ReadingID, s.At, s.ReadingID) }

// RollupUpdate is what one pass of the rollup adds: the rollups and key
// states of the readings after From up to UpTo.
type RollupUpdate struct {
	From, UpTo int64
	Rollups    []Rollup
	Keys       []KeyState
}

// Segment is a span [Start, End) of a series query, read from the rollups
// of Width, or from the readings themselves when Width is 0.
type Segment struct {
	Start, End time.Time
	Width      time.Duration
}

// SeriesQuery is what a series read needs of the store: the rollups of the
// keys in the segments of a width, and the readings everywhere else.
type SeriesQuery struct {
	DeviceID int64
	Keys     []string // the keys whose rollups to read
	Segments []Segment
}

// SeriesData is what the store answers a SeriesQuery with, read in one
// snapshot: the rollups of the keys in the segments with a width, and the
// readings that no rollup covers, all of the raw segments and, within the
// others, those the rollup has not reached yet. No reading is in both.
type SeriesData struct {
	Rollups  []Rollup
	Readings []*Reading
}

// ReadingKey is a reading's place in the order of readings: its own time,
// then its id.
type ReadingKey struct {
	At time.Time
	ID int64
}

// RetentionCutoff is the time before which readings are removed when
// readings are kept for keep: keep before now, down to a whole UTC hour, so
// that the hourly counts and rollups are removed whole. 0 keeps everything
// and gives the zero time.
func RetentionCutoff(now time.Time, keep time.Duration) time.Time {
	if keep <= 0 {
		return time.Time{}
	}
	return now.Add(-keep).UTC().Truncate(time.Hour)
}
