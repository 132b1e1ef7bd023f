package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSimulateFlags(t *testing.T) {
	for _, args := range [][]string{
		{}, {"--url", "127.0.0.1:5000"}, {"--url", "http://x", "--transport", "coap"},
		{"--url", "http://x", "--transport", "http", "--mqtt", "127.0.0.1:18830"},
		{"--url", "http://x", "--mqtt", "no-port"}, {"--url", "http://x", "--devices", "0"},
		{"--url", "http://x", "--every", "0s"}, {"--url", "http://x", "--duration", "-1s"},
		{"--url", "http://x", "extra"},
	} {
		if _, _, err := runCmd(t, nil, append([]string{"simulate"}, args...)...); err == nil {
			t.Errorf("simulate %q: no error", args)
		}
	}
	out, _, err := runCmd(t, nil, "simulate", "--help")
	if err != nil || !strings.Contains(out, "iotflow/devices/{id}/commands") || !strings.Contains(out, "-keys") {
		t.Errorf("--help: %v, %q", err, out)
	}
}

func TestSimKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	want := []simKey{{7, "iot_a"}, {12, "iot_b"}}
	if err := writeSimKeys(path, want); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keys file: %v, mode %v; want 0600", err, fi.Mode())
	}
	got, err := readSimKeys(path)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("read back %v, %v; want %v", got, err, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d files; want the keys file alone", len(entries))
	}

	for text, ok := range map[string]bool{
		"# devices\n\n3 iot_c\n": true, "": false, "# none\n": false,
		"3\n": false, "x iot_c\n": false, "0 iot_c\n": false, "3 iot_c extra\n": false,
	} {
		p := filepath.Join(dir, "k"+strconv.Itoa(len(text)))
		os.WriteFile(p, []byte(text), 0o600)
		if _, err := readSimKeys(p); (err == nil) != ok {
			t.Errorf("read %q: %v", text, err)
		}
	}
}

