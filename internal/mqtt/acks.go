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
// state) is applied only after everything before it, in order.

// pending is a QoS 1 publish awaiting its answer.
type pending struct {
	pk   packets.Packet
	run  func() error  // applied in order, when set
	done chan struct{} // else closed once err is set by the submission under way
	err  error
}

// answers is the queue of a connection's pending publishes.
type answers struct {
	mu      sync.Mutex
	room    sync.Cond // signalled when the queue shrinks
	queue   []*pending
	running bool // an answerer drains the queue
}

// enqueue adds p, waiting while max publishes are pending (the receive
// maximum the broker announces), and makes sure an answerer runs.
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
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		go h.answer(s)
	}
}

// answer answers the queued publishes in order until the queue is empty.
// It runs only while there is something to answer, so that an idle
// connection costs no goroutine of its own.
func (h *hook) answer(s *session) {
	a := &s.answers
	for {
		a.mu.Lock()
		if len(a.queue) == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		p := a.queue[0]
		a.mu.Unlock()

		if p.run != nil {
			p.err = p.run()
		} else {
			<-p.done
		}
		h.acknowledge(s.cl, p)

		a.mu.Lock()
		a.queue = a.queue[1:]
		a.room.Broadcast()
		a.mu.Unlock()
	}
}

// acknowledge writes the PUBACK of p, or its refusal.
func (h *hook) acknowledge(cl *mochi.Client, p *pending) {
	if p.err != nil {
		h.refusePublish(cl, p.pk, p.err)
		return
	}
	_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: p.pk.PacketID})
}
