package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestRegister(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		r := a.req("POST", "/api/v1/devices/register", map[string]string{
			"name": "  Kitchen Sensor ", "device_type": "sensor", "description": "by the window",
			"location": "Kitchen", "firmware_version": "1.0.0", "hardware_version": "v1",
		}).want(t, http.StatusCreated)
		if r.body["message"] != "Device registered successfully" {
			t.Errorf("message %v", r.body["message"])
		}
		d := r.obj(t, "device")
		wantKeys(t, d, withKeys(deviceKeys, "api_key")...)
		if d["name"] != "Kitchen Sensor" || d["status"] != "active" || d["location"] != "Kitchen" ||
			d["description"] != "by the window" || d["last_seen"] != nil {
			t.Errorf("device %v", d)
		}
		wantTime(t, d["created_at"])
		key := d["api_key"].(string)
		if !strings.HasPrefix(key, "iot_") || len(key) < 32 {
			t.Errorf("api_key %q", key)
		}

		// The optional fields are null when not given.
		r = a.req("POST", "/api/v1/devices/register", map[string]string{"name": "Bare", "device_type": "x"}).want(t, http.StatusCreated)
		if d := r.obj(t, "device"); d["location"] != nil || d["description"] != nil || d["firmware_version"] != nil {
			t.Errorf("optional fields should be null: %v", d)
		}

		a.req("POST", "/api/v1/devices/register", map[string]string{"name": "Kitchen Sensor", "device_type": "sensor"}).
			wantError(t, http.StatusConflict, "already")
	})
}

func TestRegisterRejectsBadInput(t *testing.T) {
	a := newAPI(t, sqliteStore(t))
	long := strings.Repeat("n", 101)
	for _, tc := range []struct {
		name, body, contentType, mention string
	}{
		{"missing name", `{"device_type":"sensor"}`, "application/json", "name"},
		{"blank name", `{"name":"  ","device_type":"sensor"}`, "application/json", "name"},
		{"missing type", `{"name":"a"}`, "application/json", "device_type"},
		{"long name", `{"name":"` + long + `","device_type":"sensor"}`, "application/json", "name"},
		{"long type", `{"name":"a","device_type":"` + strings.Repeat("t", 51) + `"}`, "application/json", "device_type"},
		{"long location", `{"name":"a","device_type":"s","location":"` + strings.Repeat("l", 201) + `"}`, "application/json", "location"},
		{"long firmware", `{"name":"a","device_type":"s","firmware_version":"` + strings.Repeat("1", 21) + `"}`, "application/json", "firmware_version"},
		{"long hardware", `{"name":"a","device_type":"s","hardware_version":"` + strings.Repeat("1", 21) + `"}`, "application/json", "hardware_version"},
		{"name not a string", `{"name":5,"device_type":"sensor"}`, "application/json", "name"},
		{"malformed", `{"name":"a",`, "application/json", "JSON"},
		{"not an object", `["a"]`, "application/json", "object"},
		{"trailing data", `{"name":"a","device_type":"s"} {}`, "application/json", "one JSON value"},
		{"empty body", ``, "application/json", "empty"},
		{"form content type", `name=a&device_type=s`, "application/x-www-form-urlencoded", "Content-Type"},
		{"no content type", `{"name":"a","device_type":"s"}`, "", "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.req("POST", "/api/v1/devices/register", tc.body, "Content-Type", tc.contentType)
			r.wantError(t, http.StatusBadRequest, tc.mention)
		})
	}
	// Nothing of the above was stored.
	if n, err := a.store.CountReadings(t.Context(), iotflowFilterAll()); err != nil || n != 0 {
		t.Fatalf("readings %d %v", n, err)
	}
	r := a.admin("GET", "/api/v1/admin/devices", nil).want(t, http.StatusOK)
	if total := r.obj(t, "pagination")["total"]; total != float64(0) {
		t.Fatalf("bad registrations created devices: %v", total)
	}
}

func TestDeviceAuthentication(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, key := a.register("Auth Device", "sensor")
		for _, path := range []string{"GET /api/v1/devices/status", "POST /api/v1/devices/telemetry",
			"GET /api/v1/devices/telemetry", "PUT /api/v1/devices/config", "POST /api/v1/devices/heartbeat"} {
			method, p, _ := strings.Cut(path, " ")
			var body any
			if method != "GET" {
				body = map[string]any{"data": map[string]int{"t": 1}}
			}
			a.req(method, p, body).wantError(t, http.StatusUnauthorized, "API key required")
			a.device(method, p, "iot_not-a-real-key-000000000000000000000", body).wantError(t, http.StatusUnauthorized, "Invalid API key")
			a.device(method, p, key+"x", body).wantError(t, http.StatusUnauthorized, "")
		}

		// An inactive device is refused with 403, and so is one in maintenance.
		for _, status := range []string{"inactive", "maintenance"} {
			a.admin("PUT", fmt.Sprintf("/api/v1/admin/devices/%d", id), map[string]string{"status": status}).want(t, http.StatusOK)
			a.device("GET", "/api/v1/devices/status", key, nil).wantError(t, http.StatusForbidden, "not active")
		}
		a.admin("PUT", fmt.Sprintf("/api/v1/admin/devices/%d", id), map[string]string{"status": "active"}).want(t, http.StatusOK)
		a.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK)
	})
}

