package iotflow

import (
	"bytes"
	"encoding/json"
	"reflect"
)

// MaxShadowBytes bounds each document of a shadow, as a body bounds a
// reading.
const MaxShadowBytes = 64 << 10

// MergePatch applies an RFC 7396 merge patch to a JSON object: members of
// the patch replace those of doc, a null removes one, and a patch that is
// an object merges into an object member recursively. field names the
// patch in errors. The result is checked like a reading's JSON and
// bounded by MaxShadowBytes.
func MergePatch(doc, patch json.RawMessage, field string) (json.RawMessage, error) {
	if !isObject(patch) {
		return nil, Errorf(EINVALID, "Validation error", "Field '%s' must be a JSON object (a merge patch)", field)
	}
	if err := checkJSON(field, patch); err != nil {
		return nil, err
	}
	var d, p map[string]any
	if err := decodeNumbers(doc, &d); err != nil {
		return nil, err
	}
	if err := decodeNumbers(patch, &p); err != nil {
		return nil, err
	}
	if d == nil {
		d = map[string]any{}
	}
	merged := mergeObject(d, p)
	out, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxShadowBytes {
		return nil, Errorf(EINVALID, "Validation error", "The document would exceed %d bytes", MaxShadowBytes)
	}
	if err := checkJSON(field, out); err != nil {
		return nil, err
	}
	return out, nil
}

func mergeObject(doc, patch map[string]any) map[string]any {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(doc, k)
		case map[string]any:
			dv, ok := doc[k].(map[string]any)
			if !ok {
				dv = map[string]any{}
			}
			doc[k] = mergeObject(dv, pv)
		default:
			doc[k] = v
		}
	}
	return doc
}

// decodeNumbers decodes JSON keeping numbers as they were written.
func decodeNumbers(raw json.RawMessage, v any) error {
	if len(trimJSONSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// ShadowDelta returns the members of desired whose value reported does not
// have, recursively for objects: what the device has yet to apply.
func ShadowDelta(desired, reported json.RawMessage) json.RawMessage {
	var d, r map[string]any
	_ = decodeNumbers(desired, &d)
	_ = decodeNumbers(reported, &r)
	out, _ := json.Marshal(delta(d, r))
	return out
}

func delta(desired, reported map[string]any) map[string]any {
	out := map[string]any{}
	for k, dv := range desired {
		rv, ok := reported[k]
		dm, dIsObj := dv.(map[string]any)
		rm, rIsObj := rv.(map[string]any)
		switch {
		case ok && dIsObj && rIsObj:
			if sub := delta(dm, rm); len(sub) > 0 {
				out[k] = sub
			}
		case !ok || !sameValue(dv, rv):
			out[k] = dv
		}
	}
	return out
}

// SameJSON reports whether two JSON texts hold the same value, whatever
// their spacing, key order or number notation (a store may keep JSON in a
// form of its own); two absent values are the same.
func SameJSON(a, b json.RawMessage) bool {
	var av, bv any
	if decodeNumbers(a, &av) != nil || decodeNumbers(b, &bv) != nil {
		return bytes.Equal(a, b)
	}
	return sameValue(av, bv)
}

// sameValue compares decoded JSON values, numbers by their value.
func sameValue(a, b any) bool {
	switch av := a.(type) {
	case json.Number:
		bn, ok := b.(json.Number)
		if !ok {
			return false
		}
		af, err1 := av.Float64()
		bf, err2 := bn.Float64()
		return err1 == nil && err2 == nil && af == bf
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(av) != len(bm) {
			return false
		}
		for k, v := range av {
			if w, ok := bm[k]; !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		bs, ok := b.([]any)
		if !ok || len(av) != len(bs) {
			return false
		}
		for i := range av {
			if !sameValue(av[i], bs[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
