package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

// poisonPayload is a value PostgreSQL's jsonb refuses: validation keeps it
// out, so only a submission that bypasses validation carries it.
const poisonPayload = `{"a":"\ud800"}`

// refuser is SQLite standing in for a database that refuses a value: the
// embedded store keeps any text, so it fails a transaction holding the
// poison payload the way PostgreSQL does, as a whole.
type refuser struct{ Writer }

func (r refuser) InsertReadings(ctx context.Context, rs []*iotflow.Reading) error {
	for _, rd := range rs {
		if string(rd.Payload) == poisonPayload {
			return iotflow.Errorf(iotflow.EINVALID, "Validation error", "The database cannot store a value of the request")
		}
	}
	return r.Writer.InsertReadings(ctx, rs)
}

// TestPoisonReadingsFailAlone: concurrent good and poison submissions share
// transactions; whatever the database refuses for one reading's content
// fails that reading alone, as EINVALID and never a 503, and every good
// reading, in the same transactions and the same requests, is stored.
func TestPoisonReadingsFailAlone(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			store := b.Open(t)
			var w Writer = store
			if b.Name == "sqlite" {
				w = refuser{store}
			}
			devices := make([]int64, 4)
			for i := range devices {
				devices[i] = newDeviceIn(t, store, fmt.Sprint("dev-", i))
			}
			p := New(w, withDefaults(Options{}))
			defer p.Close(context.Background())

			reading := func(device int64, payload string) *iotflow.Reading {
				now := iotflow.Truncate(time.Now())
				return &iotflow.Reading{DeviceID: device, Timestamp: now, ReceivedAt: now, DataType: "sensor",
					Payload: json.RawMessage(payload), Metadata: json.RawMessage(`{}`)}
			}
			const rounds = 20
			var mu sync.Mutex
			var good int64
			var failures []string
			fail := func(format string, args ...any) {
				mu.Lock()
				failures = append(failures, fmt.Sprintf(format, args...))
				mu.Unlock()
			}
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() { // good single readings
					for range rounds {
						rs := []*iotflow.Reading{reading(devices[w%len(devices)], `{"t":21.5}`)}
						if err := p.Submit(context.Background(), rs); err != nil || rs[0].ID == 0 {
							fail("good reading: %v", err)
							continue
						}
						mu.Lock()
						good++
						mu.Unlock()
					}
				})
			}
			for w := range 2 {
				wg.Go(func() { // poison single readings
					for range rounds {
						err := p.Submit(context.Background(), []*iotflow.Reading{reading(devices[w], poisonPayload)})
						var refused iotflow.ReadingErrors
						if !errors.As(err, &refused) || len(refused) != 1 || iotflow.ErrorCode(refused[0]) != iotflow.EINVALID {
							fail("poison reading: %v, want ReadingErrors{0: EINVALID}", err)
						}
					}
				})
			}
			for w := range 2 {
				wg.Go(func() { // batches of ten with poison at 3 and 7
					for range rounds / 2 {
						rs := make([]*iotflow.Reading, 10)
						for i := range rs {
							payload := fmt.Sprintf(`{"t":%d}`, i)
							if i == 3 || i == 7 {
								payload = poisonPayload
							}
							rs[i] = reading(devices[2+w], payload)
						}
						err := p.Submit(context.Background(), rs)
						var refused iotflow.ReadingErrors
						if !errors.As(err, &refused) || len(refused) != 2 || refused[3] == nil || refused[7] == nil {
							fail("batch with poison: %v, want readings 3 and 7 refused", err)
							continue
						}
						for i, r := range rs {
							if (i == 3 || i == 7) != (r.ID == 0) {
								fail("batch reading %d: id %d", i, r.ID)
							}
						}
						mu.Lock()
						good += 8
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(failures) > 0 {
				t.Fatalf("%d failures, first: %s", len(failures), strings.Join(failures[:min(3, len(failures))], "; "))
			}
			n, err := store.CountReadings(t.Context(), iotflow.ReadingFilter{})
			if err != nil || n != good {
				t.Fatalf("stored %d readings (%v), want the %d good ones", n, err, good)
			}
			rows, err := store.CountReadings(t.Context(), iotflow.ReadingFilter{DataType: "sensor"})
			if err != nil || rows != good {
				t.Fatalf("%d rows (%v), want %d: the counters disagree with the rows", rows, err, good)
			}
		})
	}
}
