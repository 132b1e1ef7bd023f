package httpapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// openAPIJSON is the OpenAPI 3.1 description of every route in routes.go;
// openapi_test.go holds it to the real responses.
//
//go:embed openapi.json
var openAPIJSON []byte

// openAPIDoc serves the OpenAPI document with the running version in
// info.version.
func (s *server) openAPIDoc() http.Handler {
	doc := withVersion(openAPIJSON, s.Version)
	length := strconv.Itoa(len(doc))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", length)
		_, _ = w.Write(doc)
	})
}

// withVersion returns doc with info.version set to version; the embedded
// document unchanged when version is empty or the document will not parse.
func withVersion(doc []byte, version string) []byte {
	if version == "" {
		return doc
	}
	var top map[string]json.RawMessage
	var info map[string]json.RawMessage
	if json.Unmarshal(doc, &top) != nil || json.Unmarshal(top["info"], &info) != nil {
		return doc
	}
	v, _ := json.Marshal(version)
	info["version"] = v
	top["info"], _ = json.Marshal(info)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(top) != nil {
		return doc
	}
	return buf.Bytes()
}

// docsPage serves the API reference as plain HTML rendered here from the
// OpenAPI document: no script, no style, no request to another origin, so
// it needs nothing a strict Content-Security-Policy forbids.
func (s *server) docsPage() http.Handler {
	var buf bytes.Buffer
	page, err := newDocsView(withVersion(openAPIJSON, s.Version))
	if err == nil {
		err = docsTemplate.Execute(&buf, page)
	}
	if err != nil {
		// The embedded document is checked by the tests; this is a safety net.
		s.Logger.Error("cannot render the API docs page", "err", err)
		err = fmt.Errorf("render the API docs page: %w", err)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, err)
		})
	}
	body := buf.Bytes()
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", length)
		_, _ = w.Write(body)
	})
}

// The parts of an OpenAPI document the docs page shows.
type (
	oaDoc struct {
		Info struct {
			Title       string `json:"title"`
			Version     string `json:"version"`
			Description string `json:"description"`
		} `json:"info"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas         map[string]json.RawMessage `json:"schemas"`
			Responses       map[string]oaResponse      `json:"responses"`
			Parameters      map[string]oaParameter     `json:"parameters"`
			SecuritySchemes map[string]struct {
				Description string `json:"description"`
			} `json:"securitySchemes"`
		} `json:"components"`
	}
	oaOperation struct {
		Summary     string                `json:"summary"`
		Description string                `json:"description"`
		Tags        []string              `json:"tags"`
		Security    []map[string][]string `json:"security"`
		Parameters  []oaParameter         `json:"parameters"`
		RequestBody *struct {
			Required bool                   `json:"required"`
			Content  map[string]oaMediaType `json:"content"`
		} `json:"requestBody"`
		Responses map[string]oaResponse `json:"responses"`
	}
	oaParameter struct {
		Ref         string          `json:"$ref"`
		Name        string          `json:"name"`
		In          string          `json:"in"`
		Required    bool            `json:"required"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
	}
	oaResponse struct {
		Ref         string                 `json:"$ref"`
		Description string                 `json:"description"`
		Content     map[string]oaMediaType `json:"content"`
	}
	oaMediaType struct {
		Schema json.RawMessage `json:"schema"`
	}
)

// docsView is what the template renders.
type docsView struct {
	Title, Version, Description string
	Security                    []docsItem
	Operations                  []docsOperation
	Schemas                     []docsItem
}

type docsItem struct{ Name, Text string }

type docsOperation struct {
	ID, Method, Path, Summary, Description, Auth string
	Parameters                                   []docsItem
	Body                                         *docsBody
	Responses                                    []docsResponse
}

// docsBody is a request body: optional or not, with its media types.
type docsBody struct {
	Required bool
	Content  []docsContent
}

type docsResponse struct {
	Status, Description string
	Content             []docsContent
}

// docsContent is a media type with its schema: the name of a component
// (linked on the page) or the schema itself.
type docsContent struct{ Media, Schema, Inline string }

var methodOrder = []string{"get", "post", "put", "patch", "delete"}

func newDocsView(raw []byte) (*docsView, error) {
	var doc oaDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	v := &docsView{Title: doc.Info.Title, Version: doc.Info.Version, Description: doc.Info.Description}
	for _, name := range sortedKeys(doc.Components.SecuritySchemes) {
		v.Security = append(v.Security, docsItem{name, doc.Components.SecuritySchemes[name].Description})
	}
	for _, path := range sortedKeys(doc.Paths) {
		for _, method := range methodOrder {
			raw, ok := doc.Paths[path][method]
			if !ok {
				continue
			}
			var op oaOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, err
			}
			v.Operations = append(v.Operations, doc.operation(method, path, &op))
		}
	}
	for _, name := range sortedKeys(doc.Components.Schemas) {
		v.Schemas = append(v.Schemas, docsItem{name, indentJSON(doc.Components.Schemas[name])})
	}
	return v, nil
}

