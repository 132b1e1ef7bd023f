package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotflow/iotflow/internal/downlink"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/mqtt"
	"github.com/iotflow/iotflow/internal/ratelimit"
	"github.com/iotflow/iotflow/internal/testdb"
)

// broker is a running broker over a real store, with the services behind
// it, as the server wires them.
type broker struct {
	t     *testing.T
	store iotflow.Store
	svc   *fleet.Service
	dl    *downlink.Service
	addr  string
	b     *mqtt.Broker
}

func startBroker(t *testing.T, store iotflow.Store, change func(*mqtt.Options)) *broker {
	t.Helper()
	pipe := ingest.New(store, ingest.Options{MaxBatch: 100, QueueSize: 1000, Writers: 1, CommitTimeout: 5 * time.Second})
	t.Cleanup(func() { pipe.Close(context.Background()) })
	svc := fleet.New(store, fleet.Options{Submitter: pipe, OnlineTimeout: 5 * time.Minute, MaxClockSkew: time.Hour,
		AuthCacheSize: 1000, AuthCacheTTL: time.Second, KeyRotationGrace: time.Minute})
	dl := downlink.New(store, downlink.Options{Changed: svc.ForgetDevice})
	t.Cleanup(dl.Close)
	o := mqtt.Options{Fleet: svc, Downlink: dl, MaxBatch: 50, SeenEvery: time.Second}
	if change != nil {
		change(&o)
	}
	b, err := mqtt.New(o)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := b.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &broker{t: t, store: store, svc: svc, dl: dl, addr: addr.String(), b: b}
}

func (b *broker) register(name string) (int64, string) {
	b.t.Helper()
	d, key, err := b.svc.Register(context.Background(), iotflow.NewDevice{Name: name, DeviceType: "sensor"})
	if err != nil {
		b.t.Fatal(err)
	}
	return d.ID, key
}

func (b *broker) readings(id int64) []*iotflow.Reading {
	b.t.Helper()
	rs, err := b.store.ListReadings(context.Background(), iotflow.ReadingFilter{DeviceID: id, Ascending: true, Limit: 1000})
	if err != nil {
		b.t.Fatal(err)
	}
	return rs
}

// connect opens a paho (MQTT 3.1.1) client; user and pass as given.
func (b *broker) connect(user, pass string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker("tcp://" + b.addr).SetClientID(fmt.Sprintf("test-%d", time.Now().UnixNano())).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second).SetOrderMatters(false)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	b.t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func (b *broker) mustConnect(user, pass string) paho.Client {
	b.t.Helper()
	c, err := b.connect(user, pass)
	if err != nil {
		b.t.Fatalf("connect as %q: %v", user, err)
	}
	return c
}

// publish sends at QoS 1 and waits for the PUBACK; an error when the
// broker closed the connection instead.
func publish(c paho.Client, topic string, payload any) error {
	var body []byte
	switch p := payload.(type) {
	case string:
		body = []byte(p)
	default:
		body, _ = json.Marshal(p)
	}
	tok := c.Publish(topic, 1, false, body)
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("no PUBACK within 10 s")
	}
	return tok.Error()
}

func subscribe(t *testing.T, c paho.Client, filter string) (byte, chan paho.Message) {
	t.Helper()
	got := make(chan paho.Message, 16)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { got <- m })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter], got
}

func receive(t *testing.T, got chan paho.Message, what string) paho.Message {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s", what)
		return nil
	}
}

func forEachStore(t *testing.T, test func(t *testing.T, store iotflow.Store)) {
	for _, be := range testdb.Backends() {
		t.Run(be.Name, func(t *testing.T) { test(t, be.Open(t)) })
	}
}

// jsonEq compares JSON by value: PostgreSQL's jsonb writes it its own way.
func jsonEq(got json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
}

func connackCode(err error) string {
	if err == nil {
		return "accepted"
	}
	return err.Error()
}

