package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/procstat"
)

// addDevice registers a device named name with a fresh key.
func addDevice(t testing.TB, s *Store, name string) *iotflow.Device {
	t.Helper()
	now := iotflow.Truncate(time.Now())
	_, hash, prefix, err := iotflow.NewSecret(iotflow.APIKeyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	d := &iotflow.Device{Name: name, DeviceType: "sensor", Status: iotflow.StatusActive, CreatedAt: now, UpdatedAt: now}
	k := &iotflow.APIKey{Prefix: prefix, Hash: hash, Active: true, CreatedAt: now}
	if err := s.CreateDevice(t.Context(), d, k); err != nil {
		t.Fatalf("CreateDevice(%q): %v", name, err)
	}
	return d
}

func reading(deviceID int64, ts time.Time) *iotflow.Reading {
	return &iotflow.Reading{DeviceID: deviceID, Timestamp: ts, ReceivedAt: ts, DataType: iotflow.DefaultDataType,
		Payload: json.RawMessage(`{"t": 21.5}`), Metadata: json.RawMessage(`{}`)}
}

// countRows counts a device's readings the slow way.
func countRows(t *testing.T, s *Store, deviceID int64) int64 {
	t.Helper()
	var n int64
	err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM telemetry_data WHERE device_id = $1`, deviceID).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInsertReadingsUnknownDeviceRollsBack(t *testing.T) {
	s := newTestStore(t)
	d := addDevice(t, s, "a")
	now := iotflow.Truncate(time.Now())
	rs := []*iotflow.Reading{reading(d.ID, now), reading(d.ID+1000, now), reading(d.ID, now)}
	err := s.InsertReadings(t.Context(), rs)
	if code := iotflow.ErrorCode(err); code != iotflow.ENOTFOUND {
		t.Fatalf("InsertReadings: code %q (%v), want %q", code, err, iotflow.ENOTFOUND)
	}
	if rs[0].ID != 0 {
		t.Errorf("a failed insert set ID %d", rs[0].ID)
	}
	got, _ := s.Device(t.Context(), d.ID)
	if n := countRows(t, s, d.ID); n != 0 || got.TelemetryCount != 0 {
		t.Errorf("after a failed insert: %d rows, TelemetryCount %d; want none", n, got.TelemetryCount)
	}
}

// TestCountReadingsUsesCounters shows that unfiltered counts come from the
// counters and filtered ones from the rows.
func TestCountReadingsUsesCounters(t *testing.T) {
	s := newTestStore(t)
	d := addDevice(t, s, "a")
	now := iotflow.Truncate(time.Now())
	if err := s.InsertReadings(t.Context(), []*iotflow.Reading{reading(d.ID, now), reading(d.ID, now)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(t.Context(), `UPDATE devices SET telemetry_count = 1000 WHERE id = $1`, d.ID); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, tt := range []struct {
		f    iotflow.ReadingFilter
		want int64
	}{
		{iotflow.ReadingFilter{}, 1000},
		{iotflow.ReadingFilter{DeviceID: d.ID}, 1000},
		{iotflow.ReadingFilter{DeviceID: d.ID + 1}, 0},
		{iotflow.ReadingFilter{DeviceID: d.ID, DataType: iotflow.DefaultDataType}, 2},
		{iotflow.ReadingFilter{Since: &now}, 2},
	} {
		if n, err := s.CountReadings(ctx, tt.f); err != nil || n != tt.want {
			t.Errorf("CountReadings(%+v) = %d, %v; want %d", tt.f, n, err, tt.want)
		}
	}
	if st, err := s.ReadingStats(ctx, d.ID); err != nil || st.Count != 1000 {
		t.Errorf("ReadingStats = %+v, %v; want Count 1000", st, err)
	}
	if st, err := s.Dashboard(ctx, now, now); err != nil || st.TotalReadings != 1000 || st.RecentReadings != 2 {
		t.Errorf("Dashboard = %+v, %v; want 1000 readings, 2 recent", st, err)
	}
}

// TestConcurrentBatchesAndTouches runs batches that span devices in random
// order alongside TouchDevices: no deadlock, and the counters match the rows.
func TestConcurrentBatchesAndTouches(t *testing.T) {
	s := newTestStore(t)
	var devices []*iotflow.Device
	for i := range 6 {
		devices = append(devices, addDevice(t, s, fmt.Sprintf("d%d", i)))
	}
	const workers, batches, size = 8, 15, 20
	base := iotflow.Truncate(time.Now())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				var rs []*iotflow.Reading
				seen := map[int64]time.Time{}
				for i := range size {
					d := devices[rand.IntN(len(devices))]
					ts := base.Add(time.Duration(w*batches*size+b*size+i) * time.Millisecond)
					rs = append(rs, reading(d.ID, ts))
					seen[d.ID] = ts
				}
				if err := s.InsertReadings(t.Context(), rs); err != nil {
					fail(fmt.Errorf("InsertReadings: %w", err))
				}
				for i := 1; i < len(rs); i++ {
					if rs[i].ID <= rs[i-1].ID {
						fail(fmt.Errorf("IDs %d then %d do not increase", rs[i-1].ID, rs[i].ID))
						break
					}
				}
				if err := s.TouchDevices(t.Context(), seen); err != nil {
					fail(fmt.Errorf("TouchDevices: %w", err))
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}

	var total int64
	for _, d := range devices {
		got, err := s.Device(t.Context(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, d.ID); got.TelemetryCount != n {
			t.Errorf("device %d: TelemetryCount %d, %d rows", d.ID, got.TelemetryCount, n)
		}
		total += got.TelemetryCount
	}
	if total != workers*batches*size {
		t.Errorf("%d readings counted, want %d", total, workers*batches*size)
	}
	var hourly int64
	if err := s.pool.QueryRow(t.Context(), `SELECT coalesce(sum(n), 0)::bigint FROM telemetry_hourly`).Scan(&hourly); err != nil || hourly != total {
		t.Errorf("hourly counts sum to %d (%v), want %d", hourly, err, total)
	}
}

// TestReadingJSON documents what JSONB does to payloads: the same object
// comes back, though not byte for byte; what it refuses (\u0000, a lone
// surrogate escape, a number beyond numeric's range), which validation
// keeps away, the store reports as EINVALID, not as a fault.
func TestReadingJSON(t *testing.T) {
	s := newTestStore(t)
	d := addDevice(t, s, "a")
	now := iotflow.Truncate(time.Now())
	r := reading(d.ID, now)
	r.Payload = json.RawMessage(`{"b":1,  "a":{"x":[1,2]},"s":"é%_"}`)
	r.Metadata = nil
	if err := s.InsertReadings(t.Context(), []*iotflow.Reading{r}); err != nil {
		t.Fatal(err)
	}
	rs, err := s.ListReadings(t.Context(), iotflow.ReadingFilter{DeviceID: d.ID, Limit: 10})
	if err != nil || len(rs) != 1 {
		t.Fatalf("ListReadings = %v, %v", rs, err)
	}
	var got, want any
	json.Unmarshal(rs[0].Payload, &got)
	json.Unmarshal(r.Payload, &want)
	if fmt.Sprint(got) != fmt.Sprint(want) || string(rs[0].Metadata) != "{}" {
		t.Errorf("payload %s metadata %s, want %s and {}", rs[0].Payload, rs[0].Metadata, r.Payload)
	}

	for _, payload := range []string{`{"s":"\u0000"}`, `{"s":"\ud800"}`, `{"\udc00":1}`, `{"n":1e1000000}`} {
		bad := reading(d.ID, now)
		bad.Payload = json.RawMessage(payload)
		if err := s.InsertReadings(t.Context(), []*iotflow.Reading{bad, reading(d.ID, now)}); iotflow.ErrorCode(err) != iotflow.EINVALID {
			t.Errorf("InsertReadings with %s: %v, want EINVALID", payload, err)
		}
	}
	if n := countRows(t, s, d.ID); n != 1 {
		t.Errorf("%d rows after the refused batches, want the first reading only", n)
	}
}

func TestSearchIsLiteralAndUnicode(t *testing.T) {
	s := newTestStore(t)
	for _, name := range []string{"ÄPFEL-1", "100%_sure", "1000 sure", "plain"} {
		addDevice(t, s, name)
	}
	for search, want := range map[string]int64{"äpf": 1, "%_": 1, "0%": 1, "_": 1, "SURE": 2, "x": 0} {
		_, n, err := s.ListDevices(t.Context(), iotflow.DeviceFilter{Search: search, Limit: 10})
		if err != nil || n != want {
			t.Errorf("ListDevices(Search %q) matched %d, %v; want %d", search, n, err, want)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	s := newTestStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Device(ctx, 1); iotflow.ErrorCode(err) == iotflow.EUNAVAILABLE || err == nil {
		t.Errorf("Device with a cancelled context: %v", err)
	}
	if _, err := s.Migrate(ctx); err == nil {
		t.Error("Migrate with a cancelled context succeeded")
	}
}

func BenchmarkInsertReadings(b *testing.B) {
	s := newTestStore(b)
	devices := []*iotflow.Device{addDevice(b, s, "a"), addDevice(b, s, "b"), addDevice(b, s, "c")}
	now := iotflow.Truncate(time.Now())
	const size = 1000
	for b.Loop() {
		rs := make([]*iotflow.Reading, size)
		for i := range rs {
			rs[i] = reading(devices[i%len(devices)].ID, now.Add(time.Duration(i)*time.Microsecond))
		}
		if err := s.InsertReadings(b.Context(), rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/reading")
}

// BenchmarkInsertSmallBatches stores batches of the size group commit
// forms under the benchmark's load (14 readings over 14 of 100 devices,
// each with a message id) on one connection, and reports, when
// PostgreSQL runs on this machine, the CPU its backend spent per batch:
// the figure to compare a change to the batch statement by. A shared
// machine's speed drifts by a fifth within minutes, so alternate the
// versions compared and run each several times (-count).
func BenchmarkInsertSmallBatches(b *testing.B) {
	benchmarkBatches(b, func(next func() *iotflow.Reading) []*iotflow.Reading {
		rs := make([]*iotflow.Reading, 14)
		for i := range rs {
			rs[i] = next()
		}
		return rs
	})
}

// BenchmarkBatchCost splits a batch's cost into what every transaction
// pays and what each reading adds: batches of 1, 14 and 56 readings, and
// for reference a bare round trip (SELECT 1, no commit to flush) and the
// durable floor's batch of 14 (iotflow-bench --floor: a table with only a
// primary key, one INSERT ... SELECT FROM unnest). The backend CPU of
// size=56 minus size=14, over 42, is the cost of a reading; size=1 less one
// reading is the cost of a transaction; size=14 against floor is what the
// schema (indexes, message ids, device check, counts) costs a batch.
func BenchmarkBatchCost(b *testing.B) {
	for _, size := range []int{1, 14, 56} {
		b.Run(fmt.Sprint("size=", size), func(b *testing.B) {
			benchmarkBatches(b, func(next func() *iotflow.Reading) []*iotflow.Reading {
				rs := make([]*iotflow.Reading, size)
				for i := range rs {
					rs[i] = next()
				}
				return rs
			})
		})
	}
	b.Run("select1", func(b *testing.B) {
		s, pid := oneBackend(b)
		loopOnBackend(b, pid, func() {
			if _, err := s.pool.Exec(b.Context(), `SELECT 1`); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("floor/size=14", func(b *testing.B) {
		s, pid := oneBackend(b)
		if _, err := s.pool.Exec(b.Context(), `CREATE TABLE floor (id BIGSERIAL PRIMARY KEY, device_key TEXT NOT NULL,
			payload JSONB NOT NULL, received_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			b.Fatal(err)
		}
		keys, payloads := make([]string, 14), make([]string, 14)
		n := 0
		loopOnBackend(b, pid, func() {
			for i := range keys {
				n++
				keys[i] = fmt.Sprint("key-", n%100)
				payloads[i] = fmt.Sprintf(`{"temperature":21.5,"humidity":%d,"battery":97}`, n%60)
			}
			rows, _ := s.pool.Query(b.Context(), `INSERT INTO floor (device_key, payload)
				SELECT k, p::jsonb FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(k, p, o) ORDER BY o RETURNING id`, keys, payloads)
			if _, err := pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// oneBackend opens a test store of one connection and returns the pid of
// its backend, whose CPU loopOnBackend measures.
func oneBackend(b *testing.B) (*Store, int) {
	cfg := testConfig(b)
	cfg.MaxConns = 1
	s := openTest(b, cfg)
	var pid int
	if err := s.pool.QueryRow(b.Context(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	return s, pid
}

// loopOnBackend runs batch b.N times and reports the CPU the backend pid
// spent per batch, when PostgreSQL runs on this machine.
func loopOnBackend(b *testing.B, pid int, batch func()) {
	cpu0, readable := procstat.CPU(pid)
	for b.Loop() {
		batch()
	}
	if cpu1, ok := procstat.CPU(pid); readable && ok {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "backend-µs/batch")
	}
}

// BenchmarkInsertRepeatingBatches is a retry storm: every batch of 14
// repeats the message ids of 7 readings stored by the batch before.
func BenchmarkInsertRepeatingBatches(b *testing.B) {
	var previous []*iotflow.Reading
	benchmarkBatches(b, func(next func() *iotflow.Reading) []*iotflow.Reading {
		rs := make([]*iotflow.Reading, 0, 14)
		for _, p := range previous[min(len(previous), 7):] {
			again := *p
			again.ID, again.Duplicate = 0, false
			rs = append(rs, &again)
		}
		for len(rs) < cap(rs) {
			rs = append(rs, next())
		}
		previous = rs
		return rs
	})
}

// benchmarkBatches stores the batches that batch makes, from readings that
// next makes (each with a new message id, over 100 devices), on one
// connection, and reports the CPU its backend spent per batch when
// PostgreSQL runs on this machine. The table starts with 20,000 readings
// and statistics, as a running service's has: against a small table, or
// one never analysed, the duplicate lookup plans a scan of the whole
// table, and the prepared statement keeps that plan as the table grows
// until autovacuum next analyses it.
func benchmarkBatches(b *testing.B, batch func(next func() *iotflow.Reading) []*iotflow.Reading) {
	s, pid := oneBackend(b)
	if _, err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	devices := make([]int64, 100)
	for i := range devices {
		devices[i] = addDevice(b, s, fmt.Sprint("d", i)).ID
	}
	n := 0
	next := func() *iotflow.Reading {
		n++
		now := iotflow.Truncate(time.Now())
		return &iotflow.Reading{DeviceID: devices[(n*7)%len(devices)], Timestamp: now, ReceivedAt: now,
			DataType: "sensor", Payload: json.RawMessage(`{"temperature":21.5,"humidity":40,"battery":97}`),
			Metadata: json.RawMessage(`{"fw":"1.2.3"}`), MessageID: fmt.Sprint("m-", n)}
	}
	for range 20 {
		seed := make([]*iotflow.Reading, 1000)
		for i := range seed {
			seed[i] = next()
		}
		if err := s.InsertReadings(b.Context(), seed); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(b.Context(), `ANALYZE telemetry_data`); err != nil {
		b.Fatal(err)
	}
	loopOnBackend(b, pid, func() {
		if err := s.InsertReadings(b.Context(), batch(next)); err != nil {
			b.Fatal(err)
		}
	})
}

// TestNoReadingOutlivesItsDevice: readings have no foreign key (migration
// 0006), so DeleteDevice must take every reading of the device with it,
// also when batches are committing at that moment.
func TestNoReadingOutlivesItsDevice(t *testing.T) {
	s := newTestStore(t)
	for round := range 5 {
		d := addDevice(t, s, fmt.Sprint("doomed-", round))
		var wg sync.WaitGroup
		started := make(chan struct{})
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					if w == 0 && i == 2 {
						close(started)
					}
					now := iotflow.Truncate(time.Now())
					err := s.InsertReadings(t.Context(), []*iotflow.Reading{reading(d.ID, now), reading(d.ID, now)})
					if iotflow.ErrorCode(err) == iotflow.ENOTFOUND {
						return
					} else if err != nil {
						t.Errorf("InsertReadings: %v", err)
						return
					}
				}
			})
		}
		<-started
		if _, err := s.DeleteDevice(t.Context(), d.ID); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if n := countRows(t, s, d.ID); n != 0 {
			t.Fatalf("round %d: %d readings outlived their deleted device", round, n)
		}
	}
	var hourly int64
	if err := s.pool.QueryRow(t.Context(), `SELECT coalesce(sum(n), 0)::bigint FROM telemetry_hourly`).Scan(&hourly); err != nil {
		t.Fatal(err)
	}
	if hourly != 0 {
		t.Fatalf("hourly counts sum to %d after every device was deleted; want 0", hourly)
	}
}

// lookupCounter counts the queries of resolveDuplicates' lookup.
type lookupCounter struct{ n atomic.Int64 }

func (c *lookupCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "AS m(device_id, message_id)") {
		c.n.Add(1)
	}
	return ctx
}

func (c *lookupCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestRepeatsResolvedByTheBatchStatement: the batch statement itself
// answers a repeat of a reading committed before it began, and a
// repeat of an earlier reading of the batch is answered from the batch;
// only a repeat of a reading that another transaction committed while the
// statement waited for it costs a second query.
func TestRepeatsResolvedByTheBatchStatement(t *testing.T) {
	cfg := testConfig(t)
	lookups := &lookupCounter{}
	cfg.ConnConfig.Tracer = lookups
	s := openTest(t, cfg)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// Another device uses the same message ids, and comes first in the
	// message-id index: they are its own.
	e := addDevice(t, s, "bystander")
	d := addDevice(t, s, "repeater")
	now := iotflow.Truncate(time.Now())
	withID := func(device int64, ts time.Time, id string) *iotflow.Reading {
		r := reading(device, ts)
		r.MessageID = id
		return r
	}
	original, others := withID(d.ID, now, "m-1"), withID(e.ID, now.Add(-time.Hour), "m-1")
	if err := s.InsertReadings(ctx, []*iotflow.Reading{others, original}); err != nil {
		t.Fatal(err)
	}
	retry := withID(d.ID, now.Add(time.Second), "m-1")
	first := withID(d.ID, now.Add(2*time.Second), "m-2")
	again := withID(d.ID, now.Add(3*time.Second), "m-2")
	othersFirst := withID(e.ID, now.Add(4*time.Second), "m-2")
	plain := reading(d.ID, now) // without a message id: never a repeat
	if err := s.InsertReadings(ctx, []*iotflow.Reading{retry, first, plain, again, othersFirst}); err != nil {
		t.Fatal(err)
	}
	if !retry.Duplicate || retry.ID != original.ID || !retry.Timestamp.Equal(original.Timestamp) {
		t.Errorf("retry %+v, want the original %d at %v", retry, original.ID, original.Timestamp)
	}
	if first.Duplicate || !again.Duplicate || again.ID != first.ID || !again.Timestamp.Equal(first.Timestamp) {
		t.Errorf("repeat within the batch: %+v of %+v", again, first)
	}
	for _, r := range []*iotflow.Reading{othersFirst, plain} {
		if r.Duplicate || r.ID == 0 || r.ID == first.ID {
			t.Errorf("%+v taken for a repeat", r)
		}
	}
	if n := lookups.n.Load(); n != 0 {
		t.Errorf("%d lookups after the batch statement, want 0", n)
	}

	// Another transaction holds m-3 uncommitted; the batch statement
	// starts, waits for it on the message-id index, and skips the row once
	// it commits, which its snapshot does not see.
	other, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	var otherPID int
	var otherID int64
	if err := other.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&otherPID); err != nil {
		t.Fatal(err)
	}
	err = other.QueryRow(ctx, `INSERT INTO telemetry_data (device_id, "timestamp", received_at, data_type, payload, metadata, message_id)
		VALUES ($1, $2, $2, 'sensor', '{}', '{}', 'm-3') RETURNING id`, d.ID, now).Scan(&otherID)
	if err != nil {
		t.Fatal(err)
	}
	late := withID(d.ID, now.Add(5*time.Second), "m-3")
	done := make(chan error, 1)
	go func() { done <- s.InsertReadings(ctx, []*iotflow.Reading{late}) }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting int
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, otherPID).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch statement never waited for the other transaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !late.Duplicate || late.ID != otherID || !late.Timestamp.Equal(now) {
		t.Errorf("late repeat %+v, want %d at %v", late, otherID, now)
	}
	if n := lookups.n.Load(); n != 1 {
		t.Errorf("%d lookups, want 1 for the reading committed meanwhile", n)
	}
}

