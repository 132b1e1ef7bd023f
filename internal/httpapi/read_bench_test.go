package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/dbhealth"
	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/metrics"
	"github.com/iotflow/iotflow/internal/ratelimit"
	"github.com/iotflow/iotflow/internal/testdb"
)

// BenchmarkDeviceTelemetry measures GET /api/v1/devices/telemetry?limit=100
// through the handler, without the network: the read path's time and
// garbage per request.
func BenchmarkDeviceTelemetry(b *testing.B) {
	for _, be := range testdb.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			store := be.Open(b)
			svc := fleet.New(store, httpapi.FleetOptions(fleet.Options{OnlineTimeout: 300 * time.Second, StaticAdminToken: adminToken}))
			h := httpapi.NewHandler(httpapi.DepsWithDefaults(httpapi.Deps{Service: svc, Version: "bench"}))
			d, key, err := svc.Register(context.Background(), iotflow.NewDevice{Name: "bench", DeviceType: "sensor"})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now().UTC()
			rs := make([]*iotflow.Reading, 100)
			for i := range rs {
				rs[i] = &iotflow.Reading{DeviceID: d.ID, Timestamp: now.Add(-time.Duration(i) * time.Second), ReceivedAt: now,
					DataType: "sensor", Payload: json.RawMessage(`{"temperature":21.5,"humidity":40,"battery":97}`),
					Metadata: json.RawMessage(`{"fw":"1.2.3"}`), MessageID: fmt.Sprint("m", i)}
			}
			if err := store.InsertReadings(context.Background(), rs); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/api/v1/devices/telemetry?limit=100", nil)
				req.Header.Set("X-API-Key", key)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkSubmitTelemetry measures POST /api/v1/devices/telemetry through
// the handler and the write pipeline, without the network, to a writer
// that only numbers the readings: the service's own time and garbage per
// reading, which every backend pays on top of its database. It is wired as
// serve wires it: rate limits in memory, metrics, the database watcher,
// and a logger at WARNING.
func BenchmarkSubmitTelemetry(b *testing.B) {
	store := testdb.SQLite(b)
	watcher := dbhealth.New(store.Ping, dbhealth.Options{})
	m := metrics.New()
	pipe := ingest.New(numberingWriter{}, httpapi.IngestOptions(ingest.Options{Observe: m.Commit, Bind: watcher.Bind}))
	b.Cleanup(func() { _ = pipe.Close(context.Background()) })
	svc := fleet.New(store, httpapi.FleetOptions(fleet.Options{OnlineTimeout: 300 * time.Second, StaticAdminToken: adminToken, Submitter: pipe}))
	lots := 100_000_000
	h := httpapi.NewHandler(httpapi.DepsWithDefaults(httpapi.Deps{
		Service: svc, Version: "bench", Metrics: m, Database: watcher,
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Limits: &httpapi.Limits{
			Limiter: ratelimit.NewMemory(), Device: ratelimit.PerMinute("device", lots),
			Telemetry: ratelimit.PerMinute("telemetry", lots), Register: ratelimit.PerMinute("register", lots),
			AuthFailures: ratelimit.PerMinute("auth_failures", lots), Admin: ratelimit.PerMinute("admin", lots),
			Backlog: ratelimit.PerMinute("telemetry_backlog", lots),
		},
	}))
	_, key, err := svc.Register(context.Background(), iotflow.NewDevice{Name: "bench", DeviceType: "sensor"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		body := fmt.Sprintf(`{"data":{"temperature":21.5,"humidity":40,"battery":97},"metadata":{"fw":"1.2.3"},"type":"sensor","message_id":"m-%d"}`, i)
		req := httptest.NewRequest("POST", "/api/v1/devices/telemetry", strings.NewReader(body))
		req.Header.Set("X-API-Key", key)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// numberingWriter stores nothing: it gives each reading the next id.
type numberingWriter struct{}

var lastID atomic.Int64

func (numberingWriter) InsertReadings(_ context.Context, rs []*iotflow.Reading) error {
	for _, r := range rs {
		r.ID = lastID.Add(1)
	}
	return nil
}
