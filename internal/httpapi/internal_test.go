package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPanicsBecomeJSON500(t *testing.T) {
	s := &server{Deps: Deps{Logger: slog.New(slog.DiscardHandler)}}
	h := s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom: secret detail") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 500 {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	if body["error"] == "" || body["message"] == "" || strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("body %s", rec.Body)
	}
}
