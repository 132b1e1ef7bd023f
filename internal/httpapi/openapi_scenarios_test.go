package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/dbhealth"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/sqlite"
	"github.com/iotflow/iotflow/internal/testdb"
)

func contractDevices(t *testing.T, c *contract, store iotflow.Store) {
	c.t = t
	a := contractAPI(t, store, httpapi.Deps{MaxBodyBytes: 4 << 10, MaxBatchBodyBytes: 16 << 10, MaxBatch: 50})
	const register = "/api/v1/devices/register"
	_, k := c.registerDevice(a, "Greenhouse Sensor")
	c.do(a, exchange{method: "POST", path: register, want: 201, validRequest: true, body: map[string]any{
		"name": "Full", "device_type": "sensor", "description": "soil and air", "location": "Greenhouse",
		"firmware_version": "1.0.0", "hardware_version": "v2"}})
	c.do(a, exchange{method: "POST", path: register, want: 409, body: map[string]string{"name": "Greenhouse Sensor", "device_type": "sensor"}})
	c.do(a, exchange{method: "POST", path: register, want: 400, body: map[string]string{"device_type": "sensor"}})
	c.do(a, exchange{method: "POST", path: register, want: 400, body: `{"name":"a","device_type":"s"}`, headers: []string{"Content-Type", "text/plain"}})
	c.do(a, exchange{method: "POST", path: register, want: 400, body: `{"name":"a",`})
	c.do(a, exchange{method: "POST", path: register, want: 413, body: map[string]string{"name": "big", "device_type": "s", "description": strings.Repeat("d", 5000)}})

	const status = "/api/v1/devices/status"
	c.do(a, exchange{method: "GET", path: status, headers: key(k), want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: status, want: 401})
	c.do(a, exchange{method: "GET", path: status, headers: key("iot_not-a-key"), want: 401})

	const telemetry = "/api/v1/devices/telemetry"
	c.do(a, exchange{method: "POST", path: telemetry, headers: key(k), want: 201, validRequest: true,
		body: map[string]any{"data": map[string]any{"temperature": 22.5, "humidity": 61}, "metadata": map[string]string{"unit": "C"}, "type": "sensor"}})
	msg := map[string]any{"data": map[string]any{"temperature": 22.4}, "timestamp": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "message_id": "reading-000123"}
	c.do(a, exchange{method: "POST", path: telemetry, headers: key(k), want: 201, validRequest: true, body: msg})
	r := c.do(a, exchange{method: "POST", path: telemetry, headers: key(k), want: 201, validRequest: true, body: msg})
	if r.body["duplicate"] != true {
		t.Errorf("a repeated message_id is not a duplicate: %s", r.raw)
	}
	c.do(a, exchange{method: "POST", path: telemetry, headers: key(k), want: 201, validRequest: true,
		body: map[string]any{"data": map[string]any{"t": 1}, "timestamp": time.Now().Add(-time.Hour).UnixMilli()}})
	c.do(a, exchange{method: "POST", path: telemetry, headers: key(k), want: 400, body: map[string]any{"metadata": map[string]any{}}})
	c.do(a, exchange{method: "POST", path: telemetry, headers: key(k), want: 400, body: map[string]any{"data": map[string]any{"t": 1}, "timestamp": 1764424800}})
	c.do(a, exchange{method: "POST", path: telemetry, headers: key(k), want: 413, body: map[string]any{"data": map[string]string{"blob": strings.Repeat("x", 5000)}}})

	const batch = "/api/v1/devices/telemetry/batch"
	rec := func(i int) map[string]any {
		return map[string]any{"data": map[string]any{"temperature": 20 + i}, "timestamp": time.Now().Add(-time.Duration(i) * time.Second).UnixMilli(), "message_id": fmt.Sprint("batch-", i)}
	}
	c.do(a, exchange{method: "POST", path: batch, headers: key(k), want: 201, validRequest: true, body: map[string]any{"records": []any{rec(1), rec(2)}}})
	r = c.do(a, exchange{method: "POST", path: batch, headers: key(k), want: 201, validRequest: true, body: map[string]any{"records": []any{rec(1), rec(3)}}})
	if !strings.Contains(string(r.raw), `"duplicate":true`) {
		t.Errorf("a repeated message_id in a batch is not a duplicate: %s", r.raw)
	}
	c.do(a, exchange{method: "POST", path: batch, headers: key(k), want: 207, body: map[string]any{"records": []any{rec(4), map[string]any{"data": "not an object"}, 5}}})
	c.do(a, exchange{method: "POST", path: batch, headers: key(k), want: 400, body: map[string]any{"records": []any{map[string]any{}, map[string]any{"data": []int{1}}}}})
	c.do(a, exchange{method: "POST", path: batch, headers: key(k), want: 400, body: map[string]any{"data": map[string]any{"t": 1}}})
	c.do(a, exchange{method: "POST", path: batch, headers: key(k), want: 400, body: map[string]any{"records": []any{}}})
	many := make([]any, 51)
	for i := range many {
		many[i] = rec(i)
	}
	c.do(a, exchange{method: "POST", path: batch, headers: key(k), want: 400, body: map[string]any{"records": many}})
	c.do(a, exchange{method: "POST", path: batch, headers: key(k), want: 413, body: map[string]any{"records": []any{map[string]any{"data": map[string]string{"blob": strings.Repeat("x", 17<<10)}}}}})
	c.do(a, exchange{method: "POST", path: batch, want: 401, body: map[string]any{"records": []any{rec(1)}}})

	r = c.do(a, exchange{method: "GET", path: telemetry + "?limit=10&offset=0&type=sensor", headers: key(k), want: 200, validRequest: true})
	if n, _ := r.body["count"].(float64); n < 5 {
		t.Errorf("device telemetry: %s", r.raw)
	}
	c.do(a, exchange{method: "GET", path: telemetry + "?limit=5000", headers: key(k), want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: telemetry + "?limit=0", headers: key(k), want: 400})
	c.do(a, exchange{method: "GET", path: telemetry + "?offset=x", headers: key(k), want: 400})
	c.do(a, exchange{method: "GET", path: telemetry, want: 401})

	const cfg = "/api/v1/devices/config"
	c.do(a, exchange{method: "PUT", path: cfg, headers: key(k), want: 200, validRequest: true, body: map[string]any{"firmware_version": "1.0.1", "location": "Greenhouse 2"}})
	c.do(a, exchange{method: "PUT", path: cfg, headers: key(k), want: 200, validRequest: true, body: map[string]any{"location": nil, "status": "active"}})
	c.do(a, exchange{method: "PUT", path: cfg, headers: key(k), want: 400, body: map[string]any{}})
	c.do(a, exchange{method: "PUT", path: cfg, headers: key(k), want: 400, body: map[string]any{"status": "broken"}})
	c.do(a, exchange{method: "PUT", path: cfg, headers: key(k), want: 400, body: map[string]any{"firmware_version": strings.Repeat("1", 21)}})
	c.do(a, exchange{method: "PUT", path: cfg, headers: key(k), want: 413, body: map[string]any{"location": strings.Repeat("l", 5000)}})
	c.do(a, exchange{method: "PUT", path: cfg, want: 401, body: map[string]any{"location": "x"}})

	const heartbeat = "/api/v1/devices/heartbeat"
	c.do(a, exchange{method: "POST", path: heartbeat, headers: key(k), want: 200, validRequest: true})
	c.do(a, exchange{method: "POST", path: heartbeat, want: 401})
	c.do(a, exchange{method: "POST", path: telemetry, headers: key("iot_not-a-key"), want: 401, body: map[string]any{"data": map[string]any{"t": 1}}})

	const rotate = "/api/v1/devices/keys/rotate"
	r = c.do(a, exchange{method: "POST", path: rotate + "?revoke_old=false", headers: key(k), want: 201, validRequest: true})
	k2 := r.body["api_key"].(string)
	c.do(a, exchange{method: "POST", path: rotate + "?revoke_old=true", headers: key(k2), want: 201, validRequest: true})
	c.do(a, exchange{method: "POST", path: rotate + "?revoke_old=maybe", headers: key(k), want: 400})
	c.do(a, exchange{method: "POST", path: rotate, headers: key(k2), want: 401})
	c.do(a, exchange{method: "GET", path: status, headers: key(k), want: 200})

	// A device that sets itself inactive is refused everywhere.
	c.do(a, exchange{method: "PUT", path: cfg, headers: key(k), want: 200, validRequest: true, body: map[string]any{"status": "maintenance"}})
	for _, e := range []exchange{
		{method: "GET", path: status}, {method: "GET", path: telemetry},
		{method: "GET", path: telemetry + "/series"}, {method: "GET", path: telemetry + "/latest"},
		{method: "POST", path: telemetry, body: map[string]any{"data": map[string]any{"t": 1}}},
		{method: "POST", path: batch, body: map[string]any{"records": []any{rec(9)}}},
		{method: "PUT", path: cfg, body: map[string]any{"status": "active"}},
		{method: "POST", path: heartbeat}, {method: "POST", path: rotate},
	} {
		e.headers, e.want = key(k), 403
		c.do(a, e)
	}
}

