package main

import (
	"bytes"
	"context"
	"testing"
)

// runCmd runs iotflow-bench with args and env, and returns stdout, stderr
// and the error.
func runCmd(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"iotflow-bench"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}
