package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotflow/iotflow/internal/config"
)

var mqttListenRE = regexp.MustCompile(`MQTT listening on mqtt://(\S+)`)

// TestMQTTEndToEnd: the service serves MQTT beside HTTP. A device
// registered over HTTP publishes a reading over MQTT with its key, reads
// it back over HTTP, and /health counts its connection.
func TestMQTTEndToEnd(t *testing.T) {
	for name, envOf := range backendEnvs(t) {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, envOf(t))
			m := mqttListenRE.FindStringSubmatch(s.stdout.String())
			if m == nil {
				t.Fatalf("no MQTT listening line in:\n%s", s.stdout)
			}
			_, reg := call(t, "POST", s.base+"/api/v1/devices/register", map[string]string{"name": "mqtt-e2e", "device_type": "sensor"}, nil)
			dev := reg["device"].(map[string]any)
			key := dev["api_key"].(string)
			c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + m[1]).SetClientID("e2e").
				SetUsername(fmt.Sprint(dev["id"])).SetPassword(key).SetAutoReconnect(false))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("connect: %v", tok.Error())
			}
			defer c.Disconnect(100)
			tok := c.Publish(fmt.Sprintf("iotflow/devices/%v/telemetry", dev["id"]), 1, false, `{"data": {"temperature": 23.5}}`)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
			status, body := call(t, "GET", s.base+"/api/v1/devices/telemetry", nil, map[string]string{"X-API-Key": key})
			if status != 200 || body["count"] != float64(1) {
				t.Errorf("the reading over HTTP: %d %v", status, body)
			}
			_, health := call(t, "GET", s.base+"/health", nil, nil)
			mq, _ := health["mqtt"].(map[string]any)
			if mq["status"] != "listening" || mq["connected"] != float64(1) || !strings.Contains(fmt.Sprint(mq["listeners"]), m[1]) {
				t.Errorf("/health mqtt: %v", mq)
			}
		})
	}
}

