package mqtt_test

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// TestCloseDoesNotWaitForAStalledClient: a client that stops reading
// (keep-alive 0: mochi sets no deadline) must not hold up Broker.Close,
// though mochi says goodbye to each client under its write lock, held by
// a write that never ends.
func TestCloseDoesNotWaitForAStalledClient(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		id, key := b.register("rv-stall")
		conn, c := rawConnect(t, b.addr, fmt.Sprint(id), key, 0)
		c.expect(packets.Connack, 0)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		// Flood PINGREQs and never read a PINGRESP, until the broker stops
		// reading (its reader is stuck writing PINGRESPs).
		ping := bytes.Repeat([]byte{0xC0, 0x00}, 32<<10)
		for {
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := conn.Write(ping); err != nil {
				break
			}
		}
		done := make(chan struct{})
		go func() { b.b.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("Broker.Close has not returned within 5 s of a client that stopped reading")
			conn.Close() // unblocks the broker's write
			<-done
		}
	})
}
