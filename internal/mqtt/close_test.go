package mqtt_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// rawConnect opens a connection and sends an MQTT 5 CONNECT with the given
// credentials and keep-alive; the CONNACK is left to the caller.
func rawConnect(t *testing.T, addr, user, pass string, keepalive uint16) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, readWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: fmt.Sprintf("rv-%d", time.Now().UnixNano()),
			Clean: true, Keepalive: keepalive, UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pass)},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestCloseDoesNotWaitForAStalledClient: a client that stops reading
// (keep-alive 0: mochi sets no deadline) must not hold up Broker.Close,
// though mochi says goodbye to each client under its write lock, held by
// a write that never ends.
func TestCloseDoesNotWaitForAStalledClient(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		id, key := b.register("rv-stall")
		conn := rawConnect(t, b.addr, fmt.Sprint(id), key, 0)
		c := &v5client{t: t, conn: conn, r: bufioReader(conn)}
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

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
