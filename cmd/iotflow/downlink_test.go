package main

import (
	"fmt"
	"os"
	"testing"
	"time"
)

const downlinkAdmin = "downlink-admin-token-0123456789"

func adminHeader(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

func registerDevice(t *testing.T, base, name string) (int64, map[string]string) {
	t.Helper()
	code, reg := call(t, "POST", base+"/api/v1/devices/register", map[string]string{"name": name, "device_type": "sensor"}, nil)
	if code != 201 {
		t.Fatalf("register: %d %v", code, reg)
	}
	d := reg["device"].(map[string]any)
	return int64(d["id"].(float64)), map[string]string{"X-API-Key": d["api_key"].(string)}
}

func issue(t *testing.T, base, token string, deviceID int64, body map[string]any) int64 {
	t.Helper()
	code, c := call(t, "POST", fmt.Sprintf("%s/api/v1/admin/devices/%d/commands", base, deviceID), body, adminHeader(token))
	if code != 201 {
		t.Fatalf("issue: %d %v", code, c)
	}
	return int64(c["id"].(float64))
}

func commandStatus(t *testing.T, base, token string, id int64) string {
	t.Helper()
	code, c := call(t, "GET", fmt.Sprintf("%s/api/v1/admin/commands/%d", base, id), nil, adminHeader(token))
	if code != 200 {
		t.Fatalf("get command: %d %v", code, c)
	}
	return c["status"].(string)
}

// TestCommandsSurviveSIGKILL: a pending command outlives a killed server
// and is delivered after the restart; one the device took before and
// never answered times out after the restart, by the sweeper of the new
// process.
func TestCommandsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	for name, envFor := range backendEnvs(t) {
		t.Run(name, func(t *testing.T) {
			env := envFor(t)
			const token = "durability-test-admin-token"
			srv := startChild(t, env)
			id, key := registerDevice(t, srv.base, "Forgetful")
			taken := issue(t, srv.base, token, id, map[string]any{"command": "blink", "timeout_seconds": 2})
			code, got := call(t, "GET", srv.base+"/api/v1/devices/commands", nil, key)
			if code != 200 || len(got["commands"].([]any)) != 1 {
				t.Fatalf("take: %d %v", code, got)
			}
			waiting := issue(t, srv.base, token, id, map[string]any{"command": "reboot", "parameters": map[string]any{"delay": 1}})
			srv.cmd.Process.Kill()
			srv.cmd.Wait()

			time.Sleep(2500 * time.Millisecond) // past the taken command's timeout, while down
			srv = startChild(t, env)
			deadline := time.Now().Add(5 * time.Second)
			for commandStatus(t, srv.base, token, taken) != "timed_out" {
				if time.Now().After(deadline) {
					t.Fatalf("the command taken before the crash is %s, want timed_out", commandStatus(t, srv.base, token, taken))
				}
				time.Sleep(100 * time.Millisecond)
			}
			code, got = call(t, "GET", srv.base+"/api/v1/devices/commands?wait=5", nil, key)
			cs, _ := got["commands"].([]any)
			if code != 200 || len(cs) != 1 || cs[0].(map[string]any)["id"] != float64(waiting) {
				t.Fatalf("after the restart: %d %v", code, got)
			}
		})
	}
}

// TestLongPollsAcrossNodes runs two servers on one PostgreSQL database, with
// and without Redis: a command issued on one answers a long poll waiting on
// the other within a second, and a shadow change wakes a shadow wait there.
func TestLongPollsAcrossNodes(t *testing.T) {
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
			id, key := registerDevice(t, a.base, "Roamer")
			for i := range 3 {
				type polled struct {
					code int
					body map[string]any
					at   time.Time
				}
				got := make(chan polled, 1)
				go func() {
					code, body := call(t, "GET", b.base+"/api/v1/devices/commands?wait=20", nil, key)
					got <- polled{code, body, time.Now()}
				}()
				time.Sleep(300 * time.Millisecond) // the poll waits on b
				issued := time.Now()
				c := issue(t, a.base, downlinkAdmin, id, map[string]any{"command": fmt.Sprint("hop", i)})
				select {
				case p := <-got:
					cs, _ := p.body["commands"].([]any)
					if p.code != 200 || len(cs) != 1 || cs[0].(map[string]any)["id"] != float64(c) {
						t.Fatalf("poll on the other node: %d %v", p.code, p.body)
					}
					if lag := p.at.Sub(issued); lag > time.Second {
						t.Errorf("the other node answered %v after the command", lag)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("a command issued on one node did not answer the poll on the other")
				}
			}
			type shadowRead struct {
				code int
				body map[string]any
				at   time.Time
			}
			got := make(chan shadowRead, 1)
			go func() {
				code, body := call(t, "GET", b.base+"/api/v1/devices/shadow?wait=20", nil,
					map[string]string{"X-API-Key": key["X-API-Key"], "If-None-Match": `"0"`})
				got <- shadowRead{code, body, time.Now()}
			}()
			time.Sleep(300 * time.Millisecond)
			code, _ := call(t, "PATCH", fmt.Sprintf("%s/api/v1/admin/devices/%d/shadow", a.base, id),
				map[string]any{"desired": map[string]any{"rate": 1}}, adminHeader(downlinkAdmin))
			if code != 200 {
				t.Fatalf("patch: %d", code)
			}
			patched := time.Now()
			select {
			case r := <-got:
				if r.code != 200 || r.body["version"] != 1.0 {
					t.Errorf("shadow wait on the other node: %d %v", r.code, r.body)
				}
				if lag := r.at.Sub(patched); lag > time.Second {
					t.Errorf("the other node's shadow wait answered %v after the change", lag)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a shadow change on one node did not wake the wait on the other")
			}
			// The device that posts on b learns of the new version there.
			code, tel := call(t, "POST", b.base+"/api/v1/devices/telemetry", map[string]any{"data": map[string]any{"t": 1}}, key)
			if code != 201 || tel["shadow_version"] != 1.0 {
				t.Errorf("telemetry on the other node: %d %v", code, tel)
			}
		})
	}
}

// TestShutdownReleasesLongPolls: a long poll does not hold up shutdown;
// it answers at once, with nothing.
func TestShutdownReleasesLongPolls(t *testing.T) {
	env := map[string]string{"IOTFLOW_DATA_DIR": t.TempDir()}
	srv := startServer(t, env)
	_, key := registerDevice(t, srv.base, "Patient")
	got := make(chan int, 1)
	go func() {
		code, body := call(t, "GET", srv.base+"/api/v1/devices/commands?wait=60", nil, key)
		if cs, ok := body["commands"].([]any); !ok || len(cs) != 0 {
			code = -1
		}
		got <- code
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a long poll waiting", took)
	}
	select {
	case code := <-got:
		if code != 200 {
			t.Errorf("the long poll ended with %d", code)
		}
	case <-time.After(time.Second):
		t.Fatal("the long poll did not end with the server")
	}
}
