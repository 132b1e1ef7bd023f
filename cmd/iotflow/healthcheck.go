package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

const healthcheckUsage = `Usage: iotflow healthcheck [--path /readyz] [--url URL]

Asks the service running on this host whether it is ready, for container
health checks in images without a shell or curl: exits 0 when it answers
200, 1 otherwise. The address comes from HOST and PORT (a wildcard HOST
means this host's loopback), the scheme from IOTFLOW_TLS_CERT_FILE; the
certificate is not verified, since the probe names 127.0.0.1, not the
certificate's host.

`

func runHealthcheck(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	path := fs.String("path", "/readyz", "path to probe: /readyz (database reachable, schema current) or /livez (process serving)")
	target := fs.String("url", "", "full URL to probe instead of the configured address")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, e, args, healthcheckUsage); err != nil {
		return helpOK(err)
	}
	u := *target
	if u == "" {
		cfg, err := loadConfig(e)
		if err != nil {
			return err
		}
		host := cfg.Host
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		scheme := "http"
		if cfg.TLSCertFile != "" {
			scheme = "https"
		}
		u = scheme + "://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port)) + *path
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // a loopback probe of our own listener
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d: %s", u, res.StatusCode, body)
	}
	fmt.Fprintf(e.stdout, "%s: %s", u, body)
	return nil
}
