package redisx

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
	"github.com/gomodule/redigo/redis"
)

// recorder collects what a Bus reports.
type recorder struct {
	mu     sync.Mutex
	keys   []string
	resets atomic.Int32
}

// Publish announces on the channel that key changed, as bff's Redis scripts
// do. It returns once Redis has accepted the message.
func (b *Bus) Publish(ctx context.Context, key string) error {
	conn, err := b.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("redisx: publish: %w", err)
	}
	defer conn.Close()
	_, err = redis.DoContext(conn, ctx, "PUBLISH", b.channel, key)
	return err
}

func (r *recorder) onMessage(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, key)
}

func (r *recorder) onReset() { r.resets.Add(1) }

func (r *recorder) has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.keys {
		if k == key {
			return true
		}
	}
	return false
}

func newTestBus(t *testing.T, pool *redis.Pool) (*Bus, *recorder) {
	t.Helper()
	r := &recorder{}
	b := NewBus(pool, "bff:test:inval", r.onMessage, r.onReset, nil)
	t.Cleanup(b.Close)
	testsupport.WaitUntil(t, 3*time.Second, "bus to become healthy", b.Healthy)
	return b, r
}

// busGoroutines counts goroutine stacks running Bus code.
func busGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "internal/redisx.(*Bus)") {
			n++
		}
	}
	return n
}

func TestBusDelivers(t *testing.T) {
	s := redistest.Start(t)
	a, ra := newTestBus(t, testPool(t, s))
	b, rb := newTestBus(t, testPool(t, s))

	seq := b.Seq()
	start := time.Now()
	if err := a.Publish(t.Context(), "session:1"); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitUntil(t, time.Second, "delivery to the other bus", func() bool { return rb.has("session:1") })
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("delivery took %v, want < 100ms", d)
	}
	testsupport.WaitUntil(t, time.Second, "delivery to the publishing bus", func() bool { return ra.has("session:1") })
	if b.Seq() <= seq {
		t.Errorf("Seq did not advance: %d -> %d", seq, b.Seq())
	}
}

