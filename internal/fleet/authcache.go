package fleet

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// authCache keeps recently used API keys and their devices in memory, keyed
// by the key's hash, so that authenticating a request reads no database.
// Entries live at most ttl: that bounds how long a change made on another
// node (a revoked key, a deactivated device) goes unseen here. Changes made
// through this node invalidate their entries at once.
type authCache struct {
	lru          *expirable.LRU[string, authEntry]
	hits, misses atomic.Uint64
}

type authEntry struct {
	device iotflow.Device
	key    iotflow.APIKey
}

func newAuthCache(size int, ttl time.Duration) *authCache {
	if size <= 0 || ttl <= 0 {
		return nil
	}
	return &authCache{lru: expirable.NewLRU[string, authEntry](size, nil, ttl)}
}

// get returns copies of the cached device and key of a key hash. It
// counts hits; the caller counts a miss (miss) when it reads the store.
func (c *authCache) get(hash string) (*iotflow.Device, *iotflow.APIKey, bool) {
	if c == nil {
		return nil, nil, false
	}
	e, ok := c.lru.Get(hash)
	if !ok {
		return nil, nil, false
	}
	c.hits.Add(1)
	return &e.device, &e.key, true
}

// miss counts an authentication that reads the store: not one that the
// negative cache refused, which reads nothing.
func (c *authCache) miss() {
	if c != nil {
		c.misses.Add(1)
	}
}

func (c *authCache) put(d *iotflow.Device, k *iotflow.APIKey) {
	if c != nil {
		c.lru.Add(k.Hash, authEntry{device: *d, key: *k})
	}
}

// forgetDevice drops every entry of a device. It walks the cache, which is
// bounded, and runs only on rare admin and configuration changes.
func (c *authCache) forgetDevice(id int64) {
	if c == nil {
		return
	}
	for _, hash := range c.lru.Keys() {
		if e, ok := c.lru.Peek(hash); ok && e.device.ID == id {
			c.lru.Remove(hash)
		}
	}
}

// forgetKey drops one key.
func (c *authCache) forgetKey(hash string) {
	if c != nil {
		c.lru.Remove(hash)
	}
}

// AuthCacheStats are the counts of the API key cache since start.
type AuthCacheStats struct {
	Hits, Misses uint64
	Entries      int
	// NegativeHits counts wrong API keys and admin tokens refused from
	// memory, without a store read, since start.
	NegativeHits uint64
}

func (c *authCache) stats() AuthCacheStats {
	if c == nil {
		return AuthCacheStats{}
	}
	return AuthCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: c.lru.Len()}
}
