package main

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCmd runs one iotflow command with env and returns stdout and the error.
func runCmd(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"iotflow"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

var apiKeyRE = regexp.MustCompile(`API key (iot_[A-Za-z0-9_-]{43})`)

func TestInitCreatesSampleDevicesOnce(t *testing.T) {
	for name, envFor := range backendEnvs(t) {
		t.Run(name, func(t *testing.T) {
			env := envFor(t)
			out, _, err := runCmd(t, env, "init")
			if err != nil {
				t.Fatal(err)
			}
			keys := apiKeyRE.FindAllStringSubmatch(out, -1)
			if len(keys) != 3 || !strings.Contains(out, "curl") {
				t.Fatalf("init printed %d keys:\n%s", len(keys), out)
			}
			for _, n := range []string{"Temperature Sensor 001", "Smart Door Lock", "Security Camera 01"} {
				if !strings.Contains(out, n) {
					t.Errorf("init did not create %q", n)
				}
			}
			again, _, err := runCmd(t, env, "init")
			if err != nil {
				t.Fatal(err)
			}
			if apiKeyRE.MatchString(again) || strings.Count(again, "exists already") != 3 {
				t.Fatalf("second init:\n%s", again)
			}

			// The printed keys work, and the devices are as the reference made them.
			srv := startServer(t, env)
			code, st := call(t, "GET", srv.base+"/api/v1/devices/status", nil, map[string]string{"X-API-Key": keys[0][1]})
			d, _ := st["device"].(map[string]any)
			if code != 200 || d["name"] != "Temperature Sensor 001" || d["location"] != "Living Room" ||
				d["firmware_version"] != "1.2.3" || d["hardware_version"] != "v2.1" || d["device_type"] != "sensor" {
				t.Fatalf("status with init key: %d %v", code, st)
			}
		})
	}
}

func TestAdminCreateToken(t *testing.T) {
	env := map[string]string{"IOTFLOW_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	out, _, err := runCmd(t, env, "admin", "create-token", "--name", "ci")
	if err != nil {
		t.Fatal(err)
	}
	m := adminTokenRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no token printed:\n%s", out)
	}
	if _, _, err := runCmd(t, env, "admin", "create-token", "--name", "ci"); err == nil {
		t.Fatal("a second token with the same name was accepted")
	}
	if _, _, err := runCmd(t, env, "admin", "rotate"); err == nil {
		t.Fatal("unknown admin subcommand accepted")
	}

	// With a minted token present, serve mints none and accepts the minted one.
	srv := startServer(t, env)
	if adminTokenRE.MatchString(srv.stdout.String()) {
		t.Fatalf("serve minted a token although one exists:\n%s", srv.stdout)
	}
	if code, _ := call(t, "GET", srv.base+"/api/v1/admin/dashboard", nil, map[string]string{"Authorization": "Bearer " + m[1]}); code != http.StatusOK {
		t.Fatalf("minted token refused: %d", code)
	}
}

func TestStaticAdminToken(t *testing.T) {
	env := map[string]string{"IOTFLOW_DATA_DIR": filepath.Join(t.TempDir(), "data"), "IOTFLOW_ADMIN_TOKEN": "static-token-for-tests-123"}
	srv := startServer(t, env)
	if adminTokenRE.MatchString(srv.stdout.String()) {
		t.Fatal("serve minted a token although IOTFLOW_ADMIN_TOKEN is set")
	}
	if code, _ := call(t, "GET", srv.base+"/api/v1/admin/dashboard", nil, map[string]string{"Authorization": "Bearer static-token-for-tests-123"}); code != 200 {
		t.Fatalf("static token refused: %d", code)
	}
}

func TestCommands(t *testing.T) {
	env := map[string]string{"IOTFLOW_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	out, _, err := runCmd(t, env, "migrate")
	if err != nil || !strings.Contains(out, "applied migrations [1") {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, env, "migrate")
	if err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, env, "version")
	if err != nil || !strings.HasPrefix(out, "iotflow ") || !strings.Contains(out, "go: go1.") {
		t.Fatalf("version: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"migrate", "--help"}, {"init", "--help"},
		{"admin", "--help"}, {"admin", "create-token", "--help"}, {"version", "--help"}, {"help"}} {
		out, _, err := runCmd(t, env, args...)
		if err != nil || !strings.Contains(out, "Usage") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if out, _, _ := runCmd(t, env, "serve", "--help"); !strings.Contains(out, "RATE_LIMIT_PER_MINUTE") {
		t.Errorf("serve --help does not list the configuration")
	}
	if _, _, err := runCmd(t, env, "frobnicate"); err == nil {
		t.Error("unknown command accepted")
	}
	if _, _, err := runCmd(t, env, "serve", "extra"); err == nil {
		t.Error("stray argument accepted")
	}
}

func TestInvalidConfigurationStopsStart(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"PORT", "eighty"}, {"LOG_LEVEL", "CHATTY"}, {"DATABASE_URL", "mysql://x/y"}, {"IOTFLOW_ONLINE_TIMEOUT", "-5s"},
	} {
		env := map[string]string{"IOTFLOW_DATA_DIR": filepath.Join(t.TempDir(), "data"), tc.name: tc.value}
		for _, cmd := range []string{"serve", "migrate", "init"} {
			_, _, err := runCmd(t, env, cmd)
			if err == nil || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("%s with %s=%s: err %v, want one naming the variable", cmd, tc.name, tc.value, err)
			}
		}
	}
	// An unreachable PostgreSQL is an error at start, not a hang.
	env := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", "LOG_FILE": "off"}
	if _, _, err := runCmd(t, env, "serve"); err == nil || !strings.Contains(err.Error(), "postgres") {
		t.Errorf("unreachable database: %v", err)
	}
}