// TestValidatedValuesAreStorable: whatever reading validation accepts,
// PostgreSQL stores, and what PostgreSQL refuses, validation refuses
// first; the edges of both checked side by side.
func TestValidatedValuesAreStorable(t *testing.T) {
	s := newTestStore(t)
	d := addDevice(t, s, "edges")
	now := iotflow.Truncate(time.Now())
	values := []string{
		`1e308`, `-1.7976931348623157e308`, `1e309`, `4.9e-324`, `1e-999`, `1e-1000`, `0e999`, `0e1000`, `1e999`,
		`1` + strings.Repeat("0", 63), `1` + strings.Repeat("0", 64), `0.` + strings.Repeat("0", 61) + `1`,
		`12345678901234567890.123456789e-300`, `-0`, `0.0`, `1E+308`, `1e00000000000000000001`,
		`"\ud800"`, `"\udbff\udfff"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"\u0000"`, `"\\u0000"`, `"\uffff"`,
		`"\ufeff"`, `"é\u00e9\u20ac\ud83d\ude00"`, `"\/\b\f\n\r\t\""`,
	}
	for _, v := range values {
		payload := json.RawMessage(`{"v":` + v + `}`)
		if !json.Valid(payload) {
			t.Fatalf("fixture %s is not JSON", payload)
		}
		_, _, verr := iotflow.ValidateReading(payload, nil, "")
		r := reading(d.ID, now)
		r.Payload = payload
		serr := s.InsertReadings(t.Context(), []*iotflow.Reading{r})
		switch {
		case serr == nil:
		case iotflow.ErrorCode(serr) != iotflow.EINVALID:
			t.Errorf("%s: the store fails with %v, want EINVALID", v, serr)
		case verr == nil:
			t.Errorf("%s: validation accepts it, the store refuses it: %v", v, serr)
		}
	}
}
