package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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

// TestFormatTime: the hand-written formatter writes what Format with
// timeLayout writes, in UTC, whatever the zone, the fraction (truncated to
// microseconds, never rounded) and the year.
func TestFormatTime(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	west := time.FixedZone("west", -8*3600)
	times := []time.Time{
		time.Date(2026, 11, 30, 2, 58, 4, 57116000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC), // truncated, not rounded up
		time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 1000, east),
		time.Date(2026, 1, 1, 20, 0, 0, 999, west), // the next day in UTC
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // beyond four digits: Format's answer
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0),
	}
	for i := range 2000 {
		times = append(times, time.Unix(int64(i)*15_778_463, int64(i)*104_729%1e9).In(east)) // half a year apart, 1970–2970
	}
	for _, tm := range times {
		if got, want := formatTime(tm), tm.UTC().Format(timeLayout); got != want {
			t.Errorf("formatTime(%v) = %q, want %q", tm, got, want)
		}
	}
}
