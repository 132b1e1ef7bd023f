package mqtt_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/mqtt"
	"github.com/iotflow/iotflow/internal/ratelimit"
)

// v5client is a minimal MQTT 5 client over a raw connection, built on
// mochi's own packet codec: it sends CONNECT, PUBLISH (QoS 0 and 1),
// SUBSCRIBE and PINGREQ, and reads one packet at a time with a deadline.
// paho.mqtt.golang speaks MQTT 3.1.1 only, which has no reason codes.
type v5client struct {
	t      *testing.T
	conn   net.Conn
	r      *bufio.Reader
	nextID uint16
}

// readWait bounds the wait for an expected packet; quietWait is how long
// the absence of a packet is watched for.
const (
	readWait  = 5 * time.Second
	quietWait = 300 * time.Millisecond
)

// dialV5 connects to the broker and sends a CONNECT with the given
// credentials (no username or password flag when empty); it returns the
// client and the CONNACK.
func (b *broker) dialV5(user, pass string) (*v5client, packets.Packet) {
	b.t.Helper()
	conn, err := net.DialTimeout("tcp", b.addr, readWait)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { conn.Close() })
	c := &v5client{t: b.t, conn: conn, r: bufio.NewReader(conn)}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: fmt.Sprintf("v5-%d", time.Now().UnixNano()),
			Clean:            true,
			Keepalive:        60,
		},
	}
	if user != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(user)
	}
	if pass != "" {
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(pass)
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		b.t.Fatal(err)
	}
	c.write(buf.Bytes())
	return c, c.expect(packets.Connack, 0)
}

// mustDialV5 connects and requires a CONNACK of success.
func (b *broker) mustDialV5(user, pass string) *v5client {
	b.t.Helper()
	c, ack := b.dialV5(user, pass)
	if ack.ReasonCode != packets.CodeSuccess.Code {
		b.t.Fatalf("connect as %q: CONNACK %#x (%s), want 0x00", user, ack.ReasonCode, ack.Properties.ReasonString)
	}
	return c
}

func (c *v5client) write(p []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(readWait))
	if _, err := c.conn.Write(p); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads the next packet, waiting at most d.
func (c *v5client) read(d time.Duration) (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	pk := packets.Packet{ProtocolVersion: 5}
	hb, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Pingresp:
		err = pk.PingrespDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// describe names a packet for failure messages.
func describe(pk packets.Packet) string {
	s := fmt.Sprintf("%s id %d reason %#x", packets.PacketNames[pk.FixedHeader.Type], pk.PacketID, pk.ReasonCode)
	if pk.Properties.ReasonString != "" {
		s += fmt.Sprintf(" %q", pk.Properties.ReasonString)
	}
	if pk.FixedHeader.Type == packets.Publish {
		s += fmt.Sprintf(" on %s: %s", pk.TopicName, pk.Payload)
	}
	return s
}

// expect reads the next packet and requires it to be of type typ (and,
// unless id is 0, to carry packet id id).
func (c *v5client) expect(typ byte, id uint16) packets.Packet {
	c.t.Helper()
	pk, err := c.read(readWait)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", packets.PacketNames[typ], err)
	}
	if pk.FixedHeader.Type != typ || (id != 0 && pk.PacketID != id) {
		c.t.Fatalf("got %s, want %s id %d", describe(pk), packets.PacketNames[typ], id)
	}
	return pk
}

func (c *v5client) packetID() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// publish sends payload (a string as is, anything else as JSON) at qos
// and returns the packet id (0 at QoS 0).
func (c *v5client) publish(topic string, qos byte, payload any) uint16 {
	c.t.Helper()
	var body []byte
	switch p := payload.(type) {
	case string:
		body = []byte(p)
	default:
		var err error
		if body, err = json.Marshal(p); err != nil {
			c.t.Fatal(err)
		}
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
		ProtocolVersion: 5,
		TopicName:       topic,
		Payload:         body,
	}
	if qos > 0 {
		pk.PacketID = c.packetID()
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		c.t.Fatal(err)
	}
	c.write(buf.Bytes())
	return pk.PacketID
}

// publish1 publishes at QoS 1 and returns the PUBACK.
func (c *v5client) publish1(topic string, payload any) packets.Packet {
	c.t.Helper()
	return c.expect(packets.Puback, c.publish(topic, 1, payload))
}

