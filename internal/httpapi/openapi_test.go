package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/paths"
	"github.com/pb33f/libopenapi-validator/responses"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/metrics"
	"github.com/iotflow/iotflow/internal/ratelimit"
	"github.com/iotflow/iotflow/internal/sqlite"
	"github.com/iotflow/iotflow/internal/testdb"
)

// contract is the OpenAPI document with a validator, and a record of the
// operations and statuses the tests drove through the real handler.
type contract struct {
	t         *testing.T
	raw       []byte
	model     *v3.Document
	validator validator.Validator
	opts      *config.ValidationOptions
	// seen maps "METHOD /template" (or "generic Name") to the statuses seen.
	seen map[string]map[int]bool
}

func loadContract(t *testing.T) *contract {
	t.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatalf("parse openapi.json: %v", err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("build the OpenAPI model: %v", err)
	}
	opts := []config.Option{config.WithFormatAssertions()}
	v, errs := validator.NewValidator(doc, opts...)
	if len(errs) > 0 {
		t.Fatalf("new validator: %v", errs)
	}
	return &contract{t: t, raw: raw, model: &m.Model, validator: v, opts: config.NewValidationOptions(opts...),
		seen: map[string]map[int]bool{}}
}

// exchange is one request to drive, and the status it must get.
type exchange struct {
	method, path string
	body         any // nil, a string sent as is, or a value sent as JSON
	headers      []string
	want         int
	// validRequest asks that the request itself satisfy the document:
	// set on the requests that succeed.
	validRequest bool
}

// result is a validated reply: its body, and the body parsed when it is JSON.
type result struct {
	raw  []byte
	body map[string]any
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends e to a, checks the status, and validates the reply against the
// operation of the document that the request matches: a status, a header or
// a body the document does not describe fails the test.
func (c *contract) do(a *api, e exchange) result {
	c.t.Helper()
	req, res := c.send(a, e)
	route := c.route(req)
	if route == "" {
		c.t.Fatalf("%s %s: no operation of the document matches", e.method, e.path)
	}
	if ok, errs := c.validator.ValidateHttpResponse(req, res); !ok {
		c.t.Errorf("%s %s -> %d: the response does not match the document:\n%s", e.method, e.path, res.StatusCode, describe(errs))
	}
	c.checkContentType(route, req, res)
	if e.validRequest {
		if ok, errs := c.validator.ValidateHttpRequestSync(c.request(a, e)); !ok {
			c.t.Errorf("%s %s: the request does not match the document:\n%s", e.method, e.path, describe(errs))
		}
	}
	return c.finish(route, e, res)
}

// generic sends e, which no operation serves, and validates the reply
// against components/responses/name (the JSON 404, 405 and redirects).
func (c *contract) generic(a *api, name string, e exchange) result {
	c.t.Helper()
	req, res := c.send(a, e)
	resp, ok := c.model.Components.Responses.Get(name)
	if !ok {
		c.t.Fatalf("components/responses/%s is not in the document", name)
	}
	if ok, errs := responses.ValidateResponseHeaders(req, res, resp.Headers, e.path, fmt.Sprint(res.StatusCode)); !ok {
		c.t.Errorf("%s %s -> %d: headers do not match components/responses/%s:\n%s", e.method, e.path, res.StatusCode, name, describe(errs))
	}
	mt, ok := resp.Content.Get(res.Header.Get("Content-Type"))
	if !ok {
		c.t.Fatalf("%s %s: Content-Type %q is not in components/responses/%s", e.method, e.path, res.Header.Get("Content-Type"), name)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(raw))
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		raw, _ = json.Marshal(string(raw)) // validate the text as a JSON string
	}
	if ok, errs := schema_validation.NewSchemaValidator(config.WithFormatAssertions()).ValidateSchemaBytes(mt.Schema.Schema(), raw); !ok {
		c.t.Errorf("%s %s -> %d: body %s does not match components/responses/%s:\n%s", e.method, e.path, res.StatusCode, raw, name, describe(errs))
	}
	return c.finish("generic "+name, e, res)
}

func (c *contract) finish(key string, e exchange, res *http.Response) result {
	c.t.Helper()
	if c.seen[key] == nil {
		c.seen[key] = map[int]bool{}
	}
	c.seen[key][res.StatusCode] = true
	raw, _ := io.ReadAll(res.Body)
	r := result{raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &r.body)
	}
	if res.StatusCode != e.want {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", e.method, e.path, res.StatusCode, e.want, raw)
	}
	return r
}

// send does the request and returns it (for the validator, with a fresh
// body) and the reply with its body buffered.
func (c *contract) send(a *api, e exchange) (*http.Request, *http.Response) {
	c.t.Helper()
	res, err := noRedirects.Do(c.request(a, e))
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	res.Body = io.NopCloser(bytes.NewReader(raw))
	return c.request(a, e), res
}

