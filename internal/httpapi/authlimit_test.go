package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

// lookupCounter is a real store that counts the lookups of secrets.
type lookupCounter struct {
	iotflow.Store
	mu           sync.Mutex
	keys, tokens int
}

func (c *lookupCounter) DeviceByKeyHash(ctx context.Context, hash string) (*iotflow.Device, *iotflow.APIKey, error) {
	c.mu.Lock()
	c.keys++
	c.mu.Unlock()
	return c.Store.DeviceByKeyHash(ctx, hash)
}

func (c *lookupCounter) AdminTokenByHash(ctx context.Context, hash string) (*iotflow.AdminToken, error) {
	c.mu.Lock()
	c.tokens++
	c.mu.Unlock()
	return c.Store.AdminTokenByHash(ctx, hash)
}

func (c *lookupCounter) counts() (keys, tokens int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys, c.tokens
}

// failFrom sends n requests from this address with wrong credentials:
// the first 10 (the limit of testLimits) get 401, the others 429.
func failFrom(t *testing.T, n int, send func(i int) response) {
	t.Helper()
	for i := range n {
		r := send(i)
		if i < 10 {
			r.wantError(t, http.StatusUnauthorized, "")
			if r.header.Get("Retry-After") != "" {
				t.Errorf("401 number %d has Retry-After %q", i+1, r.header.Get("Retry-After"))
			}
		} else {
			wantLimited(t, r, "auth_failures")
		}
	}
}

// TestOneAddressManyDevices: devices behind one address (a NAT, a
// gateway) keep working while one of them fails to authenticate over and
// over; only the failing requests are refused.
func TestOneAddressManyDevices(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			store := b.Open(t)
			a := newAPIWith(t, store, httpapi.Deps{Limits: testLimits()})
			_, key := a.register("Good neighbour", "sensor")
			stored, _, err := a.svc.CreateAdminToken(t.Context(), "ops")
			if err != nil {
				t.Fatal(err)
			}

			failFrom(t, 25, func(i int) response {
				return a.device("GET", "/api/v1/devices/status", fmt.Sprintf("iot_stale-%d", i%3), nil)
			})
			// Valid credentials from the same address are served.
			a.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK)
			a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"t": 1}}).want(t, http.StatusCreated)
			a.admin("GET", "/api/v1/admin/devices", nil).want(t, http.StatusOK)
			a.req("GET", "/api/v1/admin/devices", nil, "Authorization", "Bearer "+stored).want(t, http.StatusOK)

			// Failing ones still get 429, whatever the route.
			wantLimited(t, a.device("GET", "/api/v1/devices/status", "iot_stale-0", nil), "auth_failures")
			wantLimited(t, a.device("POST", "/api/v1/devices/telemetry", "iot_stale-new", map[string]any{"data": map[string]int{"t": 1}}), "auth_failures")
			wantLimited(t, a.req("GET", "/api/v1/devices/status", nil), "auth_failures")
			wantLimited(t, a.req("GET", "/api/v1/admin/devices", nil), "auth_failures")
			wantLimited(t, a.req("GET", "/api/v1/admin/devices", nil, "Authorization", "Bearer iotadm_wrong"), "auth_failures")
		})
	}
}

// TestInactiveDevicesAreNotAuthenticationFailures: a right key of a
// device that is not active is 403, and uses up nothing of the address's
// failed authentications.
func TestInactiveDevicesAreNotAuthenticationFailures(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{Limits: testLimits()})
	id, key := a.register("Resting", "sensor")
	a.admin("PUT", fmt.Sprintf("/api/v1/admin/devices/%d", id), map[string]string{"status": "inactive"}).want(t, http.StatusOK)
	for range 15 {
		a.device("GET", "/api/v1/devices/status", key, nil).wantError(t, http.StatusForbidden, "")
	}
	failFrom(t, 11, func(int) response { return a.device("GET", "/api/v1/devices/status", "iot_wrong", nil) })
	// Over the limit, the inactive device is still told why.
	a.device("GET", "/api/v1/devices/status", key, nil).wantError(t, http.StatusForbidden, "")
}

