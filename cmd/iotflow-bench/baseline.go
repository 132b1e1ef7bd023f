package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
)

// baselineHandler is the bare net/http handler IoTFlow is measured
// against: the same HTTP and JSON work as a telemetry POST (read the key
// header, decode the same body, answer 201 with a small JSON document), or
// as a status read (read the key header, answer a device document of the
// service's shape), and no database.
func baselineHandler() http.Handler {
	var id atomic.Int64
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /api/v1/devices/telemetry", func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := bareReading(w, r); !ok {
			return
		}
		answer(w, http.StatusCreated, map[string]any{
			"message":      "Telemetry data received successfully",
			"telemetry_id": id.Add(1),
			"timestamp":    time.Now().UTC().Format("2006-01-02T15:04:05.000000-07:00"),
		})
	})
	mux.HandleFunc("POST /api/v1/devices/telemetry/batch", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") == "" {
			http.Error(w, `{"error":"API key required"}`, http.StatusUnauthorized)
			return
		}
		var body struct {
			Records []json.RawMessage `json:"records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Records) == 0 {
			http.Error(w, `{"error":"Invalid request"}`, http.StatusBadRequest)
			return
		}
		now := time.Now().UTC().Format("2006-01-02T15:04:05.000000-07:00")
		results := make([]map[string]any, len(body.Records))
		for i, raw := range body.Records {
			var in fleet.ReadingInput
			if err := json.Unmarshal(raw, &in); err != nil {
				http.Error(w, `{"error":"Invalid request"}`, http.StatusBadRequest)
				return
			}
			results[i] = map[string]any{"index": i, "status": 201, "telemetry_id": id.Add(1), "timestamp": now}
		}
		answer(w, http.StatusCreated, map[string]any{"message": "Telemetry batch stored successfully", "accepted": len(results), "rejected": 0, "results": results})
	})
	started := time.Now().UTC().Format("2006-01-02T15:04:05.000000-07:00")
	mux.HandleFunc("GET /api/v1/devices/status", func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-API-Key")
		if key == "" {
			http.Error(w, `{"error":"API key required"}`, http.StatusUnauthorized)
			return
		}
		answer(w, http.StatusOK, map[string]any{"status": "success", "device": map[string]any{
			"id": 1, "name": key, "description": nil, "device_type": "sensor", "status": "active",
			"location": "bench", "firmware_version": nil, "hardware_version": nil,
			"created_at": started, "updated_at": started,
			"last_seen":       time.Now().UTC().Format("2006-01-02T15:04:05.000000-07:00"),
			"telemetry_count": id.Load(), "is_online": true,
		}})
	})
	return mux
}

// bareReading does the bare handler's work on a telemetry POST, which the
// floor shares: it reads the key header and decodes the body into the
// service's own input struct. It answers 401 or 400 itself, and then
// reports false.
func bareReading(w http.ResponseWriter, r *http.Request) (key string, in fleet.ReadingInput, ok bool) {
	if key = r.Header.Get("X-API-Key"); key == "" {
		http.Error(w, `{"error":"API key required"}`, http.StatusUnauthorized)
		return "", in, false
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Data) == 0 {
		http.Error(w, `{"error":"Invalid request"}`, http.StatusBadRequest)
		return "", in, false
	}
	return key, in, true
}

// runBaselineServer serves baselineHandler on a free loopback port until
// ctx ends; bench starts it as a child process.
func runBaselineServer(ctx context.Context, e env) error {
	return serveTarget(ctx, e, "baseline", baselineHandler())
}

// serveTarget serves h on a free loopback port, announced on stdout as
// "NAME listening on URL", until ctx ends (bench stops its children with
// SIGTERM), and then closes at once: a bench target has nothing to drain.
func serveTarget(ctx context.Context, e env, name string, h http.Handler) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s listening on http://%s\n", name, ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