func contractAdmin(t *testing.T, c *contract, store iotflow.Store) {
	c.t = t
	a := contractAPI(t, store, httpapi.Deps{MaxBodyBytes: 4 << 10})
	id, k := c.registerDevice(a, "Greenhouse Sensor")
	other, _ := c.registerDevice(a, "Door Lock")
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/telemetry", headers: key(k), want: 201,
		body: map[string]any{"data": map[string]any{"temperature": 21}, "message_id": "m-1"}})
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/heartbeat", headers: key(k), want: 200})
	dev := fmt.Sprintf("/api/v1/admin/devices/%d", id)

	const devices = "/api/v1/admin/devices"
	c.do(a, exchange{method: "GET", path: devices, headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: devices + "?page=1&per_page=500&status=active&type=sensor&search=green", headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: devices + "?page=9", headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: devices + "?status=bogus", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: devices + "?page=0", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: devices, want: 401})
	c.do(a, exchange{method: "GET", path: devices, headers: []string{"Authorization", "Bearer not-the-token-0123456789"}, want: 401})
	c.do(a, exchange{method: "GET", path: devices, headers: key(k), want: 401})

	c.do(a, exchange{method: "GET", path: dev, headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: fmt.Sprintf("/api/v1/admin/devices/%d", other), headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/devices/999999", headers: bearer, want: 404})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/devices/abc", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: dev, want: 401})

	c.do(a, exchange{method: "PUT", path: dev, headers: bearer, want: 200, validRequest: true, body: map[string]any{"status": "maintenance", "description": "checked"}})
	c.do(a, exchange{method: "PUT", path: dev, headers: bearer, want: 200, validRequest: true, body: map[string]any{"status": "active", "name": "Greenhouse Sensor 2"}})
	c.do(a, exchange{method: "PUT", path: dev, headers: bearer, want: 409, body: map[string]any{"name": "Door Lock"}})
	c.do(a, exchange{method: "PUT", path: dev, headers: bearer, want: 400, body: map[string]any{"status": "gone"}})
	c.do(a, exchange{method: "PUT", path: dev, headers: bearer, want: 400, body: map[string]any{}})
	c.do(a, exchange{method: "PUT", path: dev, headers: bearer, want: 413, body: map[string]any{"description": strings.Repeat("d", 5000)}})
	c.do(a, exchange{method: "PUT", path: "/api/v1/admin/devices/999999", headers: bearer, want: 404, body: map[string]any{"status": "active"}})
	c.do(a, exchange{method: "PUT", path: dev, want: 401, body: map[string]any{"status": "active"}})

	keys := dev + "/keys"
	c.do(a, exchange{method: "GET", path: keys, headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/devices/999999/keys", headers: bearer, want: 404})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/devices/0/keys", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: keys, want: 401})
	r := c.do(a, exchange{method: "POST", path: keys, headers: bearer, want: 201, validRequest: true, body: map[string]any{"expires_at": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)}})
	keyID := int64(r.body["key"].(map[string]any)["id"].(float64))
	c.do(a, exchange{method: "POST", path: keys, headers: bearer, want: 201, validRequest: true})
	c.do(a, exchange{method: "POST", path: keys, headers: bearer, want: 400, body: map[string]any{"expires_at": "2001-01-01T00:00:00Z"}})
	c.do(a, exchange{method: "POST", path: keys, headers: bearer, want: 400, body: map[string]any{"expires_at": "tomorrow"}})
	c.do(a, exchange{method: "POST", path: keys, headers: bearer, want: 413, body: map[string]any{"note": strings.Repeat("n", 5000)}})
	c.do(a, exchange{method: "POST", path: "/api/v1/admin/devices/999999/keys", headers: bearer, want: 404})
	c.do(a, exchange{method: "POST", path: keys, want: 401})
	c.do(a, exchange{method: "GET", path: keys, headers: bearer, want: 200, validRequest: true})

	revoke := fmt.Sprintf("%s/%d", keys, keyID)
	c.do(a, exchange{method: "DELETE", path: revoke, headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "DELETE", path: revoke, headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "DELETE", path: keys + "/999999", headers: bearer, want: 404})
	c.do(a, exchange{method: "DELETE", path: keys + "/x", headers: bearer, want: 400})
	c.do(a, exchange{method: "DELETE", path: revoke, want: 401})

	c.do(a, exchange{method: "GET", path: "/api/v1/admin/dashboard", headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/dashboard", want: 401})

	const tel = "/api/v1/admin/telemetry"
	c.do(a, exchange{method: "GET", path: tel, headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: fmt.Sprintf("%s?page=1&per_page=1000&device_id=%d&type=sensor&hours=24", tel, id), headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: tel + "?hours=0.5", headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: tel + "?hours=-1", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: tel + "?device_id=first", headers: bearer, want: 400})
	c.do(a, exchange{method: "GET", path: tel, want: 401})

	c.do(a, exchange{method: "DELETE", path: dev, headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "DELETE", path: dev, headers: bearer, want: 404})
	c.do(a, exchange{method: "DELETE", path: "/api/v1/admin/devices/-1", headers: bearer, want: 400})
	c.do(a, exchange{method: "DELETE", path: dev, want: 401})
	c.do(a, exchange{method: "GET", path: "/api/v1/devices/status", headers: key(k), want: 401})
}

// contractRateLimits meets every kind of rate limit.
func contractRateLimits(t *testing.T, c *contract, store iotflow.Store) {
	c.t = t
	a := contractAPI(t, store, httpapi.Deps{Limits: contractLimits(3)})
	const register = "/api/v1/devices/register"
	_, k := c.registerDevice(a, "Limited 1")
	_, k2 := c.registerDevice(a, "Limited 2")
	_, k3 := c.registerDevice(a, "Limited 3")
	c.do(a, exchange{method: "POST", path: register, want: 429, body: map[string]string{"name": "Limited 4", "device_type": "s"}})

	// The device limit: status, telemetry reads, config, heartbeat, rotation.
	for _, e := range []exchange{
		{method: "GET", path: "/api/v1/devices/status", want: 200},
		{method: "GET", path: "/api/v1/devices/telemetry/series", want: 200},
		{method: "GET", path: "/api/v1/devices/telemetry/latest", want: 200},
		{method: "PUT", path: "/api/v1/devices/config", body: map[string]any{"location": "x"}, want: 429},
		{method: "GET", path: "/api/v1/devices/status", want: 429},
		{method: "GET", path: "/api/v1/devices/telemetry", want: 429},
		{method: "GET", path: "/api/v1/devices/telemetry/series", want: 429},
		{method: "GET", path: "/api/v1/devices/telemetry/latest", want: 429},
		{method: "POST", path: "/api/v1/devices/heartbeat", want: 429},
		{method: "POST", path: "/api/v1/devices/keys/rotate", want: 429},
		{method: "GET", path: "/api/v1/devices/commands", want: 429},
		{method: "POST", path: "/api/v1/devices/commands/1/result", body: map[string]any{"status": "completed"}, want: 429},
		{method: "GET", path: "/api/v1/devices/shadow", want: 429},
		{method: "PATCH", path: "/api/v1/devices/shadow/reported", body: map[string]any{"a": 1}, want: 429},
		{method: "GET", path: "/api/v1/devices/config", want: 429},
		{method: "POST", path: "/api/v1/devices/config", body: map[string]any{"config_key": "a", "config_value": "b"}, want: 429},
	} {
		e.headers = key(k)
		c.do(a, e)
	}
	c.do(a, exchange{method: "PUT", path: "/api/v1/devices/config", headers: key(k2), want: 200, body: map[string]any{"location": "x"}})
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/keys/rotate", headers: key(k3), want: 201})

	// The telemetry limit, then the backlog allowance of batches.
	reading := map[string]any{"data": map[string]any{"t": 1}}
	for range 3 {
		c.do(a, exchange{method: "POST", path: "/api/v1/devices/telemetry", headers: key(k2), want: 201, body: reading})
	}
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/telemetry", headers: key(k2), want: 429, body: reading})
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/telemetry/batch", headers: key(k2), want: 201, body: map[string]any{"records": []any{reading, reading, reading}}})
	c.do(a, exchange{method: "POST", path: "/api/v1/devices/telemetry/batch", headers: key(k2), want: 429, body: map[string]any{"records": []any{reading}}})

	// The admin limit, the metrics included.
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/dashboard", headers: bearer, want: 200})
	c.do(a, exchange{method: "GET", path: "/metrics", headers: bearer, want: 200})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/devices", headers: bearer, want: 200})
	for _, e := range []exchange{
		{method: "GET", path: "/metrics"}, {method: "GET", path: "/api/v1/admin/devices"},
		{method: "GET", path: "/api/v1/admin/devices/1"}, {method: "PUT", path: "/api/v1/admin/devices/1", body: map[string]any{"status": "active"}},
		{method: "DELETE", path: "/api/v1/admin/devices/1"}, {method: "GET", path: "/api/v1/admin/devices/1/keys"},
		{method: "POST", path: "/api/v1/admin/devices/1/keys"}, {method: "DELETE", path: "/api/v1/admin/devices/1/keys/1"},
		{method: "GET", path: "/api/v1/admin/dashboard"}, {method: "GET", path: "/api/v1/admin/telemetry"},
		{method: "GET", path: "/api/v1/admin/devices/1/telemetry"}, {method: "GET", path: "/api/v1/admin/devices/1/telemetry/series"},
		{method: "GET", path: "/api/v1/admin/devices/1/telemetry/latest"}, {method: "GET", path: "/api/v1/admin/devices/1/telemetry/keys"},
		{method: "GET", path: "/api/v1/admin/telemetry/export"},
		{method: "POST", path: "/api/v1/admin/devices/1/commands", body: map[string]any{"command": "x"}},
		{method: "GET", path: "/api/v1/admin/devices/1/commands"},
		{method: "GET", path: "/api/v1/admin/commands/1"}, {method: "DELETE", path: "/api/v1/admin/commands/1"},
		{method: "GET", path: "/api/v1/admin/devices/1/shadow"},
		{method: "PATCH", path: "/api/v1/admin/devices/1/shadow", body: map[string]any{"desired": map[string]any{"a": 1}}},
	} {
		e.headers, e.want = bearer, 429
		c.do(a, e)
	}

	// Failed authentications: past the limit the address's wrong or
	// missing credentials get 429; right ones are still served.
	b := contractAPI(t, store, httpapi.Deps{Limits: contractLimits(3)})
	for range 3 {
		c.do(b, exchange{method: "GET", path: "/api/v1/devices/status", headers: key("iot_wrong"), want: 401})
	}
	c.do(b, exchange{method: "GET", path: "/api/v1/devices/status", headers: key("iot_wrong"), want: 429})
	c.do(b, exchange{method: "GET", path: "/api/v1/admin/dashboard", headers: []string{"Authorization", "Bearer wrong"}, want: 429})
	c.do(b, exchange{method: "POST", path: "/api/v1/devices/telemetry", want: 429, body: reading})
	c.do(b, exchange{method: "GET", path: "/api/v1/devices/status", headers: key(k3), want: 200})
	c.do(b, exchange{method: "GET", path: "/api/v1/admin/dashboard", headers: bearer, want: 200})

	// A provisioning token closes registration to strangers.
	p := contractAPI(t, store, httpapi.Deps{ProvisioningToken: "provisioning-token-0123456789"})
	c.do(p, exchange{method: "POST", path: register, want: 401, body: map[string]string{"name": "Stranger", "device_type": "s"}})
	c.do(p, exchange{method: "POST", path: register, want: 401, body: map[string]string{"name": "Stranger", "device_type": "s"},
		headers: []string{"X-Provisioning-Token", "wrong"}})
	c.do(p, exchange{method: "POST", path: register, want: 201, validRequest: true, body: map[string]string{"name": "Provisioned", "device_type": "s"},
		headers: []string{"X-Provisioning-Token", "provisioning-token-0123456789"}})
}

// queueFull is a write pipeline that is always full.
type queueFull struct{}

func (queueFull) Submit(context.Context, []*iotflow.Reading) error { return ingest.ErrQueueFull }

// contractUnavailable meets a full write queue, pending migrations and a
// database that is gone.
func contractUnavailable(t *testing.T, c *contract, store iotflow.Store) {
	c.t = t
	full := contractAPI(t, store, httpapi.Deps{Service: fleet.New(store, httpapi.FleetOptions(fleet.Options{StaticAdminToken: adminToken, Submitter: queueFull{}}))})
	_, k := c.registerDevice(full, "Busy")
	reading := map[string]any{"data": map[string]any{"t": 1}}
	c.do(full, exchange{method: "POST", path: "/api/v1/devices/telemetry", headers: key(k), want: 503, body: reading})
	c.do(full, exchange{method: "POST", path: "/api/v1/devices/telemetry/batch", headers: key(k), want: 503, body: map[string]any{"records": []any{reading}}})

	// A database whose schema is behind.
	bare, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "bare.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bare.Close() })
	r := c.do(contractAPI(t, bare, httpapi.Deps{}), exchange{method: "GET", path: "/readyz", want: 503})
	if r.body["migrations"] != "pending" {
		t.Errorf("readyz on an unmigrated database: %s", r.raw)
	}

	// A database that is gone.
	gone := testdb.SQLite(t)
	a := contractAPI(t, gone, httpapi.Deps{})
	_, k = c.registerDevice(a, "Orphan")
	gone.Close()
	c.do(a, exchange{method: "GET", path: "/health", want: 503})
	c.do(a, exchange{method: "GET", path: "/readyz", want: 503})
	c.do(a, exchange{method: "GET", path: "/livez", want: 200})
	// An export whose first read fails before the status is sent is a 500
	// (a failure after it cuts the connection).
	for _, e := range append(everyDatabaseRoute(k),
		exchange{method: "POST", path: "/api/v1/devices/register", body: map[string]string{"name": "Lost", "device_type": "s"}},
		exchange{method: "GET", path: "/api/v1/admin/telemetry/export?device_id=1", headers: bearer},
		exchange{method: "GET", path: "/api/v1/admin/telemetry/export?format=csv", headers: bearer}) {
		e.want = 500
		c.do(a, e)
	}

	// A database declared down: requests that need it are let go at once,
	// an export's included.
	down := dbhealth.New(func(context.Context) error { return errors.New("no answer") }, dbhealth.Options{})
	down.Check(t.Context())
	a = contractAPI(t, store, httpapi.Deps{Database: down})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/telemetry/export?device_id=1", headers: bearer, want: 503})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/telemetry/export?format=csv", headers: bearer, want: 503})
	c.do(a, exchange{method: "GET", path: "/api/v1/admin/devices/1/telemetry/series", headers: bearer, want: 503})

	// A database too slow for the request's deadline. An export is not
	// bounded by it: it streams for as long as it takes.
	slow := testdb.SQLite(t)
	_, k = c.registerDevice(contractAPI(t, slow, httpapi.Deps{}), "Slow")
	a = contractAPI(t, slow, httpapi.Deps{RequestTimeout: time.Nanosecond})
	for _, e := range append(everyDatabaseRoute(k), exchange{method: "POST", path: "/api/v1/devices/register", body: map[string]string{"name": "Late", "device_type": "s"}}) {
		e.want = 503
		c.do(a, e)
	}
}

