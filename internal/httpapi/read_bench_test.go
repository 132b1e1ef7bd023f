package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

// BenchmarkDeviceTelemetry measures GET /api/v1/devices/telemetry?limit=100
// through the handler, without the network: the read path's time and
// garbage per request.
func BenchmarkDeviceTelemetry(b *testing.B) {
	for _, be := range testdb.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			store := be.Open(b)
			svc := fleet.New(store, fleet.Options{OnlineTimeout: 300 * time.Second, StaticAdminToken: adminToken})
			h := httpapi.NewHandler(httpapi.Deps{Service: svc, Version: "bench"})
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
