package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTwoNodesShareOneLimit runs two IoTFlow servers on one database and
// one Redis: a device's telemetry limit holds across both together.
func TestTwoNodesShareOneLimit(t *testing.T) {
	redisURL := os.Getenv("IOTFLOW_TEST_REDIS_URL")
	if redisURL == "" {
		t.Skip("IOTFLOW_TEST_REDIS_URL is not set")
	}
	for name, envFor := range backendEnvs(t) {
		t.Run(name, func(t *testing.T) {
			env := envFor(t)
			env["REDIS_URL"] = redisURL
			env["IOTFLOW_REDIS_PREFIX"] = "iotflow-test:" + randomHex(6) + ":"
			env["IOTFLOW_ADMIN_TOKEN"] = "two-nodes-admin-token-123"
			a, b := startServer(t, env), startServer(t, env)

			code, reg := call(t, "POST", a.base+"/api/v1/devices/register", map[string]string{"name": "Roamer", "device_type": "sensor"}, nil)
			if code != 201 {
				t.Fatalf("register: %d %v", code, reg)
			}
			key := map[string]string{"X-API-Key": reg["device"].(map[string]any)["api_key"].(string)}
			var mu sync.Mutex
			status := map[string]map[int]int{a.base: {}, b.base: {}}
			var wg sync.WaitGroup
			for i := range 130 {
				node := a.base
				if i%2 == 1 {
					node = b.base
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, _ := call(t, "POST", node+"/api/v1/devices/telemetry", map[string]any{"data": map[string]int{"i": i}}, key)
					mu.Lock()
					status[node][code]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			accepted := status[a.base][201] + status[b.base][201]
			rejected := status[a.base][429] + status[b.base][429]
			if accepted < 98 || accepted > 103 || accepted+rejected != 130 || status[a.base][201] == 0 || status[b.base][201] == 0 {
				t.Fatalf("two nodes accepted %d, rejected %d (%v); want one limit of about 100 across both\n%s\n%s", accepted, rejected, status, a.stdout, b.stdout)
			}
			code, st := call(t, "GET", b.base+"/api/v1/devices/status", nil, key)
			if code != 429 && (code != 200 || st["device"].(map[string]any)["telemetry_count"] != float64(accepted)) {
				t.Fatalf("status: %d %v, want telemetry_count %d", code, st, accepted)
			}
		})
	}
}

// TestSlowHeadersAreCutOff: a client that trickles its headers is
// disconnected after the read-header timeout.
func TestSlowHeadersAreCutOff(t *testing.T) {
	env := map[string]string{"IOTFLOW_DATA_DIR": t.TempDir(), "IOTFLOW_READ_HEADER_TIMEOUT": "1s"}
	srv := startServer(t, env)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprint(conn, "GET /health HTTP/1.1\r\nHost: x\r\n")
	cut := false
	for i := 0; i < 40 && !cut; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, err := fmt.Fprintf(conn, "X-Slow-%d: 1\r\n", i); err != nil {
			cut = true
		}
		conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := conn.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			cut = true
		}
	}
	if !cut {
		t.Fatal("a client trickling headers for 4 s was not cut off")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("cut off only after %s", el)
	}
}