// subscribe subscribes to filters at QoS 1 and returns the SUBACK's
// reason codes, one a filter.
func (c *v5client) subscribe(filters ...string) []byte {
	c.t.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 5,
		PacketID:        c.packetID(),
	}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		c.t.Fatal(err)
	}
	c.write(buf.Bytes())
	ack := c.expect(packets.Suback, pk.PacketID)
	if len(ack.ReasonCodes) != len(filters) {
		c.t.Fatalf("SUBACK for %d filters holds %d reason codes: %x", len(filters), len(ack.ReasonCodes), ack.ReasonCodes)
	}
	return ack.ReasonCodes
}

// ping requires the connection to be open and idle: a PINGREQ is
// answered by a PINGRESP, with nothing before it.
func (c *v5client) ping(what string) {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}, ProtocolVersion: 5}
	var buf bytes.Buffer
	if err := pk.PingreqEncode(&buf); err != nil {
		c.t.Fatal(err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(readWait))
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatalf("%s: the connection is closed: %v", what, err)
	}
	got, err := c.read(readWait)
	if err != nil {
		c.t.Fatalf("%s: no PINGRESP, the connection is closed or silent: %v", what, err)
	}
	if got.FixedHeader.Type != packets.Pingresp {
		c.t.Fatalf("%s: got %s, want PINGRESP", what, describe(got))
	}
}

// closed requires the broker to have closed the connection (a
// DISCONNECT before the end is allowed).
func (c *v5client) closed(what string) {
	c.t.Helper()
	for {
		pk, err := c.read(readWait)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Errorf("%s: the connection stayed open", what)
			}
			return
		}
		if pk.FixedHeader.Type != packets.Disconnect {
			c.t.Errorf("%s: got %s, want the connection closed", what, describe(pk))
			return
		}
	}
}

func v5Limits(auth, telemetry ratelimit.Limit) *mqtt.Limits {
	return &mqtt.Limits{Limiter: ratelimit.NewMemory(), AuthFailures: auth, Telemetry: telemetry,
		Device:  ratelimit.Limit{Name: "device", Rate: 1000, Period: time.Hour, Burst: 1000},
		Backlog: ratelimit.Limit{Name: "telemetry_backlog", Rate: 1000, Period: time.Hour, Burst: 1000}}
}

// hourly is a limit of n events that does not refill during a test.
func hourly(name string, n int) ratelimit.Limit {
	return ratelimit.Limit{Name: name, Rate: n, Period: time.Hour, Burst: n}
}

func TestV5ConnackReasonCodes(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, func(o *mqtt.Options) {
			o.Limits = v5Limits(hourly("auth_failures", 3), hourly("telemetry", 1000))
		})
		id, key := b.register("v5-auth")
		refused := func(what, user, pass string, want byte) {
			t.Helper()
			c, ack := b.dialV5(user, pass)
			if ack.ReasonCode != want {
				t.Errorf("%s: CONNACK %#x (%q), want %#x", what, ack.ReasonCode, ack.Properties.ReasonString, want)
				return
			}
			if ack.SessionPresent {
				t.Errorf("%s: a refusing CONNACK with session present", what)
			}
			c.closed(what)
		}
		// Three failures are within the address's limit: 0x86 each.
		refused("a wrong key", fmt.Sprint(id), "iot_wrong", packets.ErrBadUsernameOrPassword.Code)
		refused("no credentials", "", "", packets.ErrBadUsernameOrPassword.Code)
		refused("a wrong key as username", "iot_wrong", "", packets.ErrBadUsernameOrPassword.Code)
		// Past it, failures are refused as a connection rate exceeded.
		refused("a wrong key past the limit", "iot_wrong", "", packets.ErrConnectionRateExceeded.Code)
		refused("no credentials past the limit", "", "", packets.ErrConnectionRateExceeded.Code)
		// A valid key from the same address still connects, as password or
		// as username.
		c := b.mustDialV5(fmt.Sprint(id), key)
		c.ping("a valid key past the limit")
		b.mustDialV5(key, "").ping("a valid key as username past the limit")

		inactive, inactiveKey := b.register("v5-inactive")
		status := "inactive"
		if _, err := b.svc.UpdateOwnConfig(context.Background(), &iotflow.Device{ID: inactive}, iotflow.DeviceUpdate{Status: &status}); err != nil {
			t.Fatal(err)
		}
		b.svc.ForgetDevice(inactive)
		refused("an inactive device", fmt.Sprint(inactive), inactiveKey, packets.ErrNotAuthorized.Code)
		refused("an inactive device's key as username", inactiveKey, "", packets.ErrNotAuthorized.Code)
		if n := b.b.Connected(); n != 2 {
			t.Errorf("Connected() = %d, want the 2 accepted clients", n)
		}
	})
}

