package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHealthcheck(t *testing.T) {
	env := map[string]string{"IOTFLOW_DATA_DIR": t.TempDir()}
	s := startServer(t, env)
	u, _ := url.Parse(s.base)
	host, port, _ := net.SplitHostPort(u.Host)

	// The configured address, with a wildcard HOST as in a container.
	out, _, err := runCmd(t, map[string]string{"HOST": "0.0.0.0", "PORT": port}, "healthcheck")
	if err != nil || !strings.Contains(out, `"status":"ready"`) {
		t.Fatalf("healthcheck of a ready server: %v\n%s", err, out)
	}
	if out, _, err := runCmd(t, map[string]string{"HOST": host, "PORT": port}, "healthcheck", "--path", "/livez"); err != nil {
		t.Fatalf("healthcheck --path /livez: %v\n%s", err, out)
	}

	// Not ready: a 503 is a failure, and so is nothing listening.
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	if _, _, err := runCmd(t, nil, "healthcheck", "--url", notReady.URL+"/readyz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("healthcheck of a 503: %v, want an error naming 503", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if _, _, err := runCmd(t, nil, "healthcheck", "--url", "http://"+closed+"/readyz"); err == nil {
		t.Fatal("healthcheck of a closed port succeeded")
	}
}

// TestSIGHUPWithoutTLSKeepsServing: a reload (systemctl reload sends
// SIGHUP) must not kill a server that has no certificate to re-read.
func TestSIGHUPWithoutTLSKeepsServing(t *testing.T) {
	c := startChild(t, map[string]string{"IOTFLOW_DATA_DIR": t.TempDir(), "LOG_LEVEL": "INFO"})
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(c.out.String(), "nothing to reload") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the SIGHUP:\n%s", c.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := http.Get(c.base + "/livez")
	if err != nil {
		t.Fatalf("after SIGHUP the server does not answer: %v\n%s", err, c.out)
	}
	res.Body.Close()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
