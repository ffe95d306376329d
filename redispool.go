package bff

import (
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/redisx"
)

// RedisConfig says how to reach Redis: one server, or the master of a Redis
// Sentinel group, which bff follows through failovers. NewPool turns it
// into the pool for Options.Redis.
type RedisConfig struct {
	// URL is the server: "host:port", or
	// redis://[[user]:password@]host[:port][/database] (port 6379 and
	// database 0 by default), or rediss://… for TLS. With a user and a
	// password bff authenticates as that ACL user (AUTH user password);
	// with only a password (redis://:password@host) as the default user
	// (requirepass). Percent-encode reserved characters in the password.
	//
	// With Sentinels, the sentinels tell the address: URL then gives only
	// the scheme, credentials and database for the master, and must have
	// no host, as in rediss://bff:secret@/0; it may be empty (no TLS, no
	// AUTH, database 0). Required without Sentinels.
	URL string

	// TLSConfig configures rediss:// connections. Default: the system's
	// root certificates, and the host dialed as the server name. With
	// Sentinels the host dialed is the address a sentinel announces,
	// usually an IP address: the master's certificate must name it, or
	// set ServerName here.
	TLSConfig *tls.Config

	// Sentinels are the "host:port" addresses of the Redis Sentinels that
	// monitor MasterName; at least three in production. bff asks them
	// where the master is whenever it opens a connection, and uses a
	// server only while it says it is a master. Default none: URL is the
	// server.
	Sentinels []string

	// MasterName is the name the sentinels monitor the master under
	// ("sentinel monitor <name> …"). Required with Sentinels.
	MasterName string

	// SentinelUsername and SentinelPassword authenticate bff to the
	// sentinels, when they require it (requirepass or an ACL user in
	// sentinel.conf). The sentinels are reached with TLS when URL is
	// rediss://. Default none.
	SentinelUsername, SentinelPassword string
}

// Timeouts of NewPool's connections: an outage fails fast, so requests
// answer 503 instead of hanging.
const (
	redisConnectTimeout = 500 * time.Millisecond // connect, and the TLS handshake
	redisIOTimeout      = 500 * time.Millisecond // each read and write
)

// NewPool returns a redigo pool for Options.Redis. Its connections give up
// after 500 ms to connect, 500 ms for the TLS handshake, and 500 ms for each
// read and write (a sentinel's, too), so that requests answer 503 instead of
// hanging while Redis is unreachable; at most 64 idle connections are kept,
// each for at most 4 minutes. NewPool dials nothing: it checks the
// configuration and returns a *ConfigError that names the field at fault.
//
// With Sentinels, every new connection goes to the master the sentinels
// name, checked with ROLE; idle connections to any other node are dropped,
// and so is a connection whose node answers as a replica (READONLY). While
// no master is known (between a primary's failure and its replacement),
// connections fail and bff answers 503. See README's "Redis that fails over".
func (c RedisConfig) NewPool() (*redis.Pool, error) {
	node, addr, err := c.parse()
	if err != nil {
		return nil, err
	}
	p := &redis.Pool{MaxIdle: 64, IdleTimeout: 4 * time.Minute}
	if len(c.Sentinels) == 0 {
		p.DialContext = func(ctx context.Context) (redis.Conn, error) { return node.dial(ctx, addr) }
		p.TestOnBorrow = func(c redis.Conn, idleSince time.Time) error {
			if time.Since(idleSince) < 30*time.Second {
				return nil
			}
			_, err := c.Do("PING")
			return err
		}
		return p, nil
	}
	sentinel := redisNode{user: c.SentinelUsername, password: c.SentinelPassword, tls: node.tls, tlsConfig: node.tlsConfig}
	s := redisx.NewSentinel(c.MasterName, c.Sentinels, sentinel.dial, node.dial)
	p.DialContext, p.TestOnBorrow = s.Dial, s.TestOnBorrow
	return p, nil
}

// NewRedisPool returns the pool of RedisConfig{URL: addr}.NewPool: addr is
// "host:port" or a redis:// or rediss:// URL with user, password and
// database. An addr that NewPool refuses gives a pool whose every
// connection fails with NewPool's error; use RedisConfig.NewPool to see the
// error at once.
func NewRedisPool(addr string) *redis.Pool {
	p, err := RedisConfig{URL: addr}.NewPool()
	if err != nil {
		return &redis.Pool{DialContext: func(context.Context) (redis.Conn, error) { return nil, err }}
	}
	return p
}