func TestV5TelemetryPubackFollowsTheCommit(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		id, key := b.register("v5-telemetry")
		c := b.mustDialV5("device", key)
		topic := fmt.Sprintf("iotflow/devices/%d/telemetry", id)
		for i := range 5 {
			ack := c.publish1(topic, map[string]any{"data": map[string]any{"t": i + 1}})
			if ack.ReasonCode != packets.CodeSuccess.Code {
				t.Fatalf("reading %d: %s, want PUBACK 0x00", i+1, describe(ack))
			}
			rs := b.readings(id)
			if len(rs) != i+1 {
				t.Fatalf("after the PUBACK of reading %d, %d are stored", i+1, len(rs))
			}
			if want := fmt.Sprintf(`{"t":%d}`, i+1); !jsonEq(rs[i].Payload, want) {
				t.Errorf("reading %d stored as %s, want %s", i+1, rs[i].Payload, want)
			}
		}
		c.ping("after the readings")
	})
}

func TestV5InvalidPayloadsArePayloadFormatInvalid(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, func(o *mqtt.Options) { o.MaxBodyBytes = 1024 })
		id, key := b.register("v5-invalid")
		c := b.mustDialV5("device", key)
		topic := fmt.Sprintf("iotflow/devices/%d/telemetry", id)
		for _, p := range []struct {
			name    string
			topic   string
			payload any
			reason  string // a part of the reason string
		}{
			{"invalid JSON", topic, `{"data":`, "not valid JSON"},
			{"not an object", topic, `[1]`, "one JSON object"},
			{"an empty payload", topic, ``, "one JSON object"},
			{"two values", topic, `{"data":{"t":1}} {"data":{"t":2}}`, "more than one JSON value"},
			{"no data", topic, map[string]any{"metadata": map[string]any{}}, "'data' is required"},
			{"data not an object", topic, map[string]any{"data": 5}, "'data' must be a JSON object"},
			{"a wrong type", topic, map[string]any{"data": map[string]any{"t": 1}, "message_id": 5}, "message_id"},
			{"too large", topic, map[string]any{"data": map[string]any{"blob": strings.Repeat("x", 2000)}}, "exceeds 1024 bytes"},
			{"a lone surrogate", topic, `{"data": {"a": "\ud800"}}`, "surrogate"},
			{"an empty batch", topic + "/batch", map[string]any{"records": []any{}}, "empty"},
			{"a batch without records", topic + "/batch", map[string]any{}, "'records' is required"},
		} {
			ack := c.publish1(p.topic, p.payload)
			if ack.ReasonCode != packets.ErrPayloadFormatInvalid.Code || !strings.Contains(ack.Properties.ReasonString, p.reason) {
				t.Errorf("%s: %s, want PUBACK 0x99 with a reason string holding %q", p.name, describe(ack), p.reason)
			}
			c.ping(p.name)
		}
		if n := len(b.readings(id)); n != 0 {
			t.Errorf("%d readings stored from refused publishes", n)
		}
		// The connection still stores what is valid.
		if ack := c.publish1(topic, map[string]any{"data": map[string]any{"t": 1}}); ack.ReasonCode != 0 {
			t.Errorf("a valid reading after the refusals: %s", describe(ack))
		}
		if n := len(b.readings(id)); n != 1 {
			t.Errorf("%d readings stored, want 1", n)
		}
	})
}

