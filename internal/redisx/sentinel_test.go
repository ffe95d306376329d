package redisx

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

func plainDial(ctx context.Context, addr string) (redis.Conn, error) {
	return redis.DialContext(ctx, "tcp", addr,
		redis.DialConnectTimeout(redistest.ConnectTimeout),
		redis.DialReadTimeout(redistest.ReadTimeout),
		redis.DialWriteTimeout(redistest.WriteTimeout))
}

// sentinelPool is the pool bff builds on a Sentinel.
func sentinelPool(t *testing.T, s *Sentinel) *redis.Pool {
	p := &redis.Pool{MaxIdle: 8, DialContext: s.Dial, TestOnBorrow: s.TestOnBorrow}
	t.Cleanup(func() { p.Close() })
	return p
}

// closedAddr returns an address where nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func role(t *testing.T, c redis.Conn) string {
	t.Helper()
	v, err := redis.Values(c.Do("ROLE"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := redis.String(v[0], nil)
	return r
}

func TestSentinelFindsMaster(t *testing.T) {
	g := redistest.StartGroup(t)
	down := closedAddr(t)
	s := NewSentinel(g.Name, append([]string{down}, g.SentinelAddrs()...), plainDial, plainDial)
	c, err := s.Dial(t.Context())
	if err != nil {
		t.Fatalf("Dial with the first sentinel down: %v", err)
	}
	defer c.Close()
	if role(t, c) != "master" || s.Master() != g.Primary.Addr {
		t.Fatalf("dialed %s, a %s; want the primary %s", s.Master(), role(t, c), g.Primary.Addr)
	}
	// The sentinel that answered is asked first from now on.
	if o := s.order(); o[0] != g.Sentinels[0].Addr || o[len(o)-1] != g.Sentinels[2].Addr || len(o) != 4 {
		t.Fatalf("order after the first Dial = %q", o)
	}

	// Unknown name, and no sentinel reachable: clear errors.
	_, err = NewSentinel("nope", g.SentinelAddrs()[:1], plainDial, plainDial).Dial(t.Context())
	if err == nil || !strings.Contains(err.Error(), `no master called "nope"`) {
		t.Fatalf("Dial of an unknown master = %v", err)
	}
	_, err = NewSentinel(g.Name, []string{down}, plainDial, plainDial).Dial(t.Context())
	if err == nil || !strings.Contains(err.Error(), "sentinel "+down) {
		t.Fatalf("Dial with every sentinel down = %v", err)
	}
}

// A sentinel that names a node which is not a master (a stale answer) is
// not believed: ROLE decides.
func TestSentinelRefusesReplica(t *testing.T) {
	replica := redistest.StartWith(t, redistest.Config{Args: []string{"--replicaof", "127.0.0.1", "1"}})
	// This sentinel watches the replica as if it were a master.
	sen := redistest.StartSentinel(t, "stale", replica.Addr, 1)
	s := NewSentinel("stale", []string{sen.Addr}, plainDial, plainDial)
	_, err := s.Dial(t.Context())
	if err == nil || !strings.Contains(err.Error(), `its role is "slave"`) {
		t.Fatalf("Dial of a replica named master = %v, want a refusal", err)
	}
	if s.Master() != "" {
		t.Fatalf("Master() = %q after a refusal", s.Master())
	}
}

// A connection to a node that has become a replica is dropped at its first
// write (READONLY), and no connection is used until a master is found again.
func TestSentinelDropsDemotedNode(t *testing.T) {
	node, other := redistest.Start(t), redistest.Start(t)
	sen := redistest.StartSentinel(t, "solo", node.Addr, 1)
	s := NewSentinel("solo", []string{sen.Addr}, plainDial, plainDial)
	pool := sentinelPool(t, s)
	idle := pool.Get()
	if _, err := idle.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	c := pool.Get() // a second connection; the first stays idle in the pool
	piped := pool.Get()
	defer piped.Close()
	idle.Close()

	_, port, _ := net.SplitHostPort(other.Addr)
	if _, err := node.Do("REPLICAOF", "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	_, err := c.Do("SET", "k", "w")
	if err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Fatalf("write to the demoted node = %v, want READONLY", err)
	}
	if c.Err() == nil {
		t.Fatal("the connection to a demoted node still reports no error: the pool would keep it")
	}
	// The same when the refusal is one reply of a pipeline.
	piped.Send("DEL", "k")
	piped.Send("ROLE")
	if _, err := piped.Do(""); err != nil || piped.Err() == nil {
		t.Fatalf("pipelined write to the demoted node: %v, Err() = %v; want the connection marked broken", err, piped.Err())
	}
	c.Close()
	if s.Master() != "" {
		t.Fatalf("Master() = %q after READONLY", s.Master())
	}
	// The idle connection is not handed out, and the sentinel's (stale)
	// answer is checked: no connection.
	c = pool.Get()
	defer c.Close()
	if _, err := c.Do("GET", "k"); err == nil {
		t.Fatal("a read went to the demoted node")
	}
}

func TestSentinelTestOnBorrow(t *testing.T) {
	g := redistest.StartGroup(t)
	s := NewSentinel(g.Name, g.SentinelAddrs(), plainDial, plainDial)
	c, err := s.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.TestOnBorrow(c, time.Now()); err != nil {
		t.Fatalf("fresh connection to the master refused: %v", err)
	}
	if err := s.TestOnBorrow(c, time.Now().Add(-2*idleCheck)); err != nil {
		t.Fatalf("idle connection to the master refused: %v", err)
	}
	// Another node became the master (as a Dial after a failover finds).
	other := g.Replica.Addr
	s.master.Store(&other)
	if err := s.TestOnBorrow(c, time.Now()); !errors.Is(err, errNotCurrent) {
		t.Fatalf("connection to the former master = %v, want errNotCurrent", err)
	}
	s.forget(other)
	if err := s.TestOnBorrow(c, time.Now()); !errors.Is(err, errNotCurrent) {
		t.Fatalf("connection with no master known = %v, want errNotCurrent", err)
	}
	plain, err := plainDial(t.Context(), g.Primary.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := s.TestOnBorrow(plain, time.Now()); !errors.Is(err, errNotCurrent) {
		t.Fatalf("a connection not dialed by the Sentinel = %v", err)
	}
}

// After a failover the Bus subscribes to the new master (it dials through
// the pool's Dial), resets, and delivers again. A pool that saw nothing of
// the failover (no request, no bus) uses at most one of its idle
// connections to the dead master: the first error sends it to the sentinels.
func TestBusFollowsFailover(t *testing.T) {
	g := redistest.StartGroup(t)
	s := NewSentinel(g.Name, g.SentinelAddrs(), plainDial, plainDial)
	pool := sentinelPool(t, s)
	b, r := newTestBus(t, pool)
	resets := r.resets.Load()
	quiet := sentinelPool(t, NewSentinel(g.Name, g.SentinelAddrs(), plainDial, plainDial))
	var idle []redis.Conn
	for range 4 {
		c := quiet.Get()
		if _, err := c.Do("PING"); err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	for _, c := range idle {
		c.Close()
	}

	g.Primary.Stop()
	testsupport.WaitUntil(t, time.Second, "the bus to turn unhealthy", func() bool { return !b.Healthy() })
	g.WaitMaster(g.Replica.Addr, 30*time.Second)
	testsupport.WaitUntil(t, 10*time.Second, "the bus to be healthy on the new master", b.Healthy)
	if r.resets.Load() <= resets {
		t.Fatal("no reset: the cache would keep entries whose invalidations were lost")
	}
	if err := b.Publish(t.Context(), "after-failover"); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitUntil(t, time.Second, "delivery on the new master", func() bool { return r.has("after-failover") })
	if s.Master() != g.Replica.Addr {
		t.Fatalf("Master() = %q, want %q", s.Master(), g.Replica.Addr)
	}
	failed := 0
	for range 4 {
		c := quiet.Get()
		if _, err := c.Do("SET", "k", "v"); err != nil {
			failed++
		}
		c.Close()
	}
	if failed > 1 {
		t.Fatalf("%d of 4 writes after the failover failed; want at most the first", failed)
	}
}
