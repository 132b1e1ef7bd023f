package iotflow

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func values(payload, metadata string) []string {
	var out []string
	ReadingValues(json.RawMessage(payload), json.RawMessage(metadata), func(v Value) {
		out = append(out, fmt.Sprintf("%s=%s:%v:%s", v.Key, v.Kind, v.Num, v.JSON))
	})
	return out
}

// TestReadingValues: numeric leaves named by dotted path, booleans as 1
// and 0, strings and nulls kept with their JSON, arrays skipped whole,
// metadata prefixed, escaped keys decoded.
func TestReadingValues(t *testing.T) {
	got := strings.Join(values(
		` { "temperature": 21.5, "env": {"temp": -3e2, "ok": true, "deep": {"x": 0}}, "list": [1, {"a": 2}, "s"],
		   "label": "a\"b", "off": false, "none": null, "k\u00e9y\"": 7 }`,
		`{"battery_level": 97, "fw": {"v": "1.2"}}`), "|")
	want := strings.Join([]string{
		"temperature=number:21.5:21.5",
		"env.temp=number:-300:-3e2",
		"env.ok=boolean:1:true",
		"env.deep.x=number:0:0",
		`label=string:0:"a\"b"`,
		"off=boolean:0:false",
		"none=null:0:null",
		`kéy"=number:7:7`,
		"metadata.battery_level=number:97:97",
		`metadata.fw.v=string:0:"1.2"`,
	}, "|")
	if got != want {
		t.Errorf("values\n got %s\nwant %s", got, want)
	}
	if v := values(`{}`, ``); len(v) != 0 {
		t.Errorf("empty payload: %v", v)
	}
	if v := values(`[1,2]`, `{"a":{}}`); len(v) != 0 {
		t.Errorf("a non-object payload and an empty object: %v", v)
	}
}

func TestKeyMatcher(t *testing.T) {
	m := NewKeyMatcher([]string{"temperature", "env.*"})
	for key, want := range map[string]bool{"temperature": true, "env.temp": true, "env.": true, "environment": false, "temp": false} {
		if m.Match(key) != want {
			t.Errorf("Match(%q) = %v", key, !want)
		}
	}
	if all := NewKeyMatcher(nil); !all.All() || !all.Match("anything") {
		t.Error("an empty matcher must match everything")
	}
}

// TestAggMerge: merging in any grouping gives the same aggregate; first
// and last follow the reading's time, then its id.
func TestAggMerge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var whole, a, b Agg
	for i, v := range []float64{5, -1, 3, 8, 2} {
		at := t0.Add(time.Duration(i%3) * time.Second) // times 0 1 2 0 1
		whole.Add(v, at, int64(i+1))
		if i%2 == 0 {
			a.Add(v, at, int64(i+1))
		} else {
			b.Add(v, at, int64(i+1))
		}
	}
	b.Merge(a)
	if whole != b {
		t.Fatalf("merged %+v, whole %+v", b, whole)
	}
	if whole.Count != 5 || whole.Sum != 17 || whole.Min != -1 || whole.Max != 8 || whole.First != 5 || whole.FirstID != 1 ||
		whole.Last != 3 || whole.LastID != 3 || whole.Avg() != 3.4 {
		t.Errorf("aggregate %+v", whole)
	}
	var empty Agg
	empty.Merge(Agg{})
	if empty.Count != 0 {
		t.Error("merging nothing made a value")
	}
}
