package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
)

type ctxKey int

const infoKey ctxKey = iota

// requestInfo is filled in as a request passes through, for the access log.
type requestInfo struct {
	id       string
	deviceID int64
	key      *iotflow.APIKey // the device key that authenticated the request
	admin    string

	// What a telemetry request did, for the metrics: records it held (0
	// when unknown), records acknowledged, of which duplicates, records
	// refused by validation, and why the request failed, when it did.
	records, accepted, duplicates, invalid int
	reason                                 string
}

func info(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(infoKey).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// requestID keeps a sane incoming X-Request-ID or makes one, and echoes it.
func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			// Request ids need to be unique, not secret: no system call.
			id = strconv.FormatUint(rand.Uint64(), 16)
		}
		info(r.Context()).id = id
		w.Header()["X-Request-Id"] = []string{id} // Set, without canonicalising the key each time
		next.ServeHTTP(w, r)
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog writes one line per request. It never logs keys or tokens.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{}
		r = r.WithContext(context.WithValue(r.Context(), infoKey, ri))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		took := time.Since(start)
		s.Metrics.Request(routeOf(r), metricMethod(r.Method), sw.status, took)
		if r.Pattern == routeTelemetry || r.Pattern == routeBatch {
			s.countTelemetry(ri, sw.status)
		}
		level := slog.LevelInfo
		if sw.status == http.StatusUnauthorized || sw.status == http.StatusForbidden || sw.status == http.StatusTooManyRequests {
			level = slog.LevelWarn
		} else if sw.status >= 500 {
			level = slog.LevelError
		}
		if !s.Logger.Enabled(r.Context(), level) {
			return // no line at this level, so build none
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("route", routeOf(r)), slog.Int("status", sw.status),
			slog.Float64("duration_ms", float64(took.Microseconds())/1000), slog.Int("bytes", sw.bytes),
			slog.String("request_id", ri.id), slog.String("remote", r.RemoteAddr),
		}
		if ri.deviceID != 0 {
			attrs = append(attrs, slog.Int64("device_id", ri.deviceID))
		}
		if ri.admin != "" {
			attrs = append(attrs, slog.String("admin_token", ri.admin))
		}
		s.Logger.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

// routeOf is the matched route pattern, or "unmatched": never the raw path,
// which would give the metrics a label value per URL anyone sends.
func routeOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unmatched"
}

// recoverPanics turns a panic into a logged 500 JSON error.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// Formatted, not wrapped: a panic is a fault of the
				// service whatever its value (a context error included),
				// and writeError logs it as one.
				s.writeError(w, r, fmt.Errorf("panic serving request: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

var nosniff, frameDeny, noStore = []string{"nosniff"}, []string{"DENY"}, []string{"no-store"}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Shared values under canonical keys: what Set would store, without
		// an allocation per header and request. Set and Del replace a
		// slice rather than write to it, so sharing them is safe.
		h := w.Header()
		h["X-Content-Type-Options"], h["X-Frame-Options"], h["Cache-Control"] = nosniff, frameDeny, noStore
		next.ServeHTTP(w, r)
	})
}

// jsonFallbacks answers unknown routes (404) and wrong methods (405) in
// the API's JSON error shape instead of the mux's plain text.
func (s *server) jsonFallbacks(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch {
		case rec.status == http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			s.writeError(w, r, iotflow.Errorf(iotflow.EMETHOD, "Method not allowed",
				"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, rec.header.Get("Allow")))
		case rec.status >= 300 && rec.status < 400 && rec.header.Get("Location") != "":
			w.Header().Set("Location", rec.header.Get("Location"))
			writeJSON(w, rec.status, map[string]string{"message": "Moved to " + rec.header.Get("Location")})
		default:
			s.writeError(w, r, iotflow.Errorf(iotflow.ENOTFOUND, "Not found", "No endpoint at %s %s", r.Method, r.URL.Path))
		}
	})
}

// headerRecorder captures what the mux's fallback handlers would send.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(code int)        { h.status = code }

// withTimeout bounds the database work of a request, and ends it when the
// database is found unreachable.
func (s *server) withTimeout(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), s.RequestTimeout)
	ctx, unbind := s.Database.Bind(ctx)
	return ctx, func() { unbind(); cancel() }
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Which limit a device route counts against.
const (
	limitDevice    = iota // RATE_LIMIT_PER_MINUTE
	limitTelemetry        // TELEMETRY_RATE_LIMIT_PER_MINUTE, one reading
	limitInHandler        // the handler counts (a batch, once it knows its size)
)

// device wraps a handler that needs an authenticated device.
func (s *server) device(limit int, h func(http.ResponseWriter, *http.Request, *iotflow.Device)) http.Handler {
	return s.deviceFor(limit, false, h)
}

// deviceLongPoll is device for a handler that may wait for up to a
// minute: its own database calls bound their time, not the request's
// timeout.
func (s *server) deviceLongPoll(h func(http.ResponseWriter, *http.Request, *iotflow.Device)) http.Handler {
	return s.deviceFor(limitDevice, true, h)
}

func (s *server) deviceFor(limit int, long bool, h func(http.ResponseWriter, *http.Request, *iotflow.Device)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := s.withTimeout(r)
		defer cancel()
		d, key, err := s.Service.AuthenticateKey(ctx, r.Header.Get("X-API-Key"))
		if iotflow.ErrorCode(err) == iotflow.EUNAUTHORIZED {
			s.authFailed(w, r, err)
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
		info(r.Context()).deviceID, info(r.Context()).key = d.ID, key
		switch limit {
		case limitDevice:
			if !s.allow(w, r, deviceKey(d.ID), s.Limits.device(), 1, "by this device") {
				return
			}
		case limitTelemetry:
			if !s.allow(w, r, deviceKey(d.ID), s.Limits.telemetry(), 1, "by this device") {
				return
			}
		}
		if limit != limitInHandler { // a batch sets its own, larger cap
			r.Body = http.MaxBytesReader(w, r.Body, s.MaxBodyBytes)
		}
		if long {
			var unbind context.CancelFunc
			ctx, unbind = s.Database.Bind(r.Context())
			defer unbind()
		}
		h(w, r.WithContext(ctx), d)
	})
}

// admin wraps a handler that needs an admin bearer token.
func (s *server) admin(h func(http.ResponseWriter, *http.Request, *fleet.AdminIdentity)) http.Handler {
	return s.adminFor(h, false)
}

// adminStream is admin for a handler that streams its answer for as long
// as it takes: its own database calls bound their time, not the request's
// timeout.
func (s *server) adminStream(h func(http.ResponseWriter, *http.Request, *fleet.AdminIdentity)) http.Handler {
	return s.adminFor(h, true)
}

func (s *server) adminFor(h func(http.ResponseWriter, *http.Request, *fleet.AdminIdentity), stream bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := s.withTimeout(r)
		defer cancel()
		who, err := s.Service.AuthenticateAdmin(ctx, bearerToken(r))
		if iotflow.ErrorCode(err) == iotflow.EUNAUTHORIZED {
			s.authFailed(w, r, err)
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
		info(r.Context()).admin = who.TokenName
		if !s.allow(w, r, "admin:"+strconv.FormatInt(who.TokenID, 10), s.Limits.admin(), 1, "with this admin token") {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.MaxBodyBytes)
		if stream {
			var unbind context.CancelFunc
			ctx, unbind = s.Database.Bind(r.Context())
			defer unbind()
		}
		h(w, r.WithContext(ctx), who)
	})
}
