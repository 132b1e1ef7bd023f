package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// TestOWASPAPITop10 groups the security checks by the OWASP API Security
// Top 10 (2023) items that apply to IoTFlow. Each item is also covered in
// depth by the tests of its feature; these hold the line in one place.
func TestOWASPAPITop10(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{Limits: testLimits(), MaxBodyBytes: 64 << 10})
	idA, keyA := a.register("Device A", "sensor")
	idB, keyB := a.register("Device B", "sensor")
	a.device("POST", "/api/v1/devices/telemetry", keyB, map[string]any{"data": map[string]string{"secret": "of B"}}).want(t, http.StatusCreated)

	t.Run("API1 broken object level authorization", func(t *testing.T) {
		// A device's key reaches its own data only: there is no id to swap.
		r := a.device("GET", "/api/v1/devices/telemetry", keyA, nil).want(t, http.StatusOK)
		if strings.Contains(r.raw, "of B") || r.body["count"] != float64(0) {
			t.Fatalf("device A reads device B's telemetry: %s", r.raw)
		}
		a.device("PUT", "/api/v1/devices/config", keyA, map[string]any{"location": "moved", "id": idB}).want(t, http.StatusOK)
		if d, _ := a.store.Device(t.Context(), idB); d.Location != "" {
			t.Fatal("device A changed device B")
		}
		if st := a.device("GET", "/api/v1/devices/status", keyA, nil).obj(t, "device"); st["id"] != float64(idA) {
			t.Fatalf("status of another device: %v", st)
		}
	})

	t.Run("API2 broken authentication", func(t *testing.T) {
		if !strings.HasPrefix(keyA, iotflow.APIKeyPrefix) || len(keyA) < 32 {
			t.Fatalf("weak key %q", keyA[:8])
		}
		d, k, err := a.store.DeviceByKeyHash(t.Context(), iotflow.HashSecret(keyA))
		if err != nil || d.ID != idA || k.Hash == keyA || strings.Contains(k.Hash, keyA[4:]) {
			t.Fatal("the key is not stored as a hash")
		}
		a.req("GET", "/api/v1/devices/status", nil).wantError(t, http.StatusUnauthorized, "API key required")
		a.device("GET", "/api/v1/devices/status", keyA[:len(keyA)-1], nil).wantError(t, http.StatusUnauthorized, "")
		a.device("GET", "/api/v1/devices/status", strings.ToUpper(keyA), nil).wantError(t, http.StatusUnauthorized, "")
	})

	t.Run("API3 broken object property level authorization", func(t *testing.T) {
		r := a.device("PUT", "/api/v1/devices/config", keyA, map[string]any{"name": "Renamed", "telemetry_count": 9, "status": "active"}).want(t, http.StatusOK)
		if r.obj(t, "device")["name"] != "Device A" {
			t.Fatal("a device renamed itself through its config")
		}
		for _, path := range []string{"/api/v1/devices/status", "/api/v1/devices/telemetry"} {
			if raw := a.device("GET", path, keyA, nil).raw; strings.Contains(raw, "api_key") || strings.Contains(raw, keyA) {
				t.Fatalf("%s shows a key: %s", path, raw)
			}
		}
		if raw := a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d", idA), nil).raw; strings.Contains(raw, "api_key") || strings.Contains(raw, "hash") {
			t.Fatalf("admin device view shows key material: %s", raw)
		}
	})

	t.Run("API4 unrestricted resource consumption", func(t *testing.T) {
		a.device("POST", "/api/v1/devices/telemetry", keyA, `{"data":{"x":"`+strings.Repeat("x", 70<<10)+`"}}`).wantError(t, http.StatusRequestEntityTooLarge, "")
		a.device("POST", "/api/v1/devices/telemetry", keyA, `{"data":`+strings.Repeat(`{"a":`, 33)+`1`+strings.Repeat(`}`, 33)+`}`).wantError(t, http.StatusBadRequest, "nested")
		a.device("POST", "/api/v1/devices/telemetry", keyA, `{"data":{"a":1}} trailing`).wantError(t, http.StatusBadRequest, "")
		if p := a.admin("GET", "/api/v1/admin/telemetry?per_page=100000", nil).obj(t, "pagination"); p["per_page"] != float64(500) {
			t.Fatalf("per_page not capped: %v", p["per_page"])
		}
		if l := a.device("GET", "/api/v1/devices/telemetry?limit=100000", keyA, nil).body["limit"]; l != float64(1000) {
			t.Fatalf("limit not capped: %v", l)
		}
		limited := 0
		for range 120 {
			if a.device("GET", "/api/v1/devices/status", keyB, nil).status == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("a device polling 120 times a minute was never limited")
		}
	})

	t.Run("API5 broken function level authorization", func(t *testing.T) {
		a := newAPI(t, a.store) // no brute-force guard, so every refusal is the 401 itself
		for _, route := range []string{"GET /api/v1/admin/devices", "GET /api/v1/admin/dashboard", "GET /api/v1/admin/telemetry",
			fmt.Sprintf("DELETE /api/v1/admin/devices/%d", idB), fmt.Sprintf("POST /api/v1/admin/devices/%d/keys", idA)} {
			method, path, _ := strings.Cut(route, " ")
			a.req(method, path, nil, "X-API-Key", keyA).wantError(t, http.StatusUnauthorized, "")
			a.req(method, path, nil, "Authorization", "Bearer "+keyA).wantError(t, http.StatusUnauthorized, "")
		}
		if _, err := a.store.Device(t.Context(), idB); err != nil {
			t.Fatal("a device key deleted a device")
		}
	})

	t.Run("API8 security misconfiguration", func(t *testing.T) {
		r := a.req("GET", "/api/v1/nothing", nil)
		r.wantError(t, http.StatusNotFound, "")
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("security headers missing: %v", r.header)
		}
		a.req("TRACE", "/api/v1/devices/status", nil).wantError(t, http.StatusMethodNotAllowed, "")
		if strings.Contains(a.req("POST", "/api/v1/devices/register", `{"name":`).raw, "json:") {
			t.Fatal("decoder internals leak into errors")
		}
	})
}
