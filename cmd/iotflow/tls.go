package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certPollInterval is how often the certificate files are checked for a
// change; tests shorten it.
var certPollInterval = 5 * time.Second

// certReloader holds the certificate being served and replaces it when the
// files change on disk or on SIGHUP, so a renewal needs no restart. A
// failed reload keeps the previous certificate.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	interval          time.Duration

	cert atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // serialises reloads and guards seen
	seen [2]fs.FileInfo
}

// newCertReloader loads the key pair once; an unusable pair is a start-up
// error naming the settings.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log, interval: certPollInterval}
	c.seen = c.stat()
	cert, err := loadCert(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("invalid IOTFLOW_TLS_CERT_FILE / IOTFLOW_TLS_KEY_FILE: %w", err)
	}
	c.cert.Store(cert)
	log.Info("TLS certificate loaded", certAttrs(cert)...)
	if time.Now().After(cert.Leaf.NotAfter) {
		log.Warn("the TLS certificate has expired", certAttrs(cert)...)
	}
	return c, nil
}

// tlsConfig serves the current certificate with HTTP/2 and TLS 1.2 or newer;
// the cipher suites are Go's defaults.
func (c *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: c.getCertificate,
	}
}

func (c *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

// reload re-reads both files. On failure the previous certificate stays
// in service.
func (c *certReloader) reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = c.stat()
	cert, err := loadCert(c.certFile, c.keyFile)
	if err != nil {
		c.log.Warn("TLS certificate not reloaded; still serving the previous one", "err", err)
		return err
	}
	c.cert.Store(cert)
	c.log.Info("TLS certificate reloaded", certAttrs(cert)...)
	return nil
}

// watch reloads on every value from hup and whenever a poll finds either
// file changed (written in place, or replaced by a rename or a new symlink
// target the way certbot renews), until ctx ends.
func (c *certReloader) watch(ctx context.Context, hup <-chan os.Signal) {
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			c.log.Info("SIGHUP: reloading the TLS certificate")
			_ = c.reload()
		case <-tick.C:
			if c.changed() {
				_ = c.reload()
			}
		}
	}
}

// changed reports whether either file differs from when it was last read.
// A failed read is retried only after a further change, so a broken file
// is warned about once, not on every poll.
func (c *certReloader) changed() bool {
	now := c.stat()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range now {
		if !sameFile(c.seen[i], now[i]) {
			return true
		}
	}
	return false
}

func (c *certReloader) stat() [2]fs.FileInfo {
	var out [2]fs.FileInfo
	for i, name := range []string{c.certFile, c.keyFile} {
		out[i], _ = os.Stat(name) // follows symlinks; a missing file is nil
	}
	return out
}

// sameFile reports whether a and b are the same unmodified file.
func sameFile(a, b fs.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// loadCert reads a PEM key pair and checks the leaf parses.
func loadCert(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil { // filled in by LoadX509KeyPair unless GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}

func certAttrs(cert *tls.Certificate) []any {
	return []any{"subject", cert.Leaf.Subject.String(), "serial", cert.Leaf.SerialNumber.String(),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339)}
}
