package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotflow/iotflow/internal/dbhealth"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// timeLayout is how the API writes times: iotflow.TimeLayout.
const timeLayout = iotflow.TimeLayout

func formatTime(t time.Time) string { return iotflow.FormatTime(t) }

func formatTimePtr(t *time.Time) *string { return iotflow.FormatTimePtr(t) }

// jsonBuffers holds response buffers for reuse: an answer of a hundred
// readings grows a fresh buffer through several copies to tens of KB.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps the buffer of an occasional huge answer out of the
// pool.
const maxPooledBuffer = 1 << 20

// writeJSON writes v as the JSON response body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			jsonBuffers.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"Internal server error","message":"An internal error occurred."}` + "\n")
	}
	h := w.Header()
	h["Content-Type"], h["Content-Length"] = jsonType, []string{strconv.Itoa(buf.Len())}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// jsonType is the Content-Type of every JSON answer, shared (see
// securityHeaders).
var jsonType = []string{"application/json"}

// errorBody is every error response: {"error": ..., "message": ...}.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

var statusOf = map[string]int{
	iotflow.EINVALID:      http.StatusBadRequest,
	iotflow.EUNAUTHORIZED: http.StatusUnauthorized,
	iotflow.EFORBIDDEN:    http.StatusForbidden,
	iotflow.ENOTFOUND:     http.StatusNotFound,
	iotflow.EMETHOD:       http.StatusMethodNotAllowed,
	iotflow.ECONFLICT:     http.StatusConflict,
	iotflow.EPRECONDITION: http.StatusPreconditionFailed,
	iotflow.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	iotflow.ERATELIMIT:    http.StatusTooManyRequests,
	iotflow.EUNAVAILABLE:  http.StatusServiceUnavailable,
	iotflow.EINTERNAL:     http.StatusInternalServerError,
}

// writeError maps an error to its status and JSON body: every error
// response of the API is written here. Internal errors are logged with
// their detail; the client sees a generic message.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := iotflow.ErrorCode(err)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		err = iotflow.Errorf(iotflow.ETOOLARGE, "Payload too large", "The request body exceeds %d bytes", mbe.Limit)
	case code == iotflow.EINTERNAL && errors.Is(err, context.Canceled) &&
		(errors.Is(context.Cause(r.Context()), dbhealth.ErrDown) || s.Database.Down()):
		err = iotflow.Errorf(iotflow.EUNAVAILABLE, "Service unavailable", "The database is unreachable; try again later")
	case code == iotflow.EINTERNAL && errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away (a device giving up its long poll) or the
		// server is stopping: nobody reads this answer, and it is no fault
		// of the service, so it is no 5xx in the log and the metrics
		// either, but nginx's 499 (client closed request).
		writeJSON(w, statusClientClosed, errorBody{Error: "Request cancelled", Message: "The request was cancelled before it finished"})
		return
	case code == iotflow.EINTERNAL && errors.Is(err, context.DeadlineExceeded):
		err = iotflow.Errorf(iotflow.EUNAVAILABLE, "Service unavailable", "The request took too long; try again later")
	case code == iotflow.EINTERNAL:
		s.Logger.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	case code == iotflow.EUNAVAILABLE:
		s.Logger.WarnContext(r.Context(), "dependency unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	status, ok := statusOf[iotflow.ErrorCode(err)]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
		info(r.Context()).reason = failureReason(err)
	}
	writeJSON(w, status, errorBody{Error: iotflow.ErrorTitle(err), Message: iotflow.ErrorMessage(err)})
}

// statusClientClosed is recorded for a request whose client went away.
const statusClientClosed = 499

func invalid(format string, args ...any) error {
	return iotflow.Errorf(iotflow.EINVALID, "Invalid request", format, args...)
}

// decodeJSON reads exactly one JSON object from the body into v.
func decodeJSON(r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return invalid("Content-Type must be application/json")
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return invalid("The body must hold exactly one JSON value")
	}
	return nil
}

// jsonError turns a decoding error into a message that names the problem.
func jsonError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return invalid("The request body is empty; a JSON object is required")
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("The request body is not valid JSON")
	case errors.As(err, &te):
		if te.Field == "" {
			return invalid("The request body must be a JSON object")
		}
		return invalid("Field '%s' must be %s", te.Field, jsonKind(te.Type))
	}
	return invalid("The request body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	}
	return "of another type"
}

// maxQueryText bounds a text query parameter, well above any field's length.
const maxQueryText = 1000

// queryText reads a text query parameter, trimmed: NUL and invalid UTF-8,
// which the stores would treat differently, are refused.
func queryText(r *http.Request, name string) (string, error) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if iotflow.CheckText(name, v, maxQueryText) != nil {
		return "", invalid("Query parameter '%s' must be valid UTF-8 without NUL, at most %d characters", name, maxQueryText)
	}
	return v, nil
}

// queryInt reads an integer query parameter; absent gives def.
func queryInt(r *http.Request, name string, def, min int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, invalid("Query parameter '%s' must be an integer", name)
	}
	if n < min {
		return 0, invalid("Query parameter '%s' must be at least %d", name, min)
	}
	return n, nil
}

// pathID reads the {id} path value.
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, invalid("Device id must be a positive integer")
	}
	return id, nil
}
