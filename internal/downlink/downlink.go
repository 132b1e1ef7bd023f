// Package downlink carries what goes to devices: commands, stored with
// their delivery states, and the shadow, the desired and reported
// configuration of each device. Long polls wait on events, not on the
// store: a waiter subscribes, looks at the store, and looks again only
// when woken.
package downlink

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/iotflow/iotflow/internal/events"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// Limits of the downlink API.
const (
	MaxWait = 60 * time.Second // of a long poll
	MaxTake = 100              // commands handed to a device at once
)

// Options configure a Service.
type Options struct {
	// Notifier carries wake-ups, across nodes when it is shared; nil wakes
	// only the waiters of this process.
	Notifier events.Notifier
	// Changed is called with the id of a device whose pending commands or
	// desired configuration changed, here or on another node: the device
	// cache forgets it, so the counts shown to it are fresh.
	Changed func(deviceID int64)
	// Now returns the current time; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service implements the downlink's use cases on a Store.
type Service struct {
	store    iotflow.Store
	notifier events.Notifier
	now      func() time.Time
	log      *slog.Logger
	waiting  atomic.Int64
	closing  chan struct{}
	closed   atomic.Bool
}

// New returns a Service on store.
func New(store iotflow.Store, o Options) *Service {
	s := &Service{store: store, notifier: o.Notifier, now: o.Now, log: o.Logger, closing: make(chan struct{})}
	if s.notifier == nil {
		s.notifier = events.NewLocal()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if o.Changed != nil {
		s.notifier.Observe(func(topic string) {
			if id, ok := deviceOf(topic); ok {
				o.Changed(id)
			}
		})
	}
	return s
}

// Topics of wake-ups. A device's: its commands to take changed ("d:"),
// or its shadow did ("s:"); a command's ("c:"): its state changed.
func deviceTopic(id int64) string  { return "d:" + strconv.FormatInt(id, 10) }
func shadowTopic(id int64) string  { return "s:" + strconv.FormatInt(id, 10) }
func commandTopic(id int64) string { return "c:" + strconv.FormatInt(id, 10) }

// deviceOf returns the device of a device's or a shadow's topic.
func deviceOf(topic string) (int64, bool) {
	rest, ok := strings.CutPrefix(topic, "d:")
	if !ok {
		rest, ok = strings.CutPrefix(topic, "s:")
	}
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil
}

// Waiting is how many long polls wait now.
func (s *Service) Waiting() int64 { return s.waiting.Load() }

// Close lets every long poll go with what it has, at once: for a
// shutdown, which must not wait a minute for them.
func (s *Service) Close() {
	if s.closed.CompareAndSwap(false, true) {
		close(s.closing)
	}
}

// notify wakes a topic's waiters, on every node, after a committed change.
// The change is made already: a request cancelled now must still tell.
func (s *Service) notify(ctx context.Context, topics ...string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, t := range topics {
		s.notifier.Notify(ctx, t)
	}
}

// wait holds a long poll until check reports done, the topic is woken and
// check then reports done, wait passes, ctx ends or the service closes.
// It subscribes before the first check, so that no change committed after
// that check goes unseen.
func (s *Service) wait(ctx context.Context, topic string, wait time.Duration, check func() (bool, error)) error {
	woken, unsubscribe := s.notifier.Subscribe(topic)
	defer unsubscribe()
	if done, err := check(); done || err != nil || wait <= 0 {
		return err
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-woken:
			if done, err := check(); done || err != nil {
				return err
			}
		case <-timer.C:
			return nil
		case <-s.closing:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
