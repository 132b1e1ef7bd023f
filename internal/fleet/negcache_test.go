package fleet

import (
	"context"
	"sync"
	"testing"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

// countingStore is a real store that counts the lookups of secrets, and
// can run a hook on each secret's hash just before it is stored.
type countingStore struct {
	iotflow.Store
	mu                       sync.Mutex
	keyLookups, tokenLookups int
	beforeCreate             func(hash string)
}

func (c *countingStore) DeviceByKeyHash(ctx context.Context, hash string) (*iotflow.Device, *iotflow.APIKey, error) {
	c.mu.Lock()
	c.keyLookups++
	c.mu.Unlock()
	return c.Store.DeviceByKeyHash(ctx, hash)
}

func (c *countingStore) AdminTokenByHash(ctx context.Context, hash string) (*iotflow.AdminToken, error) {
	c.mu.Lock()
	c.tokenLookups++
	c.mu.Unlock()
	return c.Store.AdminTokenByHash(ctx, hash)
}

func (c *countingStore) CreateDevice(ctx context.Context, d *iotflow.Device, k *iotflow.APIKey) error {
	if c.beforeCreate != nil {
		c.beforeCreate(k.Hash)
	}
	return c.Store.CreateDevice(ctx, d, k)
}

func (c *countingStore) CreateAPIKey(ctx context.Context, k *iotflow.APIKey) error {
	if c.beforeCreate != nil {
		c.beforeCreate(k.Hash)
	}
	return c.Store.CreateAPIKey(ctx, k)
}

func (c *countingStore) CreateAdminToken(ctx context.Context, t *iotflow.AdminToken) error {
	if c.beforeCreate != nil {
		c.beforeCreate(t.Hash)
	}
	return c.Store.CreateAdminToken(ctx, t)
}

func (c *countingStore) lookups() (keys, tokens int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keyLookups, c.tokenLookups
}

// TestWrongSecretsAreRefusedFromMemory: a wrong key or admin token is
// looked up once; sent again, it is refused without a store read.
func TestWrongSecretsAreRefusedFromMemory(t *testing.T) {
	cs := &countingStore{Store: testdb.SQLite(t)}
	svc := New(cs, withDefaults(Options{StaticAdminToken: "static-admin-token-0123456789"}))
	ctx := t.Context()
	for range 5 {
		if _, err := svc.Authenticate(ctx, "iot_never-issued"); iotflow.ErrorCode(err) != iotflow.EUNAUTHORIZED ||
			iotflow.ErrorMessage(err) != "The API key is not valid" {
			t.Fatalf("wrong key: %v", err)
		}
		if _, err := svc.AuthenticateAdmin(ctx, "iotadm_never-created"); iotflow.ErrorCode(err) != iotflow.EUNAUTHORIZED ||
			iotflow.ErrorMessage(err) != "The admin token is not valid" {
			t.Fatalf("wrong admin token: %v", err)
		}
	}
	if keys, tokens := cs.lookups(); keys != 1 || tokens != 1 {
		t.Errorf("store lookups: %d of keys, %d of tokens; want 1 each", keys, tokens)
	}
	if st := svc.AuthCacheStats(); st.NegativeHits != 8 || st.Misses != 1 {
		t.Errorf("stats %+v, want 8 negative hits and 1 miss", st)
	}

	// The two caches are apart: a device key refused as an admin token is
	// still a device key.
	_, key, err := svc.Register(ctx, iotflow.NewDevice{Name: "n", DeviceType: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateAdmin(ctx, key); iotflow.ErrorCode(err) != iotflow.EUNAUTHORIZED {
		t.Fatalf("device key as admin token: %v", err)
	}
	if _, err := svc.Authenticate(ctx, key); err != nil {
		t.Fatalf("device key after it was refused as an admin token: %v", err)
	}
	// The static token is never looked up.
	if _, err := svc.AuthenticateAdmin(ctx, "static-admin-token-0123456789"); err != nil {
		t.Fatal(err)
	}
	if _, tokens := cs.lookups(); tokens != 2 {
		t.Errorf("%d admin token lookups, want 2", tokens)
	}
}

// TestIssuedSecretsLeaveTheNegativeCache: a secret issued through the
// service is accepted even when its hash was refused just before.
func TestIssuedSecretsLeaveTheNegativeCache(t *testing.T) {
	cs := &countingStore{Store: testdb.SQLite(t)}
	svc := New(cs, withDefaults(Options{}))
	cs.beforeCreate = func(hash string) { svc.badKeys.add(hash); svc.badTokens.add(hash) }
	ctx := t.Context()
	_, key, err := svc.Register(ctx, iotflow.NewDevice{Name: "n", DeviceType: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, key); err != nil {
		t.Errorf("registered key: %v", err)
	}
	token, _, err := svc.CreateAdminToken(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateAdmin(ctx, token); err != nil {
		t.Errorf("created admin token: %v", err)
	}
	d, err := svc.store.DeviceByName(ctx, "n")
	if err != nil {
		t.Fatal(err)
	}
	issued, _, err := svc.IssueKey(ctx, &AdminIdentity{TokenName: "ops"}, d.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, issued); err != nil {
		t.Errorf("issued key: %v", err)
	}
}
