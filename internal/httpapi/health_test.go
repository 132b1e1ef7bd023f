package httpapi_test

import (
	"net/http"
	"testing"
)

func TestHealthAndIndex(t *testing.T) {
	a := newAPI(t, sqliteStore(t))
	r := a.req("GET", "/health", nil).want(t, http.StatusOK)
	if r.body["status"] != "healthy" || r.body["version"] != "test" || r.body["database"] != "connected" || r.body["message"] == nil {
		t.Errorf("health %s", r.raw)
	}
	r = a.req("GET", "/", nil).want(t, http.StatusOK)
	if r.body["name"] != "IoTFlow" || r.body["version"] != "test" || r.obj(t, "endpoints")["devices"] == nil {
		t.Errorf("index %s", r.raw)
	}
	if r.header.Get("X-Request-ID") == "" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", r.header)
	}
	r = a.req("GET", "/health", nil, "X-Request-ID", "trace-123")
	if r.header.Get("X-Request-ID") != "trace-123" {
		t.Errorf("incoming request id not kept: %q", r.header.Get("X-Request-ID"))
	}
}

func TestHealthReportsDatabaseDown(t *testing.T) {
	store := sqliteStore(t)
	a := newAPI(t, store)
	store.Close()
	r := a.req("GET", "/health", nil).want(t, http.StatusServiceUnavailable)
	if r.body["database"] != "unreachable" || r.header.Get("Retry-After") == "" {
		t.Errorf("health %s", r.raw)
	}
}

func TestErrorsAreJSON(t *testing.T) {
	a := newAPI(t, sqliteStore(t))
	a.req("GET", "/nowhere", nil).wantError(t, http.StatusNotFound, "")
	a.req("GET", "/api/v1/devices/nothing", nil).wantError(t, http.StatusNotFound, "")
	r := a.req("DELETE", "/api/v1/devices/register", nil)
	r.wantError(t, http.StatusMethodNotAllowed, "")
	if r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	a.req("POST", "/health", nil).wantError(t, http.StatusMethodNotAllowed, "")
	a.req("PATCH", "/api/v1/admin/devices/1", nil).wantError(t, http.StatusMethodNotAllowed, "")
}
