package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/metrics"
	"github.com/iotflow/iotflow/internal/ratelimit"
	"github.com/iotflow/iotflow/internal/testdb"
)

func TestOpenAPIDocumentIsValid(t *testing.T) {
	c := loadContract(t)
	if c.model.Version != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", c.model.Version)
	}
	if ok, errs := c.validator.ValidateDocument(); !ok {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document:\n%s", describe(errs))
	}
	ids := map[string]string{}
	for _, op := range c.operations() {
		method, template, _ := strings.Cut(op, " ")
		o := c.model.Paths.PathItems.GetOrZero(template).GetOperations().GetOrZero(strings.ToLower(method))
		if o.OperationId == "" || ids[o.OperationId] != "" {
			t.Errorf("%s: operationId %q is empty or also used by %s", op, o.OperationId, ids[o.OperationId])
		}
		ids[o.OperationId] = op
	}
}

// routesOf reads the patterns that routes.go registers, mux.Handle("GET
// /path", ...) or mux.Handle(name, ...) with name a string constant of the
// file, as "METHOD /path" with {$} dropped.
func routesOf(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, name := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						consts[name.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
		return true
	})
	var routes []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc" {
			return true
		}
		var pattern string
		switch arg := call.Args[0].(type) {
		case *ast.BasicLit:
			pattern, _ = strconv.Unquote(arg.Value)
		case *ast.Ident:
			pattern = consts[arg.Name]
		}
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			t.Errorf("routes.go: cannot read the route pattern %q", pattern)
			return true
		}
		if path = strings.TrimSuffix(path, "{$}"); path == "" {
			path = "/"
		}
		routes = append(routes, method+" "+path)
		return true
	})
	return routes
}

// TestOpenAPIDocumentsEveryRoute holds routes.go and the document to the
// same set of operations.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	routes := routesOf(t, "routes.go")
	slices.Sort(routes)
	if len(routes) < 20 {
		t.Fatalf("found only %d routes in routes.go: has its form changed? %q", len(routes), routes)
	}
	ops := loadContract(t).operations()
	for _, r := range routes {
		if !slices.Contains(ops, r) {
			t.Errorf("route %s of routes.go is not in openapi.json", r)
		}
	}
	for _, op := range ops {
		if !slices.Contains(routes, op) {
			t.Errorf("operation %s of openapi.json is not a route of routes.go", op)
		}
	}
}

// TestOpenAPIContract drives every documented operation through the real
// handler, on success and on its main errors, and validates each reply
// against the document.
func TestOpenAPIContract(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			c := loadContract(t)
			t.Run("service", func(t *testing.T) { contractService(t, c, b.Open(t)) })
			t.Run("devices", func(t *testing.T) { contractDevices(t, c, b.Open(t)) })
			t.Run("admin", func(t *testing.T) { contractAdmin(t, c, b.Open(t)) })
			t.Run("series", func(t *testing.T) { contractSeries(t, c, b.Open(t)) })
			t.Run("downlink", func(t *testing.T) { contractDownlink(t, c, b.Open(t)) })
			t.Run("limits", func(t *testing.T) { contractRateLimits(t, c, b.Open(t)) })
			t.Run("unavailable", func(t *testing.T) { contractUnavailable(t, c, b.Open(t)) })
			if t.Failed() {
				return
			}
			for _, op := range c.operations() {
				if len(c.seen[op]) == 0 {
					t.Errorf("operation %s of openapi.json was not exercised", op)
				}
			}
			for _, name := range []string{"NotFound", "MethodNotAllowed", "Redirect"} {
				if len(c.seen["generic "+name]) == 0 {
					t.Errorf("components/responses/%s was not exercised", name)
				}
			}
			c.logCoverage()
		})
	}
}

// logCoverage lists documented statuses no test produced, for the reader.
func (c *contract) logCoverage() {
	var missing []string
	for _, op := range c.operations() {
		method, template, _ := strings.Cut(op, " ")
		o := c.model.Paths.PathItems.GetOrZero(template).GetOperations().GetOrZero(strings.ToLower(method))
		for code := range o.Responses.Codes.KeysFromOldest() {
			var n int
			if _, err := fmt.Sscan(code, &n); err == nil && !c.seen[op][n] {
				missing = append(missing, op+" "+code)
			}
		}
	}
	c.t.Logf("documented statuses not produced here (%d): %s", len(missing), strings.Join(missing, ", "))
}