func TestV5TelemetryRateLimitIsQuotaExceeded(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, func(o *mqtt.Options) {
			o.Limits = v5Limits(hourly("auth_failures", 100), hourly("telemetry", 2))
		})
		id, key := b.register("v5-limited")
		c := b.mustDialV5("device", key)
		topic := fmt.Sprintf("iotflow/devices/%d/telemetry", id)
		for i := range 2 {
			if ack := c.publish1(topic, map[string]any{"data": map[string]any{"t": i}}); ack.ReasonCode != 0 {
				t.Fatalf("reading %d within the limit: %s", i+1, describe(ack))
			}
		}
		for i := range 2 {
			ack := c.publish1(topic, map[string]any{"data": map[string]any{"t": 10 + i}})
			if ack.ReasonCode != packets.ErrQuotaExceeded.Code || !strings.Contains(ack.Properties.ReasonString, "telemetry") {
				t.Errorf("reading %d over the limit: %s, want PUBACK 0x97 naming the telemetry limit", 3+i, describe(ack))
			}
			c.ping("over the telemetry limit")
		}
		if n := len(b.readings(id)); n != 2 {
			t.Errorf("%d readings stored, want the 2 within the limit", n)
		}
	})
}

func TestV5AnotherDevicesTopicIsNotAuthorized(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		id, key := b.register("v5-acl")
		other, _ := b.register("v5-acl-other")
		c := b.mustDialV5("device", key)
		for _, topic := range []string{
			fmt.Sprintf("iotflow/devices/%d/telemetry", other),
			fmt.Sprintf("iotflow/devices/%d/telemetry/batch", other),
			fmt.Sprintf("iotflow/devices/%d/heartbeat", other),
		} {
			payload := map[string]any{"data": map[string]any{"t": 1}}
			if strings.HasSuffix(topic, "/batch") {
				payload = map[string]any{"records": []any{payload}}
			}
			ack := c.publish1(topic, payload)
			if ack.ReasonCode != packets.ErrNotAuthorized.Code {
				t.Errorf("publish to %s: %s, want PUBACK 0x87", topic, describe(ack))
			}
			c.ping("after publishing to " + topic)
		}
		if n := len(b.readings(id)) + len(b.readings(other)); n != 0 {
			t.Errorf("%d readings stored from publishes to another device's topics", n)
		}
	})
}

func TestV5SubscriptionsStayWithTheDevice(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		id, key := b.register("v5-subs")
		other, _ := b.register("v5-subs-other")
		c := b.mustDialV5("device", key)
		own := fmt.Sprintf("iotflow/devices/%d/commands", id)
		refused := []string{fmt.Sprintf("iotflow/devices/%d/commands", other), "#", "$SYS/#"}
		for _, f := range refused {
			if codes := c.subscribe(f); codes[0] != packets.ErrNotAuthorized.Code {
				t.Errorf("subscribe to %s: SUBACK %#x, want 0x87", f, codes[0])
			}
		}
		if codes := c.subscribe(own); codes[0] != packets.CodeGrantedQos1.Code {
			t.Errorf("subscribe to its own commands: SUBACK %#x, want 0x01", codes[0])
		}
		// In one SUBSCRIBE, each filter has its own reason code.
		codes := c.subscribe(append(refused, own)...)
		for i, f := range refused {
			if codes[i] != packets.ErrNotAuthorized.Code {
				t.Errorf("subscribe to %s among others: SUBACK %#x, want 0x87", f, codes[i])
			}
		}
		if codes[3] != packets.CodeGrantedQos1.Code {
			t.Errorf("subscribe to its own commands among others: SUBACK %#x, want 0x01", codes[3])
		}
		c.ping("after subscribing")
	})
}

func TestV5AnswerToAnUnknownCommand(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		id, key := b.register("v5-unknown-command")
		c := b.mustDialV5("device", key)
		ack := c.publish1(fmt.Sprintf("iotflow/devices/%d/commands/999999/result", id), map[string]any{"status": "completed"})
		if ack.ReasonCode != packets.ErrImplementationSpecificError.Code || ack.Properties.ReasonString == "" {
			t.Errorf("an answer to an unknown command: %s, want PUBACK 0x83 with a reason string", describe(ack))
		}
		c.ping("after the answer to an unknown command")
	})
}

