package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/ratelimit"
)

// testLimits are the defaults of the configuration, with a low admin limit,
// on a clock that stands still: nothing refills while a slow test runs.
func testLimits() *httpapi.Limits {
	frozen := time.Now()
	return &httpapi.Limits{
		Limiter:      ratelimit.NewMemory(ratelimit.WithClock(func() time.Time { return frozen })),
		Device:       ratelimit.PerMinute("device", 60),
		Telemetry:    ratelimit.PerMinute("telemetry", 100),
		Backlog:      ratelimit.Limit{Name: "telemetry_backlog", Rate: 6000, Period: time.Hour, Burst: 1000},
		Register:     ratelimit.PerMinute("register", 10),
		AuthFailures: ratelimit.PerMinute("auth_failures", 10),
		Admin:        ratelimit.PerMinute("admin", 5),
	}
}

// wantLimited checks a 429: JSON naming the limit, Retry-After and the
// IETF RateLimit headers.
func wantLimited(t *testing.T, r response, limit string) {
	t.Helper()
	r.wantError(t, http.StatusTooManyRequests, "Rate limit exceeded")
	if !strings.Contains(r.body["message"].(string), limit) {
		t.Errorf("429 message %q does not name the %s limit", r.body["message"], limit)
	}
	if r.header.Get("Retry-After") == "" || !strings.Contains(r.header.Get("RateLimit"), `"`+limit+`"`) ||
		!strings.Contains(r.header.Get("RateLimit-Policy"), `"`+limit+`"`) {
		t.Errorf("429 headers: Retry-After %q RateLimit %q RateLimit-Policy %q",
			r.header.Get("Retry-After"), r.header.Get("RateLimit"), r.header.Get("RateLimit-Policy"))
	}
}

func TestTelemetryRateLimit(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{Limits: testLimits()})
	_, key := a.register("Chatty", "sensor")
	_, other := a.register("Quiet", "sensor")

	var mu sync.Mutex
	status := map[int]int{}
	var limited response
	var wg sync.WaitGroup
	for i := range 130 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"i": i}})
			mu.Lock()
			defer mu.Unlock()
			status[r.status]++
			if r.status == http.StatusTooManyRequests {
				limited = r
			} else if r.header.Get("RateLimit") == "" {
				t.Errorf("accepted response without a RateLimit header")
			}
		}()
	}
	wg.Wait()
	if status[201] != 100 || status[429] != 30 {
		t.Fatalf("130 posts at once: %v, want about 100 accepted and the rest 429", status)
	}
	wantLimited(t, limited, "telemetry")
	// Another device is not affected, and the stored count matches.
	a.device("POST", "/api/v1/devices/telemetry", other, map[string]any{"data": map[string]int{"i": 1}}).want(t, http.StatusCreated)
	d := a.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK).obj(t, "device")
	if d["telemetry_count"] != float64(status[201]) {
		t.Errorf("telemetry_count %v, accepted %d", d["telemetry_count"], status[201])
	}
}

func TestDeviceRateLimit(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{Limits: testLimits()})
	_, key := a.register("Poller", "sensor")
	ok := 0
	var last response
	for range 70 {
		last = a.device("GET", "/api/v1/devices/status", key, nil)
		if last.status == http.StatusOK {
			ok++
		}
	}
	if ok != 60 {
		t.Fatalf("%d of 70 status reads accepted, want 60", ok)
	}
	wantLimited(t, last, "device")
	// Heartbeats share the device limit; telemetry has its own.
	wantLimited(t, a.device("POST", "/api/v1/devices/heartbeat", key, nil), "device")
	a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"i": 1}}).want(t, http.StatusCreated)
}

func TestRegisterRateLimit(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{Limits: testLimits()})
	for i := range 10 {
		a.register(fmt.Sprint("dev-", i), "sensor")
	}
	r := a.req("POST", "/api/v1/devices/register", map[string]string{"name": "one too many", "device_type": "sensor"})
	wantLimited(t, r, "register")
}

func TestFailedAuthenticationsAreLimited(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{Limits: testLimits()})
	_, key := a.register("Target", "sensor")
	for i := range 10 {
		a.device("GET", "/api/v1/devices/status", fmt.Sprintf("iot_guess-%040d", i), nil).wantError(t, http.StatusUnauthorized, "")
	}
	// The address has used up its failures: guesses get 429, and right
	// credentials are still served.
	wantLimited(t, a.device("GET", "/api/v1/devices/status", "iot_guess-more", nil), "auth_failures")
	a.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK)
	a.admin("GET", "/api/v1/admin/dashboard", nil).want(t, http.StatusOK)
}

