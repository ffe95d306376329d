package bff

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// cache holds decoded sessions by session ID, bounded by bytes. With Redis
// it is trusted only while the invalidation bus is healthy, and no entry is
// older than maxAge. All methods are safe on a nil *cache (no caching).
//
// Its cost does not grow with its size: entries live in cacheShards shards
// (a lookup takes one shard's read lock), and each shard evicts with CLOCK
// (second chance): a lookup sets the entry's reference bit, and the hand
// evicts the first entry whose bit is clear, clearing bits as it passes,
// which is O(1) amortized per insertion. Hand-written rather than a cache
// library because the library's dependencies are fixed (see README), and
// because invalidation by store key must be exact (see put and drop).
type cache struct {
	shards  [cacheShards]cacheShard
	seed    maphash.Seed
	budget  int64         // bytes per shard
	maxAge  time.Duration // 0: no bound (memory store: this process sees every write)
	trusted func() bool   // nil: always
	seqFn   func() uint64 // invalidation counter of the bus, nil: none

	// keys maps store keys to session IDs, for invalidation by store key
	// (the bus carries store keys, never session IDs). Cache misses and
	// invalidations take its lock; lookups never do.
	keysMu sync.Mutex
	keys   map[string]cacheID
	local  uint64 // local invalidations; guarded by keysMu
	// count of entries, for tests and metrics
	n atomic.Int64
}

const cacheShards = 64

// cacheID is a session ID held in the entry itself: a lookup compares it
// without following a pointer, and the cache never keeps the Cookie header
// an ID was cut from.
type cacheID [sessionIDLen]byte

type cacheShard struct {
	mu sync.RWMutex
	// byID is keyed by the ID's hash (which also picks the shard); the
	// entry's own ID is compared on every lookup, so two IDs of one hash
	// only take each other's place.
	byID  map[uint64]*cacheEntry
	ring  []*cacheEntry // CLOCK order; each entry knows its index
	hand  int
	bytes int64
}

type cacheEntry struct {
	id   cacheID
	hash uint64
	s    *session
	at   int64 // when cached (Unix nanoseconds)
	size int64
	pos  int         // index in the shard's ring
	ref  atomic.Bool // used since the hand last passed
}

// sessionCacheMaxAge bounds how long a cached session is served without
// re-reading Redis, whatever the invalidation bus says: a last line of
// defence against a failure the bus's health checks do not see. (Every
// change is announced by the script that stores it, and the cache is used
// only while the bus has answered a ping within the last 80 ms.)
const sessionCacheMaxAge = 30 * time.Second

// cacheEntryOverhead is the memory a cached session takes beyond the bytes
// of its tokens and claims: the decoded session, its user and token, the
// entry and the map slots (measured by TestCacheEntrySize).
const cacheEntryOverhead = 700

func newCache(maxAge time.Duration, bytes int64, trusted func() bool, seq func() uint64) *cache {
	c := &cache{seed: maphash.MakeSeed(), budget: max(bytes/cacheShards, 1), maxAge: maxAge,
		trusted: trusted, seqFn: seq, keys: map[string]cacheID{}}
	for i := range c.shards {
		c.shards[i].byID = map[uint64]*cacheEntry{}
	}
	return c
}

// locate returns id's hash and shard; ok is false for what is not a
// session ID (never cached).
func (c *cache) locate(id string) (h uint64, sh *cacheShard, ok bool) {
	if len(id) != sessionIDLen {
		return 0, nil, false
	}
	h = maphash.String(c.seed, id)
	return h, &c.shards[h%cacheShards], true
}

// entrySize estimates the memory a cached session takes.
func entrySize(s *session) int64 {
	r := &s.rec
	return cacheEntryOverhead + int64(len(s.key)+len(s.rev)+len(r.Claims)+len(r.Subject)+len(r.SID)+
		len(r.AccessToken)+len(r.TokenType)+len(r.RefreshToken)+len(r.IDToken)+len(r.Name)+len(r.Email))
}

