package bff

import (
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
)

// Tests of RedisConfig (issue 17): URLs with TLS, ACL users and a database,
// and Sentinel; the failover itself is in failover_test.go.

func TestRedisConfigRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   RedisConfig
		field string
	}{
		{"nothing", RedisConfig{}, "RedisConfig.URL"},
		{"not host:port", RedisConfig{URL: "localhost"}, "RedisConfig.URL"},
		{"other scheme", RedisConfig{URL: "http://localhost:6379"}, "RedisConfig.URL"},
		{"user without password", RedisConfig{URL: "redis://bff@localhost:6379"}, "RedisConfig.URL"},
		{"database not a number", RedisConfig{URL: "redis://localhost/x"}, "RedisConfig.URL"},
		{"database with a sign", RedisConfig{URL: "redis://localhost/+1"}, "RedisConfig.URL"},
		{"query", RedisConfig{URL: "redis://localhost:6379/0?timeout=1s"}, "RedisConfig.URL"},
		{"bad percent-encoding", RedisConfig{URL: "redis://:p%zz@localhost"}, "RedisConfig.URL"},
		{"no host", RedisConfig{URL: "redis://:pw@/0"}, "RedisConfig.URL"},
		{"master without sentinels", RedisConfig{URL: "localhost:6379", MasterName: "m"}, "RedisConfig.MasterName"},
		{"sentinel password without sentinels", RedisConfig{URL: "localhost:6379", SentinelPassword: "x"}, "RedisConfig.SentinelPassword"},
		{"sentinels without master", RedisConfig{Sentinels: []string{"localhost:26379"}}, "RedisConfig.MasterName"},
		{"sentinel not host:port", RedisConfig{Sentinels: []string{"localhost"}, MasterName: "m"}, "RedisConfig.Sentinels"},
		{"sentinel port not a number", RedisConfig{Sentinels: []string{"localhost:x"}, MasterName: "m"}, "RedisConfig.Sentinels"},
		{"host with sentinels", RedisConfig{URL: "redis://:pw@localhost:6379", Sentinels: []string{"localhost:26379"}, MasterName: "m"}, "RedisConfig.URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.cfg.NewPool()
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || p != nil {
				t.Fatalf("NewPool = %v, %v; want a *ConfigError for %s", p, err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), "bff: "+tc.field+" ") {
				t.Errorf("error %q does not start with the field", err)
			}
			if strings.Contains(err.Error(), ":pw@") || strings.Contains(err.Error(), "p%zz") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
	// NewRedisPool keeps its signature: a bad address fails at use.
	c := NewRedisPool("http://localhost").Get()
	defer c.Close()
	if _, err := c.Do("PING"); err == nil || !strings.Contains(err.Error(), "RedisConfig.URL") {
		t.Fatalf("NewRedisPool of a bad URL: PING = %v", err)
	}
}

func TestRedisConfigAccepts(t *testing.T) {
	for _, cfg := range []RedisConfig{
		{URL: "localhost:6379"},
		{URL: "[::1]:6379"},
		{URL: "redis://localhost"},
		{URL: "rediss://bff:p%40ss@redis.example:6380/15"},
		{URL: "redis://:secret@localhost/"},
		{Sentinels: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, MasterName: "mymaster"},
		{URL: "rediss://bff:secret@/2", Sentinels: []string{"s:26379"}, MasterName: "m", SentinelPassword: "x"},
	} {
		p, err := cfg.NewPool()
		if err != nil || p == nil || p.DialContext == nil || p.TestOnBorrow == nil {
			t.Errorf("NewPool(%+v) = %v, %v", cfg, p, err)
			continue
		}
		p.Close()
	}
}

// An ACL user with the permissions README gives (everything under bff:*,
// nothing dangerous but ROLE), in a database of the URL: the whole flow
// works; a wrong password is a 503 that logs no password, never a 401.
func TestRedisConfigACLUser(t *testing.T) {
	rs := redistest.StartWith(t, redistest.Config{Args: []string{
		"--user", "bff", "on", ">s3cret-pw", "~bff:*", "&bff:*", "+@all", "-@dangerous", "+role",
		// The default user may only what the test harness needs.
		"--user", "default", "on", "nopass", "-@all", "+ping", "+info", "+config|resetstat",
	}})
	op := testOP(t, oidctest.Config{})
	pool, err := RedisConfig{URL: "redis://bff:s3cret-pw@" + rs.Addr + "/3"}.NewPool()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	a := newApp(t, op, func(o *Options) { o.Redis = pool })
	br := a.signIn(t)
	waitHealthy(t, a) // SUBSCRIBE and PING under the ACL
	a.expect(t, br, "/api/me", 200, "")
	id, _ := a.sessionCookie(br)
	admin, err := redis.Dial("tcp", rs.Addr, redis.DialUsername("bff"), redis.DialPassword("s3cret-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for db, want := range map[int]int{0: 0, 3: 1} {
		admin.Do("SELECT", db)
		if n, err := redis.Int(admin.Do("EXISTS", redisKey(id))); err != nil || n != want {
			t.Fatalf("session in database %d: EXISTS = %d, %v; want %d", db, n, err, want)
		}
	}

	var logs logBuffer
	wrong, err := RedisConfig{URL: "redis://bff:wrong-pw@" + rs.Addr + "/3"}.NewPool()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wrong.Close() })
	b := newApp(t, op, func(o *Options) { o.Redis = wrong; o.Logger = logs.Logger() })
	b.expect(t, br, "/api/me", http.StatusServiceUnavailable, "with a wrong Redis password")
	if l := logs.String(); !strings.Contains(l, "WRONGPASS") || strings.Contains(l, "wrong-pw") || strings.Contains(l, "s3cret-pw") {
		t.Fatalf("log of a refused AUTH: %s", l)
	}

	resp := br.send("POST", a.URL+"/auth/logout")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d", resp.StatusCode)
	}
	if ks := scanKeysDB(t, admin, 3); len(sessionKeys(ks)) != 0 {
		t.Fatalf("keys after logout: %q", ks)
	}
}

