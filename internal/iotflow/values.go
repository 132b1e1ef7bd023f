package iotflow

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ValueKind is the JSON type of a reading's value.
type ValueKind uint8

// The kinds of value. Numbers and booleans (as 1 and 0) are aggregated;
// strings and nulls are values for latest and raw reads only.
const (
	KindNumber ValueKind = iota + 1
	KindBool
	KindString
	KindNull
)

// String names the kind as the API shows it.
func (k ValueKind) String() string {
	switch k {
	case KindNumber:
		return "number"
	case KindBool:
		return "boolean"
	case KindString:
		return "string"
	case KindNull:
		return "null"
	}
	return "unknown"
}

// ParseValueKind is the inverse of ValueKind.String; 0 for an unknown name.
func ParseValueKind(s string) ValueKind {
	for _, k := range []ValueKind{KindNumber, KindBool, KindString, KindNull} {
		if k.String() == s {
			return k
		}
	}
	return 0
}

// Numeric reports whether values of the kind are aggregated.
func (k ValueKind) Numeric() bool { return k == KindNumber || k == KindBool }

// Value is one value of a reading: a leaf of its payload, named by its
// dotted path ("temperature", "env.temp"), or of its metadata, prefixed
// "metadata." ("metadata.battery_level"). Arrays are not values, and
// neither is anything inside them.
type Value struct {
	Key  string
	Kind ValueKind
	// Num is the number, or 1 and 0 for true and false.
	Num float64
	// JSON is the value as the reading holds it.
	JSON json.RawMessage
}

// MetadataPrefix precedes the keys of a reading's metadata values.
const MetadataPrefix = "metadata."

// ReadingValues calls fn with every value of a reading, payload first,
// each in document order. The JSON must be valid, as stored readings are;
// what it cannot read it skips.
func ReadingValues(payload, metadata json.RawMessage, fn func(Value)) {
	walkValues(payload, "", fn)
	walkValues(metadata, MetadataPrefix, fn)
}

func walkValues(raw json.RawMessage, prefix string, fn func(Value)) {
	d := valueDecoder{b: raw}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '{' {
		d.object(prefix, fn)
	}
}

// valueDecoder walks valid JSON by hand: the standard decoder's tokens
// cost an allocation each, and every stored reading is walked once by the
// rollup.
type valueDecoder struct {
	b []byte
	i int
}

func (d *valueDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

// object walks the object at d.i, naming its members prefix+key.
func (d *valueDecoder) object(prefix string, fn func(Value)) bool {
	d.i++ // {
	for {
		d.space()
		if d.i >= len(d.b) {
			return false
		}
		switch d.b[d.i] {
		case '}':
			d.i++
			return true
		case ',':
			d.i++
			continue
		case '"':
		default:
			return false
		}
		key, ok := d.str()
		if !ok {
			return false
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return false
		}
		d.i++
		d.space()
		if !d.value(prefix+key, fn) {
			return false
		}
	}
}

// value walks the value at d.i, named key.
func (d *valueDecoder) value(key string, fn func(Value)) bool {
	if d.i >= len(d.b) {
		return false
	}
	start := d.i
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(key+".", fn)
	case c == '[':
		return d.skip()
	case c == '"':
		if _, ok := d.str(); !ok {
			return false
		}
		fn(Value{Key: key, Kind: KindString, JSON: d.b[start:d.i]})
	case c == 't' || c == 'f':
		v, n := 1.0, 4
		if c == 'f' {
			v, n = 0, 5
		}
		d.i += n
		fn(Value{Key: key, Kind: KindBool, Num: v, JSON: d.b[start:d.i]})
	case c == 'n':
		d.i += 4
		fn(Value{Key: key, Kind: KindNull, JSON: d.b[start:d.i]})
	default:
		for d.i < len(d.b) && isNumberByte(d.b[d.i]) {
			d.i++
		}
		f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
		if err != nil {
			return false
		}
		fn(Value{Key: key, Kind: KindNumber, Num: f, JSON: d.b[start:d.i]})
	}
	return true
}

// str reads the string at d.i and returns its text.
func (d *valueDecoder) str() (string, bool) {
	start := d.i
	escaped := false
	for d.i++; d.i < len(d.b); d.i++ {
		switch d.b[d.i] {
		case '\\':
			escaped = true
			d.i++
		case '"':
			d.i++
			raw := d.b[start:d.i]
			if !escaped {
				return string(raw[1 : len(raw)-1]), true
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return "", false
}

// skip passes over the array or object at d.i.
func (d *valueDecoder) skip() bool {
	depth := 0
	for ; d.i < len(d.b); d.i++ {
		switch d.b[d.i] {
		case '"':
			if _, ok := d.str(); !ok {
				return false
			}
			d.i--
		case '[', '{':
			depth++
		case ']', '}':
			if depth--; depth == 0 {
				d.i++
				return true
			}
		}
	}
	return false
}

// KeyMatcher selects value keys: exact names, and prefixes written as
// "env.*". An empty matcher selects every key.
type KeyMatcher struct {
	exact    map[string]bool
	prefixes []string
}

// NewKeyMatcher builds a matcher from a list such as "temperature, env.*".
func NewKeyMatcher(keys []string) KeyMatcher {
	m := KeyMatcher{}
	for _, k := range keys {
		if p, ok := strings.CutSuffix(k, "*"); ok {
			m.prefixes = append(m.prefixes, p)
			continue
		}
		if m.exact == nil {
			m.exact = map[string]bool{}
		}
		m.exact[k] = true
	}
	return m
}

// All reports whether the matcher selects every key.
func (m KeyMatcher) All() bool { return m.exact == nil && m.prefixes == nil }

// Match reports whether key is selected.
func (m KeyMatcher) Match(key string) bool {
	if m.All() || m.exact[key] {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}
