package httpapi

import (
	"net/http"
	"strings"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// What a browser page may send and read. Credentials are never allowed:
// devices and operators authenticate with headers a page sets itself.
const (
	corsAllowMethods  = "GET, POST, PUT, DELETE, OPTIONS"
	corsExposeHeaders = "X-Request-ID, RateLimit, RateLimit-Policy, Retry-After"
	corsMaxAge        = "600"
)

// corsAllowHeaders are the request headers a preflight may ask for, by
// lowercased name.
var corsAllowHeaders = map[string]string{
	"content-type":         "Content-Type",
	"x-api-key":            "X-API-Key",
	"authorization":        "Authorization",
	"x-request-id":         "X-Request-ID",
	"x-provisioning-token": "X-Provisioning-Token",
}

// cors lets pages served from origins (scheme://host[:port], or "*" for
// any) call the API. Preflights are answered here, before the mux would
// refuse OPTIONS with 405; other requests are served as usual, with the
// CORS headers only when their Origin is allowed, so a browser keeps a
// page from any other origin from reading the response.
func (s *server) cors(origins []string) func(http.Handler) http.Handler {
	allowed := make(map[string]bool, len(origins))
	anyOrigin := false
	for _, o := range origins {
		if o == "*" {
			anyOrigin = true
		}
		allowed[strings.ToLower(o)] = true
	}
	return func(next http.Handler) http.Handler {
		if len(allowed) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if !anyOrigin && !allowed[strings.ToLower(origin)] {
				if preflight {
					s.writeError(w, r, iotflow.Errorf(iotflow.EFORBIDDEN, "Forbidden", "Origin not allowed"))
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			if anyOrigin {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
			}
			h.Add("Vary", "Origin")
			if !preflight {
				h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
				next.ServeHTTP(w, r)
				return
			}
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			if hs := allowedHeaders(r.Header.Values("Access-Control-Request-Headers")); hs != "" {
				h.Set("Access-Control-Allow-Headers", hs)
			}
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
		})
	}
}

// allowedHeaders is the part of a preflight's Access-Control-Request-Headers
// the API accepts; the browser refuses the request when any is left out.
func allowedHeaders(requested []string) string {
	var out []string
	for _, line := range requested {
		for _, name := range strings.Split(line, ",") {
			if canon, ok := corsAllowHeaders[strings.ToLower(strings.TrimSpace(name))]; ok {
				out = append(out, canon)
			}
		}
	}
	return strings.Join(out, ", ")
}
