package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseModes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []mode
		err  string
	}{
		{"single", []mode{single}, ""},
		{"batch", []mode{batch}, ""},
		{"status", []mode{status}, ""},
		{"single,status", []mode{single, status}, ""},
		{"status, batch ,single", []mode{status, batch, single}, ""},
		{"", nil, "must be single, batch or status"},
		{"single,", nil, "must be single, batch or status"},
		{"reads", nil, "must be single, batch or status"},
		{"single,single", nil, "names single twice"},
	} {
		got, err := parseModes(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseModes(%q) = %v, %v; want an error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parseModes(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if _, _, err := runCmd(t, nil, "--mode", "single,write"); err == nil || !strings.Contains(err.Error(), "--mode") {
		t.Errorf("--mode single,write: err %v", err)
	}
}
