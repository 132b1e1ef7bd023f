// Package ingest is IoTFlow's write pipeline: it gathers the readings of
// concurrent requests into one transaction per batch (group commit) and
// answers each request only once its batch has committed. The queue is
// bounded; when it is full, Submit refuses at once instead of growing.
package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// Writer stores readings in one transaction; iotflow.Store is one.
type Writer interface {
	InsertReadings(ctx context.Context, rs []*iotflow.Reading) error
}

// Options configure a Pipeline. The settings come from the configuration
// (config.Settings holds their defaults) and are taken as given.
type Options struct {
	// MaxBatch is the most readings one transaction takes; 1 turns group
	// commit off: one transaction per request.
	MaxBatch int
	// QueueSize is the most requests waiting for a writer.
	QueueSize int
	// Writers is how many transactions may run at once, at least 1. Each
	// writer owns the devices whose id modulo Writers is its number, so
	// concurrent transactions never write the same device's rows.
	Writers int
	// Linger is how long a writer waits for more requests once it has
	// one; 0 (the default) adds no latency: a batch is whatever queued up
	// while the previous transaction committed.
	Linger time.Duration
	// CommitTimeout bounds one transaction.
	CommitTimeout time.Duration
	Logger        *slog.Logger
	// Observe, when set, is told of every committed or failed transaction.
	Observe func(readings int, took time.Duration, err error)
	// Bind, when set, wraps each transaction's context, such as to end it
	// when the database is found unreachable.
	Bind func(context.Context) (context.Context, context.CancelFunc)
}

// Pipeline batches readings into transactions.
type Pipeline struct {
	w      Writer
	opts   Options
	log    *slog.Logger
	queues []chan *job // one per writer

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	wg     sync.WaitGroup

	depth atomic.Int64

	// stop ends the transactions under way when Close runs out of time.
	stop       context.Context
	cancelStop context.CancelFunc
}

type job struct {
	rs   []*iotflow.Reading
	done chan error
	// state settles the race between a request giving up and its writer
	// taking it: whichever moves it out of queued first wins. A request
	// that gave up is answered with an error, so its readings are never
	// written; a request whose readings are being written waits for the
	// outcome.
	state atomic.Int32
}

const (
	queued int32 = iota
	writing
	abandoned
)

// ErrQueueFull is returned when the queue has no room.
var ErrQueueFull = iotflow.Errorf(iotflow.EUNAVAILABLE, "Service busy", "Too many readings are waiting to be stored; retry shortly")

// ErrClosed is returned by Submit after Close.
var ErrClosed = iotflow.Errorf(iotflow.EUNAVAILABLE, "Shutting down", "The service is shutting down; retry shortly")

// New starts a pipeline writing to w.
func New(w Writer, opts Options) *Pipeline {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{w: w, opts: opts, log: log, queues: make([]chan *job, opts.Writers)}
	p.stop, p.cancelStop = context.WithCancel(context.Background())
	for i := range p.queues {
		p.queues[i] = make(chan *job, opts.QueueSize)
		p.wg.Add(1)
		go p.write(p.queues[i])
	}
	return p
}

// Depth returns the number of requests waiting for a writer.
func (p *Pipeline) Depth() int64 { return p.depth.Load() }

// Submit stores rs and returns once they are committed, setting their IDs
// (and Duplicate for repeated message ids). It returns ErrQueueFull at once
// when the queue is full, and an EUNAVAILABLE error when the transaction
// failed for reasons of the database. When ctx ends first, Submit returns
// its error; the readings may still be stored, but were not acknowledged.
func (p *Pipeline) Submit(ctx context.Context, rs []*iotflow.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &job{rs: rs, done: make(chan error, 1)}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return ErrClosed
	}
	// The bound is on all queues together; each channel can hold it all,
	// so the send below never blocks.
	if p.depth.Add(1) > int64(p.opts.QueueSize) {
		p.depth.Add(-1)
		p.mu.RUnlock()
		return ErrQueueFull
	}
	p.queueOf(rs[0].DeviceID) <- j
	p.mu.RUnlock()
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		if j.state.CompareAndSwap(queued, abandoned) {
			return ctx.Err()
		}
		// Its transaction is under way (bounded by CommitTimeout): answer
		// with its outcome, so that an error never hides a stored reading.
		return <-j.done
	}
}

// Close stops accepting readings and waits until every queued request is
// committed or failed. When ctx ends first, the transactions under way are
// cancelled and what is still queued fails; Close then returns ctx's error
// once the writers have stopped, which they do at once.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, q := range p.queues {
			close(q)
		}
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		p.cancelStop()
		<-done
		return ctx.Err()
	}
}

// queueOf is the queue of the writer that owns a device. A request's
// readings are all of one device.
func (p *Pipeline) queueOf(device int64) chan *job {
	return p.queues[uint64(device)%uint64(len(p.queues))]
}

