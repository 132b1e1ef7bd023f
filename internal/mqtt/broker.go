// Package mqtt serves IoTFlow's devices over MQTT 3.1.1 and 5 from the same
// process as the HTTP API: the same keys, rate limits, write pipeline and
// downlink. The broker is github.com/mochi-mqtt/server/v2, kept behind this
// package; what devices may do is decided here, by a hook.
package mqtt

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iotflow/iotflow/internal/downlink"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/ratelimit"
)

// Limits are the rate limits, shared with the HTTP API (the same limiter
// and keys, so a device's quota is one whatever it speaks); nil enforces
// none.
type Limits struct {
	Limiter      ratelimit.Limiter
	Device       ratelimit.Limit // heartbeats, answers, reported state
	Telemetry    ratelimit.Limit // readings, single or in batches
	Backlog      ratelimit.Limit // batches beyond the telemetry limit
	AuthFailures ratelimit.Limit // failed CONNECTs per client address
}

// Options configure a Broker. Zero sizes take the defaults below.
type Options struct {
	Fleet *fleet.Service
	// Downlink delivers commands and the shadow; nil leaves them out.
	Downlink *downlink.Service
	Limits   *Limits
	Logger   *slog.Logger
	// MaxPacketSize bounds every packet a client sends (default 256 KiB);
	// MaxBodyBytes a reading's payload and MaxBatchBodyBytes a batch's, as
	// over HTTP.
	MaxPacketSize     uint32
	MaxBodyBytes      int
	MaxBatchBodyBytes int
	MaxBatch          int
	// MaxInflight bounds the QoS 1 messages awaiting a client's PUBACK,
	// MaxPendingWrites the packets queued to a client: past them a slow
	// client's messages are dropped (commands stay stored), never queued
	// without bound.
	MaxInflight      uint16
	MaxPendingWrites int32
	// MaxSessionExpiry bounds how long a disconnected client's session
	// (its subscriptions) is kept (default 1 h).
	MaxSessionExpiry time.Duration
	// MaxClients bounds the connections (default 100,000).
	MaxClients int64
	// RequestTimeout bounds the database work of one packet.
	RequestTimeout time.Duration
	// SeenEvery is how often a connected device is marked seen (default
	// 1 min), so that it counts as online while it stays connected.
	SeenEvery time.Duration
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = 256 << 10
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.MaxBatchBodyBytes == 0 {
		o.MaxBatchBodyBytes = 1 << 20
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 500
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = 100
	}
	if o.MaxPendingWrites == 0 {
		o.MaxPendingWrites = 64
	}
	if o.MaxSessionExpiry == 0 {
		o.MaxSessionExpiry = time.Hour
	}
	if o.MaxClients == 0 {
		o.MaxClients = 100_000
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.SeenEvery == 0 {
		o.SeenEvery = time.Minute
	}
}

// Broker is the embedded MQTT broker.
type Broker struct {
	srv  *mochi.Server
	hook *hook

	mu     sync.Mutex
	addrs  []string
	closed sync.Once
	err    error
}

// New returns a broker that serves nothing until Listen.
func New(o Options) (*Broker, error) {
	if o.Fleet == nil {
		return nil, errors.New("mqtt: Options.Fleet is required")
	}
	o.defaults()
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumClients = o.MaxClients
	caps.MaximumPacketSize = o.MaxPacketSize
	caps.MaximumInflight = o.MaxInflight
	caps.MaximumClientWritesPending = o.MaxPendingWrites
	caps.MaximumSessionExpiryInterval = uint32(o.MaxSessionExpiry / time.Second)
	caps.ReceiveMaximum = o.MaxInflight
	caps.MaximumMessageExpiryInterval = 24 * 60 * 60
	caps.RetainAvailable = 0      // nothing a device publishes is kept for others
	caps.SharedSubAvailable = 0   // a device subscribes to its own topics only
	caps.SubIDAvailable = 0       // not needed by any topic here
	caps.TopicAliasMaximum = 0    // devices name their topics in full
	caps.WildcardSubAvailable = 1 // v1/devices/me/rpc/request/+
	srv := mochi.New(&mochi.Options{
		Capabilities: caps, InlineClient: true, Logger: o.Logger.With("component", "mqtt"),
		// Each connection holds a read and a write buffer: 1 KiB each, as
		// devices send small packets (a larger one is read through).
		SysTopicResendInterval: 3600, ClientNetReadBufferSize: 1024, ClientNetWriteBufferSize: 1024,
	})
	h := newHook(srv, o)
	if err := srv.AddHook(h, nil); err != nil {
		return nil, err
	}
	return &Broker{srv: srv, hook: h}, nil
}

// Listen serves MQTT on addr (TCP, or TLS with cfg) from now on.
func (b *Broker) Listen(id, addr string, cfg *tls.Config) (net.Addr, error) {
	l := listeners.NewTCP(listeners.Config{ID: id, Address: addr, TLSConfig: cfg})
	if err := b.srv.AddListener(l); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.addrs = append(b.addrs, l.Address())
	b.mu.Unlock()
	return net.ResolveTCPAddr("tcp", l.Address())
}

// Start begins accepting on the listeners and the broker's upkeep.
func (b *Broker) Start() error {
	b.hook.start()
	return b.srv.Serve()
}

// Connected is the number of connected clients.
func (b *Broker) Connected() int64 { return b.hook.connected() }

// Close disconnects every client and stops the broker: their loops end,
// and nothing they sent is acknowledged after.
// Closing again does nothing.
func (b *Broker) Close() error {
	b.closed.Do(func() {
		// Ours first: mochi's Close waits for every connection to end, and
		// knows nothing yet of one whose CONNECT is being authenticated.
		b.hook.closing()
		b.hook.unblock(time.Second)
		b.err = b.srv.Close()
		b.hook.stop()
	})
	return b.err
}
