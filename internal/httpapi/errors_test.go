package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/ratelimit"
	"github.com/iotflow/iotflow/internal/testdb"
)

// TestErrorResponsesKeepTheirBytes pins the exact replies of the errors
// written outside the handlers (fallbacks, limits, CORS, panics): they all
// go through writeError now, and clients see what they saw before.
func TestErrorResponsesKeepTheirBytes(t *testing.T) {
	frozen := time.Now()
	limits := &Limits{
		Limiter:      ratelimit.NewMemory(ratelimit.WithClock(func() time.Time { return frozen })),
		Device:       ratelimit.PerMinute("device", 60),
		Telemetry:    ratelimit.PerMinute("telemetry", 100),
		Backlog:      ratelimit.Limit{Name: "telemetry_backlog", Rate: 6000, Period: time.Hour, Burst: 1000},
		Register:     ratelimit.PerMinute("register", 1),
		AuthFailures: ratelimit.PerMinute("auth_failures", 10),
		Admin:        ratelimit.PerMinute("admin", 5),
	}
	svc := fleet.New(testdb.SQLite(t), fleetOptions(fleet.Options{}))
	srv := httptest.NewServer(NewHandler(depsWithDefaults(Deps{Service: svc, Limits: limits, MaxBodyBytes: 100,
		CORSOrigins: []string{"http://localhost:3000"}})))
	t.Cleanup(srv.Close)

	do := func(method, path, body string, headers ...string) (*http.Response, string) {
		t.Helper()
		r, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
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
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res, string(raw)
	}
	register := `{"name":"pinned","device_type":"sensor"}`
	_, raw := do("POST", "/api/v1/devices/register", register, "Content-Type", "application/json")
	var reg struct {
		Device struct {
			APIKey string `json:"api_key"`
		} `json:"device"`
	}
	if err := json.Unmarshal([]byte(raw), &reg); err != nil || reg.Device.APIKey == "" {
		t.Fatalf("register: %s", raw)
	}
	failTen := func() {
		for range 10 {
			do("GET", "/api/v1/devices/status", "", "X-API-Key", "iot_wrong")
		}
	}

	for _, tc := range []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		want                     string
		wantHeaders              map[string]string
		before                   func()
	}{
		{"not found", "GET", "/nowhere", "", nil, 404,
			`{"error":"Not found","message":"No endpoint at GET /nowhere"}`, nil, nil},
		{"method not allowed", "DELETE", "/api/v1/devices/register", "", nil, 405,
			`{"error":"Method not allowed","message":"DELETE is not allowed on /api/v1/devices/register; allowed: POST"}`,
			map[string]string{"Allow": "POST"}, nil},
		{"too large", "POST", "/api/v1/devices/telemetry", `{"data":{"pad":"` + strings.Repeat("p", 200) + `"}}`,
			[]string{"Content-Type", "application/json", "X-API-Key", reg.Device.APIKey}, 413,
			`{"error":"Payload too large","message":"The request body exceeds 100 bytes"}`, nil, nil},
		{"registration limit", "POST", "/api/v1/devices/register", register, []string{"Content-Type", "application/json"}, 429,
			`{"error":"Rate limit exceeded","message":"The register limit of 1 per minute was exceeded from this address; retry in 61 s"}`,
			map[string]string{"Retry-After": "60", "RateLimit": `"register";r=0;t=60`, "RateLimit-Policy": `"register";q=1;w=60`}, nil},
		{"preflight from another origin", "OPTIONS", "/api/v1/devices/telemetry", "",
			[]string{"Origin", "https://evil.example", "Access-Control-Request-Method", "POST"}, 403,
			`{"error":"Forbidden","message":"Origin not allowed"}`, nil, nil},
		{"failed authentications", "GET", "/api/v1/devices/status", "", []string{"X-API-Key", "iot_wrong"}, 429,
			`{"error":"Rate limit exceeded","message":"Too many failed authentications from this address (the auth_failures limit of 10 per minute); retry later"}`,
			map[string]string{"Retry-After": "6", "RateLimit": `"auth_failures";r=0;t=6`, "RateLimit-Policy": `"auth_failures";q=10;w=60`}, failTen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			res, raw := do(tc.method, tc.path, tc.body, tc.headers...)
			if res.StatusCode != tc.status || raw != tc.want+"\n" {
				t.Fatalf("%d %s, want %d %s", res.StatusCode, raw, tc.status, tc.want)
			}
			if ct, cl := res.Header.Get("Content-Type"), res.Header.Get("Content-Length"); ct != "application/json" || cl != strconv.Itoa(len(raw)) {
				t.Errorf("Content-Type %q, Content-Length %q for %d bytes", ct, cl, len(raw))
			}
			for name, want := range tc.wantHeaders {
				if got := res.Header.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
		})
	}

	t.Run("panic", func(t *testing.T) {
		s := &server{Deps: Deps{Logger: slog.New(slog.DiscardHandler)}}
		h := s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		const want = `{"error":"Internal server error","message":"An internal error occurred."}` + "\n"
		if rec.Code != 500 || rec.Body.String() != want {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
}
