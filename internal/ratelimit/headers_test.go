package ratelimit

import (
	"net/http"
	"testing"
	"time"
)

func TestHeaders(t *testing.T) {
	tele := PerMinute("telemetry", 100)
	cases := []struct {
		name                    string
		res                     Result
		policy, limit, retryAft string
	}{
		{"allowed", Result{Allowed: true, Limit: tele, Remaining: 37, ResetAfter: 11200 * time.Millisecond},
			`"telemetry";q=100;w=60`, `"telemetry";r=37;t=12`, ""},
		{"full bucket", Result{Allowed: true, Limit: tele, Remaining: 100},
			`"telemetry";q=100;w=60`, `"telemetry";r=100;t=0`, ""},
		{"denied under a second", Result{Limit: tele, RetryAfter: 300 * time.Millisecond, ResetAfter: time.Minute},
			`"telemetry";q=100;w=60`, `"telemetry";r=0;t=1`, "1"},
		{"denied rounds up", Result{Limit: tele, RetryAfter: 2100 * time.Millisecond, ResetAfter: time.Minute},
			`"telemetry";q=100;w=60`, `"telemetry";r=0;t=3`, "3"},
		{"odd period and name", Result{Allowed: true, Limit: Limit{Name: `a"b\c` + "\n", Rate: 5, Period: 1500 * time.Millisecond, Burst: 5}, Remaining: 4, ResetAfter: 300 * time.Millisecond},
			`"a\"b\\c?";q=5;w=2`, `"a\"b\\c?";r=4;t=1`, ""},
	}
	for _, tc := range cases {
		h := http.Header{}
		tc.res.Headers(h)
		if got := h.Get("RateLimit-Policy"); got != tc.policy {
			t.Errorf("%s: RateLimit-Policy %s, want %s", tc.name, got, tc.policy)
		}
		if got := h.Get("RateLimit"); got != tc.limit {
			t.Errorf("%s: RateLimit %s, want %s", tc.name, got, tc.limit)
		}
		if got := h.Get("Retry-After"); got != tc.retryAft {
			t.Errorf("%s: Retry-After %q, want %q", tc.name, got, tc.retryAft)
		}
	}
}