func TestConnectAuthentication(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		limits := &mqtt.Limits{Limiter: ratelimit.NewMemory(), AuthFailures: ratelimit.PerMinute("auth_failures", 5),
			Telemetry: ratelimit.PerMinute("telemetry", 1000), Device: ratelimit.PerMinute("device", 1000),
			Backlog: ratelimit.PerMinute("telemetry_backlog", 1000)}
		b := startBroker(t, store, func(o *mqtt.Options) { o.Limits = limits })
		id, key := b.register("mqtt-auth")
		b.mustConnect(fmt.Sprint(id), key) // the key as password
		b.mustConnect(key, "")             // the key as username, as ThingsBoard devices send it
		for _, c := range []struct{ user, pass string }{
			{fmt.Sprint(id), "iot_wrong"}, {"", ""}, {"iot_wrong", ""},
		} {
			if _, err := b.connect(c.user, c.pass); err == nil || !strings.Contains(err.Error(), "bad user name or password") {
				t.Errorf("connect %q/%q: %s, want refused with return code 4", c.user, c.pass, connackCode(err))
			}
		}
		// Past the address's failure limit, wrong keys are still refused,
		// and a valid key still connects.
		for range 5 {
			b.connect("iot_wrong", "")
		}
		b.mustConnect(key, "")

		other, otherKey := b.register("mqtt-inactive")
		status := "inactive"
		if _, err := b.svc.UpdateOwnConfig(context.Background(), &iotflow.Device{ID: other}, iotflow.DeviceUpdate{Status: &status}); err != nil {
			t.Fatal(err)
		}
		b.svc.ForgetDevice(other)
		if _, err := b.connect(otherKey, ""); err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Errorf("an inactive device: %s, want refused with return code 5", connackCode(err))
		}
		if b.b.Connected() < 2 {
			t.Errorf("Connected() = %d, want the clients still connected", b.b.Connected())
		}
	})
}

func TestTelemetryIsStoredBeforePUBACK(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		id, key := b.register("mqtt-telemetry")
		c := b.mustConnect("device", key)
		topic := fmt.Sprintf("iotflow/devices/%d/telemetry", id)
		for i := range 20 {
			if err := publish(c, topic, map[string]any{"data": map[string]any{"temperature": 20 + i}, "message_id": fmt.Sprint("m-", i)}); err != nil {
				t.Fatal(err)
			}
			if n := len(b.readings(id)); n != i+1 {
				t.Fatalf("after the PUBACK of reading %d, %d are stored", i+1, n)
			}
		}
		// A resent message_id is acknowledged and stored once.
		if err := publish(c, topic, map[string]any{"data": map[string]any{"temperature": 99}, "message_id": "m-3"}); err != nil {
			t.Fatal(err)
		}
		ts := time.Now().Add(-time.Hour).Truncate(time.Millisecond).UTC()
		if err := publish(c, topic+"/batch", map[string]any{"records": []any{
			map[string]any{"data": map[string]any{"t": 1}, "timestamp": ts.UnixMilli()},
			map[string]any{"data": map[string]any{"t": 2}, "metadata": map[string]any{"battery": 80}},
		}}); err != nil {
			t.Fatal(err)
		}
		rs := b.readings(id)
		if len(rs) != 22 {
			t.Fatalf("%d readings stored, want 22", len(rs))
		}
		if !rs[0].Timestamp.Equal(ts) {
			t.Errorf("the batch's timestamp: the oldest reading is at %v, want %v", rs[0].Timestamp, ts)
		}
		if err := publish(c, fmt.Sprintf("iotflow/devices/%d/heartbeat", id), ""); err != nil {
			t.Fatal(err)
		}
	})
}

