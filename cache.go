package bff

import (
	"sync"
	"time"
)

// cache holds decoded sessions by session ID. With Redis it is trusted only
// while the invalidation bus is healthy, and no entry is older than
// maxAge. All methods are safe on a nil *cache (no caching).
type cache struct {
	mu      sync.RWMutex
	byID    map[string]cacheEntry
	byKey   map[string]string // store key -> session ID, for invalidation by key
	maxAge  time.Duration     // 0: no bound (memory store: this process sees every write)
	trusted func() bool       // nil: always
	seqFn   func() uint64     // invalidation counter of the bus, nil: local counter
	local   uint64            // guarded by mu
	limit   int
}

// sessionCacheMaxAge bounds how long a cached session is served without
// re-reading Redis, whatever the invalidation bus says: the last line of
// defence should an announcement be lost.
const sessionCacheMaxAge = 2 * time.Second

// cacheLimit bounds the cache (decoded sessions are a few KiB each).
const cacheLimit = 1 << 14

type cacheEntry struct {
	s  *session
	at int64
}

func newCache(maxAge time.Duration, trusted func() bool, seq func() uint64) *cache {
	return &cache{byID: map[string]cacheEntry{}, byKey: map[string]string{}, maxAge: maxAge,
		trusted: trusted, seqFn: seq, limit: cacheLimit}
}

func (c *cache) get(id string, now time.Time) *session {
	if c.trusted != nil && !c.trusted() {
		return nil
	}
	c.mu.RLock()
	e, ok := c.byID[id]
	c.mu.RUnlock()
	if !ok || (c.maxAge > 0 && now.UnixNano()-e.at > int64(c.maxAge)) {
		return nil
	}
	return e.s
}

// seq returns a counter that changes with every invalidation; put refuses
// an entry read before an invalidation that it may have missed.
func (c *cache) seq() uint64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.seqLocked()
}

// seqLocked counts local invalidations plus the bus's (remote ones and
// resets). Both only grow, so the sum changes whenever either does.
func (c *cache) seqLocked() uint64 {
	if c.seqFn != nil {
		return c.local + c.seqFn()
	}
	return c.local
}

func (c *cache) put(id string, s *session, seq uint64, now time.Time) {
	if c == nil || (c.trusted != nil && !c.trusted()) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seqLocked() != seq {
		return
	}
	if len(c.byID) >= c.limit {
		// Full: drop the sessions that have certainly expired (the
		// absolute deadline passed), else an arbitrary entry.
		for k, e := range c.byID {
			if e.s.rec.Expires <= now.UnixNano() {
				delete(c.byID, k)
				delete(c.byKey, e.s.key)
			}
		}
		for k, e := range c.byID {
			if len(c.byID) < c.limit {
				break
			}
			delete(c.byID, k)
			delete(c.byKey, e.s.key)
		}
	}
	c.byID[id] = cacheEntry{s: s, at: now.UnixNano()}
	c.byKey[s.key] = id
}

// drop removes the entry of a store key (a local or remote write).
func (c *cache) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.local++
	if id, ok := c.byKey[key]; ok {
		delete(c.byKey, key)
		delete(c.byID, id)
	}
	c.mu.Unlock()
}

// reset empties the cache (the bus lost messages).
func (c *cache) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.local++
	clear(c.byID)
	clear(c.byKey)
	c.mu.Unlock()
}
