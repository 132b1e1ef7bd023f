package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

const adminToken = "test-admin-token-0123456789abcdef"

// api is a real IoTFlow server on a loopback port over a real store.
type api struct {
	t     *testing.T
	base  string
	svc   *fleet.Service
	store iotflow.Store
}

// eachBackend runs fn against a fresh server on every available store.
func eachBackend(t *testing.T, fn func(t *testing.T, a *api)) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, newAPI(t, b.Open(t)))
		})
	}
}

func newAPI(t *testing.T, store iotflow.Store) *api {
	return newAPIWith(t, store, httpapi.Deps{})
}

// newAPIWith starts a server with deps; Service and Version are filled in.
func newAPIWith(t *testing.T, store iotflow.Store, deps httpapi.Deps) *api {
	svc := fleet.New(store, httpapi.FleetOptions(fleet.Options{OnlineTimeout: 300 * time.Second, StaticAdminToken: adminToken}))
	deps.Service = svc
	return newAPIWithDeps(t, store, deps)
}

// newAPIWithService starts a server on a service of the caller's.
func newAPIWithService(t *testing.T, store iotflow.Store, svc *fleet.Service) *api {
	return newAPIWithDeps(t, store, httpapi.Deps{Service: svc})
}

func newAPIWithDeps(t *testing.T, store iotflow.Store, deps httpapi.Deps) *api {
	svc := deps.Service
	deps.Version = "test"
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.DepsWithDefaults(deps)))
	t.Cleanup(srv.Close)
	return &api{t: t, base: srv.URL, svc: svc, store: store}
}

// response is a decoded reply.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// req sends a request. body may be a string (sent as is) or any value
// (sent as JSON); headers come in name, value pairs. Content-Type defaults
// to application/json when there is a body.
func (a *api) req(method, path string, body any, headers ...string) response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	r, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		a.t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, raw)
	}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		a.t.Fatalf("%s %s: body is not a JSON object: %s", method, path, raw)
	}
	return out
}

func (a *api) device(method, path, key string, body any) response {
	a.t.Helper()
	return a.req(method, path, body, "X-API-Key", key)
}

func (a *api) admin(method, path string, body any) response {
	a.t.Helper()
	return a.req(method, path, body, "Authorization", "Bearer "+adminToken)
}

// register creates a device and returns its id and key.
func (a *api) register(name, typ string) (int64, string) {
	a.t.Helper()
	r := a.req("POST", "/api/v1/devices/register", map[string]string{"name": name, "device_type": typ})
	r.want(a.t, http.StatusCreated)
	d := r.obj(a.t, "device")
	return int64(d["id"].(float64)), d["api_key"].(string)
}

func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	return r
}

// wantError checks an error reply: the status and the {"error","message"}
// shape, with the error title containing title when it is not empty.
func (r response) wantError(t *testing.T, status int, title string) {
	t.Helper()
	r.want(t, status)
	e, ok1 := r.body["error"].(string)
	m, ok2 := r.body["message"].(string)
	if !ok1 || !ok2 || e == "" || m == "" {
		t.Fatalf("error body %s lacks error and message", r.raw)
	}
	if title != "" && !strings.Contains(e, title) && !strings.Contains(m, title) {
		t.Fatalf("error body %s does not mention %q", r.raw, title)
	}
}

func (r response) obj(t *testing.T, key string) map[string]any {
	t.Helper()
	m, ok := r.body[key].(map[string]any)
	if !ok {
		t.Fatalf("%q is not an object in %s", key, r.raw)
	}
	return m
}

func (r response) list(t *testing.T, key string) []any {
	t.Helper()
	l, ok := r.body[key].([]any)
	if !ok {
		t.Fatalf("%q is not a list in %s", key, r.raw)
	}
	return l
}

// wantKeys checks that m has exactly the given keys.
func wantKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
		if _, ok := m[k]; !ok {
			t.Errorf("missing key %q in %v", k, m)
		}
	}
	for k := range m {
		if !want[k] {
			t.Errorf("unexpected key %q in %v", k, m)
		}
	}
}

// wantTime checks that v is an ISO 8601 time with a zone.
func wantTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("time %v is not a string", v)
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q is not ISO 8601 with a zone: %v", s, err)
	}
	return tm
}

var deviceKeys = []string{"id", "name", "description", "device_type", "status", "location",
	"firmware_version", "hardware_version", "created_at", "updated_at", "last_seen"}

func withKeys(base []string, more ...string) []string {
	return append(append([]string{}, base...), more...)
}
