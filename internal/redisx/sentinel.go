package redisx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// DialFunc opens a connection to the Redis server (or sentinel) at addr,
// with the caller's timeouts, TLS and credentials.
type DialFunc func(ctx context.Context, addr string) (redis.Conn, error)

// Sentinel finds the master of a Redis Sentinel group and dials it: it is
// the Dial and TestOnBorrow of a redis.Pool that follows failovers. It is
// hand-written (the Sentinel client guidelines are a few steps) because
// bff's dependencies include no Sentinel client.
//
// Dial asks the sentinels in turn, the one that answered last first, for
// the master's address (SENTINEL get-master-addr-by-name), dials it and
// checks with ROLE that the node is a master now; an address that is not
// (a sentinel's stale answer during a failover) is passed over and the next
// sentinel asked. With no master found, Dial fails, so the caller's request
// fails (503) instead of reading or writing a replica.
//
// The connections it returns remember their node. A reply that only a
// demoted node gives (READONLY, MASTERDOWN, NOREPLICAS) marks the connection
// broken, so that the pool drops it, and forgets that node as the master, as
// does a broken connection or a Dial that finds no master; TestOnBorrow
// refuses an idle connection to any node but the master the last Dial
// found, and checks ROLE on one idle for idleCheck. So after a failover no
// idle connection to the old master is used once anything (a request, the
// invalidation bus reconnecting) has noticed. (Sentinel also closes the
// client connections of a node it demotes.)
type Sentinel struct {
	name         string
	dialSentinel DialFunc
	dialNode     DialFunc

	mu        sync.Mutex
	sentinels []string // most recently useful first

	master atomic.Pointer[string] // the master the last Dial found; nil: none
}

// idleCheck: a connection idle for this long is asked its ROLE before use.
const idleCheck = 30 * time.Second

// NewSentinel returns a Sentinel for the master called name, known to the
// sentinels at addrs ("host:port").
func NewSentinel(name string, addrs []string, dialSentinel, dialNode DialFunc) *Sentinel {
	return &Sentinel{name: name, sentinels: append([]string(nil), addrs...),
		dialSentinel: dialSentinel, dialNode: dialNode}
}

// Master returns the address of the master the last Dial found, or "" when
// it has been forgotten since.
func (s *Sentinel) Master() string {
	if p := s.master.Load(); p != nil {
		return *p
	}
	return ""
}

// Dial returns a connection to the current master.
func (s *Sentinel) Dial(ctx context.Context) (redis.Conn, error) {
	var errs []string
	tried := map[string]bool{}
	for _, sa := range s.order() {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err().Error())
			break
		}
		addr, err := s.ask(ctx, sa)
		if err != nil {
			errs = append(errs, fmt.Sprintf("sentinel %s: %v", sa, err))
			continue
		}
		if tried[addr] {
			continue
		}
		tried[addr] = true
		c, err := s.dialMaster(ctx, addr)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s, named by sentinel %s: %v", addr, sa, err))
			continue
		}
		s.prefer(sa)
		s.master.Store(&addr)
		return &nodeConn{Conn: c, addr: addr, s: s}, nil
	}
	if ctx.Err() == nil {
		// No master now: idle connections to the last one are stale (it
		// died, or it is being replaced). A caller that gave up proves
		// nothing.
		s.master.Store(nil)
	}
	return nil, fmt.Errorf("redisx: no master %q found: %s", s.name, strings.Join(errs, "; "))
}

// order returns the sentinels, the most recently useful first.
func (s *Sentinel) order() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sentinels...)
}

// prefer moves sentinel addr to the front, as the guidelines ask.
func (s *Sentinel) prefer(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, a := range s.sentinels {
		if a == addr {
			copy(s.sentinels[1:i+1], s.sentinels[:i])
			s.sentinels[0] = addr
			return
		}
	}
}

