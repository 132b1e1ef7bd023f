package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestMQTTFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--connections", "0"}, {"--window", "0"}, {"--rounds", "-1"}, {"--devices", "-1"},
		{"--every", "0s"}, {"extra"},
	} {
		if _, _, err := runCmd(t, nil, append([]string{"mqtt"}, args...)...); err == nil {
			t.Errorf("mqtt %q: no error", args)
		}
	}
	out, _, err := runCmd(t, nil, "mqtt", "--help")
	if err != nil || !strings.Contains(out, "connect storm") {
		t.Errorf("--help: %v, %q", err, out)
	}
}

// TestMQTTBench runs the bench, briefly, against the real server on its
// embedded SQLite: every figure comes out, with no errors.
func TestMQTTBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	bin := buildServer(t)
	out, errOut, err := runCmd(t, map[string]string{"PATH": os.Getenv("PATH")},
		"mqtt", "--server", bin, "--rounds", "1", "--duration", "1s", "--warm", "200ms", "--connections", "2",
		"--window", "4", "--mosquitto", "", "--devices", "20", "--every", "500ms", "--fleet-duration", "2s")
	if err != nil {
		t.Fatalf("mqtt: %v\n%s\n%s", err, out, errOut)
	}
	for _, want := range []string{
		`round 1  HTTP single +[0-9]+ req/s .* errors 0`,
		`round 1  MQTT QoS 1 +[0-9]+ req/s .* errors 0`,
		`round 1  MQTT QoS 1 x4 +[0-9]+ req/s .* errors 0`,
		`MQTT is [0-9.]+x HTTP`,
		`fleet: 20 devices connected in .*, 0 refused`,
		`fleet: publish to PUBACK n [0-9]+ .*, 0 failed`,
		`storm: 20 devices reconnecting at once were all back in .*, 0 refused`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
