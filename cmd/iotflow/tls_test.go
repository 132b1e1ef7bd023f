package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testPKI is a throwaway CA and the key pairs it issued, as PEM.
type testPKI struct {
	pool   *x509.CertPool
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "iotflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{pool: pool, ca: ca, caKey: key, serial: 1}
}

// issue returns a PEM certificate and key for 127.0.0.1 named cn.
func (p *testPKI) issue(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// replaceFile writes data beside path and renames it into place, the way
// certbot and most deployment tools renew a certificate.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// withCertPoll sets certPollInterval for one test.
func withCertPoll(t *testing.T, d time.Duration) {
	old := certPollInterval
	certPollInterval = d
	t.Cleanup(func() { certPollInterval = old })
}

var listenTLSRE = regexp.MustCompile(`listening on (https://\S+)`)

// startTLSServer runs `iotflow serve` with the key pair in certFile and
// keyFile and waits until /health answers over HTTPS.
func startTLSServer(t *testing.T, pool *x509.CertPool, certFile, keyFile string) (base string, out *syncBuffer) {
	t.Helper()
	env := map[string]string{"LOG_LEVEL": "INFO", "IOTFLOW_DATA_DIR": filepath.Join(t.TempDir(), "data"),
		"IOTFLOW_TLS_CERT_FILE": certFile, "IOTFLOW_TLS_KEY_FILE": keyFile}
	s := startServerWith(t, env, httpsClient(t, pool), listenTLSRE)
	return s.base, s.stdout
}

// httpsClient trusts only pool and offers HTTP/2. Its idle connections
// are closed at the end of the test, which spares the server's shutdown
// the HTTP/2 GOAWAY wait.
func httpsClient(t *testing.T, pool *x509.CertPool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

// servedCN is the common name of the certificate a new connection to base
// is shown.
func servedCN(t *testing.T, base string, pool *x509.CertPool) string {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// certFiles is a test PKI with two certificates, A and B, and a
// certificate and key file that hold A.
type certFiles struct {
	pki                      *testPKI
	certFile, keyFile        string
	certA, keyA, certB, keyB []byte
}

func newCertFiles(t *testing.T) certFiles {
	t.Helper()
	f := certFiles{pki: newTestPKI(t)}
	dir := t.TempDir()
	f.certFile, f.keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	f.certA, f.keyA = f.pki.issue(t, "iotflow-a")
	f.certB, f.keyB = f.pki.issue(t, "iotflow-b")
	replaceFile(t, f.certFile, f.certA)
	replaceFile(t, f.keyFile, f.keyA)
	return f
}

func TestTLSServeAndReloadOnChange(t *testing.T) {
	withCertPoll(t, 50*time.Millisecond)
	f := newCertFiles(t)
	pki, certFile, keyFile := f.pki, f.certFile, f.keyFile
	certA, keyA, certB, keyB := f.certA, f.keyA, f.certB, f.keyB

	base, out := startTLSServer(t, pki.pool, certFile, keyFile)

	res, err := httpsClient(t, pki.pool).Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
		t.Fatalf("GET /health: %d over %s, want 200 over HTTP/2", res.StatusCode, res.Proto)
	}
	if cn := res.TLS.PeerCertificates[0].Subject.CommonName; cn != "iotflow-a" {
		t.Fatalf("served %q, want iotflow-a", cn)
	}

	old := &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), old); err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.1 refused with %v, want a protocol version alert", err)
	}

	// A renewal renamed into place is served without a restart.
	replaceFile(t, keyFile, keyB)
	replaceFile(t, certFile, certB)
	if !waitFor(5*time.Second, func() bool { return servedCN(t, base, pki.pool) == "iotflow-b" }) {
		t.Fatalf("the renewed certificate was not picked up:\n%s", out)
	}
	if !waitFor(time.Second, func() bool { return strings.Contains(out.String(), "CN=iotflow-b") }) {
		t.Errorf("no log line names the new certificate:\n%s", out)
	}

	// A half-written file is warned about and the previous one kept. (The
	// renewal above may have been warned about already, between the two
	// renames.)
	warnings := func() int { return strings.Count(out.String(), "TLS certificate not reloaded") }
	before := warnings()
	replaceFile(t, certFile, certA[:len(certA)/2])
	if !waitFor(5*time.Second, func() bool { return warnings() > before }) {
		t.Fatalf("no warning about the broken certificate:\n%s", out)
	}
	if cn := servedCN(t, base, pki.pool); cn != "iotflow-b" {
		t.Fatalf("after a broken renewal served %q, want iotflow-b still", cn)
	}
	res, err = httpsClient(t, pki.pool).Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	// Once the pair is whole again it is served.
	replaceFile(t, keyFile, keyA)
	replaceFile(t, certFile, certA)
	if !waitFor(5*time.Second, func() bool { return servedCN(t, base, pki.pool) == "iotflow-a" }) {
		t.Fatalf("the repaired certificate was not picked up:\n%s", out)
	}
}