// everyDatabaseRoute is a request to each route that needs the database,
// with device key k or the admin token.
func everyDatabaseRoute(k string) []exchange {
	reading := map[string]any{"data": map[string]any{"t": 1}}
	es := []exchange{
		{method: "GET", path: "/api/v1/devices/status"}, {method: "GET", path: "/api/v1/devices/telemetry"},
		{method: "GET", path: "/api/v1/devices/telemetry/series"}, {method: "GET", path: "/api/v1/devices/telemetry/latest"},
		{method: "POST", path: "/api/v1/devices/telemetry", body: reading},
		{method: "POST", path: "/api/v1/devices/telemetry/batch", body: map[string]any{"records": []any{reading}}},
		{method: "PUT", path: "/api/v1/devices/config", body: map[string]any{"location": "x"}},
		{method: "POST", path: "/api/v1/devices/heartbeat"}, {method: "POST", path: "/api/v1/devices/keys/rotate"},
		{method: "GET", path: "/api/v1/devices/commands"},
		{method: "POST", path: "/api/v1/devices/commands/1/result", body: map[string]any{"status": "completed"}},
		{method: "GET", path: "/api/v1/devices/shadow"},
		{method: "PATCH", path: "/api/v1/devices/shadow/reported", body: map[string]any{"a": 1}},
		{method: "GET", path: "/api/v1/devices/config"},
		{method: "POST", path: "/api/v1/devices/config", body: map[string]any{"config_key": "a", "config_value": "b"}},
	}
	for i := range es {
		es[i].headers = key(k)
	}
	for _, e := range []exchange{
		{method: "GET", path: "/api/v1/admin/devices"}, {method: "GET", path: "/api/v1/admin/devices/1"},
		{method: "PUT", path: "/api/v1/admin/devices/1", body: map[string]any{"status": "active"}},
		{method: "DELETE", path: "/api/v1/admin/devices/1"}, {method: "GET", path: "/api/v1/admin/devices/1/keys"},
		{method: "POST", path: "/api/v1/admin/devices/1/keys"}, {method: "DELETE", path: "/api/v1/admin/devices/1/keys/1"},
		{method: "GET", path: "/api/v1/admin/dashboard"}, {method: "GET", path: "/api/v1/admin/telemetry"},
		{method: "GET", path: "/api/v1/admin/devices/1/telemetry"}, {method: "GET", path: "/api/v1/admin/devices/1/telemetry/series"},
		{method: "GET", path: "/api/v1/admin/devices/1/telemetry/latest"}, {method: "GET", path: "/api/v1/admin/devices/1/telemetry/keys"},
		{method: "POST", path: "/api/v1/admin/devices/1/commands", body: map[string]any{"command": "x"}},
		{method: "GET", path: "/api/v1/admin/devices/1/commands"},
		{method: "GET", path: "/api/v1/admin/commands/1"}, {method: "DELETE", path: "/api/v1/admin/commands/1"},
		{method: "GET", path: "/api/v1/admin/devices/1/shadow"},
		{method: "PATCH", path: "/api/v1/admin/devices/1/shadow", body: map[string]any{"desired": map[string]any{"a": 1}}},
	} {
		e.headers = bearer
		es = append(es, e)
	}
	return es
}
