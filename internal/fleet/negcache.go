package fleet

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Bounds of each negative cache.
const (
	negativeCacheSize = 10_000
	negativeCacheTTL  = time.Minute
)

// negativeCache remembers hashes of secrets (API keys, admin tokens) that
// matched nothing in the store, so that the same wrong secret sent again
// and again is refused from memory: a device that keeps sending a key
// that was never issued (or whose device was deleted), or a flood of
// guesses, costs no database read after the first. A hash only
// becomes valid by being newly issued, and issued secrets are 256-bit
// random, so the TTL bounds memory, not staleness; secrets issued through
// this node are dropped from it all the same.
type negativeCache struct {
	lru  *expirable.LRU[string, struct{}]
	hits *atomic.Uint64 // shared by the caches of one Service
}

func newNegativeCache(size int, ttl time.Duration, hits *atomic.Uint64) *negativeCache {
	return &negativeCache{lru: expirable.NewLRU[string, struct{}](size, nil, ttl), hits: hits}
}

// refused reports whether hash was refused within the TTL, and counts it.
func (c *negativeCache) refused(hash string) bool {
	if _, ok := c.lru.Get(hash); ok {
		c.hits.Add(1)
		return true
	}
	return false
}

func (c *negativeCache) add(hash string) { c.lru.Add(hash, struct{}{}) }

func (c *negativeCache) forget(hash string) { c.lru.Remove(hash) }
