package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const mosquittoAdmin = "mosquitto-interop-admin-token"

// mosquittoRun is how one run of a Mosquitto client ended.
type mosquittoRun struct {
	code           int
	stdout, stderr string
}

func (r mosquittoRun) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// startMosquitto starts a Mosquitto client as a process; the channel
// gives how it ended, within timeout (past it the test fails).
func startMosquitto(t *testing.T, timeout time.Duration, name string, args ...string) <-chan mosquittoRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan mosquittoRun, 1)
	go func() {
		defer cancel()
		err := cmd.Wait()
		r := mosquittoRun{stdout: stdout.String(), stderr: stderr.String()}
		var exit *exec.ExitError
		switch {
		case ctx.Err() != nil:
			r.code = -1
			r.stderr += fmt.Sprintf("\n[killed after %v: %v]", timeout, ctx.Err())
		case errors.As(err, &exit):
			r.code = exit.ExitCode()
		case err != nil:
			r.code = -1
			r.stderr += "\n[" + err.Error() + "]"
		}
		done <- r
	}()
	return done
}

// runMosquitto runs a Mosquitto client to its end.
func runMosquitto(t *testing.T, name string, args ...string) mosquittoRun {
	t.Helper()
	r := <-startMosquitto(t, 20*time.Second, name, args...)
	if r.code == -1 {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), r)
	}
	return r
}

// mqttConnected is /health's count of connected MQTT clients.
func mqttConnected(t *testing.T, base string) float64 {
	t.Helper()
	code, health := call(t, "GET", base+"/health", nil, nil)
	mq, _ := health["mqtt"].(map[string]any)
	n, ok := mq["connected"].(float64)
	if code != 200 || !ok {
		t.Fatalf("/health: %d %v", code, health)
	}
	return n
}

