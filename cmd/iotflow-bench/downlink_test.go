package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestGauge(t *testing.T) {
	const text = `# HELP iotflow_long_polls_waiting Long polls waiting now on this node.
# TYPE iotflow_long_polls_waiting gauge
iotflow_long_polls_waiting 10000
iotflow_long_polls_waiting_other 3
`
	if v, ok := gauge([]byte(text), "iotflow_long_polls_waiting"); !ok || v != 10000 {
		t.Errorf("gauge = %v, %v; want 10000", v, ok)
	}
	if _, ok := gauge([]byte("iotflow_long_polls_waiting_other 3\n"), "iotflow_long_polls_waiting"); ok {
		t.Error("gauge read another metric")
	}
	if _, ok := gauge([]byte("iotflow_long_polls_waiting x\n"), "iotflow_long_polls_waiting"); ok {
		t.Error("gauge read a value that is not a number")
	}
}

func TestDownlinkFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--samples", "0"}, {"--polls", "-1"}, {"--poll-samples", "0"},
		{"--redis", "redis://127.0.0.1:6379/0"}, {"extra"},
	} {
		if _, _, err := runCmd(t, nil, append([]string{"downlink"}, args...)...); err == nil {
			t.Errorf("downlink %q: no error", args)
		}
	}
	out, _, err := runCmd(t, nil, "downlink", "--help")
	if err != nil || !strings.Contains(out, "iotflow_long_polls_waiting") {
		t.Errorf("--help: %v, %q", err, out)
	}
}

// TestDownlinkBench runs the bench, briefly, against the real server on
// its embedded SQLite: every figure comes out, and no long poll fails.
func TestDownlinkBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	bin := buildServer(t)
	out, errOut, err := runCmd(t, map[string]string{"PATH": os.Getenv("PATH")},
		"downlink", "--server", bin, "--samples", "5", "--polls", "50", "--poll-samples", "5")
	if err != nil {
		t.Fatalf("downlink: %v\n%s\n%s", err, out, errOut)
	}
	for _, want := range []string{
		`one node, SQLite: +n 5  p50 [0-9.]+ms  p90 [0-9.]+ms  p99 [0-9.]+ms  max [0-9.]+ms`,
		`50 long polls waiting`,
		`RSS [0-9.]+ MiB before, [0-9.]+ MiB while 50 wait \(peak\).*; 0 polls failed`,
		`wake-ups among them: +n 5  p50`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// buildServer builds the iotflow binary for a test that starts it.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "iotflow")
	if out, err := exec.Command("go", "build", "-o", bin, "../iotflow").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
