package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestSeedSpreadsReadings: the seed stores exactly n readings, over every
// device when there are fewer than 1000 a device, in batches the batch
// endpoint takes.
func TestSeedSpreadsReadings(t *testing.T) {
	var mu sync.Mutex
	perKey := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Records []json.RawMessage }
		if r.URL.Path != "/api/v1/devices/telemetry/batch" || json.NewDecoder(r.Body).Decode(&body) != nil ||
			len(body.Records) == 0 || len(body.Records) > 1000 {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		mu.Lock()
		perKey[r.Header.Get("X-API-Key")] += len(body.Records)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	for _, c := range []struct{ devices, n int }{{100, 20_000}, {100, 150}, {3, 10_000}} {
		clear(perKey)
		keys := make([]string, c.devices)
		for i := range keys {
			keys[i] = fmt.Sprint("k", i)
		}
		if err := seedReadings(context.Background(), srv.URL, keys, c.n, 30, 4); err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, n := range perKey {
			total += n
		}
		if total != c.n || len(perKey) != min(c.devices, c.n) {
			t.Errorf("%d readings over %d devices: stored %d over %d devices", c.n, c.devices, total, len(perKey))
		}
	}
}
