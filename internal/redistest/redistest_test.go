package redistest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

func TestStartPingStatsRestart(t *testing.T) {
	s := Start(t)
	if host, _, err := net.SplitHostPort(s.Addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q", s.Addr)
	}
	if s.Stopped() {
		t.Fatal("Stopped() = true after Start")
	}
	if got, err := redis.String(s.Do("PING")); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}

	pool := s.Pool()
	c := pool.Get()
	if _, err := c.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = pool.Get()
	for range 3 {
		if v, err := redis.String(c.Do("GET", "k")); err != nil || v != "v" {
			t.Fatalf("GET = %q, %v", v, err)
		}
	}
	c.Close()
	if v, err := redis.String(s.Client().Do("GET", "k")); err != nil || v != "v" {
		t.Fatalf("Client GET = %q, %v", v, err)
	}

	stats := s.CommandStats()
	if stats["get"] != 4 || stats["set"] != 1 {
		t.Fatalf("stats = %v, want get=4 set=1", stats)
	}
	s.ResetStats()
	stats = s.CommandStats()
	if stats["get"] != 0 || stats["set"] != 0 {
		t.Fatalf("stats after reset = %v", stats)
	}

	// Outage: requests fail fast.
	addr := s.Addr
	s.Stop()
	s.Stop() // idempotent
	if !s.Stopped() {
		t.Fatal("Stopped() = false after Stop")
	}
	start := time.Now()
	c = pool.Get()
	_, err := c.Do("GET", "k")
	c.Close()
	if err == nil {
		t.Fatal("GET succeeded while stopped")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failure took %v", d)
	}

	// Restart: same address, empty data, the pool works again at once.
	s.Restart()
	if s.Addr != addr || s.Stopped() {
		t.Fatalf("after Restart: Addr %q (was %q), Stopped %v", s.Addr, addr, s.Stopped())
	}
	c = pool.Get()
	defer c.Close()
	if _, err := redis.String(c.Do("GET", "k")); !errors.Is(err, redis.ErrNil) {
		t.Fatalf("GET after restart: %v, want ErrNil", err)
	}
	if stats := s.CommandStats(); stats["get"] != 1 {
		t.Fatalf("stats after restart = %v", stats)
	}
}

func TestRestartKeepsPooledConnsUsable(t *testing.T) {
	s := Start(t)
	pool := s.Pool()
	// Fill the pool with idle connections, then restart under them.
	conns := make([]redis.Conn, 4)
	for i := range conns {
		conns[i] = pool.Get()
		if _, err := conns[i].Do("PING"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	s.Restart()
	for range 8 {
		c := pool.Get()
		if _, err := c.Do("PING"); err != nil {
			t.Fatalf("PING after restart: %v", err)
		}
		c.Close()
	}
}

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_get:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_config|resetstat:calls=1,usec=5,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_SET:calls=3,usec=9,usec_per_call=3.00\r\n"
	got, err := parseCommandStats(info)
	if err != nil {
		t.Fatal(err)
	}
	if got["get"] != 12 || got["set"] != 3 || got["config|resetstat"] != 1 || len(got) != 3 {
		t.Fatalf("got %v", got)
	}
	if _, err := parseCommandStats("cmdstat_get:calls=x\r\n"); err == nil {
		t.Fatal("no error for a bad number")
	}
}

func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr == b.Addr {
		t.Fatal("same address")
	}
	if _, err := a.Do("SET", "k", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := redis.String(b.Do("GET", "k")); !errors.Is(err, redis.ErrNil) {
		t.Fatalf("servers share data: %v", err)
	}
}

func TestStartWithTLSAndACL(t *testing.T) {
	tc := NewTLS(t, "127.0.0.1")
	s := StartWith(t, Config{TLS: tc, Args: []string{"--user", "app", "on", ">pw", "~*", "+@all"}})
	c, err := redis.Dial("tcp", s.TLSAddr, redis.DialUseTLS(true),
		redis.DialTLSConfig(&tls.Config{RootCAs: tc.Roots}), redis.DialUsername("app"), redis.DialPassword("pw"))
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	if got, err := redis.String(c.Do("ACL", "WHOAMI")); err != nil || got != "app" {
		t.Fatalf("ACL WHOAMI = %q, %v", got, err)
	}
}

func TestGroupFailover(t *testing.T) {
	g := StartGroup(t)
	if m := g.Master(); m != g.Primary.Addr {
		t.Fatalf("master = %q, want %q", m, g.Primary.Addr)
	}
	if _, err := g.Primary.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	g.Primary.Replicated(1, time.Second)
	g.Replica.Freeze()
	g.Replica.Thaw()
	g.CutReplication()
	if _, err := g.Primary.Do("SET", "lost", "v"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g.Primary.Stop()
	g.WaitMaster(g.Replica.Addr, 30*time.Second)
	t.Logf("failover took %v", time.Since(start))
	if v, err := redis.String(g.Replica.Do("GET", "k")); err != nil || v != "v" {
		t.Fatalf("GET on the new master = %q, %v", v, err)
	}
	if _, err := redis.String(g.Replica.Do("GET", "lost")); !errors.Is(err, redis.ErrNil) {
		t.Fatalf("a write made after CutReplication reached the replica: %v", err)
	}
}

// fakeTB records how a test would end; Fatal and Skip stop it by panicking.
type fakeTB struct {
	testing.TB
	ended string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.ended = "fail: " + fmt.Sprint(args...)
	panic(f)
}
func (f *fakeTB) Skip(args ...any) {
	f.ended = "skip: " + fmt.Sprint(args...)
	panic(f)
}

// A missing binary skips the test, and fails it in CI, naming the package.
func TestMissingBinaryFailsInCI(t *testing.T) {
	for ci, want := range map[string]string{"": "skip: ", "true": "fail: "} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		func() {
			defer func() {
				if r := recover(); r != nil && r != f {
					panic(r)
				}
			}()
			lookBin(f, "redis-sentinel-missing", "redis-sentinel")
		}()
		if !strings.HasPrefix(f.ended, want) || !strings.Contains(f.ended, "apt-get install redis-sentinel") {
			t.Errorf("CI=%q: the test ended with %q, want %q… naming the package", ci, f.ended, want)
		}
	}
}
