package main

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestDuplicateTokenNameIsASentence: a refused command says what was
// wrong in a sentence, not as a dump of the error's fields.
func TestDuplicateTokenNameIsASentence(t *testing.T) {
	env := map[string]string{"IOTFLOW_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	if _, _, err := runCmd(t, env, "admin", "create-token", "--name", "ci"); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCmd(t, env, "admin", "create-token", "--name", "ci")
	if got, want := describe(err), `An admin token named "ci" exists`; got != want {
		t.Fatalf("describe(%v) = %q, want %q", err, got, want)
	}
	if got := describe(fmt.Errorf("open sqlite database: %w", fmt.Errorf("disk full"))); got != "open sqlite database: disk full" {
		t.Fatalf("describe of a plain error = %q", got)
	}
}
