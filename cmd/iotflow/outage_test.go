package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/testdb"
)

// linkProxy is a TCP proxy between the service and PostgreSQL whose link
// can be cut (connections reset, new ones refused) or silenced (bytes
// stop flowing, as when a network drops packets) and then restored.
type linkProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string // "up", "cut" or "silent"
	conns map[net.Conn]bool
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{t: t, ln: ln, target: target, mode: "up", conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.set("cut") })
	return p
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		if mode == "cut" {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = true
		p.mu.Unlock()
		if mode == "silent" {
			continue // held open, never answered
		}
		go p.pipe(c)
	}
}

func (p *linkProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = true
	p.mu.Unlock()
	copyUnlessSilent := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				silent := p.mode == "silent"
				p.mu.Unlock()
				if silent {
					// Swallow the bytes and keep the connection: a
					// black hole, as when a link drops packets.
					continue
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	go copyUnlessSilent(up, c)
	copyUnlessSilent(c, up)
}

// set switches the link; "cut" also resets every open connection.
func (p *linkProxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	if mode == "cut" || mode == "up" {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

// TestDatabaseOutage puts a TCP proxy between the service and the real
// PostgreSQL. With the link cut, and with it silently dropping traffic,
// every request that needs the database answers 503 JSON with Retry-After
// within 5 seconds, requests that do not keep working, and once the link
// is back the service heals by itself.
func TestDatabaseOutage(t *testing.T) {
	if os.Getenv(testdb.PostgresEnv) == "" {
		t.Skipf("%s is not set", testdb.PostgresEnv)
	}
	dbURL, err := url.Parse(testdb.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newLinkProxy(t, dbURL.Host)
	dbURL.Host = proxy.addr()
	const admin = "outage-admin-token-0123456789"
	// The cached key of device A must outlive both outages, however long
	// the recovery in between takes: the heartbeat probe needs it.
	s := startServer(t, map[string]string{"DATABASE_URL": dbURL.String(), "IOTFLOW_ADMIN_TOKEN": admin,
		"RATE_LIMIT_PER_MINUTE": "100000", "TELEMETRY_RATE_LIMIT_PER_MINUTE": "100000", "LOG_LEVEL": "ERROR",
		"IOTFLOW_AUTH_CACHE_TTL": "10m"})
	api := s.base + "/api/v1"

	register := func(name string) (string, float64) {
		code, out := call(t, "POST", api+"/devices/register", map[string]string{"name": name, "device_type": "sensor"}, nil)
		if code != 201 {
			t.Fatalf("register %s: %d %v", name, code, out)
		}
		d := out["device"].(map[string]any)
		return d["api_key"].(string), d["id"].(float64)
	}
	keyA, idA := register("outage-a")
	keyB, _ := register("outage-b") // never used before the outage: not in the auth cache
	devA := map[string]string{"X-API-Key": keyA}
	acked := 0
	post := func() (int, time.Duration) {
		start := time.Now()
		code, _ := call(t, "POST", api+"/devices/telemetry", map[string]any{"data": map[string]any{"v": 1}}, devA)
		if code == 201 {
			acked++
		}
		return code, time.Since(start)
	}
	if code, _ := post(); code != 201 {
		t.Fatalf("telemetry before the outage: %d", code)
	}

	type probe struct {
		method, path string
		body         any
		headers      map[string]string
		want         int
	}
	adm := map[string]string{"Authorization": "Bearer " + admin}
	probes := []probe{
		{"POST", "/api/v1/devices/telemetry", map[string]any{"data": map[string]any{"v": 2}}, devA, 503},
		{"POST", "/api/v1/devices/telemetry/batch", map[string]any{"records": []any{map[string]any{"data": map[string]any{"v": 3}}}}, devA, 503},
		{"GET", "/api/v1/devices/status", nil, devA, 503},
		{"GET", "/api/v1/devices/telemetry", nil, devA, 503},
		{"PUT", "/api/v1/devices/config", map[string]any{"location": "roof"}, devA, 503},
		{"GET", "/api/v1/devices/status", nil, map[string]string{"X-API-Key": keyB}, 503},
		{"POST", "/api/v1/devices/register", map[string]string{"name": "outage-c", "device_type": "sensor"}, nil, 503},
		{"GET", "/api/v1/admin/devices", nil, adm, 503},
		{"GET", "/api/v1/admin/dashboard", nil, adm, 503},
		{"GET", "/api/v1/admin/telemetry", nil, adm, 503},
		{"GET", "/health", nil, nil, 503},
		{"GET", "/readyz", nil, nil, 503},
		// What needs no database keeps working.
		{"GET", "/livez", nil, nil, 200},
		{"POST", "/api/v1/devices/heartbeat", nil, devA, 200},
	}

	for _, mode := range []string{"cut", "silent"} {
		t.Run(mode, func(t *testing.T) {
			proxy.set(mode)
			var wg sync.WaitGroup
			for _, p := range probes {
				wg.Go(func() {
					start := time.Now()
					code, hdr, body := rawCall(t, p.method, s.base+p.path, p.body, p.headers)
					took := time.Since(start)
					if code != p.want {
						t.Errorf("%s %s: %d %s, want %d", p.method, p.path, code, body, p.want)
					}
					if took > 5*time.Second {
						t.Errorf("%s %s took %v; want an answer within 5 s", p.method, p.path, took.Round(time.Millisecond))
					}
					if code == 503 {
						if hdr.Get("Retry-After") == "" {
							t.Errorf("%s %s: 503 without Retry-After", p.method, p.path)
						}
						if !strings.Contains(body, `"error"`) || !strings.Contains(body, `"message"`) {
							t.Errorf("%s %s: 503 body %s is not the JSON error shape", p.method, p.path, body)
						}
					}
				})
			}
			wg.Wait()

			proxy.set("up")
			deadline := time.Now().Add(10 * time.Second)
			for {
				code, _ := post()
				if code == 201 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the service did not heal within 10 s of the link coming back: telemetry %d", code)
				}
				time.Sleep(100 * time.Millisecond)
			}
			for _, path := range []string{"/health", "/readyz"} {
				if code, _, body := rawCall(t, "GET", s.base+path, nil, nil); code != 200 {
					t.Errorf("after recovery %s: %d %s", path, code, body)
				}
			}
			if code, out := call(t, "GET", api+"/devices/status", nil, map[string]string{"X-API-Key": keyB}); code != 200 {
				t.Errorf("after recovery, status of the uncached device: %d %v", code, out)
			}
		})
	}

	// Nothing acknowledged was lost, nothing refused was stored.
	code, out := call(t, "GET", fmt.Sprintf("%s/admin/devices/%d", api, int64(idA)), nil, adm)
	if code != 200 {
		t.Fatalf("admin device: %d %v", code, out)
	}
	if got := out["device"].(map[string]any)["telemetry_count"]; got != float64(acked) {
		t.Errorf("telemetry_count %v, want the %d acknowledged readings", got, acked)
	}
}

// rawCall sends a request and returns the status, headers and body as is.
func rawCall(t *testing.T, method, url string, body any, headers map[string]string) (int, http.Header, string) {
	req, err := newRequest(method, url, body, headers)
	if err != nil {
		t.Error(err)
		return 0, nil, ""
	}
	client := &http.Client{Timeout: 15 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, nil, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}