func (doc *oaDoc) operation(method, path string, op *oaOperation) docsOperation {
	o := docsOperation{
		ID:     strings.ToLower(method) + strings.NewReplacer("/", "-", "{", "", "}", "").Replace(path),
		Method: strings.ToUpper(method), Path: path, Summary: op.Summary, Description: op.Description,
		Auth: "none",
	}
	var auth []string
	for _, req := range op.Security {
		names := sortedKeys(req)
		if len(names) == 0 {
			names = []string{"none"}
		}
		auth = append(auth, strings.Join(names, " and "))
	}
	if len(auth) > 0 {
		o.Auth = strings.Join(auth, ", or ")
	}
	for _, p := range op.Parameters {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			p = doc.Components.Parameters[name]
		}
		req := "optional"
		if p.Required {
			req = "required"
		}
		o.Parameters = append(o.Parameters, docsItem{p.In + " " + p.Name + " (" + req + ")",
			strings.TrimSpace(p.Description + " " + compactJSON(p.Schema))})
	}
	if rb := op.RequestBody; rb != nil {
		o.Body = &docsBody{Required: rb.Required, Content: contents(rb.Content)}
	}
	for _, status := range sortedKeys(op.Responses) {
		r := op.Responses[status]
		if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
			r = doc.Components.Responses[name]
		}
		o.Responses = append(o.Responses, docsResponse{status, r.Description, contents(r.Content)})
	}
	return o
}

func contents(content map[string]oaMediaType) []docsContent {
	var out []docsContent
	for _, mt := range sortedKeys(content) {
		s := content[mt].Schema
		var ref struct {
			Ref string `json:"$ref"`
		}
		_ = json.Unmarshal(s, &ref)
		c := docsContent{Media: mt}
		if name, ok := strings.CutPrefix(ref.Ref, "#/components/schemas/"); ok {
			c.Schema = name
		} else if len(s) > 0 {
			c.Inline = compactJSON(s)
		}
		out = append(out, c)
	}
	return out
}

func compactJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}

func indentJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		return string(raw)
	}
	return buf.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var docsTemplate = template.Must(template.New("docs").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} {{.Version}} API</title>
</head>
<body>
<header>
<h1>{{.Title}} API <small>{{.Version}}</small></h1>
<p>{{.Description}}</p>
<p>The machine-readable description is at <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
</header>
<nav>
<h2>Endpoints</h2>
<ul>
{{- range .Operations}}
<li><a href="#{{.ID}}"><code>{{.Method}} {{.Path}}</code></a> {{.Summary}}</li>
{{- end}}
</ul>
</nav>
<main>
<section>
<h2>Authentication</h2>
<dl>
{{- range .Security}}
<dt><code>{{.Name}}</code></dt><dd>{{.Text}}</dd>
{{- end}}
</dl>
</section>
{{- range .Operations}}
<section id="{{.ID}}">
<h2><code>{{.Method}} {{.Path}}</code></h2>
<p><strong>{{.Summary}}</strong></p>
{{- with .Description}}
<p>{{.}}</p>
{{- end}}
<p>Authentication: {{.Auth}}</p>
{{- if .Parameters}}
<h3>Parameters</h3>
<dl>
{{- range .Parameters}}
<dt><code>{{.Name}}</code></dt><dd>{{.Text}}</dd>
{{- end}}
</dl>
{{- end}}
{{- with .Body}}
<h3>Request body{{if not .Required}} (optional){{end}}</h3>
<ul>
{{- range .Content}}
<li>{{template "content" .}}</li>
{{- end}}
</ul>
{{- end}}
<h3>Responses</h3>
<table>
<thead><tr><th>status</th><th>meaning</th><th>body</th></tr></thead>
<tbody>
{{- range .Responses}}
<tr><td>{{.Status}}</td><td>{{.Description}}</td><td>{{range .Content}}{{template "content" .}}<br>{{end}}</td></tr>
{{- end}}
</tbody>
</table>
</section>
{{- end}}
<section>
<h2>Schemas</h2>
{{- range .Schemas}}
<h3 id="schema-{{.Name}}">{{.Name}}</h3>
<pre>{{.Text}}</pre>
{{- end}}
</section>
</main>
</body>
</html>
{{- define "content"}}<code>{{.Media}}</code>: {{if .Schema}}<a href="#schema-{{.Schema}}">{{.Schema}}</a>{{else}}<code>{{.Inline}}</code>{{end}}{{end}}
`))