// TestMQTTPortTaken: an address that was set and cannot be bound stops
// the start; the default one, taken, leaves MQTT off and says so.
func TestMQTTPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	env := map[string]string{"HOST": "127.0.0.1", "PORT": "0", "LOG_FILE": "off", "LOG_LEVEL": "ERROR",
		"IOTFLOW_DATA_DIR": filepath.Join(t.TempDir(), "data"), "IOTFLOW_MQTT_ADDR": taken.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = run(ctx, []string{"iotflow", "serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "MQTT") {
		t.Fatalf("serve with a taken IOTFLOW_MQTT_ADDR returned %v, want an error", err)
	}

	// The default: the same taken address, as if nobody had set it.
	cfg, err := config.Load(func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MQTTAddrSet = false
	var out syncBuffer
	a, err := newApp(ctx, cfg, slog.New(slog.DiscardHandler), &out)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if err := a.startMQTT(cfg, nil, &out); err != nil {
		t.Fatalf("a taken default address stopped the start: %v", err)
	}
	defer a.mqtt.Close()
	st := a.mqttState.get()
	if st.Status != "unavailable" || !strings.Contains(st.Reason, taken.Addr().String()) || !strings.Contains(out.String(), "MQTT is off") {
		t.Errorf("state %+v, output %q", st, out.String())
	}

	cfg.MQTTAddr = ""
	b, err := newApp(ctx, cfg, slog.New(slog.DiscardHandler), &out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if err := b.startMQTT(cfg, nil, &out); err != nil || b.mqttState.get().Status != "off" {
		t.Errorf("IOTFLOW_MQTT_ADDR=off: %v, %+v", err, b.mqttState.get())
	}
}

// TestMQTTAcknowledgedReadingsSurviveSIGKILL is the SIGKILL test over
// MQTT: devices publish at QoS 1 while the server is killed; every
// reading that got a PUBACK is stored exactly once after the restart, and
// a retry of it stores nothing.
func TestMQTTAcknowledgedReadingsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	for name, envFor := range backendEnvs(t) {
		t.Run(name, func(t *testing.T) {
			env := envFor(t)
			srv := startChild(t, env)
			m := mqttListenRE.FindStringSubmatch(srv.out.String())
			if m == nil {
				t.Fatalf("no MQTT listening line in:\n%s", srv.out)
			}
			code, reg := call(t, "POST", srv.base+"/api/v1/devices/register", map[string]string{"name": "MQTT Crash Test", "device_type": "sensor"}, nil)
			if code != 201 {
				t.Fatalf("register: %d %v", code, reg)
			}
			key := reg["device"].(map[string]any)["api_key"].(string)
			devID := int64(reg["device"].(map[string]any)["id"].(float64))
			topic := fmt.Sprintf("iotflow/devices/%d/telemetry", devID)

			var mu sync.Mutex
			acked := map[string]bool{}
			var wg sync.WaitGroup
			for w := range 8 {
				c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + m[1]).SetClientID(fmt.Sprint("crash-", w)).
					SetUsername("device").SetPassword(key).SetAutoReconnect(false).SetWriteTimeout(2 * time.Second))
				if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("connect: %v", tok.Error())
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Disconnect(0)
					for i := 0; ; i++ {
						msg := fmt.Sprintf("w%d-%d", w, i)
						tok := c.Publish(topic, 1, false, fmt.Sprintf(`{"data":{"i":%d},"message_id":%q}`, i, msg))
						if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
							return // the server is gone
						}
						mu.Lock()
						acked[msg] = true
						mu.Unlock()
					}
				}()
			}
			time.Sleep(1500 * time.Millisecond)
			if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			srv.cmd.Wait()
			wg.Wait()
			if len(acked) < 50 {
				t.Fatalf("only %d readings were acknowledged before the kill", len(acked))
			}
			stored := readStored(t, env, devID)
			for msg := range acked {
				if len(stored[msg]) != 1 {
					t.Fatalf("acknowledged %s is stored %d times", msg, len(stored[msg]))
				}
			}
			t.Logf("%s: %d PUBACKed before SIGKILL, %d stored", name, len(acked), len(stored))

			srv2 := startChild(t, env)
			m2 := mqttListenRE.FindStringSubmatch(srv2.out.String())
			c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + m2[1]).SetClientID("crash-retry").
				SetUsername("device").SetPassword(key).SetAutoReconnect(false))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("connect after the restart: %v", tok.Error())
			}
			n := 0
			for msg := range acked {
				if n++; n > 20 {
					break
				}
				tok := c.Publish(topic, 1, false, fmt.Sprintf(`{"data":{"retry":1},"message_id":%q}`, msg))
				if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
					t.Fatalf("retry of %s: %v", msg, tok.Error())
				}
			}
			c.Disconnect(100)
			srv2.cmd.Process.Signal(syscall.SIGTERM)
			srv2.cmd.Wait()
			if after := readStored(t, env, devID); len(after) != len(stored) {
				t.Fatalf("retries stored readings: %d before, %d after", len(stored), len(after))
			}
		})
	}
}

var mqttsListenRE = regexp.MustCompile(`MQTT listening on mqtts://(\S+)`)