// TestV3Refusals: MQTT 3.1.1 has no negative PUBACK. What could be stored
// later (over a rate limit) is never acknowledged: the connection is
// closed, and the client sends it again on reconnecting. What can never
// be stored is acknowledged and dropped, so that the client does not
// resend it forever; a topic that is not the device's closes the
// connection.
func TestV3Refusals(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		limits := func(telemetry int) *mqtt.Limits {
			return &mqtt.Limits{Limiter: ratelimit.NewMemory(), AuthFailures: ratelimit.PerMinute("auth_failures", 100),
				Telemetry: ratelimit.PerMinute("telemetry", telemetry), Device: ratelimit.PerMinute("device", 100),
				Backlog: ratelimit.Limit{Name: "telemetry_backlog", Rate: 1, Period: time.Hour, Burst: 1}}
		}
		b := startBroker(t, store, func(o *mqtt.Options) { o.Limits = limits(100); o.MaxBodyBytes = 1024 })
		id, key := b.register("mqtt-v3")
		other, _ := b.register("mqtt-v3-other")
		topic := fmt.Sprintf("iotflow/devices/%d/telemetry", id)
		c := b.mustConnect("device", key)
		for name, p := range map[string]struct {
			topic   string
			payload any
		}{
			"invalid JSON":      {topic, `{"data":`},
			"no data":           {topic, map[string]any{"metadata": map[string]any{}}},
			"too large":         {topic, map[string]any{"data": map[string]any{"blob": strings.Repeat("x", 2000)}}},
			"a lone surrogate":  {topic, `{"data": {"a": "\ud800"}}`},
			"an empty batch":    {topic + "/batch", map[string]any{"records": []any{}}},
			"a command of none": {fmt.Sprintf("iotflow/devices/%d/commands/999999/result", id), map[string]any{"status": "completed"}},
		} {
			if err := publish(c, p.topic, p.payload); err != nil || !c.IsConnected() {
				t.Errorf("%s: err %v, connected %v; want it acknowledged and dropped", name, err, c.IsConnected())
			}
		}
		for name, p := range map[string]string{
			"another's topic":  fmt.Sprintf("iotflow/devices/%d/telemetry", other),
			"an unknown topic": "sensors/1",
		} {
			c := b.mustConnect("device", key)
			if err := publish(c, p, map[string]any{"data": map[string]any{"t": 1}}); err == nil || c.IsConnected() {
				t.Errorf("%s: err %v, connected %v; want the connection closed unacknowledged", name, err, c.IsConnected())
			}
		}
		if n := len(b.readings(id)) + len(b.readings(other)); n != 0 {
			t.Errorf("%d readings stored from refused publishes", n)
		}

		// Over the telemetry limit: two pass, the third is not acknowledged.
		b = startBroker(t, store, func(o *mqtt.Options) { o.Limits = limits(2) })
		id, key = b.register("mqtt-v3-limited")
		topic = fmt.Sprintf("iotflow/devices/%d/telemetry", id)
		c = b.mustConnect("device", key)
		for i := range 2 {
			if err := publish(c, topic, map[string]any{"data": map[string]any{"t": i}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := publish(c, topic, map[string]any{"data": map[string]any{"t": 3}}); err == nil || c.IsConnected() {
			t.Errorf("over the telemetry limit: err %v, connected %v", err, c.IsConnected())
		}
		if n := len(b.readings(id)); n != 2 {
			t.Errorf("%d readings stored, want the 2 within the limit", n)
		}
	})
}

func TestSubscriptionsStayWithTheDevice(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		id, key := b.register("mqtt-acl")
		other, otherKey := b.register("mqtt-acl-other")
		c := b.mustConnect("device", key)
		for _, f := range []string{
			fmt.Sprintf("iotflow/devices/%d/commands", other), fmt.Sprintf("iotflow/devices/%d/shadow/desired", other),
			fmt.Sprintf("iotflow/devices/%d/telemetry", id), fmt.Sprintf("iotflow/devices/%d/telemetry", other),
			"iotflow/devices/+/commands", "iotflow/#", "#", "$SYS/#", "v1/devices/me/rpc/request/5",
		} {
			if code, _ := subscribe(t, c, f); code != 0x80 {
				t.Errorf("subscribe %s: SUBACK %#x, want 0x80", f, code)
			}
		}
		if code, _ := subscribe(t, c, fmt.Sprintf("iotflow/devices/%d/commands", id)); code != 1 {
			t.Errorf("subscribe to its own commands: SUBACK %#x", code)
		}
		// Another device's command and telemetry never reach this client.
		_, tb := subscribe(t, c, "v1/devices/me/rpc/request/+")
		oc := b.mustConnect("device", otherKey)
		if err := publish(oc, fmt.Sprintf("iotflow/devices/%d/telemetry", other), map[string]any{"data": map[string]any{"t": 1}}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.dl.Issue(context.Background(), other, downlink.CommandInput{Command: "theirs"}); err != nil {
			t.Fatal(err)
		}
		_, theirs := subscribe(t, oc, "v1/devices/me/rpc/request/+")
		receive(t, theirs, "the other device's command")
		select {
		case m := <-tb:
			t.Errorf("a client of device %d received %s: %s", id, m.Topic(), m.Payload())
		case <-time.After(300 * time.Millisecond):
		}
	})
}

