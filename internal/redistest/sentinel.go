package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/testsupport"
)

// Sentinel timing of StartSentinel: short, so that a failover takes a few
// seconds. A primary is down for the sentinels after SentinelDownAfter
// without an answer.
const (
	SentinelDownAfter       = 500 * time.Millisecond
	sentinelFailoverTimeout = 2 * time.Second
)

// StartSentinel starts a redis-sentinel that monitors the primary at master
// under name, with quorum, and registers its shutdown with t.Cleanup. The
// test is skipped (failed with CI set) when redis-sentinel is missing.
func StartSentinel(t testing.TB, name, master string, quorum int) *Server {
	t.Helper()
	s := &Server{t: t, bin: lookBin(t, "redis-sentinel", "redis-sentinel"), dir: t.TempDir(), sentinel: true}
	conf := filepath.Join(s.dir, "sentinel.conf")
	s.args = func() ([]string, error) {
		host, port, err := net.SplitHostPort(master)
		if err != nil {
			return nil, err
		}
		// Sentinel rewrites its file as it learns: write it anew at each start.
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nloglevel warning\n", s.port, s.dir) +
			fmt.Sprintf("sentinel monitor %s %s %s %d\n", name, host, port, quorum) +
			fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", name, SentinelDownAfter.Milliseconds()) +
			fmt.Sprintf("sentinel failover-timeout %s %d\n", name, sentinelFailoverTimeout.Milliseconds())
		return []string{conf}, os.WriteFile(conf, []byte(text), 0o600)
	}
	s.launch(false)
	return s
}

// StartReplica starts a replica of primary and waits until it has a copy.
func StartReplica(t testing.TB, primary *Server) *Server {
	t.Helper()
	return startReplica(t, primary)
}

func startReplica(t testing.TB, primary *Server, args ...string) *Server {
	t.Helper()
	_, port, _ := net.SplitHostPort(primary.Addr)
	r := StartWith(t, Config{Args: append([]string{"--replicaof", "127.0.0.1", port}, args...)})
	primary.Replicated(1, 5*time.Second)
	return r
}

// The user the Group's replica replicates as.
const (
	replUser     = "replication"
	replPassword = "replication-secret"
)

// CutReplication shuts the replica out of the primary (its user is
// deleted, which closes its link; it cannot sign in again), and waits until
// the primary lists no replica. Both go on answering everyone else, so
// every write the primary takes from now on is one the replica lacks, as
// when the link between them fails: a failover loses those writes.
func (g *Group) CutReplication() {
	t := g.Primary.t
	t.Helper()
	if _, err := g.Primary.Do("ACL", "DELUSER", replUser); err != nil {
		t.Fatalf("redistest: ACL DELUSER: %v", err)
	}
	testsupport.WaitUntil(t, 5*time.Second, "redistest: the primary to list no replica once it is shut out", func() bool {
		v, err := redis.Values(g.Primary.Do("ROLE"))
		if err != nil {
			t.Fatalf("redistest: ROLE: %v", err)
		}
		replicas, _ := redis.Values(v[2], nil)
		return len(replicas) == 0
	})
}

// Group is a Redis Sentinel group: a primary, a replica of it, and three
// sentinels that watch them under Name with quorum 2.
type Group struct {
	Name      string
	Primary   *Server // the primary at the start
	Replica   *Server
	Sentinels []*Server
}

// StartGroup starts a Group and waits until every sentinel knows the
// replica and the other two sentinels, so that a failover can happen.
func StartGroup(t testing.TB) *Group {
	t.Helper()
	lookBin(t, "redis-sentinel", "redis-sentinel") // skip (or fail) before starting anything
	// The replica signs in as its own user, so that CutReplication can
	// shut it out.
	g := &Group{Name: "bfftest", Primary: StartWith(t, Config{Args: []string{
		"--user", replUser, "on", ">" + replPassword, "+psync", "+replconf", "+ping",
	}})}
	// The sentinels learn the replicas from the primary's INFO when they
	// connect (and then only every 10 s): link them first.
	g.Replica = startReplica(t, g.Primary, "--masteruser", replUser, "--masterauth", replPassword)
	for range 3 {
		g.Sentinels = append(g.Sentinels, StartSentinel(t, g.Name, g.Primary.Addr, 2))
	}
	for _, s := range g.Sentinels {
		testsupport.WaitUntil(t, 20*time.Second, "redistest: the sentinel on "+s.Addr+" to know the replica and the other sentinels", func() bool {
			m, err := g.master(s)
			return err == nil && m["flags"] == "master" && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2"
		})
	}
	return g
}

// SentinelAddrs returns the sentinels' addresses.
func (g *Group) SentinelAddrs() []string {
	var addrs []string
	for _, s := range g.Sentinels {
		addrs = append(addrs, s.Addr)
	}
	return addrs
}

// master returns what sentinel s knows of the master (SENTINEL MASTER).
func (g *Group) master(s *Server) (map[string]string, error) {
	return redis.StringMap(s.Do("SENTINEL", "MASTER", g.Name))
}

// Master returns the address of the master according to the sentinels that
// answer, or "" while they do not agree.
func (g *Group) Master() string {
	addr := ""
	for _, s := range g.Sentinels {
		if s.Stopped() {
			continue
		}
		hp, err := redis.Strings(s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", g.Name))
		if err != nil || len(hp) != 2 {
			return ""
		}
		a := net.JoinHostPort(hp[0], hp[1])
		if addr != "" && a != addr {
			return ""
		}
		addr = a
	}
	return addr
}

// WaitMaster waits until every sentinel names addr the master and addr says
// it is one (ROLE), failing the test after d.
func (g *Group) WaitMaster(addr string, d time.Duration) {
	g.Primary.t.Helper()
	testsupport.WaitUntil(g.Primary.t, d, addr+" to be the master of "+g.Name+" for every sentinel", func() bool {
		return g.Master() == addr && g.role(addr) == "master"
	})
}

func (g *Group) role(addr string) string {
	for _, s := range []*Server{g.Primary, g.Replica} {
		if s.Addr == addr && !s.Stopped() {
			v, err := redis.Values(s.Do("ROLE"))
			if err == nil && len(v) > 0 {
				r, _ := redis.String(v[0], nil)
				return r
			}
		}
	}
	return ""
}