// TestBusPongOrdering checks the property Healthy relies on: once a pong for a
// ping sent after Publish returned has arrived, the message has been handled.
func TestBusPongOrdering(t *testing.T) {
	s := redistest.Start(t)
	a, _ := newTestBus(t, testPool(t, s))
	b, rb := newTestBus(t, testPool(t, s))
	for i := range 20 {
		key := "k" + string(rune('a'+i))
		if err := a.Publish(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		published := b.now()
		testsupport.WaitUntil(t, time.Second, "a later pong", func() bool {
			if b.lastPong.Load() > published {
				if !rb.has(key) {
					t.Fatalf("pong for a ping sent after publishing %q arrived before the message", key)
				}
				return true
			}
			return false
		})
	}
}

func TestBusOutage(t *testing.T) {
	s := redistest.Start(t)
	pool := testPool(t, s)
	b, r := newTestBus(t, pool)
	if r.resets.Load() < 1 {
		t.Error("no onReset after the first subscription")
	}

	resets := r.resets.Load()
	s.Stop()
	stopped := time.Now()
	testsupport.WaitUntil(t, time.Second, "unhealthy after Stop", func() bool { return !b.Healthy() })
	if d := time.Since(stopped); d > 500*time.Millisecond {
		t.Errorf("Healthy stayed true for %v after Stop, want well under a second (the health window is 80 ms)", d)
	}
	testsupport.WaitUntil(t, time.Second, "onReset after disconnect", func() bool { return r.resets.Load() > resets })
	if err := b.Publish(t.Context(), "x"); err == nil {
		t.Error("Publish succeeded with Redis stopped")
	}

	resets = r.resets.Load()
	s.Restart()
	testsupport.WaitUntil(t, 5*time.Second, "healthy after Restart", b.Healthy)
	if r.resets.Load() <= resets {
		t.Error("no onReset between reconnecting and becoming healthy")
	}
	_, ro := newTestBus(t, testPool(t, s))
	if err := b.Publish(t.Context(), "after-restart"); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitUntil(t, time.Second, "delivery after restart", func() bool { return ro.has("after-restart") })
}

// TestBusSilentConnection freezes a proxied connection without closing it, as
// a dropped network path would: Healthy must turn false at once, and the read
// timeout must then reset and reconnect the Bus.
func TestBusSilentConnection(t *testing.T) {
	s := redistest.Start(t)
	px := newFreezeProxy(t, s.Addr)
	pool := &redis.Pool{Dial: func() (redis.Conn, error) {
		return redis.Dial("tcp", px.addr(), redis.DialConnectTimeout(time.Second))
	}}
	t.Cleanup(func() { pool.Close() })
	b, r := newTestBus(t, pool)

	resets := r.resets.Load()
	px.freeze()
	frozen := time.Now()
	testsupport.WaitUntil(t, time.Second, "unhealthy after freeze", func() bool { return !b.Healthy() })
	if d := time.Since(frozen); d > 500*time.Millisecond {
		t.Errorf("Healthy stayed true for %v on a silent connection, want well under a second (the health window is 80 ms)", d)
	}
	testsupport.WaitUntil(t, 2*time.Second, "onReset after read timeout", func() bool { return r.resets.Load() > resets })
	px.thaw()
	testsupport.WaitUntil(t, 5*time.Second, "healthy on a new connection", b.Healthy)
}

func TestBusCloseLeavesNoGoroutine(t *testing.T) {
	s := redistest.Start(t)
	pool := testPool(t, s)
	before := busGoroutines()

	r := &recorder{}
	b := NewBus(pool, "bff:test:inval", r.onMessage, r.onReset, nil)
	testsupport.WaitUntil(t, 3*time.Second, "bus to become healthy", b.Healthy)
	if busGoroutines() == before {
		t.Fatal("no Bus goroutine found while running; the leak check would be vacuous")
	}
	b.Close()
	b.Close() // idempotent
	if b.Healthy() {
		t.Error("Healthy after Close")
	}
	testsupport.WaitUntil(t, time.Second, "Bus goroutines to exit", func() bool { return busGoroutines() == before })

	// Closing while Redis is down (the Bus is backing off) is prompt too.
	b = NewBus(pool, "bff:test:inval", r.onMessage, r.onReset, nil)
	testsupport.WaitUntil(t, 3*time.Second, "bus to become healthy", b.Healthy)
	s.Stop()
	testsupport.WaitUntil(t, time.Second, "unhealthy", func() bool { return !b.Healthy() })
	start := time.Now()
	b.Close()
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Close took %v while Redis was down", d)
	}
	testsupport.WaitUntil(t, time.Second, "Bus goroutines to exit", func() bool { return busGoroutines() == before })
}

// freezeProxy forwards TCP connections to a backend; while frozen it stops
// forwarding in both directions without closing anything.
type freezeProxy struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	cond    *sync.Cond
	frozen  bool
	conns   []net.Conn
	closed  bool
}

func newFreezeProxy(t *testing.T, backend string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, backend: backend}
	p.cond = sync.NewCond(&p.mu)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c, &wg) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		p.frozen = false
		for _, c := range p.conns {
			c.Close()
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *freezeProxy) addr() string { return p.ln.Addr().String() }

func (p *freezeProxy) setFrozen(v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = v
	p.cond.Broadcast()
}

func (p *freezeProxy) freeze() { p.setFrozen(true) }
func (p *freezeProxy) thaw()   { p.setFrozen(false) }

func (p *freezeProxy) serve(c net.Conn, wg *sync.WaitGroup) {
	b, err := net.Dial("tcp", p.backend)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		b.Close()
		return
	}
	p.conns = append(p.conns, c, b)
	p.mu.Unlock()
	wg.Go(func() { p.pipe(b, c) })
	p.pipe(c, b)
}

// pipe copies src to dst, holding data back while the proxy is frozen.
func (p *freezeProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
