package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/testdb"
)

var defaultOrigins = []string{"http://localhost:3000", "http://127.0.0.1:3000"}

func TestCORS(t *testing.T) {
	const (
		local    = "http://localhost:3000"
		evil     = "https://evil.example"
		exposed  = "X-Request-ID, RateLimit, RateLimit-Policy, Retry-After"
		methods  = "GET, POST, PUT, DELETE, OPTIONS"
		preVary  = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
		noHeader = "" // the header must be absent
	)
	preflight := []string{"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type, X-Api-Key, X-Evil"}
	for _, tc := range []struct {
		name    string
		origins []string
		method  string
		headers []string // name, value pairs
		status  int      // 200 means the request reached the API
		want    map[string]string
	}{
		{"allowed", defaultOrigins, "GET", []string{"Origin", local}, 200, map[string]string{
			"Access-Control-Allow-Origin": local, "Vary": "Origin", "Access-Control-Expose-Headers": exposed,
			"Access-Control-Allow-Methods": noHeader, "Access-Control-Max-Age": noHeader}},
		{"allowed in other case", defaultOrigins, "POST", []string{"Origin", "HTTP://LocalHost:3000"}, 200, map[string]string{
			"Access-Control-Allow-Origin": "HTTP://LocalHost:3000", "Vary": "Origin"}},
		{"other port", defaultOrigins, "GET", []string{"Origin", "http://localhost:3001"}, 200, map[string]string{
			"Access-Control-Allow-Origin": noHeader, "Vary": noHeader, "Access-Control-Expose-Headers": noHeader}},
		{"disallowed", defaultOrigins, "GET", []string{"Origin", evil}, 200, map[string]string{
			"Access-Control-Allow-Origin": noHeader, "Vary": noHeader, "Access-Control-Expose-Headers": noHeader}},
		{"null origin", defaultOrigins, "GET", []string{"Origin", "null"}, 200, map[string]string{
			"Access-Control-Allow-Origin": noHeader}},
		{"no origin", defaultOrigins, "GET", nil, 200, map[string]string{
			"Access-Control-Allow-Origin": noHeader, "Vary": noHeader}},
		{"preflight", defaultOrigins, "OPTIONS", append([]string{"Origin", local}, preflight...), 204, map[string]string{
			"Access-Control-Allow-Origin": local, "Access-Control-Allow-Methods": methods,
			"Access-Control-Allow-Headers": "Content-Type, X-API-Key", "Access-Control-Max-Age": "600", "Vary": preVary}},
		{"preflight without headers", defaultOrigins, "OPTIONS", []string{"Origin", local, "Access-Control-Request-Method", "GET"}, 204, map[string]string{
			"Access-Control-Allow-Origin": local, "Access-Control-Allow-Headers": noHeader, "Access-Control-Max-Age": "600"}},
		{"preflight of every allowed header", defaultOrigins, "OPTIONS", []string{"Origin", local, "Access-Control-Request-Method", "PUT",
			"Access-Control-Request-Headers", "authorization,x-request-id,x-provisioning-token"}, 204, map[string]string{
			"Access-Control-Allow-Headers": "Authorization, X-Request-ID, X-Provisioning-Token"}},
		{"preflight disallowed", defaultOrigins, "OPTIONS", append([]string{"Origin", evil}, preflight...), 403, map[string]string{
			"Access-Control-Allow-Origin": noHeader, "Access-Control-Allow-Methods": noHeader, "Vary": noHeader,
			"Content-Type": "application/json"}},
		{"options without a request method", defaultOrigins, "OPTIONS", []string{"Origin", local}, 200, map[string]string{
			"Access-Control-Allow-Origin": local, "Access-Control-Allow-Methods": noHeader}},
		{"wildcard", []string{"*"}, "GET", []string{"Origin", evil}, 200, map[string]string{
			"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": exposed}},
		{"wildcard preflight", []string{"*"}, "OPTIONS", append([]string{"Origin", evil}, preflight...), 204, map[string]string{
			"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Content-Type, X-API-Key"}},
		{"wildcard among origins", []string{local, "*"}, "GET", []string{"Origin", local}, 200, map[string]string{
			"Access-Control-Allow-Origin": "*"}},
		{"none configured", nil, "GET", []string{"Origin", local}, 200, map[string]string{
			"Access-Control-Allow-Origin": noHeader, "Vary": noHeader}},
		{"none configured preflight", nil, "OPTIONS", append([]string{"Origin", local}, preflight...), 200, map[string]string{
			"Access-Control-Allow-Origin": noHeader, "Access-Control-Allow-Methods": noHeader}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
			})
			r := httptest.NewRequest(tc.method, "/api/v1/devices/telemetry", nil)
			for i := 0; i+1 < len(tc.headers); i += 2 {
				r.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			rec := httptest.NewRecorder()
			s := &server{Deps: Deps{Logger: slog.New(slog.DiscardHandler)}}
			s.cors(tc.origins)(api).ServeHTTP(rec, r)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			for name, want := range tc.want {
				if got := strings.Join(rec.Header().Values(name), ", "); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if v := rec.Header().Get("Access-Control-Allow-Credentials"); v != "" {
				t.Errorf("Access-Control-Allow-Credentials: %q", v)
			}
			if tc.status == http.StatusForbidden {
				var body map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil ||
					body["error"] != "Forbidden" || body["message"] != "Origin not allowed" {
					t.Errorf("body %s", rec.Body)
				}
			}
		})
	}
}

