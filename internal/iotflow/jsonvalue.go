package iotflow

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// Limits of a reading's JSON.
const (
	MaxJSONDepth   = 32  // nesting of objects and arrays
	MaxPayloadKeys = 256 // object keys, counted at every depth
	// MaxNumberLen bounds a number's text: far more than the 17 significant
	// digits of a float64, and short enough that no store expands it.
	MaxNumberLen = 64
	// maxExponentDigits bounds a number's exponent (1e999 at most): without
	// it, 1e-99999 and 0e99999 fit in a few bytes yet PostgreSQL's numeric
	// refuses them, and 1e2000 is stored as 2,001 digits.
	maxExponentDigits = 3
)

// checkJSON rejects valid JSON that not every backend can store the same
// way, in one pass over raw: nesting deeper than MaxJSONDepth, more than
// MaxPayloadKeys keys, invalid UTF-8, the escape \u0000 (PostgreSQL's jsonb
// refuses NUL), an unpaired UTF-16 surrogate escape such as \ud800 (jsonb
// refuses it, in keys as in values), and a number that is not a finite
// 64-bit float of at most MaxNumberLen characters with an exponent of at
// most three digits. The same rules hold on every store, so what one
// stores another stores too; numbers also stay usable as float64 values.
func checkJSON(field string, raw json.RawMessage) error {
	if !utf8.Valid(raw) {
		return Errorf(EINVALID, "Validation error", "Field '%s' is not valid UTF-8", field)
	}
	depth, keys := 0, 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			end, err := checkString(field, raw, i+1)
			if err != nil {
				return err
			}
			i = end
		case c == '{' || c == '[':
			if depth++; depth > MaxJSONDepth {
				return Errorf(EINVALID, "Validation error", "Field '%s' is nested deeper than %d levels", field, MaxJSONDepth)
			}
		case c == '}' || c == ']':
			depth--
		case c == ':':
			// Outside strings, every ':' of valid JSON follows a key.
			if keys++; keys > MaxPayloadKeys {
				return Errorf(EINVALID, "Validation error", "Field '%s' has more than %d keys", field, MaxPayloadKeys)
			}
		case c == '-' || (c >= '0' && c <= '9'):
			end := i + 1
			for end < len(raw) && isNumberByte(raw[end]) {
				end++
			}
			if !storableNumber(raw[i:end]) {
				return Errorf(EINVALID, "Validation error",
					"Field '%s' holds a number that cannot be stored: numbers must fit a 64-bit float (at most about 1.8e308), "+
						"with at most %d characters and an exponent of at most %d digits", field, MaxNumberLen, maxExponentDigits)
			}
			i = end - 1
		}
	}
	return nil
}

func isNumberByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// checkString checks the escapes of the string whose text starts at
// raw[start] and returns the index of its closing quote. raw is valid JSON.
func checkString(field string, raw []byte, start int) (int, error) {
	for i := start; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			return i, nil
		case '\\':
			i++
			if i >= len(raw) || raw[i] != 'u' {
				continue
			}
			r := hex4(raw[i+1:])
			switch {
			case r == 0:
				return 0, Errorf(EINVALID, "Validation error", "Field '%s' contains the NUL character (\\u0000)", field)
			case r >= 0xDC00 && r <= 0xDFFF:
				return 0, unpairedSurrogate(field)
			case r >= 0xD800 && r <= 0xDBFF:
				// A high surrogate must be followed at once by a low one.
				next := raw[i+5:]
				if len(next) < 6 || next[0] != '\\' || next[1] != 'u' {
					return 0, unpairedSurrogate(field)
				}
				if lo := hex4(next[2:]); lo < 0xDC00 || lo > 0xDFFF {
					return 0, unpairedSurrogate(field)
				}
				i += 6
			}
			i += 4
		}
	}
	return len(raw), nil
}

func unpairedSurrogate(field string) error {
	return Errorf(EINVALID, "Validation error",
		"Field '%s' contains an unpaired UTF-16 surrogate escape (such as \\ud800), which is not a Unicode character", field)
}

// hex4 reads the four hex digits of a \u escape; valid JSON has them.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// storableNumber reports whether a JSON number's text is within the
// limits of checkJSON. Without an exponent, at most MaxNumberLen
// characters are far within a float64's range, so only numbers with one
// are parsed.
func storableNumber(num []byte) bool {
	if len(num) > MaxNumberLen {
		return false
	}
	e := bytes.IndexAny(num, "eE")
	if e < 0 {
		return true
	}
	digits := bytes.TrimLeft(num[e+1:], "+-")
	if len(bytes.TrimLeft(digits, "0")) > maxExponentDigits {
		return false
	}
	f, err := strconv.ParseFloat(string(num), 64)
	return err == nil && !math.IsInf(f, 0)
}
