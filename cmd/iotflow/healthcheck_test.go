package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
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