func TestTLSReloadOnSIGHUP(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on Windows")
	}
	withCertPoll(t, time.Hour) // only the signal can cause the reload
	f := newCertFiles(t)
	pki, certFile, keyFile := f.pki, f.certFile, f.keyFile
	certB, keyB := f.certB, f.keyB
	base, out := startTLSServer(t, pki.pool, certFile, keyFile)

	replaceFile(t, keyFile, keyB)
	replaceFile(t, certFile, certB)
	time.Sleep(100 * time.Millisecond)
	if cn := servedCN(t, base, pki.pool); cn != "iotflow-a" {
		t.Fatalf("served %q before SIGHUP, want iotflow-a", cn)
	}
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return servedCN(t, base, pki.pool) == "iotflow-b" }) {
		t.Fatalf("SIGHUP did not reload the certificate:\n%s", out)
	}
}

// TestTLSReloaderWatch drives the reloader the way serve does, with the
// signal channel in the test's hands.
func TestTLSReloaderWatch(t *testing.T) {
	f := newCertFiles(t)
	certFile, keyFile := f.certFile, f.keyFile
	certB, keyB := f.certB, f.keyB
	withCertPoll(t, time.Hour)
	c, err := newCertReloader(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.tlsConfig()
	if cfg.MinVersion != tls.VersionTLS12 || cfg.CipherSuites != nil {
		t.Errorf("MinVersion %x, CipherSuites %v; want TLS 1.2 and Go's defaults", cfg.MinVersion, cfg.CipherSuites)
	}
	served := func() string {
		cert, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return cert.Leaf.Subject.CommonName
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	stopped := make(chan struct{})
	go func() { defer close(stopped); c.watch(ctx, hup) }()
	defer func() { cancel(); <-stopped }()

	// A mismatched pair is refused on SIGHUP; the previous one stays.
	replaceFile(t, certFile, certB)
	hup <- syscall.SIGHUP
	if err := c.reload(); err == nil {
		t.Fatal("reload of a mismatched pair succeeded")
	}
	if got := served(); got != "iotflow-a" {
		t.Fatalf("after a mismatched pair served %q, want iotflow-a", got)
	}

	replaceFile(t, keyFile, keyB)
	hup <- syscall.SIGHUP
	if !waitFor(5*time.Second, func() bool { return served() == "iotflow-b" }) {
		t.Fatal("SIGHUP did not reload the certificate")
	}
}

func TestTLSBadKeyPairStopsStart(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	certA, keyA := pki.issue(t, "iotflow-a")
	_, keyB := pki.issue(t, "iotflow-b")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		replaceFile(t, p, data)
		return p
	}
	certFile, keyAFile, keyBFile := write("cert.pem", certA), write("a.key", keyA), write("b.key", keyB)
	broken := write("broken.pem", certA[:len(certA)/2])
	for name, files := range map[string][2]string{
		"missing key":    {certFile, filepath.Join(dir, "nope.key")},
		"mismatched key": {certFile, keyBFile},
		"broken cert":    {broken, keyAFile},
		"no key set":     {certFile, ""},
	} {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{"HOST": "127.0.0.1", "PORT": "0", "LOG_FILE": "off", "LOG_LEVEL": "ERROR", "IOTFLOW_MQTT_ADDR": "off",
				"IOTFLOW_DATA_DIR":      filepath.Join(t.TempDir(), "data"),
				"IOTFLOW_TLS_CERT_FILE": files[0], "IOTFLOW_TLS_KEY_FILE": files[1]}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, []string{"iotflow", "serve"}, func(k string) string { return env[k] }, &syncBuffer{}, &syncBuffer{})
			if err == nil || !strings.Contains(err.Error(), "IOTFLOW_TLS_CERT_FILE") {
				t.Fatalf("serve returned %v, want an error naming IOTFLOW_TLS_CERT_FILE", err)
			}
		})
	}
}