// waitConnected waits until /health counts want(connected) true.
func waitConnected(t *testing.T, base, what string, want func(float64) bool, sub <-chan mosquittoRun) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := mqttConnected(t, base)
		if want(n) {
			return
		}
		if sub != nil {
			select {
			case r := <-sub:
				t.Fatalf("mosquitto_sub ended before it was connected: %v", r)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health never counted %s MQTT clients (connected: %v)", what, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readings is the device's stored readings over HTTP, newest first.
func readings(t *testing.T, base string, key map[string]string) []any {
	t.Helper()
	code, body := call(t, "GET", base+"/api/v1/devices/telemetry", nil, key)
	if code != 200 {
		t.Fatalf("GET telemetry: %d %v", code, body)
	}
	tel, _ := body["telemetry"].([]any)
	if body["count"] != float64(len(tel)) {
		t.Fatalf("GET telemetry: count %v for %d readings: %v", body["count"], len(tel), body)
	}
	return tel
}

// TestMosquittoClients: Debian's Mosquitto command-line clients, run as
// processes, speak to IoTFlow's MQTT: mosquitto_pub stores readings with
// MQTT 3.1.1 and 5 and is refused with a wrong key; mosquitto_sub
// receives a command issued over HTTP, and nothing of another device's.
func TestMosquittoClients(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not in PATH: .ci/run installs it (Debian's mosquitto-clients)", tool)
		}
	}
	for name, envOf := range backendEnvs(t) {
		t.Run(name, func(t *testing.T) {
			env := envOf(t)
			env["IOTFLOW_ADMIN_TOKEN"] = mosquittoAdmin
			s := startServer(t, env)
			m := mqttListenRE.FindStringSubmatch(s.stdout.String())
			if m == nil {
				t.Fatalf("no MQTT listening line in:\n%s", s.stdout)
			}
			host, port, err := net.SplitHostPort(m[1])
			if err != nil || port == "1883" {
				t.Fatalf("MQTT address %q: %v", m[1], err)
			}
			id, key := registerDevice(t, s.base, "Mosquitto")
			other, _ := registerDevice(t, s.base, "Neighbour")
			apiKey := key["X-API-Key"]
			devTopic := func(dev int64, rest string) string { return fmt.Sprintf("iotflow/devices/%d/%s", dev, rest) }
			conn := []string{"-h", host, "-p", port}

			for i, c := range []struct {
				name  string
				creds []string
			}{
				{"mqttv311", []string{"-V", "mqttv311", "-u", fmt.Sprint(id), "-P", apiKey}},
				{"mqttv5", []string{"-V", "mqttv5", "-u", fmt.Sprint(id), "-P", apiKey}},
				{"key-as-username", []string{"-V", "mqttv311", "-u", apiKey}},
			} {
				t.Run("publish/"+c.name, func(t *testing.T) {
					temp := 21.5 + float64(i)
					args := append(append(append([]string{}, conn...), c.creds...), "-q", "1",
						"-t", devTopic(id, "telemetry"), "-m", fmt.Sprintf(`{"data":{"temperature":%v}}`, temp))
					if r := runMosquitto(t, "mosquitto_pub", args...); r.code != 0 {
						t.Fatalf("mosquitto_pub: %v", r)
					}
					tel := readings(t, s.base, key)
					if len(tel) != i+1 {
						t.Fatalf("%d readings after %d publishes: %v", len(tel), i+1, tel)
					}
					first, _ := tel[0].(map[string]any)
					if p, _ := first["payload"].(map[string]any); p["temperature"] != temp {
						t.Errorf("the newest reading: %v, want temperature %v", first, temp)
					}
				})
			}

			// A wrong key: the CONNACK refuses it (MQTT 3.1.1 return code 4,
			// MQTT 5 reason code 0x86), and mosquitto_pub exits with that code.
			for _, c := range []struct {
				version string
				code    int
			}{{"mqttv311", 4}, {"mqttv5", 0x86}} {
				t.Run("wrong-key/"+c.version, func(t *testing.T) {
					before := len(readings(t, s.base, key))
					args := append(append([]string{}, conn...), "-V", c.version, "-u", fmt.Sprint(id), "-P", "not-the-key-"+apiKey,
						"-q", "1", "-t", devTopic(id, "telemetry"), "-m", `{"data":{"temperature":99}}`)
					r := runMosquitto(t, "mosquitto_pub", args...)
					if r.code != c.code || !strings.Contains(strings.ToLower(r.stderr), "bad user name or password") {
						t.Errorf("mosquitto_pub with a wrong key: %v, want exit %d and the refusal on stderr", r, c.code)
					}
					if after := len(readings(t, s.base, key)); after != before {
						t.Errorf("a refused publish was stored: %d readings, before %d", after, before)
					}
				})
			}

			for _, v := range []string{"mqttv311", "mqttv5"} {
				t.Run("commands/"+v, func(t *testing.T) {
					// The publishers have gone: the subscriber is the one client /health counts.
					waitConnected(t, s.base, "no", func(n float64) bool { return n == 0 }, nil)
					args := append(append([]string{}, conn...), "-V", v, "-u", fmt.Sprint(id), "-P", apiKey,
						"-q", "1", "-t", devTopic(id, "commands"), "-C", "1", "-W", "10")
					sub := startMosquitto(t, 20*time.Second, "mosquitto_sub", args...)
					waitConnected(t, s.base, "1 or more", func(n float64) bool { return n >= 1 }, sub)
					cid := issue(t, s.base, mosquittoAdmin, id, map[string]any{"command": "reboot", "parameters": map[string]any{"delay": 5}})
					r := <-sub
					if r.code != 0 {
						t.Fatalf("mosquitto_sub: %v", r)
					}
					var got map[string]any
					if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
						t.Fatalf("mosquitto_sub printed no command JSON: %v: %v", err, r)
					}
					params, _ := got["parameters"].(map[string]any)
					if got["id"] != float64(cid) || got["command"] != "reboot" || got["device_id"] != float64(id) || params["delay"] != float64(5) {
						t.Errorf("mosquitto_sub printed %v, want command %d: reboot {delay: 5} of device %d", got, cid, id)
					}
					if st := commandStatus(t, s.base, mosquittoAdmin, cid); st != "sent" {
						t.Errorf("the delivered command is %s, want sent", st)
					}
				})
			}

			// Another device's commands: the broker denies the subscription
			// in its SUBACK (0x80 in MQTT 3.1.1, 0x87 not authorized in MQTT
			// 5); mosquitto_sub then says so, disconnects and exits 0, having
			// received nothing, and the other device's command stays pending.
			for _, c := range []struct {
				version string
				suback  int
			}{{"mqttv311", 0x80}, {"mqttv5", 0x87}} {
				t.Run("other-device/"+c.version, func(t *testing.T) {
					cid := issue(t, s.base, mosquittoAdmin, other, map[string]any{"command": "unlock"})
					args := append(append([]string{}, conn...), "-V", c.version, "-u", fmt.Sprint(id), "-P", apiKey,
						"-d", "-q", "1", "-t", devTopic(other, "commands"), "-C", "1", "-W", "5")
					r := runMosquitto(t, "mosquitto_sub", args...)
					if strings.Contains(r.stdout, "unlock") || strings.Contains(r.stdout, "PUBLISH") {
						t.Errorf("device %d received device %d's command: %v", id, other, r)
					}
					if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("Subscribed (mid: 1): %d", c.suback)) ||
						!strings.Contains(r.stderr, "All subscription requests were denied") {
						t.Errorf("mosquitto_sub of another device's commands: %v, want SUBACK %d, the denial on stderr and exit 0", r, c.suback)
					}
					if st := commandStatus(t, s.base, mosquittoAdmin, cid); st != "pending" {
						t.Errorf("another device's command is %s after the denied subscription, want pending", st)
					}
				})
			}
		})
	}
}