func TestCommandsOverMQTT(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		ctx := context.Background()
		id, key := b.register("mqtt-commands")
		waiting, _, err := b.dl.Issue(ctx, id, downlink.CommandInput{Command: "reboot", Parameters: json.RawMessage(`{"delay":5}`)})
		if err != nil {
			t.Fatal(err)
		}
		c := b.mustConnect(fmt.Sprint(id), key)
		_, got := subscribe(t, c, fmt.Sprintf("iotflow/devices/%d/commands", id))
		var cmd downlink.CommandJSON
		if err := json.Unmarshal(receive(t, got, "the waiting command").Payload(), &cmd); err != nil {
			t.Fatal(err)
		}
		if cmd.ID != waiting.ID || cmd.Command != "reboot" || cmd.Status != iotflow.CommandSent || !jsonEq(cmd.Parameters, `{"delay":5}`) {
			t.Errorf("delivered %+v", cmd)
		}
		// One issued while subscribed arrives at once.
		start := time.Now()
		live, _, err := b.dl.Issue(ctx, id, downlink.CommandInput{Command: "blink"})
		if err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(receive(t, got, "the new command").Payload(), &cmd)
		if cmd.ID != live.ID || time.Since(start) > time.Second {
			t.Errorf("the new command: %+v after %s", cmd, time.Since(start))
		}
		result := fmt.Sprintf("iotflow/devices/%d/commands/%d/result", id, waiting.ID)
		if err := publish(c, result, map[string]any{"status": "completed", "result": map[string]any{"uptime": 1}}); err != nil {
			t.Fatal(err)
		}
		if err := publish(c, result, map[string]any{"status": "acknowledged"}); err != nil {
			t.Fatalf("a late acknowledgement: %v", err)
		}
		got2, err := b.dl.Command(ctx, waiting.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got2.Status != iotflow.CommandCompleted || !jsonEq(got2.Result, `{"uptime":1}`) {
			t.Errorf("after the answer: %s %s", got2.Status, got2.Result)
		}
		// A different answer after the end is refused: over MQTT 3.1.1 it
		// is acknowledged and dropped, and changes nothing.
		if err := publish(c, result, map[string]any{"status": "failed"}); err != nil || !c.IsConnected() {
			t.Errorf("a different answer after the end: %v, connected %v", err, c.IsConnected())
		}
		if got3, _ := b.dl.Command(ctx, waiting.ID); got3.Status != iotflow.CommandCompleted {
			t.Errorf("a different answer after the end changed the command to %s", got3.Status)
		}
	})
}

func TestShadowOverMQTT(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		ctx := context.Background()
		id, key := b.register("mqtt-shadow")
		if _, err := b.dl.PatchDesired(ctx, id, json.RawMessage(`{"interval":30}`), nil); err != nil {
			t.Fatal(err)
		}
		c := b.mustConnect("device", key)
		_, got := subscribe(t, c, fmt.Sprintf("iotflow/devices/%d/shadow/desired", id))
		var sh downlink.ShadowJSON
		_ = json.Unmarshal(receive(t, got, "the current shadow").Payload(), &sh)
		if !jsonEq(sh.Desired, `{"interval":30}`) || sh.DesiredVersion != 1 {
			t.Errorf("at once: %+v", sh)
		}
		if _, err := b.dl.PatchDesired(ctx, id, json.RawMessage(`{"interval":60}`), nil); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(receive(t, got, "the changed shadow").Payload(), &sh)
		if !jsonEq(sh.Desired, `{"interval":60}`) || sh.DesiredVersion != 2 {
			t.Errorf("after the change: %+v", sh)
		}
		if err := publish(c, fmt.Sprintf("iotflow/devices/%d/shadow/reported", id), map[string]any{"interval": 60}); err != nil {
			t.Fatal(err)
		}
		v, err := b.dl.Shadow(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEq(v.Reported, `{"interval":60}`) || !jsonEq(v.Delta, `{}`) {
			t.Errorf("after reporting: reported %s, delta %s", v.Reported, v.Delta)
		}
		// A reported change alone publishes nothing: desired did not change.
		select {
		case m := <-got:
			t.Errorf("published on a reported change: %s", m.Payload())
		case <-time.After(300 * time.Millisecond):
		}
		if err := publish(c, fmt.Sprintf("iotflow/devices/%d/shadow/reported", id), `[1]`); err != nil {
			t.Errorf("a reported patch that is not an object: %v, want it acknowledged and dropped", err)
		}
		if after, _ := b.dl.Shadow(ctx, id); after.Version != v.Version {
			t.Errorf("a reported patch that is not an object changed the shadow: version %d, was %d", after.Version, v.Version)
		}
	})
}

