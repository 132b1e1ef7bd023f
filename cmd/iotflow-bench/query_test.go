package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchQueryFlags: the flags that need a server of the user's are
// refused without one, before anything is started.
func TestBenchQueryFlags(t *testing.T) {
	for _, args := range [][]string{
		{"query", "--keys", filepath.Join(t.TempDir(), "keys")},
		{"query", "--seed=false"},
	} {
		_, _, err := runCmd(t, nil, args...)
		if err == nil || !strings.Contains(err.Error(), "--url") {
			t.Errorf("%v: err %v, want one naming --url", args, err)
		}
	}
}
