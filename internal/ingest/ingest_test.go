package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

// gateWriter wraps a real store: it can hold transactions until released
// and fail them on demand, which a real database cannot be made to do.
type gateWriter struct {
	Writer
	mu      sync.Mutex
	gate    chan struct{} // when not nil, InsertReadings waits for it to close
	entered chan struct{}
	fail    error
	sizes   []int
}

func (g *gateWriter) InsertReadings(ctx context.Context, rs []*iotflow.Reading) error {
	g.mu.Lock()
	gate, fail := g.gate, g.fail
	g.sizes = append(g.sizes, len(rs))
	g.mu.Unlock()
	if g.entered != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
	}
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return fail
	}
	return g.Writer.InsertReadings(ctx, rs)
}

func (g *gateWriter) transactions() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

type fixture struct {
	store  iotflow.Store
	device int64
}

func newFixture(t *testing.T) *fixture {
	s := testdb.SQLite(t)
	d := &iotflow.Device{Name: "d", DeviceType: "sensor", Status: iotflow.StatusActive,
		CreatedAt: iotflow.Truncate(time.Now()), UpdatedAt: iotflow.Truncate(time.Now())}
	k := &iotflow.APIKey{Prefix: "p", Hash: "h", Active: true, CreatedAt: d.CreatedAt}
	if err := s.CreateDevice(t.Context(), d, k); err != nil {
		t.Fatal(err)
	}
	return &fixture{store: s, device: d.ID}
}

func (f *fixture) reading(device int64) []*iotflow.Reading {
	now := iotflow.Truncate(time.Now())
	return []*iotflow.Reading{{DeviceID: device, Timestamp: now, ReceivedAt: now, DataType: "sensor",
		Payload: json.RawMessage(`{"v":1}`), Metadata: json.RawMessage(`{}`)}}
}

func (f *fixture) stored(t *testing.T) int64 {
	n, err := f.store.CountReadings(t.Context(), iotflow.ReadingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentRequestsShareTransactions(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := New(g, withDefaults(Options{MaxBatch: 1000}))
	defer p.Close(context.Background())

	// The first request's transaction is held; 50 more queue up behind it.
	var wg sync.WaitGroup
	errs := make(chan error, 51)
	submit := func() {
		defer wg.Done()
		rs := f.reading(f.device)
		err := p.Submit(context.Background(), rs)
		if err == nil && rs[0].ID == 0 {
			err = errors.New("acknowledged without an id")
		}
		errs <- err
	}
	wg.Add(1)
	go submit()
	<-g.entered
	for range 50 {
		wg.Add(1)
		go submit()
	}
	for p.Depth() < 50 {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if tx := g.transactions(); len(tx) != 2 || tx[0] != 1 || tx[1] != 50 {
		t.Fatalf("transactions %v, want [1 50]", tx)
	}
	if n := f.stored(t); n != 51 {
		t.Fatalf("stored %d, want 51", n)
	}
}

func TestMaxBatchSplitsTransactions(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := New(g, withDefaults(Options{MaxBatch: 1}))
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); p.Submit(context.Background(), f.reading(f.device)) }()
	}
	<-g.entered
	for p.Depth() < 4 {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	wg.Wait()
	if tx := g.transactions(); len(tx) != 5 {
		t.Fatalf("MaxBatch 1: transactions %v, want 5 of one", tx)
	}
	p.Close(context.Background())
}

func TestOneBadRequestDoesNotFailTheBatch(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := New(g, withDefaults(Options{}))
	defer p.Close(context.Background())
	results := make(chan error, 3)
	go func() { results <- p.Submit(context.Background(), f.reading(f.device)) }()
	<-g.entered
	go func() { results <- p.Submit(context.Background(), f.reading(f.device)) }()
	go func() {
		results <- p.Submit(context.Background(), f.reading(999999)) // no such device
	}()
	for p.Depth() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	var failed []error
	for range 3 {
		if err := <-results; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) != 1 || iotflow.ErrorCode(failed[0]) != iotflow.ENOTFOUND {
		t.Fatalf("failures %v, want one ENOTFOUND", failed)
	}
	if n := f.stored(t); n != 2 {
		t.Fatalf("stored %d, want the 2 good readings", n)
	}
}

func TestFailedTransactionFailsItsRequests(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store, fail: errors.New("connection reset")}
	p := New(g, withDefaults(Options{}))
	defer p.Close(context.Background())
	rs := f.reading(f.device)
	err := p.Submit(context.Background(), rs)
	if iotflow.ErrorCode(err) != iotflow.EUNAVAILABLE {
		t.Fatalf("err %v, want EUNAVAILABLE", err)
	}
	if rs[0].ID != 0 || f.stored(t) != 0 {
		t.Fatal("a failed reading got an id or was stored")
	}
	// The pipeline goes on once the database is back.
	g.mu.Lock()
	g.fail = nil
	g.mu.Unlock()
	if err := p.Submit(context.Background(), f.reading(f.device)); err != nil {
		t.Fatal(err)
	}
}

