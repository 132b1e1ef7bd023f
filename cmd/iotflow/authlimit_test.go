package main

import (
	"fmt"
	"net/http"
	"os"
	"testing"
)

// TestAuthFailureLimitSparesValidCredentials: behind one address (here
// the loopback), one client failing to authenticate again and again gets
// 429 past IOTFLOW_AUTH_FAILURE_LIMIT_PER_MINUTE, while the devices,
// operators and provisioning beside it are served: with the limits in
// memory and, when a test Redis is given, in Redis.
func TestAuthFailureLimitSparesValidCredentials(t *testing.T) {
	limiters := map[string]string{"memory": ""}
	if u := os.Getenv("IOTFLOW_TEST_REDIS_URL"); u != "" {
		limiters["redis"] = u
	}
	for name, envFor := range backendEnvs(t) {
		for limiter, redisURL := range limiters {
			t.Run(name+"/"+limiter, func(t *testing.T) {
				env := envFor(t)
				if redisURL != "" {
					env["REDIS_URL"] = redisURL
					env["IOTFLOW_REDIS_PREFIX"] = "iotflow-test:" + randomHex(6) + ":"
				}
				const admin, provisioning = "auth-limit-admin-token-123", "auth-limit-provisioning-456"
				env["IOTFLOW_ADMIN_TOKEN"], env["IOTFLOW_PROVISIONING_TOKEN"] = admin, provisioning
				srv := startServer(t, env)
				api := srv.base + "/api/v1"
				reg := func(name string, token string) (int, map[string]any) {
					var h map[string]string
					if token != "" {
						h = map[string]string{"X-Provisioning-Token": token}
					}
					return call(t, "POST", api+"/devices/register", map[string]string{"name": name, "device_type": "sensor"}, h)
				}

				code, body := reg("Behind the NAT", provisioning)
				if code != 201 {
					t.Fatalf("register: %d %v", code, body)
				}
				key := map[string]string{"X-API-Key": body["device"].(map[string]any)["api_key"].(string)}

				statuses := map[int]int{}
				for i := range 25 {
					code, _ := call(t, "GET", api+"/devices/status", nil, map[string]string{"X-API-Key": fmt.Sprint("iot_stale-", i%2)})
					statuses[code]++
				}
				if statuses[401] != 10 || statuses[429] != 15 {
					t.Fatalf("25 wrong keys: %v, want 10 401s then 429s", statuses)
				}

				if code, body := call(t, "GET", api+"/devices/status", nil, key); code != 200 {
					t.Errorf("valid key after the failures: %d %v", code, body)
				}
				if code, body := call(t, "POST", api+"/devices/telemetry", map[string]any{"data": map[string]int{"t": 1}}, key); code != 201 {
					t.Errorf("telemetry after the failures: %d %v", code, body)
				}
				if code, body := call(t, "GET", api+"/admin/devices", nil, map[string]string{"Authorization": "Bearer " + admin}); code != 200 {
					t.Errorf("admin token after the failures: %d %v", code, body)
				}
				if code, body := reg("Provisioned later", provisioning); code != 201 {
					t.Errorf("provisioning token after the failures: %d %v", code, body)
				}

				for _, tc := range []struct {
					name string
					send func() (*http.Response, error)
				}{
					{"wrong key", func() (*http.Response, error) {
						return send("GET", api+"/devices/status", nil, map[string]string{"X-API-Key": "iot_stale-0"})
					}},
					{"missing key", func() (*http.Response, error) { return send("GET", api+"/devices/status", nil, nil) }},
					{"wrong provisioning token", func() (*http.Response, error) {
						return send("POST", api+"/devices/register", map[string]string{"name": "x", "device_type": "s"},
							map[string]string{"X-Provisioning-Token": "wrong"})
					}},
				} {
					res, err := tc.send()
					if err != nil {
						t.Fatal(err)
					}
					res.Body.Close()
					if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
						t.Errorf("%s over the limit: %d, Retry-After %q; want 429 with Retry-After", tc.name, res.StatusCode, res.Header.Get("Retry-After"))
					}
				}
			})
		}
	}
}

func send(method, url string, body any, headers map[string]string) (*http.Response, error) {
	req, err := newRequest(method, url, body, headers)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}
