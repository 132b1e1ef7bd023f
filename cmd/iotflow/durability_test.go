package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/postgres"
	"github.com/iotflow/iotflow/internal/sqlite"
)

// childEnv marks a test binary started as an IoTFlow server process.
const childEnv = "IOTFLOW_TEST_CHILD_SERVE"

// TestMain lets the test binary double as the server: the durability test
// starts it again as a child process, which it can kill.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, []string{"iotflow", "serve"}, os.Getenv, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childServer is this test binary serving in a process of its own.
type childServer struct {
	cmd  *exec.Cmd
	base string
	// out collects the child's stdout and stderr; outDone is closed when
	// its stdout ends, that is when the process has exited.
	out     *syncBuffer
	outDone chan struct{}
}

func startChild(t *testing.T, env map[string]string) *childServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "HOST=127.0.0.1", "PORT=0", "LOG_FILE=off", "LOG_LEVEL=ERROR", "IOTFLOW_MQTT_ADDR=127.0.0.1:0",
		"IOTFLOW_ADMIN_TOKEN=durability-test-admin-token")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	collected, outDone := &syncBuffer{}, make(chan struct{})
	cmd.Stderr = io.MultiWriter(os.Stderr, collected)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		defer close(outDone)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			fmt.Fprintln(collected, sc.Text())
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, out) // never leave the child blocked on a full pipe
	}()
	select {
	case a := <-addr:
		return &childServer{cmd: cmd, base: a, out: collected, outDone: outDone}
	case <-time.After(20 * time.Second):
		t.Fatal("the child server did not start")
		return nil
	}
}

type ack struct {
	id        float64
	timestamp string
}

// TestAcknowledgedReadingsSurviveSIGKILL kills the server with SIGKILL while
// clients write, restarts it on the same database and checks that every
// acknowledged reading is stored exactly once, and that retrying them
// after the restart stores nothing twice.
func TestAcknowledgedReadingsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	for name, envFor := range backendEnvs(t) {
		t.Run(name, func(t *testing.T) {
			env := envFor(t)
			srv := startChild(t, env)
			code, reg := call(t, "POST", srv.base+"/api/v1/devices/register", map[string]string{"name": "Crash Test", "device_type": "sensor"}, nil)
			if code != 201 {
				t.Fatalf("register: %d %v", code, reg)
			}
			key := reg["device"].(map[string]any)["api_key"].(string)
			devID := int64(reg["device"].(map[string]any)["id"].(float64))

			var mu sync.Mutex
			acked := map[string]ack{}
			client := &http.Client{Timeout: 5 * time.Second}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						msg := fmt.Sprintf("w%d-%d", w, i)
						body := fmt.Sprintf(`{"data":{"i":%d},"message_id":%q}`, i, msg)
						req, _ := http.NewRequest("POST", srv.base+"/api/v1/devices/telemetry", strings.NewReader(body))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("X-API-Key", key)
						res, err := client.Do(req)
						if err != nil {
							return // the server is gone
						}
						var out map[string]any
						decodeBody(res, &out)
						if res.StatusCode == 201 {
							mu.Lock()
							acked[msg] = ack{out["telemetry_id"].(float64), out["timestamp"].(string)}
							mu.Unlock()
						}
					}
				}()
			}
			time.Sleep(1500 * time.Millisecond)
			if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			srv.cmd.Wait()
			close(stop)
			wg.Wait()
			if len(acked) < 50 {
				t.Fatalf("only %d readings were acknowledged before the kill", len(acked))
			}

			// Every acknowledged reading is in the database, once, with its id.
			stored := readStored(t, env, devID)
			for msg, a := range acked {
				ids := stored[msg]
				if len(ids) != 1 || float64(ids[0]) != a.id {
					t.Fatalf("acknowledged %s (id %v) is stored as %v", msg, a.id, ids)
				}
			}
			t.Logf("%s: %d acknowledged before SIGKILL, %d stored", name, len(acked), len(stored))

			// After a restart, retries of acknowledged readings are answered
			// with the original ids and store nothing.
			srv2 := startChild(t, env)
			n := 0
			for msg, a := range acked {
				if n++; n > 20 {
					break
				}
				code, out := call(t, "POST", srv2.base+"/api/v1/devices/telemetry",
					map[string]any{"data": map[string]int{"retry": 1}, "message_id": msg}, map[string]string{"X-API-Key": key})
				if code != 201 || out["telemetry_id"] != a.id || out["duplicate"] != true || out["timestamp"] != a.timestamp {
					t.Fatalf("retry of %s after restart: %d %v, want id %v", msg, code, out, a.id)
				}
			}
			srv2.cmd.Process.Signal(syscall.SIGTERM)
			srv2.cmd.Wait()
			if after := readStored(t, env, devID); len(after) != len(stored) {
				t.Fatalf("retries stored readings: %d before, %d after", len(stored), len(after))
			}
		})
	}
}

func decodeBody(res *http.Response, out any) {
	defer res.Body.Close()
	_ = json.NewDecoder(res.Body).Decode(out)
}

// readStored opens the database the server used and returns the stored
// reading ids of a device by message id.
func readStored(t *testing.T, env map[string]string, deviceID int64) map[string][]int64 {
	t.Helper()
	ctx := context.Background()
	store := openStore(t, env)
	defer store.Close()
	rs, err := store.ListReadings(ctx, iotflow.ReadingFilter{DeviceID: deviceID, Limit: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int64{}
	for _, r := range rs {
		out[r.MessageID] = append(out[r.MessageID], r.ID)
	}
	d, err := store.Device(ctx, deviceID)
	if err != nil || d.TelemetryCount != int64(len(rs)) {
		t.Fatalf("telemetry_count %d for %d stored readings (%v)", d.TelemetryCount, len(rs), err)
	}
	return out
}

// openStore opens the database of a child server's environment.
func openStore(t *testing.T, env map[string]string) iotflow.Store {
	t.Helper()
	var store iotflow.Store
	var err error
	if dir := env["IOTFLOW_DATA_DIR"]; dir != "" {
		store, err = sqlite.Open(context.Background(), dir+"/iotflow.db")
	} else {
		store, err = postgres.Open(context.Background(), env["DATABASE_URL"])
	}
	if err != nil {
		t.Fatal(err)
	}
	return store
}
