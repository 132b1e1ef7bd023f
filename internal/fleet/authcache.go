package fleet

import (
	"sync"
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
	// generation counts forgetDevice calls: a device read from the store
	// while one ran may predate the change it forgot, and is not kept.
	generation atomic.Uint64

	mu       sync.Mutex // guards byDevice; never held while calling lru
	byDevice map[int64]map[string]struct{}
}

type authEntry struct {
	device iotflow.Device
	key    iotflow.APIKey
}

func newAuthCache(size int, ttl time.Duration) *authCache {
	if size <= 0 || ttl <= 0 {
		return nil
	}
	c := &authCache{byDevice: map[int64]map[string]struct{}{}}
	c.lru = expirable.NewLRU(size, c.evicted, ttl)
	return c
}

// evicted keeps byDevice in step with the LRU; the LRU calls it with its
// own lock held.
func (c *authCache) evicted(hash string, e authEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hashes := c.byDevice[e.device.ID]; hashes != nil {
		delete(hashes, hash)
		if len(hashes) == 0 {
			delete(c.byDevice, e.device.ID)
		}
	}
}

// begin returns the generation to pass to put after a store read.
func (c *authCache) begin() uint64 {
	if c == nil {
		return 0
	}
	return c.generation.Load()
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

// put keeps a device and key read from the store since begin returned
// generation, unless a device was forgotten meanwhile.
func (c *authCache) put(d *iotflow.Device, k *iotflow.APIKey, generation uint64) {
	if c == nil || c.generation.Load() != generation {
		return
	}
	c.lru.Add(k.Hash, authEntry{device: *d, key: *k})
	c.mu.Lock()
	if c.byDevice[d.ID] == nil {
		c.byDevice[d.ID] = map[string]struct{}{}
	}
	c.byDevice[d.ID][k.Hash] = struct{}{}
	c.mu.Unlock()
	if c.generation.Load() != generation { // forgotten while being added
		c.lru.Remove(k.Hash)
	}
}

// forgetDevice drops every entry of a device.
func (c *authCache) forgetDevice(id int64) {
	if c == nil {
		return
	}
	c.generation.Add(1)
	c.mu.Lock()
	hashes := make([]string, 0, len(c.byDevice[id]))
	for h := range c.byDevice[id] {
		hashes = append(hashes, h)
	}
	c.mu.Unlock()
	for _, h := range hashes {
		c.lru.Remove(h)
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