// redisNode is how bff connects to a Redis server: everything but the
// address.
type redisNode struct {
	user, password string
	db             int
	tls            bool
	tlsConfig      *tls.Config
}

func (n redisNode) dial(ctx context.Context, addr string) (redis.Conn, error) {
	return redis.DialContext(ctx, "tcp", addr,
		redis.DialConnectTimeout(redisConnectTimeout),
		redis.DialTLSHandshakeTimeout(redisConnectTimeout),
		redis.DialReadTimeout(redisIOTimeout),
		redis.DialWriteTimeout(redisIOTimeout),
		redis.DialUseTLS(n.tls),
		redis.DialTLSConfig(n.tlsConfig),
		redis.DialUsername(n.user),
		redis.DialPassword(n.password),
		redis.DialDatabase(n.db))
}

func redisErr(field, format string, args ...any) error {
	return fieldErr("RedisConfig."+field, format, args...)
}

// parse checks c and returns how to connect, and where (without Sentinels).
// Errors never repeat the URL: it may hold a password.
func (c RedisConfig) parse() (redisNode, string, error) {
	n := redisNode{tlsConfig: c.TLSConfig}
	if len(c.Sentinels) == 0 {
		switch {
		case c.MasterName != "":
			return n, "", redisErr("MasterName", "is set without Sentinels")
		case c.SentinelUsername != "" || c.SentinelPassword != "":
			return n, "", redisErr("SentinelPassword", "is set without Sentinels")
		case c.URL == "":
			return n, "", redisErr("URL", "is required (or Sentinels and MasterName)")
		case !strings.Contains(c.URL, "://"):
			if err := checkHostPort(c.URL); err != nil {
				return n, "", redisErr("URL", "is neither host:port nor a redis:// or rediss:// URL: %v", err)
			}
			return n, c.URL, nil
		}
	} else {
		if c.MasterName == "" {
			return n, "", redisErr("MasterName", "is required with Sentinels")
		}
		for i, a := range c.Sentinels {
			if err := checkHostPort(a); err != nil {
				return n, "", redisErr("Sentinels", "entry %d is not host:port: %v", i, err)
			}
		}
		if c.URL == "" {
			return n, "", nil
		}
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return n, "", redisErr("URL", "does not parse as a URL (check the percent-encoding of the password)")
	}
	return n.fromURL(u, len(c.Sentinels) > 0)
}

// fromURL reads scheme, credentials, database and (unless the sentinels
// tell it) the address from u.
func (n redisNode) fromURL(u *url.URL, sentinels bool) (redisNode, string, error) {
	switch u.Scheme {
	case "redis":
	case "rediss":
		n.tls = true
	default:
		return n, "", redisErr("URL", "must start with redis:// or rediss://")
	}
	if u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" {
		return n, "", redisErr("URL", "must be scheme://[user:password@]host[:port][/database], without query or fragment")
	}
	if u.User != nil {
		pw, ok := u.User.Password()
		if !ok || pw == "" {
			return n, "", redisErr("URL", "has a user but no password: write redis://user:password@host (an ACL user) or redis://:password@host")
		}
		n.user, n.password = u.User.Username(), pw
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		d, err := strconv.Atoi(db)
		if err != nil || d < 0 || strconv.Itoa(d) != db {
			return n, "", redisErr("URL", "names database %q: want a number such as /0", db)
		}
		n.db = d
	}
	if sentinels {
		if u.Host != "" {
			return n, "", redisErr("URL", "must have no host with Sentinels (the sentinels name the master): write it as rediss://user:password@/0")
		}
		return n, "", nil
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return n, "", redisErr("URL", "has no host")
	}
	if port == "" {
		port = "6379"
	}
	return n, net.JoinHostPort(host, port), nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" || port == "" {
		return &net.AddrError{Err: "want host:port", Addr: s}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return &net.AddrError{Err: "bad port", Addr: s}
	}
	return nil
}
