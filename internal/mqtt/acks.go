package mqtt

import (
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A connection's QoS 1 publishes are answered in the order they came, each
// once what it asks is done: a reading's PUBACK once it is committed. The
// readings of one connection are submitted as they arrive, without
// waiting for the commits of those before them, so that a device that
// keeps several publishes in flight shares commits with itself as with
// other devices; anything else a device publishes (an answer, a reported
// state) is applied only after everything before it has been answered.

// pending is a QoS 1 publish awaiting its answer.
type pending struct {
	pk      packets.Packet
	work    func() error // what the publish asks
	ordered bool         // work runs only once all before it are answered
	started bool
	ready   bool // work is done, with err
	err     error
}

// answers is the queue of a connection's pending publishes.
type answers struct {
	mu       sync.Mutex
	room     sync.Cond // signalled when the queue shrinks
	queue    []*pending
	draining bool // a goroutine is answering the head of the queue
}

// enqueue adds p, waiting while max publishes are pending (the receive
// maximum the broker announces), and starts it: a reading is submitted on
// a goroutine of its own, which answers what is ready once it is done;
// anything else waits for its turn.
func (h *hook) enqueue(s *session, p *pending) {
	a := &s.answers
	a.mu.Lock()
	if a.room.L == nil {
		a.room.L = &a.mu
	}
	for len(a.queue) >= int(h.o.MaxInflight) {
		a.room.Wait()
	}
	a.queue = append(a.queue, p)
	a.mu.Unlock()
	if p.ordered {
		h.settle(s, nil, nil)
		return
	}
	go func() { h.settle(s, p, p.work()) }()
}

// settle records the outcome of p (when not nil), then answers the head of
// the queue for as long as it is ready, running an ordered publish once it
// is at the head. One goroutine answers at a time, so the answers keep the
// order of the publishes; whichever finishes its work while none answers
// becomes the one. No goroutine waits for a commit it does not own.
func (h *hook) settle(s *session, p *pending, err error) {
	a := &s.answers
	a.mu.Lock()
	if p != nil {
		p.err, p.ready = err, true
	}
	if a.draining {
		a.mu.Unlock()
		return
	}
	a.draining = true
	for len(a.queue) > 0 {
		head := a.queue[0]
		if !head.ready {
			if !head.ordered || head.started {
				break // its reading commits; its goroutine answers then
			}
			head.started = true
			a.mu.Unlock()
			err := head.work()
			a.mu.Lock()
			head.err, head.ready = err, true
		}
		a.queue = a.queue[1:]
		a.room.Broadcast()
		a.mu.Unlock()
		h.acknowledge(s.cl, head)
		a.mu.Lock()
	}
	a.draining = false
	a.mu.Unlock()
}

// acknowledge writes the PUBACK of p, or its refusal.
func (h *hook) acknowledge(cl *mochi.Client, p *pending) {
	if p.err != nil {
		h.refusePublish(cl, p.pk, p.err)
		return
	}
	_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: p.pk.PacketID})
}