// contractAPI starts a server with generous limits, so that only the
// limits tests meet them, and the metrics at /metrics.
func contractAPI(t *testing.T, store iotflow.Store, deps httpapi.Deps) *api {
	deps.Metrics = metrics.New()
	if deps.Limits == nil {
		deps.Limits = contractLimits(1000)
	}
	if deps.Service == nil {
		deps.Service = fleet.New(store, httpapi.FleetOptions(fleet.Options{StaticAdminToken: adminToken}))
	}
	return newAPIWithDeps(t, store, deps)
}

// contractLimits allows n of everything, on a clock that stands still.
func contractLimits(n int) *httpapi.Limits {
	frozen := time.Now()
	return &httpapi.Limits{
		Limiter:      ratelimit.NewMemory(ratelimit.WithClock(func() time.Time { return frozen })),
		Device:       ratelimit.PerMinute("device", n),
		Telemetry:    ratelimit.PerMinute("telemetry", n),
		Backlog:      ratelimit.Limit{Name: "telemetry_backlog", Rate: n, Period: time.Hour, Burst: n},
		Register:     ratelimit.PerMinute("register", n),
		AuthFailures: ratelimit.PerMinute("auth_failures", n),
		Admin:        ratelimit.PerMinute("admin", n),
	}
}

var bearer = []string{"Authorization", "Bearer " + adminToken}

func key(k string) []string { return []string{"X-API-Key", k} }

// registerDevice registers a device through the contract.
func (c *contract) registerDevice(a *api, name string) (int64, string) {
	c.t.Helper()
	r := c.do(a, exchange{method: "POST", path: "/api/v1/devices/register", want: 201, validRequest: true,
		body: map[string]string{"name": name, "device_type": "sensor", "location": "Greenhouse", "firmware_version": "1.0.0"}})
	d := r.body["device"].(map[string]any)
	return int64(d["id"].(float64)), d["api_key"].(string)
}

func contractService(t *testing.T, c *contract, store iotflow.Store) {
	c.t = t
	a := contractAPI(t, store, httpapi.Deps{})
	c.do(a, exchange{method: "GET", path: "/", want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: "/health", want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: "/livez", want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: "/readyz", want: 200, validRequest: true})

	c.do(a, exchange{method: "GET", path: "/metrics", headers: bearer, want: 200, validRequest: true})
	c.do(a, exchange{method: "GET", path: "/metrics", want: 200, validRequest: true,
		headers: append([]string{"Accept", "application/openmetrics-text; version=1.0.0"}, bearer...)})
	c.do(a, exchange{method: "GET", path: "/metrics", want: 401})
	c.do(a, exchange{method: "GET", path: "/metrics", headers: []string{"Authorization", "Bearer wrong-token-0123456789"}, want: 401})

	r := c.do(a, exchange{method: "GET", path: "/openapi.json", want: 200, validRequest: true})
	var served, embedded map[string]any
	if err := json.Unmarshal(r.raw, &served); err != nil {
		t.Fatalf("/openapi.json: %v", err)
	}
	_ = json.Unmarshal(c.raw, &embedded)
	if served["info"].(map[string]any)["version"] != "test" {
		t.Errorf("/openapi.json info.version %v, want the running version", served["info"].(map[string]any)["version"])
	}
	served["info"].(map[string]any)["version"] = embedded["info"].(map[string]any)["version"]
	if !jsonEqual(served, embedded) {
		t.Error("/openapi.json differs from openapi.json beyond info.version")
	}
	r = c.do(a, exchange{method: "GET", path: "/docs", want: 200, validRequest: true})
	page := string(r.raw)
	for _, op := range c.operations() {
		method, template, _ := strings.Cut(op, " ")
		if !strings.Contains(page, "<code>"+method+" "+template+"</code>") {
			t.Errorf("/docs does not show %s", op)
		}
	}
	if strings.Contains(strings.ToLower(page), "<script") || strings.Contains(strings.ToLower(page), "style=") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("/docs has a script, an inline style or an external reference")
	}

	c.generic(a, "NotFound", exchange{method: "GET", path: "/nowhere", want: 404})
	c.generic(a, "NotFound", exchange{method: "POST", path: "/api/v1/devices/nothing", want: 404})
	c.generic(a, "MethodNotAllowed", exchange{method: "DELETE", path: "/api/v1/devices/register", want: 405})
	c.generic(a, "MethodNotAllowed", exchange{method: "POST", path: "/health", want: 405})
	c.generic(a, "MethodNotAllowed", exchange{method: "PATCH", path: "/api/v1/admin/devices/1", headers: bearer, want: 405})
	c.generic(a, "Redirect", exchange{method: "GET", path: "/api/v1//devices/status", want: 307})
	c.generic(a, "Redirect", exchange{method: "GET", path: "/nowhere//x", want: 307})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