// scanKeysDB lists the keys of database db on conn.
func scanKeysDB(t *testing.T, conn redis.Conn, db int) []string {
	t.Helper()
	if _, err := conn.Do("SELECT", db); err != nil {
		t.Fatal(err)
	}
	return scan(t, conn.Do)
}

// rediss:// verifies the server's certificate: against TLSConfig's roots
// (here a CA made by the test), by default the system's; the whole flow,
// invalidation bus included, runs over TLS.
func TestRedisConfigTLS(t *testing.T) {
	ca := redistest.NewTLS(t, "127.0.0.1")
	rs := redistest.StartWith(t, redistest.Config{TLS: ca})
	op := testOP(t, oidctest.Config{})
	pool, err := RedisConfig{URL: "rediss://" + rs.TLSAddr, TLSConfig: &tls.Config{RootCAs: ca.Roots}}.NewPool()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	apps := redisApps(t, op, rs, 2, func(o *Options) { o.Redis = pool })
	br := newBrowser(t)
	apps[0].login(br)
	waitHealthy(t, apps[1])
	apps[1].expect(t, br, "/api/me", 200, "over TLS")
	id, _ := apps[0].sessionCookie(br)
	if n, err := redis.Int(rs.Do("EXISTS", redisKey(id))); err != nil || n != 1 {
		t.Fatalf("the session is not in this Redis: %d, %v", n, err)
	}

	for _, tc := range []struct {
		name, url string
		tls       *tls.Config
		want      string
	}{
		{"system roots", "rediss://" + rs.TLSAddr, nil, "certificate signed by unknown authority"},
		{"other server name", "rediss://" + rs.TLSAddr, &tls.Config{RootCAs: ca.Roots, ServerName: "redis.example"}, "wanted to match redis.example"},
		{"plain to the TLS port", "redis://" + rs.TLSAddr, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := RedisConfig{URL: tc.url, TLSConfig: tc.tls}.NewPool()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			c := p.Get()
			defer c.Close()
			_, err = c.Do("PING")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("PING = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
