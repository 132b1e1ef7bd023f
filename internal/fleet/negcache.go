package fleet

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// negativeCache remembers hashes of secrets (API keys, admin tokens) that
// matched nothing in the store, so that the same wrong secret sent again
// and again is refused from memory: a device that keeps sending a key
// that was never issued (or whose device was deleted), or a flood of
// guesses, costs no database read after the first. It is bounded like the
// key cache, by IOTFLOW_AUTH_CACHE_SIZE and IOTFLOW_AUTH_CACHE_TTL: a key
// stored on another node (or imported in the reference's format) is
// accepted here within the TTL, as a revocation there is refused here
// within it. Secrets issued through this node are dropped from it at once.
// A nil cache (the key cache turned off) remembers nothing.
type negativeCache struct {
	lru  *expirable.LRU[string, struct{}]
	hits *atomic.Uint64 // shared by the caches of one Service
}

func newNegativeCache(size int, ttl time.Duration, hits *atomic.Uint64) *negativeCache {
	if size <= 0 || ttl <= 0 {
		return nil
	}
	return &negativeCache{lru: expirable.NewLRU[string, struct{}](size, nil, ttl), hits: hits}
}

// refused reports whether hash was refused within the TTL, and counts it.
func (c *negativeCache) refused(hash string) bool {
	if c == nil {
		return false
	}
	if _, ok := c.lru.Get(hash); ok {
		c.hits.Add(1)
		return true
	}
	return false
}

func (c *negativeCache) add(hash string) {
	if c != nil {
		c.lru.Add(hash, struct{}{})
	}
}

func (c *negativeCache) forget(hash string) {
	if c != nil {
		c.lru.Remove(hash)
	}
}