// TestCORSThroughHandler checks the middleware sits where a browser needs
// it: preflights answered before the mux's 405, headers on real replies.
func TestCORSThroughHandler(t *testing.T) {
	store := testdb.SQLite(t)
	serve := func(origins []string) string {
		svc := fleet.New(store, fleetOptions(fleet.Options{OnlineTimeout: 300 * time.Second}))
		srv := httptest.NewServer(NewHandler(depsWithDefaults(Deps{Service: svc, CORSOrigins: origins})))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	do := func(method, url string, headers ...string) *http.Response {
		t.Helper()
		r, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			r.Header.Set(headers[i], headers[i+1])
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	const origin = "http://localhost:3000"
	preflight := []string{"Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,x-api-key"}

	base := serve(defaultOrigins)
	res := do("OPTIONS", base+"/api/v1/devices/telemetry", preflight...)
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: status %d, want 204", res.StatusCode)
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":  origin,
		"Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
		"Access-Control-Allow-Headers": "Content-Type, X-API-Key",
		"Access-Control-Max-Age":       "600",
		"X-Content-Type-Options":       "nosniff",
	} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("preflight %s: %q, want %q", name, got, want)
		}
	}
	res = do("GET", base+"/health", "Origin", origin)
	if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != origin ||
		!strings.Contains(res.Header.Get("Access-Control-Expose-Headers"), "X-Request-ID") {
		t.Errorf("GET /health: status %d, headers %v", res.StatusCode, res.Header)
	}
	res = do("OPTIONS", base+"/api/v1/devices/telemetry", "Origin", "https://evil.example",
		"Access-Control-Request-Method", "POST")
	if res.StatusCode != http.StatusForbidden || res.Header.Get("Content-Type") != "application/json" ||
		res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: status %d, headers %v", res.StatusCode, res.Header)
	}

	// With no origins configured nothing changes: the mux refuses OPTIONS.
	base = serve(nil)
	res = do("OPTIONS", base+"/api/v1/devices/telemetry", preflight...)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight without origins: status %d, headers %v", res.StatusCode, res.Header)
	}
	res = do("GET", base+"/health", "Origin", origin)
	if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != "" || res.Header.Get("Vary") != "" {
		t.Errorf("GET /health without origins: status %d, headers %v", res.StatusCode, res.Header)
	}
}