// TestMQTTOverTLS: with a certificate configured, MQTT is also served over
// TLS with it, and a device publishes there as on plain MQTT.
func TestMQTTOverTLS(t *testing.T) {
	f := newCertFiles(t)
	base, out := startTLSServer(t, f.pki.pool, f.certFile, f.keyFile)
	m := mqttsListenRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no MQTT over TLS listening line in:\n%s", out)
	}
	client := httpsClient(t, f.pki.pool)
	res, err := client.Post(base+"/api/v1/devices/register", "application/json", strings.NewReader(`{"name": "mqtts", "device_type": "sensor"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]map[string]any
	decodeBody(res, &reg)
	key := reg["device"]["api_key"].(string)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + m[1]).SetClientID("mqtts").
		SetTLSConfig(&tls.Config{RootCAs: f.pki.pool}).SetUsername("device").SetPassword(key).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect over TLS: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Publish(fmt.Sprintf("iotflow/devices/%v/telemetry", reg["device"]["id"]), 1, false, `{"data": {"t": 1}}`)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over TLS: %v", tok.Error())
	}
	// A client that does not trust the certificate is refused the handshake.
	bad := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + m[1]).SetClientID("untrusting").
		SetTLSConfig(&tls.Config{}).SetUsername("device").SetPassword(key).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := bad.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		t.Error("a client that does not trust the certificate connected")
	}
}

// TestMQTTCommandsAcrossNodes: two servers on one PostgreSQL database,
// with and without Redis; a command issued over HTTP on one reaches a
// device subscribed over MQTT to the other within a second, and so does a
// change of its desired shadow.
func TestMQTTCommandsAcrossNodes(t *testing.T) {
	if os.Getenv("IOTFLOW_TEST_POSTGRES_URL") == "" {
		t.Skip("IOTFLOW_TEST_POSTGRES_URL is not set")
	}
	carriers := map[string]string{"listen-notify": ""}
	if u := os.Getenv("IOTFLOW_TEST_REDIS_URL"); u != "" {
		carriers["redis"] = u
	}
	for name, redisURL := range carriers {
		t.Run(name, func(t *testing.T) {
			env := backendEnvs(t)["postgres"](t)
			env["IOTFLOW_ADMIN_TOKEN"] = downlinkAdmin
			if redisURL != "" {
				env["REDIS_URL"] = redisURL
				env["IOTFLOW_REDIS_PREFIX"] = "iotflow-test:" + randomHex(6) + ":"
			}
			a, b := startServer(t, env), startServer(t, env)
			id, key := registerDevice(t, a.base, "MQTT Roamer")
			m := mqttListenRE.FindStringSubmatch(b.stdout.String())
			got := make(chan paho.Message, 4)
			c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + m[1]).SetClientID("roamer").
				SetUsername("device").SetPassword(key["X-API-Key"]).SetAutoReconnect(false))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("connect to the other node: %v", tok.Error())
			}
			defer c.Disconnect(100)
			for _, topic := range []string{fmt.Sprintf("iotflow/devices/%d/commands", id), fmt.Sprintf("iotflow/devices/%d/shadow/desired", id)} {
				if tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("subscribe %s: %v", topic, tok.Error())
				}
			}
			receive := func(what, topicSuffix string) (paho.Message, time.Time) {
				t.Helper()
				for {
					select {
					case msg := <-got:
						if strings.HasSuffix(msg.Topic(), topicSuffix) {
							return msg, time.Now()
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("no %s on the other node", what)
					}
				}
			}
			receive("shadow at subscribing", "/shadow/desired")
			time.Sleep(300 * time.Millisecond) // the delivery loops wait on b
			for i := range 3 {
				issued := time.Now()
				cid := issue(t, a.base, downlinkAdmin, id, map[string]any{"command": fmt.Sprint("hop", i)})
				msg, at := receive("command", "/commands")
				if !strings.Contains(string(msg.Payload()), fmt.Sprintf(`"id":%d`, cid)) {
					t.Fatalf("delivered %s, want command %d", msg.Payload(), cid)
				}
				if lag := at.Sub(issued); lag > time.Second {
					t.Errorf("the command reached the other node's device %v after it was issued", lag)
				}
			}
			patched := time.Now()
			if code, _ := call(t, "PATCH", fmt.Sprintf("%s/api/v1/admin/devices/%d/shadow", a.base, id),
				map[string]any{"desired": map[string]any{"rate": 2}}, adminHeader(downlinkAdmin)); code != 200 {
				t.Fatalf("patch: %d", code)
			}
			msg, at := receive("desired change", "/shadow/desired")
			if !strings.Contains(string(msg.Payload()), `"rate":2`) || at.Sub(patched) > time.Second {
				t.Errorf("desired change %s after %v", msg.Payload(), at.Sub(patched))
			}
		})
	}
}