// ask asks the sentinel at addr where the master is.
func (s *Sentinel) ask(ctx context.Context, addr string) (string, error) {
	c, err := s.dialSentinel(ctx, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	hp, err := redis.Strings(redis.DoContext(c, ctx, "SENTINEL", "get-master-addr-by-name", s.name))
	switch {
	case errors.Is(err, redis.ErrNil):
		return "", fmt.Errorf("no master called %q is monitored there", s.name)
	case err != nil:
		return "", err
	case len(hp) != 2:
		return "", fmt.Errorf("unexpected answer %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// dialMaster dials addr and checks that it is a master.
func (s *Sentinel) dialMaster(ctx context.Context, addr string) (redis.Conn, error) {
	c, err := s.dialNode(ctx, addr)
	if err != nil {
		return nil, err
	}
	if err := checkMaster(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// checkMaster asks c's node its role and fails unless it is a master.
func checkMaster(ctx context.Context, c redis.Conn) error {
	v, err := redis.Values(redis.DoContext(c, ctx, "ROLE"))
	if err != nil {
		return fmt.Errorf("ROLE: %w", err)
	}
	if len(v) == 0 {
		return errors.New("empty ROLE reply")
	}
	if role, _ := redis.String(v[0], nil); role != "master" {
		return fmt.Errorf("%w (its role is %q)", errNotMaster, role)
	}
	return nil
}

var (
	errNotMaster  = errors.New("redisx: the node is not a master")
	errNotCurrent = errors.New("redisx: the connection is to a node that is no longer the master")
)

// TestOnBorrow is the pool's TestOnBorrow: it refuses a connection to a
// node other than the current master, and one idle for idleCheck whose
// node no longer says it is a master.
func (s *Sentinel) TestOnBorrow(c redis.Conn, idleSince time.Time) error {
	nc, ok := c.(*nodeConn)
	if !ok || nc.addr != s.Master() {
		return errNotCurrent
	}
	if time.Since(idleSince) < idleCheck {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), idleCheckTimeout)
	defer cancel()
	return checkMaster(ctx, nc)
}

const idleCheckTimeout = time.Second

// forget forgets addr as the master, unless another was found since.
func (s *Sentinel) forget(addr string) {
	if p := s.master.Load(); p != nil && *p == addr {
		s.master.CompareAndSwap(p, nil)
	}
}

// nodeConn is a connection to the node at addr. It turns broken once the
// node answers as only a replica, or a master cut off from its replicas,
// does.
type nodeConn struct {
	redis.Conn
	addr    string
	s       *Sentinel
	demoted atomic.Bool
}

// demotedReplies are the error prefixes of a node that is no longer the
// master to write to: a replica (READONLY; MASTERDOWN when it serves no stale
// data), or a master refusing writes for lack of replicas (NOREPLICAS, with
// min-replicas-to-write: cut off, perhaps already replaced).
var demotedReplies = []string{"READONLY ", "MASTERDOWN ", "NOREPLICAS "}

// check notes a broken connection, or a reply only a demoted node gives (as
// the error or among the replies of a pipeline, Do("")): either way the
// node is no longer taken for the master, so that idle connections to it
// are refused and the next Dial asks the sentinels.
func (c *nodeConn) check(reply any, err error) (any, error) {
	if err != nil && c.Conn.Err() != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		c.s.forget(c.addr) // broken, and not by the caller giving up
	}
	errs := []any{err}
	if v, ok := reply.([]any); ok {
		errs = append(errs, v...)
	}
	for _, e := range errs {
		re, ok := e.(redis.Error)
		if !ok {
			continue
		}
		for _, p := range demotedReplies {
			if strings.HasPrefix(string(re), p) {
				c.demoted.Store(true)
				c.s.forget(c.addr)
			}
		}
	}
	return reply, err
}

// Err reports a demoted node as an error, so that the pool drops the
// connection.
func (c *nodeConn) Err() error {
	if c.demoted.Load() {
		return errNotCurrent
	}
	return c.Conn.Err()
}

func (c *nodeConn) Do(cmd string, args ...any) (any, error) {
	return c.check(c.Conn.Do(cmd, args...))
}

func (c *nodeConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return c.check(redis.DoContext(c.Conn, ctx, cmd, args...))
}

func (c *nodeConn) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	return c.check(redis.DoWithTimeout(c.Conn, d, cmd, args...))
}

func (c *nodeConn) ReceiveContext(ctx context.Context) (any, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}

func (c *nodeConn) ReceiveWithTimeout(d time.Duration) (any, error) {
	return redis.ReceiveWithTimeout(c.Conn, d)
}
