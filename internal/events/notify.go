// Package events carries word that something changed: wake-ups within a
// node, and across the nodes that share one database, for whoever waits
// on a device's commands, a command's end or a shadow's change.
package events

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Notifier wakes those waiting on a topic, such as a device's commands,
// once what the topic names has changed and is committed. A wake-up
// carries no data: whoever wakes reads what changed from the store, so a
// wake-up lost or doubled costs a late or an extra look, never a wrong
// answer.
type Notifier interface {
	// Notify wakes the topic's waiters on every node.
	Notify(ctx context.Context, topic string)
	// Observe calls fn with every topic notified on this node, by it or
	// by another; fn must not block.
	Observe(fn func(topic string))
	// Subscribe returns a channel that receives a value after each wake-up
	// of the topic (coalesced: one value stands for any number), and the
	// function that ends the subscription.
	Subscribe(topic string) (<-chan struct{}, func())
}

// Local wakes waiters within this process.
type Local struct {
	mu        sync.Mutex
	subs      map[string]map[chan struct{}]struct{}
	observers []func(topic string)
}

// NewLocal returns a notifier for one node.
func NewLocal() *Local { return &Local{subs: map[string]map[chan struct{}]struct{}{}} }

// Notify wakes the topic's waiters in this process and tells the
// observers.
func (l *Local) Notify(_ context.Context, topic string) {
	l.mu.Lock()
	for ch := range l.subs[topic] {
		wake(ch)
	}
	observers := l.observers
	l.mu.Unlock()
	for _, fn := range observers {
		fn(topic)
	}
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a wake-up is waiting to be taken already
	}
}

// WakeAll wakes every waiter of every topic, for when wake-ups may have
// been lost: each looks at the store again.
func (l *Local) WakeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, subs := range l.subs {
		for ch := range subs {
			wake(ch)
		}
	}
}

// Observe calls fn with every topic notified in this process, from this
// node or another, after its waiters are woken. fn must not block.
func (l *Local) Observe(fn func(topic string)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observers = append(l.observers, fn)
}

// Subscribe waits on the topic in this process.
func (l *Local) Subscribe(topic string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	if l.subs[topic] == nil {
		l.subs[topic] = map[chan struct{}]struct{}{}
	}
	l.subs[topic][ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs[topic], ch)
		if len(l.subs[topic]) == 0 {
			delete(l.subs, topic)
		}
		l.mu.Unlock()
	}
}

// Waiting is how many subscriptions are open.
func (l *Local) Waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.subs {
		n += len(s)
	}
	return n
}

// Carrier takes wake-ups to the other nodes: Redis's publish and
// subscribe, or PostgreSQL's NOTIFY and LISTEN.
type Carrier interface {
	// Publish sends topic to every node's Listen.
	Publish(ctx context.Context, topic string) error
	// Listen calls ready once it listens, then deliver with each topic
	// published, by any node, until ctx ends; it returns an error when
	// the link fails.
	Listen(ctx context.Context, ready func(), deliver func(topic string)) error
}

// Shared wakes the waiters of this node at once and of the others
// through a Carrier. When the carrier fails, Shared logs it once and
// listens again; once it listens again it wakes every waiter of this node,
// since a wake-up may have been lost meanwhile.
type Shared struct {
	*Local
	carrier Carrier
	log     *slog.Logger
}

// NewShared returns a notifier across nodes; Run must run for the wake-ups
// of other nodes to arrive.
func NewShared(c Carrier, log *slog.Logger) *Shared {
	return &Shared{Local: NewLocal(), carrier: c, log: log}
}

// Notify wakes this node's waiters and publishes the topic.
func (s *Shared) Notify(ctx context.Context, topic string) {
	s.Local.Notify(ctx, topic)
	if err := s.carrier.Publish(ctx, topic); err != nil && ctx.Err() == nil {
		s.log.Warn("wake-up not sent to the other nodes; they will see the change at their next look", "topic", topic, "err", err)
	}
}

// Run delivers the other nodes' wake-ups until ctx ends.
func (s *Shared) Run(ctx context.Context) {
	failing := false
	for ctx.Err() == nil {
		start := time.Now()
		err := s.carrier.Listen(ctx, s.Local.WakeAll, func(topic string) { s.Local.Notify(ctx, topic) })
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			failing = false // it had worked again: a new failure is news
		}
		if !failing {
			s.log.Warn("listening for other nodes' wake-ups failed; retrying", "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
