package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iotflow/iotflow/internal/testdb"
)

func newFloor(t *testing.T) (*httptest.Server, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool, err := pgxpool.New(ctx, testdb.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h, err := floorHandler(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, pool
}

func floorPost(t *testing.T, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/api/v1/devices/telemetry", strings.NewReader(body))
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return res.StatusCode, out
}

func floorCount(t *testing.T, url string) int64 {
	t.Helper()
	res, err := http.Get(url + "/floor/count")
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Count int64 }
	if err := jsonDecodeBody(res, &out); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("count: status %d, %v", res.StatusCode, err)
	}
	return out.Count
}

// TestFloorStoresBeforeAnswering: the floor answers 201 with the stored
// row's id, once the row is committed, and refuses what the bare handler
// refuses without storing it.
func TestFloorStoresBeforeAnswering(t *testing.T) {
	srv, pool := newFloor(t)
	status, out := floorPost(t, srv.URL, "k1", `{"data":{"temperature":21.5}}`)
	if status != http.StatusCreated {
		t.Fatalf("status %d, want 201", status)
	}
	id := int64(out["telemetry_id"].(float64))
	var payload []byte
	if err := pool.QueryRow(context.Background(), `SELECT payload::text FROM `+floorTable+` WHERE id = $1 AND device_key = 'k1'`, id).Scan(&payload); err != nil {
		t.Fatalf("row %d: %v", id, err)
	}
	if !bytes.Equal(payload, []byte(`{"temperature": 21.5}`)) {
		t.Fatalf("stored payload %s", payload)
	}
	for _, c := range []struct {
		key, body string
		want      int
	}{
		{"", `{"data":{"t":1}}`, http.StatusUnauthorized},
		{"k1", `{"data":`, http.StatusBadRequest},
		{"k1", `{"metadata":{}}`, http.StatusBadRequest},
	} {
		if status, _ := floorPost(t, srv.URL, c.key, c.body); status != c.want {
			t.Errorf("key %q body %s: status %d, want %d", c.key, c.body, status, c.want)
		}
	}
	if n := floorCount(t, srv.URL); n != 1 {
		t.Fatalf("%d rows stored, want 1", n)
	}
}

// TestFloorLeavesAnotherFloorsTable: a floor started on a database where
// the table exists (another floor's, running) refuses to start, and the
// other floor's rows stay.
func TestFloorLeavesAnotherFloorsTable(t *testing.T) {
	srv, pool := newFloor(t)
	if status, _ := floorPost(t, srv.URL, "k1", `{"data":{"t":1}}`); status != http.StatusCreated {
		t.Fatalf("status %d", status)
	}
	_, err := floorHandler(t.Context(), pool)
	if err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("second floor: err %v, want a refusal", err)
	}
	if n := floorCount(t, srv.URL); n != 1 {
		t.Fatalf("the first floor has %d rows, want its 1", n)
	}
}

// TestFloorConcurrentReadings: readings that arrive together, and so share
// batches, are each answered with their own stored row.
func TestFloorConcurrentReadings(t *testing.T) {
	srv, pool := newFloor(t)
	const n = 64
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			status, out := floorPost(t, srv.URL, fmt.Sprint("k", i%8), fmt.Sprintf(`{"data":{"i":%d}}`, i))
			if status != http.StatusCreated {
				t.Errorf("reading %d: status %d", i, status)
				return
			}
			ids[i] = int64(out["telemetry_id"].(float64))
		})
	}
	wg.Wait()
	for i, id := range ids {
		var key string
		var got int
		if err := pool.QueryRow(context.Background(), `SELECT device_key, (payload->>'i')::int FROM `+floorTable+` WHERE id = $1`, id).Scan(&key, &got); err != nil {
			t.Fatalf("reading %d answered with id %d: %v", i, id, err)
		}
		if key != fmt.Sprint("k", i%8) || got != i {
			t.Fatalf("reading %d answered with id %d, which holds reading %d of %s", i, id, got, key)
		}
	}
	if got := floorCount(t, srv.URL); got != n {
		t.Fatalf("%d rows stored, want %d", got, n)
	}
}

// TestFloorFailedCommitIsNotAcknowledged: when the batch cannot be
// stored, the reading gets 503, never 201.
func TestFloorFailedCommitIsNotAcknowledged(t *testing.T) {
	srv, pool := newFloor(t)
	if _, err := pool.Exec(context.Background(), `DROP TABLE `+floorTable); err != nil {
		t.Fatal(err)
	}
	if status, _ := floorPost(t, srv.URL, "k1", `{"data":{"t":1}}`); status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", status)
	}
}

// TestFloorFlags: the floor is refused before anything starts unless it is
// given its own database; a DATABASE_URL in the environment does not do.
func TestFloorFlags(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/production"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--floor"}, "--floor needs --floor-database"},
		{[]string{"--floor", "--database", "postgres://127.0.0.1:1/none"}, "--floor needs --floor-database"},
		{[]string{"--floor-database", "postgres://127.0.0.1:1/none"}, "--floor-database is for --floor"},
		{[]string{"--floor", "--floor-database", "postgres://127.0.0.1:1/none", "--mode", "batch"}, "--floor measures single readings only"},
	} {
		_, _, err := runCmd(t, env, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.args, err, c.want)
		}
	}
}

// TestBenchTargetStopsWithContext: the bench's own targets (the bare
// handler, the floor) stop when their context ends, as it does on SIGTERM,
// instead of making bench wait for its kill timeout.
func TestBenchTargetStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	defer w.Close()
	done := make(chan error, 1)
	go func() { done <- serveTarget(ctx, env{stdout: w}, "baseline", baselineHandler()) }()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	url := strings.TrimSpace(strings.TrimPrefix(line, "baseline listening on "))
	res, err := http.Post(url+"/api/v1/devices/telemetry", "application/json", strings.NewReader(`{"data":{"t":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d without a key, want 401", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveTarget: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the target did not stop when its context ended")
	}
}