// TestProvisioningTokenFailuresSpareTheRightToken: strangers without the
// provisioning token use up the address's failed authentications, not
// its registrations; the token keeps working, within the registration
// limit.
func TestProvisioningTokenFailuresSpareTheRightToken(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			provisioningFailures(t, newAPIWith(t, b.Open(t), httpapi.Deps{Limits: testLimits(), ProvisioningToken: provisioningToken}))
		})
	}
}

const provisioningToken = "provisioning-token-0123456789"

func provisioningFailures(t *testing.T, a *api) {
	const token = provisioningToken
	dev := func(i int) map[string]string {
		return map[string]string{"name": fmt.Sprint("dev-", i), "device_type": "sensor"}
	}
	failFrom(t, 25, func(i int) response {
		if i%2 == 0 {
			return a.req("POST", "/api/v1/devices/register", dev(i))
		}
		return a.req("POST", "/api/v1/devices/register", dev(i), "X-Provisioning-Token", "wrong")
	})
	for i := range 10 {
		a.req("POST", "/api/v1/devices/register", dev(100+i), "X-Provisioning-Token", token).want(t, http.StatusCreated)
	}
	wantLimited(t, a.req("POST", "/api/v1/devices/register", dev(200), "X-Provisioning-Token", token), "register")
	wantLimited(t, a.req("POST", "/api/v1/devices/register", dev(201), "X-Provisioning-Token", "wrong"), "auth_failures")
	wantLimited(t, a.req("POST", "/api/v1/devices/register", dev(202)), "auth_failures")
}

// TestUnderTheFailureLimitNothingChanges: the reference flow, with a few
// wrong keys among valid requests, is answered as before.
func TestUnderTheFailureLimitNothingChanges(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			underTheFailureLimit(t, newAPIWith(t, b.Open(t), httpapi.Deps{Limits: testLimits()}))
		})
	}
}

func underTheFailureLimit(t *testing.T, a *api) {
	id, key := a.register("Reference", "sensor")
	for i := range 5 {
		a.device("POST", "/api/v1/devices/telemetry", key, map[string]any{"data": map[string]int{"i": i}}).want(t, http.StatusCreated)
		a.device("GET", "/api/v1/devices/status", "iot_wrong", nil).wantError(t, http.StatusUnauthorized, "Invalid API key")
	}
	a.req("GET", "/api/v1/devices/status", nil).wantError(t, http.StatusUnauthorized, "API key required")
	a.req("GET", "/api/v1/admin/devices", nil, "Authorization", "Bearer nope").wantError(t, http.StatusUnauthorized, "Invalid admin token")
	d := a.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK).obj(t, "device")
	if d["telemetry_count"] != float64(5) {
		t.Errorf("telemetry_count %v, want 5", d["telemetry_count"])
	}
	a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d", id), nil).want(t, http.StatusOK)
	// Seven failures so far: three more are still 401.
	for range 3 {
		a.device("GET", "/api/v1/devices/status", "iot_wrong", nil).wantError(t, http.StatusUnauthorized, "")
	}
	wantLimited(t, a.device("GET", "/api/v1/devices/status", "iot_wrong", nil), "auth_failures")
}

// TestRepeatedWrongSecretsSpareTheStore: a wrong key or admin token sent
// again and again is looked up in the store once.
func TestRepeatedWrongSecretsSpareTheStore(t *testing.T) {
	lc := &lookupCounter{Store: sqliteStore(t)}
	svc := fleet.New(lc, httpapi.FleetOptions(fleet.Options{StaticAdminToken: adminToken}))
	a := newAPIWithDeps(t, lc, httpapi.Deps{Service: svc, Limits: testLimits()})
	failFrom(t, 25, func(i int) response {
		if i%2 == 0 {
			return a.device("GET", "/api/v1/devices/status", "iot_stale-key", nil)
		}
		return a.req("GET", "/api/v1/admin/dashboard", nil, "Authorization", "Bearer iotadm_stale-token")
	})
	if keys, tokens := lc.counts(); keys != 1 || tokens != 1 {
		t.Errorf("store lookups: %d of the key, %d of the token; want 1 each", keys, tokens)
	}
	if st := svc.AuthCacheStats(); st.NegativeHits != 23 {
		t.Errorf("negative cache hits %d, want 23", st.NegativeHits)
	}
}