func (c *contract) request(a *api, e exchange) *http.Request {
	c.t.Helper()
	var body []byte
	switch b := e.body.(type) {
	case nil:
	case string:
		body = []byte(b)
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			c.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(e.method, a.base+e.path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if e.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(e.headers); i += 2 {
		req.Header.Set(e.headers[i], e.headers[i+1])
	}
	return req
}

// route is "METHOD /template" of the operation req matches, or "".
func (c *contract) route(req *http.Request) string {
	item, errs, template := paths.FindPath(req, c.model, c.opts)
	if item == nil || len(errs) > 0 {
		return ""
	}
	return req.Method + " " + template
}

// checkContentType holds the reply's Content-Type to the parameters the
// document names (the validator compares media types without them).
func (c *contract) checkContentType(route string, req *http.Request, res *http.Response) {
	c.t.Helper()
	method, template, _ := strings.Cut(route, " ")
	item := c.model.Paths.PathItems.GetOrZero(template)
	op := item.GetOperations().GetOrZero(strings.ToLower(method))
	resp := op.Responses.Codes.GetOrZero(fmt.Sprint(res.StatusCode))
	if resp == nil || resp.Content == nil {
		return
	}
	got, gotParams, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil {
		c.t.Errorf("%s %s: Content-Type %q: %v", req.Method, req.URL.Path, res.Header.Get("Content-Type"), err)
		return
	}
	var documented []string
	for key := range resp.Content.KeysFromOldest() {
		documented = append(documented, key)
		want, wantParams, _ := mime.ParseMediaType(key)
		if want != got {
			continue
		}
		for k, v := range wantParams {
			if !strings.EqualFold(gotParams[k], v) {
				c.t.Errorf("%s %s: Content-Type %q lacks %s=%s of the documented %q", req.Method, req.URL.Path, res.Header.Get("Content-Type"), k, v, key)
			}
		}
		return
	}
	c.t.Errorf("%s %s: Content-Type %q is none of %q", req.Method, req.URL.Path, res.Header.Get("Content-Type"), documented)
}

// operations lists "METHOD /template" of every operation of the document.
func (c *contract) operations() []string {
	var ops []string
	for template, item := range c.model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().KeysFromOldest() {
			ops = append(ops, strings.ToUpper(method)+" "+template)
		}
	}
	slices.Sort(ops)
	return ops
}

func describe(errs []*errors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  - %s: %s", e.Message, e.Reason)
		for _, f := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n      %s at %s (%s)", f.Reason, f.FieldPath, f.KeywordLocation)
		}
		b.WriteString("\n")
	}
	return b.String()
}

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
		deps.Service = fleet.New(store, fleet.Options{StaticAdminToken: adminToken})
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
		{method: "GET", path: "/api/v1/devices/telemetry", want: 200},
		{method: "POST", path: "/api/v1/devices/heartbeat", want: 200},
		{method: "PUT", path: "/api/v1/devices/config", body: map[string]any{"location": "x"}, want: 429},
		{method: "GET", path: "/api/v1/devices/status", want: 429},
		{method: "GET", path: "/api/v1/devices/telemetry", want: 429},
		{method: "POST", path: "/api/v1/devices/heartbeat", want: 429},
		{method: "POST", path: "/api/v1/devices/keys/rotate", want: 429},
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
	} {
		e.headers, e.want = bearer, 429
		c.do(a, e)
	}

	// Failed authentications: past the limit the address gets 429 before
	// its credentials are looked at, right or wrong.
	b := contractAPI(t, store, httpapi.Deps{Limits: contractLimits(3)})
	for range 3 {
		c.do(b, exchange{method: "GET", path: "/api/v1/devices/status", headers: key("iot_wrong"), want: 401})
	}
	c.do(b, exchange{method: "GET", path: "/api/v1/devices/status", headers: key(k3), want: 429})
	c.do(b, exchange{method: "GET", path: "/api/v1/admin/dashboard", headers: bearer, want: 429})
	c.do(b, exchange{method: "POST", path: "/api/v1/devices/telemetry", headers: key(k3), want: 429, body: reading})

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
	full := contractAPI(t, store, httpapi.Deps{Service: fleet.New(store, fleet.Options{StaticAdminToken: adminToken, Submitter: queueFull{}})})
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
	for _, e := range append(everyDatabaseRoute(k), exchange{method: "POST", path: "/api/v1/devices/register", body: map[string]string{"name": "Lost", "device_type": "s"}}) {
		e.want = 500
		c.do(a, e)
	}

	// A database too slow for the request's deadline.
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
		{method: "POST", path: "/api/v1/devices/telemetry", body: reading},
		{method: "POST", path: "/api/v1/devices/telemetry/batch", body: map[string]any{"records": []any{reading}}},
		{method: "PUT", path: "/api/v1/devices/config", body: map[string]any{"location": "x"}},
		{method: "POST", path: "/api/v1/devices/heartbeat"}, {method: "POST", path: "/api/v1/devices/keys/rotate"},
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
	} {
		e.headers = bearer
		es = append(es, e)
	}
	return es
}