func TestStatusAndHeartbeat(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, key := a.register("Status Device", "sensor")
		r := a.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK)
		if r.body["status"] != "success" {
			t.Errorf("status %v", r.body["status"])
		}
		d := r.obj(t, "device")
		wantKeys(t, d, withKeys(deviceKeys, "telemetry_count", "is_online")...)
		if d["id"] != float64(id) || d["telemetry_count"] != float64(0) || d["is_online"] != true {
			t.Errorf("device %v", d)
		}
		wantTime(t, d["last_seen"]) // authenticating counts as being seen, at once

		h := a.device("POST", "/api/v1/devices/heartbeat", key, nil).want(t, http.StatusOK)
		wantKeys(t, h.body, "message", "device_id", "timestamp", "status", "pending_commands", "shadow_version")
		if h.body["message"] != "Heartbeat received" || h.body["status"] != "online" || h.body["device_id"] != float64(id) {
			t.Errorf("heartbeat %v", h.body)
		}
		beat := wantTime(t, h.body["timestamp"])

		// The admin view sees the heartbeat before any flush.
		det := a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d", id), nil).want(t, http.StatusOK).obj(t, "device")
		if seen := wantTime(t, det["last_seen"]); seen.Before(beat) || det["is_online"] != true {
			t.Errorf("admin sees last_seen %v before the heartbeat at %v", seen, beat)
		}
		// And after a flush the store holds it.
		if err := a.svc.FlushSeen(t.Context()); err != nil {
			t.Fatal(err)
		}
		stored, err := a.store.Device(t.Context(), id)
		if err != nil || stored.LastSeen == nil || stored.LastSeen.Before(beat) {
			t.Errorf("stored last_seen %v, err %v", stored.LastSeen, err)
		}
	})
}

func TestTelemetry(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		_, key := a.register("Telemetry Device", "sensor")
		_, other := a.register("Other Device", "sensor")

		r := a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{
			"data": map[string]any{"temperature": 22.5, "humidity": 60}}).want(t, http.StatusCreated)
		wantKeys(t, r.body, "message", "telemetry_id", "timestamp", "pending_commands", "shadow_version")
		if r.body["message"] != "Telemetry data received successfully" {
			t.Errorf("message %v", r.body["message"])
		}
		first := r.body["telemetry_id"].(float64)
		wantTime(t, r.body["timestamp"])
		a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{
			"data": map[string]any{"door": "open"}, "metadata": map[string]any{"fw": "1.2"}, "type": "event"}).want(t, http.StatusCreated)
		a.device("POST", "/api/v1/devices/telemetry", other, map[string]any{"data": map[string]any{"x": 1}}).want(t, http.StatusCreated)

		r = a.device("GET", "/api/v1/devices/telemetry", key, nil).want(t, http.StatusOK)
		wantKeys(t, r.body, "status", "telemetry", "count", "limit", "offset", "has_more", "next_cursor")
		list := r.list(t, "telemetry")
		if len(list) != 2 || r.body["count"] != float64(2) || r.body["limit"] != float64(100) || r.body["offset"] != float64(0) {
			t.Fatalf("telemetry %s", r.raw)
		}
		newest := list[0].(map[string]any)
		wantKeys(t, newest, "id", "device_id", "payload", "timestamp", "metadata", "data_type", "received_at")
		if newest["data_type"] != "event" || newest["payload"].(map[string]any)["door"] != "open" ||
			newest["metadata"].(map[string]any)["fw"] != "1.2" {
			t.Errorf("newest %v", newest)
		}
		oldest := list[1].(map[string]any)
		if oldest["id"] != first || oldest["data_type"] != "sensor" || len(oldest["metadata"].(map[string]any)) != 0 {
			t.Errorf("oldest %v", oldest)
		}

		// Filters and paging.
		r = a.device("GET", "/api/v1/devices/telemetry?type=sensor", key, nil).want(t, http.StatusOK)
		if l := r.list(t, "telemetry"); len(l) != 1 || l[0].(map[string]any)["id"] != first {
			t.Errorf("type filter %s", r.raw)
		}
		r = a.device("GET", "/api/v1/devices/telemetry?limit=1&offset=1", key, nil).want(t, http.StatusOK)
		if l := r.list(t, "telemetry"); len(l) != 1 || l[0].(map[string]any)["id"] != first {
			t.Errorf("paging %s", r.raw)
		}
		r = a.device("GET", "/api/v1/devices/telemetry?limit=5000", key, nil).want(t, http.StatusOK)
		if r.body["limit"] != float64(1000) {
			t.Errorf("limit not capped: %v", r.body["limit"])
		}
		for _, q := range []string{"limit=abc", "offset=x", "limit=-1", "offset=-5", "limit=0", "limit=1.5"} {
			a.device("GET", "/api/v1/devices/telemetry?"+q, key, nil).wantError(t, http.StatusBadRequest, "")
		}

		// The count on the status reflects stored readings.
		d := a.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK).obj(t, "device")
		if d["telemetry_count"] != float64(2) {
			t.Errorf("telemetry_count %v", d["telemetry_count"])
		}
	})
}

