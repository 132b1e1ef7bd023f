package iotflow

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
}

func keys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestReadingShapeLimits(t *testing.T) {
	for _, tc := range []struct {
		name, data, err string
	}{
		{"depth 32", nested(32), ""},
		{"depth 33", nested(33), "nested deeper than 32"},
		{"arrays count as depth", `{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, "nested deeper"},
		{"256 keys", keys(256), ""},
		{"257 keys", keys(257), "more than 256 keys"},
		{"nested keys count", `{"a":` + keys(200) + `,"b":` + keys(60) + `}`, "more than 256 keys"},
		{"colons and braces in strings do not count", `{"a":"` + strings.Repeat(`:{[`, 400) + `"}`, ""},
		{"escaped quotes keep the string open", `{"a":"\":{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\""}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !json.Valid([]byte(tc.data)) {
				t.Fatalf("fixture is not JSON: %.80s", tc.data)
			}
			_, _, err := ValidateReading(json.RawMessage(tc.data), nil, "")
			if tc.err == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), tc.err) || !strings.Contains(ErrorMessage(err), "'data'") {
				t.Fatalf("err %v, want EINVALID %q naming data", err, tc.err)
			}
		})
	}
	if _, _, err := ValidateReading(json.RawMessage(`{}`), json.RawMessage(nested(40)), ""); !strings.Contains(ErrorMessage(err), "'metadata'") {
		t.Fatalf("deep metadata: %v", err)
	}
}

// jsonDepth measures nesting with the standard decoder, independently of checkShape.
func jsonDepth(t *testing.T, raw []byte) (depth, keys int) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	cur := 0
	var stack []bool // true for objects
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return depth, keys
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				cur++
				depth = max(depth, cur)
				stack = append(stack, v == '{')
				expectKey = v == '{'
				continue
			case '}', ']':
				cur--
				stack = stack[:len(stack)-1]
			}
		case string:
			if expectKey {
				keys++
				expectKey = false
				continue
			}
		}
		expectKey = len(stack) > 0 && stack[len(stack)-1]
	}
}

// FuzzValidateReading: whatever the bytes, validation never panics, and
// what it accepts is a JSON object within the limits.
func FuzzValidateReading(f *testing.F) {
	for _, seed := range []string{`{"t":1}`, `{}`, `[]`, `null`, `"x"`, nested(33), keys(257), `{"a":"\u0000"}`,
		"{\"a\":\"\xff\"}", `{"a":{"b":[1,2,{"c":"d"}]}}`, `{"a":"\\\""}`, `{`, ``,
		`{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":1e309}`, `{"a":0e-99999}`, `{"a":-1.5e-7}`} {
		f.Add([]byte(seed), []byte(`{}`), "sensor")
	}
	f.Fuzz(func(t *testing.T, data, meta []byte, typ string) {
		m, dt, err := ValidateReading(data, meta, typ)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("non-validation error %v", err)
			}
			return
		}
		if !json.Valid(data) || !json.Valid(m) || dt == "" {
			t.Fatalf("accepted invalid input: %q %q %q", data, m, dt)
		}
		var obj map[string]any
		if json.Unmarshal(data, &obj) != nil {
			t.Fatalf("accepted a non-object: %q", data)
		}
		if d, k := jsonDepth(t, data); d > MaxJSONDepth || k > MaxPayloadKeys {
			t.Fatalf("accepted depth %d keys %d: %q", d, k, data)
		}
		// Every number accepted is a finite float64.
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			if n, ok := tok.(json.Number); ok {
				if f, err := n.Float64(); err != nil || math.IsInf(f, 0) || len(n) > MaxNumberLen {
					t.Fatalf("accepted the number %s: %q", n, data)
				}
			}
		}
	})
}
