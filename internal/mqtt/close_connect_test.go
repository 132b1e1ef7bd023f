package mqtt_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// rvGatedStore answers key lookups as the store does, but holds each
// answer back until released: a CONNECT whose query completed just as the
// broker was closed.
type rvGatedStore struct {
	iotflow.Store
	mu      sync.Mutex
	gate    chan struct{}
	waiting chan struct{}
}

func (g *rvGatedStore) DeviceByKeyHash(ctx context.Context, hash string) (*iotflow.Device, *iotflow.APIKey, error) {
	d, k, err := g.Store.DeviceByKeyHash(ctx, hash)
	g.mu.Lock()
	gate, waiting := g.gate, g.waiting
	g.mu.Unlock()
	if gate != nil {
		select {
		case waiting <- struct{}{}:
		default:
		}
		<-gate
	}
	return d, k, err
}

// rawConnect opens a connection and sends an MQTT 5 CONNECT with the given
// credentials and keep-alive; the CONNACK is left to the caller.
func rawConnect(t *testing.T, addr, user, pass string, keepalive uint16) (net.Conn, *v5client) {
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
	return conn, &v5client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// A client whose CONNECT is being authenticated when Broker.Close runs is
// accepted once its key is found, after mochi has disconnected the
// clients it knew of; mochi's Close then waits for that connection to
// end, for ever with a keep-alive of 0 (1.5 keep-alives otherwise).
func TestCloseRefusesAConnectUnderWay(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		g := &rvGatedStore{Store: store}
		b := startBroker(t, g, nil)
		id, key := b.register("rv-close")
		g.mu.Lock()
		g.gate, g.waiting = make(chan struct{}), make(chan struct{}, 1)
		g.mu.Unlock()
		conn, c := rawConnect(t, b.addr, fmt.Sprint(id), key, 0)
		select {
		case <-g.waiting:
		case <-time.After(readWait):
			t.Fatal("the CONNECT never reached the key lookup")
		}
		closed := make(chan struct{})
		go func() { b.b.Close(); close(closed) }()
		time.Sleep(200 * time.Millisecond) // Close has disconnected the clients it knows of
		close(g.gate)                      // the key lookup completes
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Errorf("Broker.Close has not returned 5 s after a CONNECT completed during it")
			if ack, err := c.read(time.Second); err == nil {
				t.Logf("the client got %s", describe(ack))
			}
			conn.Close() // lets Close return
			<-closed
		}
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
