package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/testdb"
)

// FuzzTelemetryBody sends arbitrary bodies to the real telemetry and batch
// endpoints: the answer is always 201, 207 or a 4xx JSON error, never a
// 500, a panic or a hang.
func FuzzTelemetryBody(f *testing.F) {
	for _, seed := range []string{
		`{"data":{"t":1}}`, `{"data":{"t":1},"metadata":{"m":1},"type":"x","timestamp":1767323045000,"message_id":"a"}`,
		`{"data":[1]}`, `{"data":{"a":{"b":{"c":[[[[1]]]]}}}}`, `{"data":{}} {}`, `{"records":[{"data":{"a":1}},{"data":2}]}`,
		`{"records":[]}`, `{"data":{"t":"\u0000"}}`, "{\"data\":{\"t\":\"\xff\"}}", `{"data":{"t":1},"timestamp":"2026-01-01T00:00:00Z"}`,
		`{"data":{"t":1},"timestamp":-1e309}`, `{"data":null}`, `[`, ``, `{"data":{"t":1e999}}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	svc := fleet.New(testdb.SQLite(f), httpapi.FleetOptions(fleet.Options{}))
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.DepsWithDefaults(httpapi.Deps{Service: svc})))
	f.Cleanup(srv.Close)
	a := &api{base: srv.URL}
	_, key := registerFor(f, a)
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		path := "/api/v1/devices/telemetry"
		if batch {
			path += "/batch"
		}
		req, _ := http.NewRequest("POST", a.base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("status %d, body is not JSON: %q", res.StatusCode, raw)
		}
		switch {
		case res.StatusCode == 201 || res.StatusCode == 207:
		case res.StatusCode >= 400 && res.StatusCode < 500:
			if out["error"] == nil || out["message"] == nil {
				t.Fatalf("4xx without error and message: %s", raw)
			}
		default:
			t.Fatalf("status %d for %q: %s", res.StatusCode, body, raw)
		}
	})
}

func registerFor(f *testing.F, a *api) (int64, string) {
	res, err := http.Post(a.base+"/api/v1/devices/register", "application/json",
		bytes.NewReader([]byte(`{"name":"fuzz","device_type":"sensor"}`)))
	if err != nil {
		f.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Device struct {
			ID     int64  `json:"id"`
			APIKey string `json:"api_key"`
		} `json:"device"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 201 {
		f.Fatalf("register: %d %v", res.StatusCode, err)
	}
	return out.Device.ID, out.Device.APIKey
}
