package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// findServer returns the iotflow executable to start: the one named by
// --server, else an iotflow beside this program, else iotflow in PATH.
func findServer(named string) (string, error) {
	if named != "" {
		path, err := exec.LookPath(named)
		if err != nil {
			return "", fmt.Errorf("--server %s: %w", named, err)
		}
		return filepath.Abs(path)
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "iotflow")
		if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return beside, nil
		}
	}
	if path, err := exec.LookPath("iotflow"); err == nil {
		return filepath.Abs(path)
	}
	return "", errors.New("no iotflow server binary beside iotflow-bench or in PATH: build it with " +
		"'go build -o iotflow ./cmd/iotflow' and name it with --server, or give --url")
}

// spawnBenchTarget starts one of the bench's own targets ("baseline" or
// "floor": iotflow-bench serve-NAME) and returns it with the address that
// serveBenchTarget announces.
func spawnBenchTarget(ctx context.Context, name string) (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	return spawn(ctx, self, []string{"serve-" + name}, nil, regexp.MustCompile(regexp.QuoteMeta(name)+` listening on (http://\S+)`))
}

// spawn starts exe with args as a child process and waits for its
// address on stdout.
func spawn(ctx context.Context, exe string, args, env []string, addrRE *regexp.Regexp) (*exec.Cmd, string, error) {
	cmd := exec.Command(exe, args...)
	// The load comes from one address and a hundred devices far faster than
	// any device would send: the rate limits are lifted for the benchmark.
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT=0", "LOG_FILE=off", "LOG_LEVEL=WARNING",
		"RATE_LIMIT_PER_MINUTE=100000000", "TELEMETRY_RATE_LIMIT_PER_MINUTE=100000000",
		"IOTFLOW_REGISTER_RATE_LIMIT_PER_MINUTE=100000000", "IOTFLOW_ADMIN_RATE_LIMIT_PER_MINUTE=100000000",
		// The load generator speaks plain HTTP to the server it starts,
		// and needs no second listener.
		"IOTFLOW_TLS_CERT_FILE=", "IOTFLOW_TLS_KEY_FILE=", "IOTFLOW_METRICS_ADDR=")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-found:
		return cmd, u, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	stopChild(cmd)
	return nil, "", errors.New("the server did not start")
}

func stopChild(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