// closedAddr is an address where nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestSimulateRefused: connections that are refused are counted and
// reported, and the run still ends on time.
func TestSimulateRefused(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := writeSimKeys(keys, []simKey{{1, "iot_x"}, {2, "iot_y"}}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + closedAddr(t)
	for _, args := range [][]string{
		{"--transport", "http"},
		{"--transport", "mqtt", "--mqtt", closedAddr(t)},
	} {
		start := time.Now()
		out, errOut, err := runCmd(t, nil, append([]string{"simulate", "--url", url, "--keys", keys, "--every", "100ms", "--duration", "1500ms"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "no reading was acknowledged") {
			t.Errorf("%q: error %v; want no reading acknowledged", args, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%q: took %s", args, took)
		}
		if !regexp.MustCompile(`done after .*: 2 devices, readings \d+ sent, 0 acknowledged, [1-9]\d* errors`).MatchString(out) ||
			!strings.Contains(out, "first error: device") || !strings.Contains(errOut, "connection refused") {
			t.Errorf("%q: output\n%s\n%s", args, out, errOut)
		}
	}
}

// TestSimulate runs the simulator over each transport against the real
// server: the readings acknowledged are stored, and the commands issued
// meanwhile are answered.
func TestSimulate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	bin := buildServer(t)
	srv, err := startServer(context.Background(), env{getenv: os.Getenv, stdout: t.Output(), stderr: t.Output()}, serverFlags{server: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)

	keys := filepath.Join(t.TempDir(), "keys")
	stored := map[int64]int{}
	// The first run registers the devices and writes them to keys, the
	// second reuses them.
	for _, transport := range []string{"mqtt", "http"} {
		t.Run(transport, func(t *testing.T) {
			type result struct {
				out, errOut string
				err         error
			}
			done := make(chan result, 1)
			go func() {
				out, errOut, err := runCmd(t, nil, "simulate", "--url", srv.url, "--transport", transport,
					"--devices", "3", "--every", "200ms", "--duration", "3s", "--keys", keys)
				done <- result{out, errOut, err}
			}()
			var ks []simKey
			for deadline := time.Now().Add(20 * time.Second); ks == nil; {
				ks, _ = readSimKeys(keys)
				select {
				case r := <-done:
					if ks == nil {
						t.Fatalf("simulate ended before writing %s: %v\n%s\n%s", keys, r.err, r.out, r.errOut)
					}
					done <- r
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("no %s after 20s", keys)
				}
			}
			if len(ks) != 3 {
				t.Fatalf("%s holds %d devices; want 3", keys, len(ks))
			}
			reboot := simIssue(t, srv, ks[0].id, "reboot")
			fail := simIssue(t, srv, ks[1].id, "fail")

			r := <-done
			if r.err != nil {
				t.Fatalf("simulate: %v\n%s\n%s", r.err, r.out, r.errOut)
			}
			t.Logf("simulate over %s:\n%s%s", transport, r.out, r.errOut)
			source := "registered 3 devices"
			if transport == "http" {
				source = "3 devices of " + keys
			}
			m := regexp.MustCompile(`done after .*: 3 devices, readings (\d+) sent, (\d+) acknowledged, 0 errors, 2 commands answered \(1 completed, 1 failed\)`).
				FindStringSubmatch(r.out)
			if m == nil || !strings.Contains(r.out, source) {
				t.Fatalf("output lacks the summary or %q:\n%s", source, r.out)
			}
			sent, _ := strconv.Atoi(m[1])
			acked, _ := strconv.Atoi(m[2])
			if sent != acked || acked < 3 {
				t.Errorf("%d readings sent, %d acknowledged; want as many, and some", sent, acked)
			}

			// Every reading acknowledged is stored, once.
			added := 0
			for _, k := range ks {
				var out struct {
					Count int `json:"count"`
				}
				if status := simAdmin(t, srv, "GET", fmt.Sprintf("/api/v1/admin/devices/%d/telemetry?limit=1000", k.id), "", &out); status != http.StatusOK {
					t.Fatalf("telemetry of device %d: status %d", k.id, status)
				}
				if out.Count <= stored[k.id] {
					t.Errorf("device %d: %d readings stored, none new (%d before)", k.id, out.Count, stored[k.id])
				}
				added += out.Count - stored[k.id]
				stored[k.id] = out.Count
			}
			if added != acked {
				t.Errorf("%d readings stored; %d were acknowledged", added, acked)
			}

			for cid, want := range map[int64]string{reboot: "completed", fail: "failed"} {
				var c struct {
					Status string `json:"status"`
					Result struct {
						HandledBy string `json:"handled_by"`
					} `json:"result"`
				}
				if status := simAdmin(t, srv, "GET", fmt.Sprintf("/api/v1/admin/commands/%d", cid), "", &c); status != http.StatusOK {
					t.Fatalf("command %d: status %d", cid, status)
				}
				if c.Status != want || c.Result.HandledBy != "iotflow-bench simulate" {
					t.Errorf("command %d: %+v; want %s, handled by iotflow-bench simulate", cid, c, want)
				}
			}
		})
	}
}

// simIssue issues a command to device id and returns its id.
func simIssue(t *testing.T, srv *iotflowServer, id int64, command string) int64 {
	t.Helper()
	var c struct {
		ID int64 `json:"id"`
	}
	body := fmt.Sprintf(`{"command":%q,"parameters":{"from":"TestSimulate"}}`, command)
	if status := simAdmin(t, srv, "POST", fmt.Sprintf("/api/v1/admin/devices/%d/commands", id), body, &c); status != http.StatusCreated || c.ID == 0 {
		t.Fatalf("issue %s to device %d: status %d, id %d", command, id, status, c.ID)
	}
	return c.ID
}

// simAdmin makes an admin request and decodes its answer into out.
func simAdmin(t *testing.T, srv *iotflowServer, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+srv.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := benchClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: status %d: %v", method, path, res.StatusCode, err)
	}
	return res.StatusCode
}
