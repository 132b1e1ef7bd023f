package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/httpapi"
	"github.com/iotflow/iotflow/internal/iotflow"
)

func TestKeyRotation(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, oldKey := a.register("Rotator", "sensor")
		r := a.device("POST", "/api/v1/devices/keys/rotate", oldKey, nil).want(t, http.StatusCreated)
		newKey := r.body["api_key"].(string)
		if !strings.HasPrefix(newKey, "iot_") || newKey == oldKey {
			t.Fatalf("rotate: %s", r.raw)
		}
		prev := r.obj(t, "previous_key")
		if prev["status"] != "active" || prev["expires_at"] == nil {
			t.Fatalf("previous key should stay active with an expiry: %v", prev)
		}
		if exp := wantTime(t, prev["expires_at"]); exp.Before(time.Now().Add(23 * time.Hour)) {
			t.Errorf("grace ends %v, want about 24h", exp)
		}
		// Both keys work during the grace period.
		a.device("GET", "/api/v1/devices/status", oldKey, nil).want(t, http.StatusOK)
		a.device("GET", "/api/v1/devices/status", newKey, nil).want(t, http.StatusOK)

		// Rotating with revoke_old stops the key used at once.
		r = a.device("POST", "/api/v1/devices/keys/rotate?revoke_old=true", newKey, nil).want(t, http.StatusCreated)
		newest := r.body["api_key"].(string)
		if r.obj(t, "previous_key")["status"] != "revoked" {
			t.Errorf("previous key not revoked: %s", r.raw)
		}
		a.device("GET", "/api/v1/devices/status", newKey, nil).wantError(t, http.StatusUnauthorized, "")
		a.device("GET", "/api/v1/devices/status", newest, nil).want(t, http.StatusOK)
		a.device("POST", "/api/v1/devices/keys/rotate?revoke_old=maybe", newest, nil).wantError(t, http.StatusBadRequest, "revoke_old")

		l := a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d/keys", id), nil).want(t, http.StatusOK)
		keys := l.list(t, "keys")
		if len(keys) != 3 {
			t.Fatalf("keys %s", l.raw)
		}
		for _, k := range keys {
			wantKeys(t, k.(map[string]any), "id", "prefix", "status", "created_at", "expires_at", "revoked_at", "last_used_at", "usage_count")
		}
		for _, secret := range []string{oldKey, newKey, newest, iotflow.HashSecret(oldKey)} {
			if strings.Contains(l.raw, secret) {
				t.Fatal("the key list shows a secret or a hash")
			}
		}
		if keys[0].(map[string]any)["usage_count"].(float64) < 2 || keys[0].(map[string]any)["last_used_at"] == nil {
			t.Errorf("usage not recorded: %v", keys[0])
		}
	})
}

func TestAdminKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *api) {
		id, first := a.register("Keyed", "sensor")
		otherID, _ := a.register("Other", "sensor")
		path := fmt.Sprintf("/api/v1/admin/devices/%d/keys", id)

		r := a.admin("POST", path, nil).want(t, http.StatusCreated)
		second := r.body["api_key"].(string)
		secondID := r.obj(t, "key")["id"].(float64)
		a.device("GET", "/api/v1/devices/status", second, nil).want(t, http.StatusOK)
		a.device("GET", "/api/v1/devices/status", first, nil).want(t, http.StatusOK)

		// An expiring key works until its time, then is refused.
		soon := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
		r = a.admin("POST", path, map[string]string{"expires_at": soon}).want(t, http.StatusCreated)
		expiring := r.body["api_key"].(string)
		a.device("GET", "/api/v1/devices/status", expiring, nil).want(t, http.StatusOK)
		time.Sleep(1600 * time.Millisecond)
		a.device("GET", "/api/v1/devices/status", expiring, nil).wantError(t, http.StatusUnauthorized, "")

		a.admin("POST", path, map[string]string{"expires_at": "2001-01-01T00:00:00Z"}).wantError(t, http.StatusBadRequest, "expires_at")
		a.admin("POST", path, map[string]string{"expires_at": "tomorrow"}).wantError(t, http.StatusBadRequest, "")
		a.admin("POST", "/api/v1/admin/devices/999999/keys", nil).wantError(t, http.StatusNotFound, "")
		a.admin("GET", "/api/v1/admin/devices/999999/keys", nil).wantError(t, http.StatusNotFound, "")

		// Revoking is refused at once on this node, though the key was cached by use.
		a.admin("DELETE", fmt.Sprintf("%s/%d", path, int64(secondID)), nil).want(t, http.StatusOK)
		a.device("GET", "/api/v1/devices/status", second, nil).wantError(t, http.StatusUnauthorized, "")
		a.device("GET", "/api/v1/devices/status", first, nil).want(t, http.StatusOK)
		// A key id of another device, an unknown one, a bad one.
		a.admin("DELETE", fmt.Sprintf("/api/v1/admin/devices/%d/keys/%d", otherID, int64(secondID)), nil).wantError(t, http.StatusNotFound, "")
		a.admin("DELETE", path+"/424242", nil).wantError(t, http.StatusNotFound, "")
		a.admin("DELETE", path+"/abc", nil).wantError(t, http.StatusBadRequest, "")

		statuses := map[string]int{}
		for _, k := range a.admin("GET", path, nil).want(t, http.StatusOK).list(t, "keys") {
			statuses[k.(map[string]any)["status"].(string)]++
		}
		if statuses["active"] != 1 || statuses["revoked"] != 1 || statuses["expired"] != 1 {
			t.Errorf("key statuses %v", statuses)
		}
		// A device key never manages keys.
		a.req("GET", path, nil, "X-API-Key", first).wantError(t, http.StatusUnauthorized, "")
		a.req("POST", path, nil, "Authorization", "Bearer "+first).wantError(t, http.StatusUnauthorized, "")
	})
}

// TestRevocationReachesOtherNodesWithinTheCacheTTL: two nodes on one
// database; a revocation on one is honoured by the other once its cache
// entry expires.
func TestRevocationReachesOtherNodesWithinTheCacheTTL(t *testing.T) {
	store := sqliteStore(t)
	a := newAPI(t, store)
	ttl := 300 * time.Millisecond
	svc := fleet.New(store, httpapi.FleetOptions(fleet.Options{StaticAdminToken: adminToken, AuthCacheTTL: ttl}))
	b := newAPIWithService(t, store, svc)
	id, key := a.register("Two Nodes", "sensor")
	b.device("GET", "/api/v1/devices/status", key, nil).want(t, http.StatusOK) // cached on b
	keys := a.admin("GET", fmt.Sprintf("/api/v1/admin/devices/%d/keys", id), nil).list(t, "keys")
	a.admin("DELETE", fmt.Sprintf("/api/v1/admin/devices/%d/keys/%d", id, int64(keys[0].(map[string]any)["id"].(float64))), nil).want(t, http.StatusOK)
	a.device("GET", "/api/v1/devices/status", key, nil).wantError(t, http.StatusUnauthorized, "")
	deadline := time.Now().Add(ttl + time.Second)
	for b.device("GET", "/api/v1/devices/status", key, nil).status != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("node b still accepts a key revoked on node a after %s", ttl+time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProvisioningToken(t *testing.T) {
	a := newAPIWith(t, sqliteStore(t), httpapi.Deps{ProvisioningToken: "provision-me-0123456789"})
	body := map[string]string{"name": "Provisioned", "device_type": "sensor"}
	a.req("POST", "/api/v1/devices/register", body).wantError(t, http.StatusUnauthorized, "Provisioning token")
	a.req("POST", "/api/v1/devices/register", body, "X-Provisioning-Token", "wrong-token-0000000000").wantError(t, http.StatusUnauthorized, "")
	a.req("POST", "/api/v1/devices/register", body, "X-Provisioning-Token", "provision-me-0123456789").want(t, http.StatusCreated)
}
