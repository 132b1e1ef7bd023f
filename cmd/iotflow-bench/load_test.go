package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

// TestDriveModes drives the bare handler in each mode: reads are answered
// and acknowledge no readings, writes acknowledge theirs.
func TestDriveModes(t *testing.T) {
	srv := httptest.NewServer(baselineHandler())
	defer srv.Close()
	tg := target{url: srv.URL, keys: []string{"k1", "k2", "k3"}}
	c := loadConfig{conns: 2, duration: 200 * time.Millisecond, warm: 20 * time.Millisecond, batchSize: 5}
	for _, m := range []mode{single, batch, status} {
		r, err := drive(context.Background(), tg, m, c)
		if err != nil {
			t.Fatal(err)
		}
		if r.requests == 0 || r.errors != 0 || r.failedRequests != 0 {
			t.Fatalf("%s: %d requests, %d errors, %d failed (%s)", m, r.requests, r.errors, r.failedRequests, r.firstError)
		}
		per := int64(m.request(c.batchSize).readings)
		if m == status && r.ackedReadings != 0 || m != status && r.ackedReadings < r.requests*per {
			t.Errorf("%s: %d readings acknowledged for %d measured requests", m, r.ackedReadings, r.requests)
		}
		if m == status && r.readingsPerSec != 0 {
			t.Errorf("status reads counted %.0f readings/s", r.readingsPerSec)
		}
	}
}

// TestBareStatus: the bare handler answers a status read with a device
// document of the service's shape, and refuses one without a key.
func TestBareStatus(t *testing.T) {
	srv := httptest.NewServer(baselineHandler())
	defer srv.Close()
	took, err := timedGet(context.Background(), srv.URL+"/api/v1/devices/status", "X-API-Key", "k1")
	if err != nil || took <= 0 {
		t.Fatalf("status read: %v", err)
	}
	res, err := benchClient.Get(srv.URL + "/api/v1/devices/status")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Errorf("status read without a key: %d, want 401", res.StatusCode)
	}
	var out struct {
		Status string
		Device map[string]any
	}
	hr := httptest.NewRequest("GET", "/api/v1/devices/status", nil)
	hr.Header.Set("X-API-Key", "k1")
	rec := httptest.NewRecorder()
	baselineHandler().ServeHTTP(rec, hr)
	if err := jsonDecodeBody(rec.Result(), &out); err != nil || out.Status != "success" {
		t.Fatalf("status: %v %+v", err, out)
	}
	for _, k := range []string{"id", "name", "device_type", "status", "last_seen", "telemetry_count", "is_online"} {
		if _, ok := out.Device[k]; !ok {
			t.Errorf("the device document lacks %q", k)
		}
	}
}