func TestAdminRateLimit(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{Limits: testLimits()})
	for range 5 {
		a.admin("GET", "/api/v1/admin/dashboard", nil).want(t, http.StatusOK)
	}
	wantLimited(t, a.admin("GET", "/api/v1/admin/dashboard", nil), "admin")
}

func TestBatchCountsEachRecordAndHasABacklogAllowance(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{Limits: testLimits()})
	_, key := a.register("Backlogged", "sensor")
	batch := func(n int) map[string]any {
		rs := make([]any, n)
		for i := range rs {
			rs[i] = map[string]any{"data": map[string]int{"i": i}}
		}
		return map[string]any{"records": rs}
	}
	// 60 records fit the telemetry limit of 100; the next 60 do not, and
	// come out of the backlog allowance; so does a backlog of 900.
	a.device("POST", "/api/v1/devices/telemetry/batch", key, batch(60)).want(t, http.StatusCreated)
	r := a.device("POST", "/api/v1/devices/telemetry/batch", key, batch(60)).want(t, http.StatusCreated)
	if !strings.Contains(r.header.Get("RateLimit"), "telemetry_backlog") {
		t.Errorf("second batch should draw on the backlog: RateLimit %q", r.header.Get("RateLimit"))
	}
	a.device("POST", "/api/v1/devices/telemetry/batch", key, batch(900)).want(t, http.StatusCreated)
	// The backlog's burst of 1000 is used up now.
	wantLimited(t, a.device("POST", "/api/v1/devices/telemetry/batch", key, batch(100)), "telemetry_backlog")
	// Single readings share the telemetry limit: 40 are left of its 100.
	for range 40 {
		a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"i": 1}}).want(t, http.StatusCreated)
	}
	wantLimited(t, a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"i": 1}}), "telemetry")
	d := a.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK).obj(t, "device")
	if d["telemetry_count"] != float64(1060) {
		t.Errorf("telemetry_count %v, want 1060", d["telemetry_count"])
	}
}

func TestBodyLimits(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{Limits: testLimits(), MaxBodyBytes: 64 << 10, MaxBatchBodyBytes: 256 << 10})
	_, key := a.register("Big", "sensor")
	big := `{"data":{"blob":"` + strings.Repeat("x", 70<<10) + `"}}`
	a.device("POST", "/api/v1/devices/telemetry", key, big).wantError(t, http.StatusRequestEntityTooLarge, "")
	a.req("POST", "/api/v1/devices/register", `{"name":"`+strings.Repeat("n", 70<<10)+`","device_type":"s"}`).
		wantError(t, http.StatusRequestEntityTooLarge, "")
	// A batch may be larger than a single reading, up to its own cap.
	records := make([]string, 400)
	for i := range records {
		records[i] = `{"data":{"pad":"` + strings.Repeat("p", 200) + `"}}`
	}
	a.device("POST", "/api/v1/devices/telemetry/batch", key, `{"records":[`+strings.Join(records[:90], ",")+`]}`).want(t, http.StatusCreated)
	huge := make([]string, 1300)
	for i := range huge {
		huge[i] = records[0]
	}
	a.device("POST", "/api/v1/devices/telemetry/batch", key, `{"records":[`+strings.Join(huge, ",")+`]}`).
		wantError(t, http.StatusRequestEntityTooLarge, "")
}

func TestPayloadShapeLimits(t *testing.T) {
	a := newAPI(t, sqliteStore(t))
	_, key := a.register("Shapes", "sensor")
	deep := strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40)
	a.device("POST", "/api/v1/devices/telemetry", key, `{"data":`+deep+`}`).wantError(t, http.StatusBadRequest, "nested deeper")
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%d":1`, i)
	}
	a.device("POST", "/api/v1/devices/telemetry", key, `{"data":{`+strings.Join(keys, ",")+`}}`).wantError(t, http.StatusBadRequest, "keys")
	a.device("POST", "/api/v1/devices/telemetry", key, "{\"data\":{\"a\":\"\xff\xfe\"}}").wantError(t, http.StatusBadRequest, "UTF-8")
}