func TestFullQueueRefusesAtOnce(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := New(g, withDefaults(Options{QueueSize: 2}))
	results := make(chan error, 3)
	go func() { results <- p.Submit(context.Background(), f.reading(f.device)) }()
	<-g.entered
	for range 2 {
		go func() { results <- p.Submit(context.Background(), f.reading(f.device)) }()
	}
	for p.Depth() < 2 {
		time.Sleep(time.Millisecond)
	}
	if err := p.Submit(context.Background(), f.reading(f.device)); err != ErrQueueFull {
		t.Fatalf("err %v, want ErrQueueFull", err)
	}
	close(g.gate)
	for range 3 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	p.Close(context.Background())
	if n := f.stored(t); n != 3 {
		t.Fatalf("stored %d, want 3", n)
	}
}

func TestCloseDrainsTheQueue(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := New(g, withDefaults(Options{MaxBatch: 7}))
	var acked atomic.Int64
	var wg sync.WaitGroup
	submit := func() {
		defer wg.Done()
		if p.Submit(context.Background(), f.reading(f.device)) == nil {
			acked.Add(1)
		}
	}
	wg.Add(1)
	go submit()
	<-g.entered // the first transaction is held; the rest queue behind it
	for range 39 {
		wg.Add(1)
		go submit()
	}
	for p.Depth() < 39 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error)
	go func() { closed <- p.Close(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	close(g.gate)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if acked.Load() != 40 || f.stored(t) != 40 {
		t.Fatalf("acked %d stored %d, want 40 and 40", acked.Load(), f.stored(t))
	}
	if err := p.Submit(context.Background(), f.reading(f.device)); err != ErrClosed {
		t.Fatalf("Submit after Close: %v", err)
	}
}

func TestSubmitHonoursContext(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := New(g, withDefaults(Options{}))
	first := make(chan error, 1)
	go func() { first <- p.Submit(context.Background(), f.reading(f.device)) }()
	<-g.entered // the writer is held; the next request stays queued

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Submit(ctx, f.reading(f.device)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
	close(g.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	p.Close(context.Background())
	if n := f.stored(t); n != 1 {
		t.Fatalf("stored %d, want 1: the request that gave up while queued must not be written", n)
	}
}

// TestGivingUpDuringTheTransactionWaitsForIt: a request whose readings are
// being written when its context ends answers with the transaction's
// outcome, so that an error never hides a stored reading.
func TestGivingUpDuringTheTransactionWaitsForIt(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := New(g, withDefaults(Options{}))
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- p.Submit(ctx, f.reading(f.device)) }()
	<-g.entered
	cancel()
	select {
	case err := <-res:
		t.Fatalf("Submit returned %v while its transaction was still under way", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.gate)
	if err := <-res; err != nil {
		t.Fatalf("Submit: %v, want the committed transaction's nil", err)
	}
	p.Close(context.Background())
	if n := f.stored(t); n != 1 {
		t.Fatalf("stored %d, want 1", n)
	}
}

// TestCloseOutOfTimeCancelsTransactions: when Close's context ends, the
// transaction under way is cancelled and Close returns promptly.
func TestCloseOutOfTimeCancelsTransactions(t *testing.T) {
	f := newFixture(t)
	blocked := &ctxWriter{entered: make(chan struct{}, 1)}
	p := New(blocked, withDefaults(Options{CommitTimeout: time.Hour}))
	res := make(chan error, 1)
	go func() { res <- p.Submit(context.Background(), f.reading(f.device)) }()
	<-blocked.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v after its deadline", took)
	}
	if err := <-res; err == nil {
		t.Fatal("a cancelled transaction's request was acknowledged")
	}
}

// ctxWriter blocks every transaction until its context ends.
type ctxWriter struct{ entered chan struct{} }

func (w *ctxWriter) InsertReadings(ctx context.Context, rs []*iotflow.Reading) error {
	w.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func TestLingerGathersMore(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store}
	p := New(g, withDefaults(Options{Linger: 200 * time.Millisecond}))
	defer p.Close(context.Background())
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 20 * time.Millisecond)
			if err := p.Submit(context.Background(), f.reading(f.device)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if tx := g.transactions(); len(tx) != 1 || tx[0] != 3 {
		t.Fatalf("transactions %v, want one of 3", tx)
	}
}

// TestAbandonedRequestsAreNotWritten: a request that gave up while queued
// was answered with an error, so its readings must not be stored; the
// requests still waiting are.
func TestAbandonedRequestsAreNotWritten(t *testing.T) {
	f := newFixture(t)
	g := &gateWriter{Writer: f.store, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := New(g, withDefaults(Options{}))
	first := make(chan error, 1)
	go func() { first <- p.Submit(context.Background(), f.reading(f.device)) }()
	<-g.entered // the first transaction is held; the next two queue

	ctx, cancel := context.WithCancel(context.Background())
	abandoned := make(chan error, 1)
	go func() { abandoned <- p.Submit(ctx, f.reading(f.device)) }()
	kept := make(chan error, 1)
	go func() { kept <- p.Submit(context.Background(), f.reading(f.device)) }()
	for p.Depth() < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-abandoned; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned request: %v, want context.Canceled", err)
	}
	close(g.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-kept; err != nil {
		t.Fatal(err)
	}
	p.Close(context.Background())
	if n := f.stored(t); n != 2 {
		t.Fatalf("stored %d readings, want 2: the abandoned request's must not be written", n)
	}
}

// deviceGate holds the transactions of one device until released.
type deviceGate struct {
	Writer
	device  int64
	gate    chan struct{}
	entered chan struct{}
}

func (g *deviceGate) InsertReadings(ctx context.Context, rs []*iotflow.Reading) error {
	if rs[0].DeviceID == g.device {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.Writer.InsertReadings(ctx, rs)
}

// TestWritersOwnDevices: with two writers, a transaction held for one
// device does not hold up another device's readings, which another writer
// owns; a second request of the held device waits behind the first.
func TestWritersOwnDevices(t *testing.T) {
	f := newFixture(t)
	other := newDeviceIn(t, f.store, "other")
	if (f.device-other)%2 == 0 {
		other = newDeviceIn(t, f.store, "other2") // ids of different parity
	}
	g := &deviceGate{Writer: f.store, device: f.device, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := New(g, withDefaults(Options{Writers: 2}))
	held := make(chan error, 2)
	go func() { held <- p.Submit(context.Background(), f.reading(f.device)) }()
	<-g.entered
	go func() { held <- p.Submit(context.Background(), f.reading(f.device)) }()

	done := make(chan error, 1)
	go func() { done <- p.Submit(context.Background(), f.reading(other)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("another device's reading waited for the held transaction")
	}
	select {
	case <-held:
		t.Fatal("a held device's request finished before its transaction was released")
	case <-time.After(50 * time.Millisecond):
	}
	close(g.gate)
	for range 2 {
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	}
	p.Close(context.Background())
	if n := f.stored(t); n != 3 {
		t.Fatalf("stored %d, want 3", n)
	}
}

func newDeviceIn(t *testing.T, s iotflow.Store, name string) int64 {
	d := &iotflow.Device{Name: name, DeviceType: "sensor", Status: iotflow.StatusActive,
		CreatedAt: iotflow.Truncate(time.Now()), UpdatedAt: iotflow.Truncate(time.Now())}
	k := &iotflow.APIKey{Prefix: "p", Hash: "h-" + name, Active: true, CreatedAt: d.CreatedAt}
	if err := s.CreateDevice(t.Context(), d, k); err != nil {
		t.Fatal(err)
	}
	return d.ID
}