func TestThingsBoardDeviceAPI(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		ctx := context.Background()
		id, key := b.register("mqtt-thingsboard")
		c := b.mustConnect(key, "")
		ts := time.Now().Add(-time.Hour).Truncate(time.Millisecond).UTC()
		for _, p := range []string{
			`{"temperature": 21.5, "humidity": 40}`,
			fmt.Sprintf(`{"ts": %d, "values": {"temperature": 19}}`, ts.UnixMilli()),
			fmt.Sprintf(`[{"ts": %d, "values": {"temperature": 18}}, {"pressure": 1013}]`, ts.Add(time.Minute).UnixMilli()),
		} {
			if err := publish(c, "v1/devices/me/telemetry", p); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
		}
		rs := b.readings(id)
		if len(rs) != 4 || !rs[0].Timestamp.Equal(ts) || !jsonEq(rs[0].Payload, `{"temperature":19}`) {
			t.Fatalf("stored %d readings, the oldest %v %s", len(rs), rs[0].Timestamp, rs[0].Payload)
		}

		_, got := subscribe(t, c, "v1/devices/me/rpc/request/+")
		cmd, _, err := b.dl.Issue(ctx, id, downlink.CommandInput{Command: "setLed", Parameters: json.RawMessage(`{"on":true}`)})
		if err != nil {
			t.Fatal(err)
		}
		m := receive(t, got, "the RPC request")
		if m.Topic() != fmt.Sprint("v1/devices/me/rpc/request/", cmd.ID) || string(m.Payload()) != `{"method":"setLed","params":{"on":true}}` {
			t.Errorf("RPC request %s: %s", m.Topic(), m.Payload())
		}
		if err := publish(c, fmt.Sprint("v1/devices/me/rpc/response/", cmd.ID), `"done"`); err != nil {
			t.Fatal(err)
		}
		done, _ := b.dl.Command(ctx, cmd.ID)
		if done.Status != iotflow.CommandCompleted || !jsonEq(done.Result, `{"response":"done"}`) {
			t.Errorf("after the RPC response: %s %s", done.Status, done.Result)
		}
	})
}

// TestDeliveriesEndWithTheConnection: once a device disconnects, commands
// wait for it (pending), not taken by a connection that is gone.
func TestDeliveriesEndWithTheConnection(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		ctx := context.Background()
		id, key := b.register("mqtt-gone")
		c := b.mustConnect("device", key)
		subscribe(t, c, fmt.Sprintf("iotflow/devices/%d/commands", id))
		c.Disconnect(100)
		deadline := time.Now().Add(5 * time.Second)
		for b.b.Connected() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cmd, _, err := b.dl.Issue(ctx, id, downlink.CommandInput{Command: "later"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if got, _ := b.dl.Command(ctx, cmd.ID); got.Status != iotflow.CommandPending {
			t.Errorf("a command issued after the disconnect is %s", got.Status)
		}
		var n atomic.Int32
		c = b.mustConnect("device", key)
		c.Subscribe(fmt.Sprintf("iotflow/devices/%d/commands", id), 1, func(paho.Client, paho.Message) { n.Add(1) }).Wait()
		for n.Load() == 0 && time.Now().Before(deadline.Add(5*time.Second)) {
			time.Sleep(10 * time.Millisecond)
		}
		if n.Load() != 1 {
			t.Errorf("after reconnecting, %d commands delivered, want 1", n.Load())
		}
	})
}

// TestConnectionStateIsOnline: a connected device is online; once its
// connection ends it is offline, on this node at once and in the store
// once flushed, until it connects again.
func TestConnectionStateIsOnline(t *testing.T) {
	forEachStore(t, func(t *testing.T, store iotflow.Store) {
		b := startBroker(t, store, nil)
		ctx := context.Background()
		id, key := b.register("mqtt-online")
		online := func(what string, want bool) {
			t.Helper()
			deadline := time.Now().Add(5 * time.Second)
			for {
				v, err := b.svc.DeviceStatus(ctx, &iotflow.Device{ID: id})
				if err != nil {
					t.Fatal(err)
				}
				if v.IsOnline == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: is_online %v, want %v", what, v.IsOnline, want)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := b.svc.FlushSeen(ctx); err != nil {
				t.Fatal(err)
			}
			dash, err := b.svc.Dashboard(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := dash.OnlineDevices == 1; got != want {
				t.Errorf("%s: the dashboard counts %d online", what, dash.OnlineDevices)
			}
		}
		online("never connected", false)
		c := b.mustConnect("device", key)
		online("connected", true)
		c.Disconnect(100)
		online("disconnected", false)
		d, err := store.Device(ctx, id)
		if err != nil || d.OfflineAt == nil {
			t.Fatalf("the store holds no offline time: %v, %v", d, err)
		}
		c = b.mustConnect("device", key)
		online("connected again", true)
		// With two connections, the end of one leaves the device online.
		c2 := b.mustConnect("device", key)
		c2.Disconnect(100)
		time.Sleep(200 * time.Millisecond)
		online("one of two connections ended", true)
		c.Disconnect(100)
		online("both ended", false)
	})
}
