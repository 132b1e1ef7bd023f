package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ingest"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

// poisons are readings that one store or the other cannot keep as they
// are; each is refused with 400 naming its field, on every store.
var poisons = []struct{ body, field string }{
	{`{"data": {"a": "\ud800"}}`, "data"},
	{`{"data": {"\udc00": 1}}`, "data"},
	{`{"data": {"t": 1}, "metadata": {"m": "x\ud800y"}}`, "metadata"},
	{`{"data": {"a": 1e1000000}}`, "data"},
	{`{"data": {"a": [0e-99999]}}`, "data"},
	{`{"data": {"t": 1}, "metadata": {"\u0000": 1}}`, "metadata"},
	{`{"data": {"t": 1}, "type": "a\u0000b"}`, "type"},
	{`{"data": {"t": 1}, "message_id": "m\u0000"}`, "message_id"},
}

// TestPoisonReadingsNeverFailGoodOnes: concurrent good and poison writers
// share the group commit; every good reading is answered 201 and stored,
// every poison reading 400 naming its field (never 503), and a batch
// holding poison is a 207 with an entry of its own for each.
func TestPoisonReadingsNeverFailGoodOnes(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			store := b.Open(t)
			pipe := ingest.New(store, httpapi.IngestOptions(ingest.Options{}))
			t.Cleanup(func() { pipe.Close(t.Context()) })
			a := newAPIWithService(t, store, fleet.New(store, httpapi.FleetOptions(fleet.Options{StaticAdminToken: adminToken, Submitter: pipe})))
			keys := make([]string, 4)
			for i := range keys {
				_, keys[i] = a.register(fmt.Sprint("site-", i), "sensor")
			}
			post := func(path, key, body string) (int, map[string]any, error) {
				req, _ := http.NewRequest("POST", a.base+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-API-Key", key)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, nil, err
				}
				defer res.Body.Close()
				var out map[string]any
				err = json.NewDecoder(res.Body).Decode(&out)
				return res.StatusCode, out, err
			}
			var mu sync.Mutex
			var good int
			var failures []string
			fail := func(format string, args ...any) {
				mu.Lock()
				failures = append(failures, fmt.Sprintf(format, args...))
				mu.Unlock()
			}
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := range 15 {
						status, out, err := post("/api/v1/devices/telemetry", keys[w%4], fmt.Sprintf(`{"data": {"t": %d.5}}`, i))
						if err != nil || status != http.StatusCreated {
							fail("good reading: %d %v %v", status, out, err)
							continue
						}
						mu.Lock()
						good++
						mu.Unlock()
					}
				})
			}
			for w := range 2 {
				wg.Go(func() {
					for i := range 15 {
						p := poisons[(w*15+i)%len(poisons)]
						status, out, err := post("/api/v1/devices/telemetry", keys[w], p.body)
						msg, _ := out["message"].(string)
						if err != nil || status != http.StatusBadRequest || !strings.Contains(msg, "'"+p.field+"'") {
							fail("poison %s: %d %v %v, want 400 naming %s", p.body, status, out, err, p.field)
						}
					}
				})
			}
			wg.Go(func() {
				var records []string
				for i, p := range poisons {
					records = append(records, fmt.Sprintf(`{"data": {"n": %d}}`, i), p.body)
				}
				status, out, err := post("/api/v1/devices/telemetry/batch", keys[3], `{"records": [`+strings.Join(records, ",")+`]}`)
				if err != nil || status != http.StatusMultiStatus {
					fail("batch with poison: %d %v %v, want 207", status, out, err)
					return
				}
				results, _ := out["results"].([]any)
				for i, r := range results {
					entry := r.(map[string]any)
					want := http.StatusCreated
					if i%2 == 1 {
						want = http.StatusBadRequest
					}
					if int(entry["status"].(float64)) != want {
						fail("batch record %d: %v, want status %d", i, entry, want)
					}
				}
				mu.Lock()
				good += len(poisons)
				mu.Unlock()
			})
			wg.Wait()
			if len(failures) > 0 {
				t.Fatalf("%d failures, first: %s", len(failures), strings.Join(failures[:min(3, len(failures))], "; "))
			}
			// Counted through the rows, not the counters.
			n, err := store.CountReadings(t.Context(), iotflow.ReadingFilter{DataType: iotflow.DefaultDataType})
			if err != nil || n != int64(good) {
				t.Fatalf("%d readings stored (%v), want the %d good ones", n, err, good)
			}
			total := a.admin("GET", "/api/v1/admin/dashboard", nil).want(t, http.StatusOK)
			if got := total.obj(t, "statistics")["telemetry"].(map[string]any)["total_records"]; got != float64(good) {
				t.Fatalf("dashboard counts %v readings, want %d", got, good)
			}
		})
	}
}

// TestQueryTextRefusesNUL: PostgreSQL refuses NUL in a text parameter and
// SQLite would match nothing, so both answer 400 naming the parameter.
func TestQueryTextRefusesNUL(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		_, key := a.register("probe", "sensor")
		for _, path := range []string{
			"/api/v1/admin/devices?search=a%00b", "/api/v1/admin/devices?type=%00", "/api/v1/admin/devices?search=%FF",
			"/api/v1/admin/telemetry?type=x%00",
		} {
			r := a.admin("GET", path, nil)
			r.wantError(t, http.StatusBadRequest, "Query parameter")
		}
		a.device("GET", "/api/v1/devices/telemetry?type=%00", key, nil).wantError(t, http.StatusBadRequest, "'type'")
		a.admin("GET", "/api/v1/admin/devices?search=prob", nil).want(t, http.StatusOK)
	})
}
