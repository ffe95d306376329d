package bff

import (
	"crypto/rand"
	"encoding/base64"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobff/bff/internal/record"
)

// Tests of the session cache: bounded by bytes, O(1) eviction that keeps
// the sessions in use, and no entry served after its invalidation.

// typicalSession is a decoded session with tokens of a typical provider's
// sizes (JWT access and ID tokens of about 1 KB, a short refresh token).
// len returns the number of cached sessions.
func (c *cache) len() int {
	if c == nil {
		return 0
	}
	return int(c.n.Load())
}

func typicalSession(id string) *session {
	n := time.Now().UnixNano()
	rec := record.Session{Rev: 1, Created: n, LastSeen: n, Expires: n + int64(time.Hour),
		Subject: "user-" + id[:8], SID: rand.Text(), Name: "Alice Example", Email: "alice@example.com",
		Claims:      []byte(`{"sub":"user","email":"alice@example.com","name":"Alice Example","groups":["a","b"]}`),
		AccessToken: fakeJWT(1000), TokenType: "Bearer", AccessIssued: n, AccessExpiry: n + int64(time.Hour),
		RefreshToken: randomText(100), IDToken: fakeJWT(1000)}
	s := newSession(recordName(id), rec)
	s.rev = []byte("0123456789abcdefg")
	return s
}

// fakeJWT is n characters shaped like a signed JWT: three base64url
// segments of random bytes (real tokens pack the same way; see
// internal/record).
func fakeJWT(n int) string {
	return randomText(36) + "." + randomText(n-36-86-2) + "." + randomText(86)
}

// randomText is base64url text of about chars characters.
func randomText(chars int) string {
	b := make([]byte, chars*3/4)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestCacheBoundedByBytes(t *testing.T) {
	const budget = 1 << 20
	c := newCache(0, budget, nil, nil)
	now := time.Now()
	var size int64
	for range 5000 {
		id := rand.Text()
		s := typicalSession(id)
		size = entrySize(s)
		c.put(id, s, c.seq(), now)
	}
	var bytes int64
	for i := range c.shards {
		bytes += c.shards[i].bytes
	}
	if bytes > budget || int64(c.len())*size != bytes {
		t.Fatalf("%d entries hold %d bytes; the budget is %d", c.len(), bytes, budget)
	}
	if c.len() < budget/int(size)/2 {
		t.Fatalf("only %d entries of %d bytes in a %d-byte budget", c.len(), size, budget)
	}
	if len(c.keys) != c.len() {
		t.Fatalf("%d keys for %d entries", len(c.keys), c.len())
	}
}

// CLOCK: sessions in use survive a stream of one-off sessions.
func TestCacheKeepsSessionsInUse(t *testing.T) {
	c := newCache(0, 64*entrySize(typicalSession(rand.Text()))*cacheShards, nil, nil)
	now := time.Now()
	hot := make([]string, 200)
	for i := range hot {
		hot[i] = rand.Text()
		c.put(hot[i], typicalSession(hot[i]), c.seq(), now)
	}
	for range 2000 {
		for _, id := range hot {
			c.get(id, now)
		}
		for range 10 {
			id := rand.Text()
			c.put(id, typicalSession(id), c.seq(), now)
		}
	}
	missing := 0
	for _, id := range hot {
		if c.get(id, now) == nil {
			missing++
		}
	}
	if missing > len(hot)/20 {
		t.Fatalf("%d of %d sessions in use were evicted by one-off sessions", missing, len(hot))
	}
}

// An invalidation is never lost: whatever the interleaving of a fill
// (read, then put) and a drop of the same session, the cache ends without
// the stale entry.
func TestCacheDropNeverLost(t *testing.T) {
	c := newCache(0, 64<<20, nil, nil)
	now := time.Now()
	id := rand.Text()
	stale := typicalSession(id)
	for range 2000 {
		var wg sync.WaitGroup
		seq := c.seq() // the reader's snapshot, before its store read
		wg.Add(2)
		go func() { defer wg.Done(); c.put(id, stale, seq, now) }()
		go func() { defer wg.Done(); c.drop(stale.key) }() // the write after the read
		wg.Wait()
		if c.get(id, now) != nil {
			t.Fatal("a session read before its invalidation is cached after it")
		}
	}
}

// The documented per-entry overhead matches what the heap shows (within a
// third), so that SessionCacheBytes bounds the real memory.
func TestCacheEntrySize(t *testing.T) {
	const n = 20000
	ids := make([]string, n)
	sessions := make([]*session, n)
	for i := range ids {
		ids[i] = rand.Text()
		sessions[i] = typicalSession(ids[i])
	}
	before := heapAlloc()
	c := newCache(0, 1<<30, nil, nil)
	now := time.Now()
	for i, id := range ids {
		// The cache holds its own decoded copy, as a store read makes one.
		s := *sessions[i]
		s.rec.AccessToken = strings.Clone(s.rec.AccessToken)
		s.rec.IDToken = strings.Clone(s.rec.IDToken)
		s.rec.RefreshToken = strings.Clone(s.rec.RefreshToken)
		s.rec.Claims = append([]byte(nil), s.rec.Claims...)
		c.put(id, &s, c.seq(), now)
	}
	measured := float64(heapAlloc()-before) / n
	estimate := float64(entrySize(sessions[0]))
	t.Logf("a cached typical session: %.0f bytes on the heap, %.0f estimated (overhead %d)", measured, estimate, cacheEntryOverhead)
	if estimate < measured*2/3 || estimate > measured*3/2 {
		t.Fatalf("estimate %.0f bytes, measured %.0f", estimate, measured)
	}
	runtime.KeepAlive(c)
	runtime.KeepAlive(sessions)
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A cached session keeps its own copy of the session ID, not the request's
// Cookie header it was cut from (browsers send kilobytes of other cookies).
func TestCacheKeepsNoCookieHeader(t *testing.T) {
	c := newCache(0, 1<<30, nil, nil)
	now := time.Now()
	before := heapAlloc()
	for range 500 {
		id := rand.Text()
		header := strings.Repeat("x", 64<<10) + "; __Host-bff=" + id // 64 KiB of other cookies
		cut := header[len(header)-len(id):]
		c.put(cut, typicalSession(id), c.seq(), now)
	}
	held := int64(heapAlloc() - before)
	runtime.KeepAlive(c)
	if held > 8<<20 {
		t.Fatalf("500 cached sessions hold %d MiB: the cache keeps the Cookie headers its IDs came from", held>>20)
	}
}

// Entries are found by the ID's hash, and a lookup still compares the ID:
// were two IDs to share a hash, one would never be served the other's
// session.
func TestCacheComparesTheID(t *testing.T) {
	c := newCache(0, 1<<20, nil, nil)
	now := time.Now()
	a, b := rand.Text(), rand.Text()
	c.put(a, typicalSession(a), c.seq(), now)
	ha, sha, _ := c.locate(a)
	hb, shb, _ := c.locate(b)
	shb.byID[hb] = sha.byID[ha] // b's hash now leads to a's entry, as a collision would
	if s := c.get(b, now); s != nil {
		t.Fatalf("the session ID %s was served the session of %s", b, a)
	}
	if c.get(a, now) == nil {
		t.Fatal("a's own session is not served")
	}
	if c.get("not-a-session-id", now) != nil {
		t.Fatal("a value that is not a session ID was looked up")
	}
}