func TestTelemetryRejectsBadInput(t *testing.T) {
	a := newAPI(t, sqliteStore(t))
	_, key := a.register("Bad Input Device", "sensor")
	for _, tc := range []struct{ name, body, mention string }{
		{"missing data", `{"metadata":{}}`, "data"},
		{"null data", `{"data":null}`, "data"},
		{"data is a list", `{"data":[1,2]}`, "object"},
		{"data is a number", `{"data":5}`, "object"},
		{"data is a string", `{"data":"hot"}`, "object"},
		{"metadata is a list", `{"data":{"a":1},"metadata":[1]}`, "metadata"},
		{"type is a number", `{"data":{"a":1},"type":5}`, "type"},
		{"type too long", `{"data":{"a":1},"type":"` + strings.Repeat("t", 51) + `"}`, "type"},
		{"malformed", `{"data":{"a":1}`, "JSON"},
		{"trailing", `{"data":{"a":1}}x`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.device("POST", "/api/v1/devices/telemetry", key, tc.body).wantError(t, http.StatusBadRequest, tc.mention)
		})
	}
	r := a.req("POST", "/api/v1/devices/telemetry", `{"data":{"a":1}}`, "X-API-Key", key, "Content-Type", "text/plain")
	r.wantError(t, http.StatusBadRequest, "Content-Type")
	r = a.req("POST", "/api/v1/devices/telemetry", `{"data":{"big":"`+strings.Repeat("x", 2<<20)+`"}}`, "X-API-Key", key)
	r.wantError(t, http.StatusRequestEntityTooLarge, "")
	if n := a.device("GET", "/api/v1/devices/telemetry", key, nil).want(t, http.StatusOK).body["count"]; n != float64(0) {
		t.Fatalf("rejected telemetry was stored: %v", n)
	}
}

func TestConfig(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, key := a.register("Config Device", "sensor")
		r := a.device("PUT", "/api/v1/devices/config", key, map[string]string{
			"location": "Garage", "firmware_version": "2.0", "hardware_version": "v9", "name": "ignored"}).want(t, http.StatusOK)
		if r.body["message"] != "Device configuration updated successfully" {
			t.Errorf("message %v", r.body["message"])
		}
		d := r.obj(t, "device")
		wantKeys(t, d, deviceKeys...)
		if d["location"] != "Garage" || d["firmware_version"] != "2.0" || d["hardware_version"] != "v9" || d["name"] != "Config Device" {
			t.Errorf("device %v", d)
		}
		if d["id"] != float64(id) {
			t.Errorf("id %v", d["id"])
		}
		a.device("PUT", "/api/v1/devices/config", key, map[string]string{"status": "broken"}).wantError(t, http.StatusBadRequest, "status")
		a.device("PUT", "/api/v1/devices/config", key, map[string]string{"firmware_version": strings.Repeat("1", 21)}).
			wantError(t, http.StatusBadRequest, "firmware_version")
		a.device("PUT", "/api/v1/devices/config", key, map[string]string{}).wantError(t, http.StatusBadRequest, "")
		// A device may take itself out of service; then its key is refused.
		a.device("PUT", "/api/v1/devices/config", key, map[string]string{"status": "maintenance"}).want(t, http.StatusOK)
		a.device("GET", "/api/v1/devices/status", key, nil).wantError(t, http.StatusForbidden, "")
	})
}

// TestDevicesAreIsolated: a device's key never reads or changes another's data.
func TestDevicesAreIsolated(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		idA, keyA := a.register("Device A", "sensor")
		_, keyB := a.register("Device B", "sensor")
		a.device("POST", "/api/v1/devices/telemetry", keyA, map[string]any{"data": map[string]int{"secret": 42}}).want(t, http.StatusCreated)
		r := a.device("GET", "/api/v1/devices/telemetry", keyB, nil).want(t, http.StatusOK)
		if r.body["count"] != float64(0) {
			t.Fatalf("device B reads device A's telemetry: %s", r.raw)
		}
		a.device("PUT", "/api/v1/devices/config", keyB, map[string]string{"location": "B's place"}).want(t, http.StatusOK)
		d, err := a.store.Device(t.Context(), idA)
		if err != nil || d.Location != "" {
			t.Fatalf("device B changed device A: %+v %v", d, err)
		}
		// Device keys never open the admin API.
		a.req("GET", "/api/v1/admin/devices", nil, "Authorization", "Bearer "+keyA).wantError(t, http.StatusUnauthorized, "")
		a.req("GET", "/api/v1/admin/devices", nil, "X-API-Key", keyA).wantError(t, http.StatusUnauthorized, "")
	})
}
