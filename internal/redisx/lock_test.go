package redisx

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
	"github.com/gomodule/redigo/redis"
)

// testPool returns a pool for s. It is testPool(t, s) when that pool's connections
// implement redigo's ConnWithContext and ConnWithTimeout, which this package
// relies on (redis.Dial connections do); otherwise it returns an equivalent
// pool that dials s.Addr directly.
func testPool(t *testing.T, s *redistest.Server) *redis.Pool {
	t.Helper()
	p := s.Pool()
	c, err := p.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, ctxOK := c.(redis.ConnWithContext)
	_, timeoutOK := c.(redis.ConnWithTimeout)
	if ctxOK && timeoutOK {
		return p
	}
	t.Logf("redistest pool connections (%T) lack ConnWithContext/ConnWithTimeout; dialing %s directly", c, s.Addr)
	p = &redis.Pool{
		MaxIdle: 8,
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", s.Addr,
				redis.DialConnectTimeout(redistest.ConnectTimeout),
				redis.DialReadTimeout(redistest.ReadTimeout),
				redis.DialWriteTimeout(redistest.WriteTimeout))
		},
		// Drop idle connections to a server that was restarted.
		TestOnBorrow: func(c redis.Conn, _ time.Time) error {
			_, err := c.Do("PING")
			return err
		},
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestLockMutualExclusion(t *testing.T) {
	s := redistest.Start(t)
	lockers := []*Locker{NewLocker(testPool(t, s), "lock:"), NewLocker(testPool(t, s), "lock:")}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	const workers, rounds = 8, 8
	var holders, maxHolders, total atomic.Int32
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			l := lockers[i%len(lockers)]
			for range rounds {
				unlock, err := l.Lock(ctx, "shared", 5*time.Second)
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				n := holders.Add(1)
				if n > maxHolders.Load() {
					maxHolders.Store(n)
				}
				time.Sleep(time.Millisecond) // hold it long enough for overlaps to show
				total.Add(1)
				holders.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if got := maxHolders.Load(); got != 1 {
		t.Errorf("max concurrent holders = %d, want 1", got)
	}
	if got := total.Load(); got != workers*rounds {
		t.Errorf("critical sections = %d, want %d", got, workers*rounds)
	}
	if n, err := redis.Int(s.Do("EXISTS", "lock:shared")); err != nil || n != 0 {
		t.Errorf("lock key left behind: EXISTS = %d, %v", n, err)
	}
}

func TestUnlockDoesNotReleaseNextHolder(t *testing.T) {
	s := redistest.Start(t)
	l1, l2 := NewLocker(testPool(t, s), "lock:"), NewLocker(testPool(t, s), "lock:")
	ctx := t.Context()

	unlock1, err := l1.Lock(ctx, "x", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	testsupport.WaitUntil(t, 2*time.Second, "first lease to expire", func() bool {
		n, err := redis.Int(s.Do("EXISTS", "lock:x"))
		return err == nil && n == 0
	})
	unlock2, err := l2.Lock(ctx, "x", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	token2, err := redis.String(s.Do("GET", "lock:x"))
	if err != nil {
		t.Fatal(err)
	}

	unlock1() // stale: must not release the second holder's lease
	unlock1() // idempotent
	if got, err := redis.String(s.Do("GET", "lock:x")); err != nil || got != token2 {
		t.Fatalf("after stale unlock: GET = %q, %v; want second holder's token", got, err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l1.Lock(short, "x", time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while held: err = %v, want DeadlineExceeded", err)
	}

	unlock2()
	unlock2()
	unlock3, err := l1.Lock(ctx, "x", time.Second)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	unlock3()
}

func TestUnlockAfterContextCancelled(t *testing.T) {
	s := redistest.Start(t)
	l := NewLocker(testPool(t, s), "lock:")
	ctx, cancel := context.WithCancel(t.Context())
	unlock, err := l.Lock(ctx, "x", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	unlock()
	if n, err := redis.Int(s.Do("EXISTS", "lock:x")); err != nil || n != 0 {
		t.Fatalf("unlock with cancelled ctx left the key: EXISTS = %d, %v", n, err)
	}
}

func TestDeadHolderBlocksOnlyUntilTTL(t *testing.T) {
	s := redistest.Start(t)
	l1, l2 := NewLocker(testPool(t, s), "lock:"), NewLocker(testPool(t, s), "lock:")
	const ttl = 200 * time.Millisecond
	start := time.Now()
	if _, err := l1.Lock(t.Context(), "x", ttl); err != nil { // never unlocked
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	unlock, err := l2.Lock(ctx, "x", time.Second)
	if err != nil {
		t.Fatalf("Lock after dead holder: %v", err)
	}
	defer unlock()
	if d := time.Since(start); d < ttl-20*time.Millisecond {
		t.Errorf("acquired after %v, before the dead holder's ttl %v", d, ttl)
	}
}

// The holder unlocks while Redis is paused (the unlock gets no answer): the
// release is retried, so the lock is free long before its ttl.
func TestUnlockDuringStallIsRetried(t *testing.T) {
	s := redistest.Start(t)
	l1, l2 := NewLocker(testPool(t, s), "lock:"), NewLocker(testPool(t, s), "lock:")
	const ttl = 60 * time.Second
	unlock, err := l1.Lock(t.Context(), "x", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Do("CLIENT", "PAUSE", 800, "ALL"); err != nil {
		t.Fatal(err)
	}
	unlock()                                                        // times out: Redis does not answer during the pause
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // far below ttl
	defer cancel()
	unlock2, err := l2.Lock(ctx, "x", time.Second)
	if err != nil {
		t.Fatalf("the lock stayed held after its holder's unlock during a stall: %v", err)
	}
	unlock2()
}

func TestLockFailsFastWhenRedisDown(t *testing.T) {
	s := redistest.Start(t)
	l := NewLocker(testPool(t, s), "lock:")
	pool := testPool(t, s)
	s.Stop()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := l.Lock(ctx, "x", time.Second)
	if err == nil {
		t.Fatal("Lock succeeded with Redis stopped")
	}
	if ctx.Err() != nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Lock took %v (err %v), want a prompt error", time.Since(start), err)
	}
	if _, err := FirstUse(ctx, pool, "x", time.Second); err == nil {
		t.Fatal("FirstUse succeeded with Redis stopped")
	}
}

func TestLockBadTTL(t *testing.T) {
	l := NewLocker(nil, "lock:") // the pool is not reached
	if _, err := l.Lock(t.Context(), "x", 0); err == nil {
		t.Fatal("Lock with ttl 0 succeeded")
	}
	if _, err := FirstUse(t.Context(), nil, "x", time.Microsecond); err == nil {
		t.Fatal("FirstUse with ttl 1µs succeeded")
	}
}

func TestFirstUse(t *testing.T) {
	s := redistest.Start(t)
	pool := testPool(t, s)
	ctx := t.Context()
	check := func(name string, want bool) {
		t.Helper()
		got, err := FirstUse(ctx, pool, name, 100*time.Millisecond)
		if err != nil || got != want {
			t.Fatalf("FirstUse(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	check("jti:a", true)
	check("jti:a", false)
	check("jti:b", true)
	check("jti:a", false)
	testsupport.WaitUntil(t, 2*time.Second, "jti:a to expire", func() bool {
		n, err := redis.Int(s.Do("EXISTS", "jti:a"))
		return err == nil && n == 0
	})
	check("jti:a", true)
}