// write is one writer: it takes whatever is queued, up to MaxBatch
// readings, and commits it as one transaction.
func (p *Pipeline) write(queue chan *job) {
	defer p.wg.Done()
	for {
		first, ok := <-queue
		if !ok {
			return
		}
		p.depth.Add(-1)
		batch, n := []*job{first}, len(first.rs)
		var timer *time.Timer
		var linger <-chan time.Time
		if p.opts.Linger > 0 {
			timer = time.NewTimer(p.opts.Linger)
			linger = timer.C
		}
		for n < p.opts.MaxBatch {
			j := p.next(queue, linger)
			if j == nil {
				break
			}
			batch, n = append(batch, j), n+len(j.rs)
		}
		if timer != nil {
			timer.Stop()
		}
		p.commit(batch, n)
	}
}

// next returns a queued job: at once, or within the linger when one is
// set; nil when there is none or the queue is closed.
func (p *Pipeline) next(queue chan *job, linger <-chan time.Time) *job {
	var j *job
	select {
	case j = <-queue:
	default:
		if linger == nil {
			return nil
		}
		select {
		case j = <-queue:
		case <-linger:
			return nil
		}
	}
	if j != nil {
		p.depth.Add(-1)
	}
	return j
}

// commit stores a batch. When the database refuses it for a reason that
// lies in one request's readings (a deleted device, a value it cannot
// store), every request is tried on its own so that one bad request cannot
// fail the others, and a request whose readings' content is refused is
// split until the readings at fault are found (see isolate). Other
// failures fail the whole batch: nothing of it was committed.
func (p *Pipeline) commit(batch []*job, n int) {
	// A request that gave up while it waited (its client left, or the
	// database was found down) was answered with an error: storing its
	// readings now would store what was never acknowledged.
	live := batch[:0]
	for _, j := range batch {
		if !j.state.CompareAndSwap(queued, writing) {
			n -= len(j.rs)
			continue
		}
		live = append(live, j)
	}
	if batch = live; len(batch) == 0 {
		return
	}
	rs := batch[0].rs
	if len(batch) > 1 {
		rs = make([]*iotflow.Reading, 0, n)
		for _, j := range batch {
			rs = append(rs, j.rs...)
		}
	}
	err := p.insert(rs)
	switch {
	case err == nil || !definitive(err):
		for _, j := range batch {
			j.done <- err
		}
	case len(batch) == 1:
		batch[0].done <- p.isolate(batch[0].rs, err)
	default:
		for _, j := range batch {
			j.done <- p.isolate(j.rs, p.insert(j.rs))
		}
	}
}

// isolate finishes a request whose readings' transaction ended with err.
// When the store refused their content (EINVALID), which validation
// should have prevented, it halves them until it has found the readings
// at fault, stores the others, and returns an iotflow.ReadingErrors naming
// those; any other error is the request's.
func (p *Pipeline) isolate(rs []*iotflow.Reading, err error) error {
	if iotflow.ErrorCode(err) != iotflow.EINVALID {
		return err
	}
	refused := iotflow.ReadingErrors{}
	if err := p.split(rs, 0, err, refused); err != nil {
		return err
	}
	if len(refused) == 0 {
		return nil
	}
	return refused
}

// split records in refused the readings of rs (the offset-th on of the
// request's) at fault for err, storing the others. A failure of another
// kind ends it, and is the request's: the halves stored until then stay
// stored, like a transaction whose commit outcome was lost.
func (p *Pipeline) split(rs []*iotflow.Reading, offset int, err error, refused iotflow.ReadingErrors) error {
	switch {
	case err == nil:
		return nil
	case iotflow.ErrorCode(err) != iotflow.EINVALID:
		return err
	case len(rs) == 1:
		refused[offset] = err
		return nil
	}
	h := len(rs) / 2
	if err := p.split(rs[:h], offset, p.insert(rs[:h]), refused); err != nil {
		return err
	}
	return p.split(rs[h:], offset+h, p.insert(rs[h:]), refused)
}

func (p *Pipeline) insert(rs []*iotflow.Reading) error {
	ctx, cancel := context.WithTimeout(p.stop, p.opts.CommitTimeout)
	defer cancel()
	if p.opts.Bind != nil {
		var unbind context.CancelFunc
		ctx, unbind = p.opts.Bind(ctx)
		defer unbind()
	}
	start := time.Now()
	err := p.w.InsertReadings(ctx, rs)
	if p.opts.Observe != nil {
		p.opts.Observe(len(rs), time.Since(start), err)
	}
	if err == nil || definitive(err) {
		return err
	}
	p.log.Error("telemetry batch failed; its requests get 503", "readings", len(rs), "err", err)
	if errors.Is(err, context.DeadlineExceeded) {
		return iotflow.Errorf(iotflow.EUNAVAILABLE, "Service unavailable", "Storing the readings took too long; retry shortly")
	}
	return iotflow.Errorf(iotflow.EUNAVAILABLE, "Service unavailable", "The readings could not be stored; retry shortly")
}

// definitive reports an error that the transaction's content caused: it
// was rolled back and will fail the same way again.
func definitive(err error) bool {
	switch iotflow.ErrorCode(err) {
	case iotflow.ENOTFOUND, iotflow.EINVALID, iotflow.ECONFLICT:
		return true
	}
	return false
}