func TestV5QoS0RefusalsAreSilent(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, func(o *mqtt.Options) { o.MaxBodyBytes = 1024 })
		id, key := b.register("v5-qos0")
		other, _ := b.register("v5-qos0-other")
		c := b.mustDialV5("device", key)
		topic := fmt.Sprintf("iotflow/devices/%d/telemetry", id)
		for _, p := range []struct {
			name, topic, payload string
		}{
			{"invalid JSON", topic, `{"data":`},
			{"no data", topic, `{"metadata":{}}`},
			{"too large", topic, `{"data":{"blob":"` + strings.Repeat("x", 2000) + `"}}`},
			{"another device's topic", fmt.Sprintf("iotflow/devices/%d/telemetry", other), `{"data":{"t":1}}`},
		} {
			c.publish(p.topic, 0, p.payload)
			// The next packet is the answer to the ping: nothing answered
			// the publish, and the connection is open.
			c.ping("a QoS 0 publish of " + p.name)
		}
		if n := len(b.readings(id)) + len(b.readings(other)); n != 0 {
			t.Errorf("%d readings stored from refused QoS 0 publishes", n)
		}
		// A valid QoS 0 reading is stored, unanswered.
		c.publish(topic, 0, `{"data":{"t":1}}`)
		c.ping("a valid QoS 0 publish")
		deadline := time.Now().Add(readWait)
		for len(b.readings(id)) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := len(b.readings(id)); n != 1 {
			t.Errorf("%d readings stored from a valid QoS 0 publish, want 1", n)
		}
		if pk, err := c.read(quietWait); err == nil {
			t.Errorf("unexpected %s", describe(pk))
		}
	})
}

// TestWillsAreNotPublished: a device that connects with a will on another
// device's commands topic and then drops its connection delivers nothing
// to that device, which stays subscribed.
func TestWillsAreNotPublished(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		_, key := b.register("will-sender")
		victim, victimKey := b.register("will-victim")
		target := fmt.Sprintf("iotflow/devices/%d/commands", victim)
		v := b.mustDialV5("device", victimKey)
		if codes := v.subscribe(target); len(codes) != 1 || codes[0] != 1 {
			t.Fatalf("the victim's SUBACK %v", codes)
		}
		conn, err := net.DialTimeout("tcp", b.addr, readWait)
		if err != nil {
			t.Fatal(err)
		}
		pk := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "will", Clean: true, Keepalive: 60,
				UsernameFlag: true, Username: []byte("device"), PasswordFlag: true, Password: []byte(key),
				WillFlag: true, WillTopic: target, WillQos: 1, WillPayload: []byte(`{"id":1,"command":"unlock"}`)},
		}
		var buf bytes.Buffer
		if err := pk.ConnectEncode(&buf); err != nil {
			t.Fatal(err)
		}
		sender := &v5client{t: t, conn: conn, r: bufio.NewReader(conn)}
		sender.write(buf.Bytes())
		if ack := sender.expect(packets.Connack, 0); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
		conn.Close() // not a DISCONNECT: the broker would send the will now
		if got, err := v.read(quietWait * 2); err == nil {
			t.Errorf("the victim received %s", describe(got))
		}
		v.ping("after the will was due")
	})
}

// TestPipelinedPublishesAreAnsweredInOrder: a device that keeps many QoS 1
// publishes in flight gets their PUBACKs in the order it sent them, each
// only once its reading is stored, a refused one's in its place, and an
// answer to a command applied after the readings before it.
func TestPipelinedPublishesAreAnsweredInOrder(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		id, key := b.register("v5-pipeline")
		c := b.mustDialV5("device", key)
		topic := fmt.Sprintf("iotflow/devices/%d/telemetry", id)
		var ids []uint16
		for i := range 60 {
			payload := any(map[string]any{"data": map[string]any{"i": i}, "message_id": fmt.Sprint("p-", i)})
			if i == 30 {
				payload = `{"metadata": {}}` // refused in its place
			}
			ids = append(ids, c.publish(topic, 1, payload))
		}
		for i, want := range ids {
			ack := c.expect(packets.Puback, want)
			wantCode := byte(0)
			if i == 30 {
				wantCode = packets.ErrPayloadFormatInvalid.Code
			}
			if ack.ReasonCode != wantCode {
				t.Fatalf("PUBACK %d: %s, want reason %#x", i, describe(ack), wantCode)
			}
			if i == len(ids)-1 {
				if n := len(b.readings(id)); n != 59 {
					t.Errorf("%d readings stored at the last PUBACK, want 59", n)
				}
			}
		}
		c.ping("after the pipeline")
	})
}
