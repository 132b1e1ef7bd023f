package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/content"
	"github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/paths"
	"github.com/pb33f/libopenapi-validator/responses"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
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
	opts := []config.Option{config.WithFormatAssertions(),
		config.WithBodyDecoder("application/x-ndjson", content.DecoderFunc(decodeNDJSON)),
		config.WithBodyDecoder("text/csv", content.CSVDecoder())}
	v, errs := validator.NewValidator(doc, opts...)
	if len(errs) > 0 {
		t.Fatalf("new validator: %v", errs)
	}
	return &contract{t: t, raw: raw, model: &m.Model, validator: v, opts: config.NewValidationOptions(opts...),
		seen: map[string]map[int]bool{}}
}

// decodeNDJSON reads an NDJSON body as the array of its lines, which the
// document's schema of it describes: each line one JSON value, each ended
// by a newline.
func decodeNDJSON(in *content.DecodeInput) (any, error) {
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	lines := []any{}
	if len(body) == 0 {
		return lines, nil
	}
	if !bytes.HasSuffix(body, []byte("\n")) {
		return nil, fmt.Errorf("the last line does not end with a newline")
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		lines = append(lines, v)
	}
	return lines, nil
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

// result is a validated reply: its headers, its body, and the body parsed
// when it is JSON.
type result struct {
	header http.Header
	raw    []byte
	body   map[string]any
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
	r := result{header: res.Header, raw: raw}
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