func (c *cache) get(id string, now time.Time) *session {
	if c.trusted != nil && !c.trusted() {
		return nil
	}
	h, sh, ok := c.locate(id)
	if !ok {
		return nil
	}
	sh.mu.RLock()
	e, ok := sh.byID[h]
	sh.mu.RUnlock()
	if !ok || string(e.id[:]) != id || (c.maxAge > 0 && now.UnixNano()-e.at > int64(c.maxAge)) {
		return nil
	}
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	return e.s
}

// seq returns a counter that changes with every invalidation; put refuses
// an entry read before an invalidation that it may have missed.
func (c *cache) seq() uint64 {
	if c == nil {
		return 0
	}
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
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

// put caches s under id, unless an invalidation came since seq was read.
// It holds the shard's lock and then the key map's, and checks seq under
// the latter: a drop either comes first (and put refuses) or finds the
// entry by its key (and removes it).
func (c *cache) put(id string, s *session, seq uint64, now time.Time) {
	if c == nil || (c.trusted != nil && !c.trusted()) {
		return
	}
	size := entrySize(s)
	h, sh, ok := c.locate(id)
	if !ok || size > c.budget {
		return
	}
	e := &cacheEntry{hash: h, s: s, at: now.UnixNano(), size: size}
	copy(e.id[:], id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c.keysMu.Lock()
	if c.seqLocked() != seq {
		c.keysMu.Unlock()
		return
	}
	c.keys[s.key] = e.id
	c.keysMu.Unlock()
	if old, ok := sh.byID[h]; ok {
		sh.remove(old)
		c.n.Add(-1)
	}
	for sh.bytes+size > c.budget && len(sh.ring) > 0 {
		c.evict(sh)
	}
	e.pos = len(sh.ring)
	sh.byID[h] = e
	sh.ring = append(sh.ring, e)
	sh.bytes += size
	c.n.Add(1)
}

// evict removes one entry by CLOCK. The caller holds sh.mu.
func (c *cache) evict(sh *cacheShard) {
	for {
		if sh.hand >= len(sh.ring) {
			sh.hand = 0
		}
		e := sh.ring[sh.hand]
		if e.ref.Load() {
			e.ref.Store(false)
			sh.hand++
			continue
		}
		sh.remove(e)
		c.n.Add(-1)
		c.keysMu.Lock()
		if c.keys[e.s.key] == e.id {
			delete(c.keys, e.s.key)
		}
		c.keysMu.Unlock()
		return
	}
}

// remove takes e out of the shard (swapping the ring's last entry into its
// place). The caller holds sh.mu.
func (sh *cacheShard) remove(e *cacheEntry) {
	last := len(sh.ring) - 1
	moved := sh.ring[last]
	sh.ring[e.pos], moved.pos = moved, e.pos
	sh.ring[last] = nil
	sh.ring = sh.ring[:last]
	delete(sh.byID, e.hash)
	sh.bytes -= e.size
}

// drop removes the entry of a store key (a local or remote write).
func (c *cache) drop(key string) {
	if c == nil {
		return
	}
	c.keysMu.Lock()
	c.local++
	id, ok := c.keys[key]
	delete(c.keys, key)
	c.keysMu.Unlock()
	if !ok {
		return
	}
	h, sh, _ := c.locate(string(id[:]))
	sh.mu.Lock()
	if e, ok := sh.byID[h]; ok && e.s.key == key {
		sh.remove(e)
		c.n.Add(-1)
	}
	sh.mu.Unlock()
}

// reset empties the cache (the bus lost messages).
func (c *cache) reset() {
	if c == nil {
		return
	}
	c.keysMu.Lock()
	c.local++
	clear(c.keys)
	c.keysMu.Unlock()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		c.n.Add(-int64(len(sh.byID)))
		clear(sh.byID)
		clear(sh.ring)
		sh.ring, sh.hand, sh.bytes = sh.ring[:0], 0, 0
		sh.mu.Unlock()
	}
}
