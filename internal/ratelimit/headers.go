package ratelimit

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers sets the RateLimit-Policy and RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers-11 (May 2026), replacing any there:
//
//	RateLimit-Policy: "telemetry";q=100;w=60
//	RateLimit: "telemetry";r=37;t=12
//
// q is Rate and w is Period in seconds. r is Remaining. t, the effective
// window within which the client should use no more than r, is ResetAfter
// (the time until the bucket is full) when allowed and RetryAfter when
// denied. A denial also sets Retry-After to the same whole seconds, at
// least 1, as the draft wants Retry-After no earlier than the window's end.
func (r Result) Headers(h http.Header) {
	name := sfString(r.Limit.Name)
	// Canonical keys, assigned: Set would canonicalise them anew each time.
	h["Ratelimit-Policy"] = []string{name + ";q=" + strconv.Itoa(r.Limit.Rate) + ";w=" + strconv.FormatInt(max(1, ceilSeconds(r.Limit.Period)), 10)}
	t := ceilSeconds(r.ResetAfter)
	if !r.Allowed {
		t = max(1, ceilSeconds(r.RetryAfter))
		h.Set("Retry-After", strconv.FormatInt(t, 10))
	}
	h["Ratelimit"] = []string{name + ";r=" + strconv.Itoa(max(0, r.Remaining)) + ";t=" + strconv.FormatInt(t, 10)}
}

// ceilSeconds rounds d up to whole seconds; negative d gives 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// sfString serializes s as a Structured Field String (RFC 9651, 3.3.3):
// quoted, with " and \ escaped; bytes outside printable ASCII, which a
// String cannot hold, become '?'.
func sfString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
