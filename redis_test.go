package bff

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// Tests of the Redis store (issue 4): several instances, one session space,
// everything sealed at rest, at most one round trip on the hot path, and a
// Redis outage answered with 503, never 401.

// redisApps starts n instances that share rs and the secret key, as behind
// a load balancer: all of them have the first instance's BaseURL, so a
// sign-in started on one completes on another. Each instance has its own
// server and pool; the test browser's cookies (host-only, 127.0.0.1) reach
// every one of them.
func redisApps(t testing.TB, op *oidctest.Provider, rs *redistest.Server, n int, opt func(*Options)) []*app {
	t.Helper()
	return sharedApps(t, op, n, rs.Pool, opt)
}

// sharedApps is redisApps on the Redis of pool, which gives each instance
// its own pool.
func sharedApps(t testing.TB, op *oidctest.Provider, n int, pool func() *redis.Pool, opt func(*Options)) []*app {
	t.Helper()
	var apps []*app
	for i := range n {
		apps = append(apps, newApp(t, op, func(o *Options) {
			o.Redis = pool()
			if i > 0 {
				o.BaseURL = apps[0].URL
			}
			if opt != nil {
				opt(o)
			}
		}))
	}
	return apps
}

// waitHealthy waits until the instance's invalidation bus is healthy, so
// that its session cache is in use.
func waitHealthy(t testing.TB, a *app) {
	t.Helper()
	testsupport.WaitUntil(t, 5*time.Second, "a healthy invalidation bus", func() bool { return a.bff.store.bus != nil && a.bff.store.bus.Healthy() })
}

// expect401Within polls path on a until it answers 401, and fails if a
// request started more than d after the call still answered 200 (a request
// in flight at the deadline may still answer 200). Any other status fails.
func expect401Within(t testing.TB, a *app, br *browser, path string, d time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		start := time.Now()
		code, body := a.status(br, "GET", path)
		switch {
		case code == http.StatusUnauthorized:
			return time.Since(t0)
		case code != http.StatusOK:
			t.Fatalf("GET %s = %d %s while waiting for 401", path, code, body)
		case start.Sub(t0) > d:
			t.Fatalf("GET %s still 200 %v after the session ended (want 401 within %v)", path, start.Sub(t0), d)
		}
		time.Sleep(time.Millisecond)
	}
}

func redisKey(id string) string { return "bff:" + recordName(id) }

// scanKeys lists every key with SCAN (never KEYS).
func scanKeys(t testing.TB, rs *redistest.Server) []string { return scan(t, rs.Do) }

// scan lists every key that do's connection sees, with SCAN.
func scan(t testing.TB, do func(string, ...any) (any, error)) []string {
	t.Helper()
	var keys []string
	for cursor := "0"; ; {
		v, err := redis.Values(do("SCAN", cursor, "COUNT", 1000))
		if err != nil {
			t.Fatalf("SCAN: %v", err)
		}
		cursor, _ = redis.String(v[0], nil)
		ks, _ := redis.Strings(v[1], nil)
		keys = append(keys, ks...)
		if cursor == "0" {
			return keys
		}
	}
}

// sessionKeys returns the session and index keys among keys.
func sessionKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, "bff:s:") || strings.HasPrefix(k, "bff:sub:") || strings.HasPrefix(k, "bff:sid:") {
			out = append(out, k)
		}
	}
	return out
}

// dataCommands sums the calls of every command except those of the test
// helper and of the invalidation bus's keep-alive (ping, subscribe).
func dataCommands(stats map[string]int) (total int, detail map[string]int) {
	detail = map[string]int{}
	for cmd, n := range stats {
		switch {
		case cmd == "ping" || cmd == "info" || cmd == "subscribe" || strings.HasPrefix(cmd, "config"):
			continue
		}
		total += n
		detail[cmd] = n
	}
	return total, detail
}

func assertNoKEYS(t testing.TB, rs *redistest.Server) {
	t.Helper()
	if n := rs.CommandStats()["keys"]; n != 0 {
		t.Errorf("KEYS was issued %d times", n)
	}
}

func TestRedisInstancesShareSessions(t *testing.T) {
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})
	apps := redisApps(t, op, rs, 2, nil)
	a, b := apps[0], apps[1]
	br := newBrowser(t)

	// A sign-in started on A completes on B (same BaseURL behind the
	// balancer), and A serves the session.
	cb := a.startLogin(br)
	resp := br.send("GET", strings.Replace(cb, a.URL, b.URL, 1))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback on B = %d", resp.StatusCode)
	}
	for _, in := range []*app{a, b} {
		if code, body := in.status(br, "GET", "/api/me"); code != 200 || !strings.Contains(body, oidctest.DefaultUser.Subject) {
			t.Fatalf("/api/me = %d %s", code, body)
		}
	}

	// Signed in on A, used on B; A has the session cached.
	br2 := a.signIn(t)
	waitHealthy(t, a)
	waitHealthy(t, b)
	for _, in := range []*app{a, b, a} {
		in.expect(t, br2, "/api/me", 200, "")
	}
	// Signing out on B ends the session on A within 100 ms.
	id, _ := a.sessionCookie(br2)
	resp = br2.send("POST", b.URL+"/auth/logout")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout on B = %d", resp.StatusCode)
	}
	br2.Jar.SetCookies(resp.Request.URL, []*http.Cookie{{Name: "__Host-bff", Value: id, Path: "/", Secure: true}})
	d := expect401Within(t, a, br2, "/api/me", 100*time.Millisecond)
	t.Logf("sign-out on B seen on A after %v", d)
	// The first browser is untouched.
	a.expect(t, br, "/api/me", 200, "other session")
	assertNoKEYS(t, rs)
}

func TestRedisInstanceRestartKeepsSessions(t *testing.T) {
	rs := redistest.Start(t)
	a := redisApps(t, testOP(t, oidctest.Config{}), rs, 1, nil)[0]
	br := a.signIn(t)
	a.bff.Close()
	a.srv.Close()

	// A new process on the same Redis and key serves the session.
	b := redisApps(t, a.op, rs, 1, nil)[0]
	if code, body := b.status(br, "GET", "/api/me"); code != 200 || !strings.Contains(body, oidctest.DefaultUser.Email) {
		t.Fatalf("after restart /api/me = %d %s", code, body)
	}
}

// A dump of every key and value reveals no token, claim, or session ID.
func TestRedisNothingInClearText(t *testing.T) {
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})
	var clk offsetClock
	apps := redisApps(t, op, rs, 2, func(o *Options) { o.Now = clk.Now })
	a := apps[0]
	br, id := a.signInID(t)
	before := mustSession(t, a, id)
	// A back-channel logout of an unrelated sid (a jti in the replay
	// cache), then a refresh (the rotated tokens are written too).
	a.expectBackchannel(t, op.LogoutToken("", "no-such-sid", nil), 200, "")
	clk.Advance(oidctest.DefaultAccessTokenTTL - 30*time.Second)
	apps[1].expect(t, br, "/api/me", 200, "after refresh")
	after := mustSession(t, a, id)
	if after.rec.AccessToken == before.rec.AccessToken {
		t.Fatal("no refresh happened")
	}

	u := oidctest.DefaultUser
	secrets := map[string]string{
		"cookie value": id, "email": u.Email, "name": u.Name, "sub": u.Subject, "username": u.Username,
		"sid": before.rec.SID,
	}
	for i, s := range []*session{before, after} {
		for name, tok := range map[string]string{"access": s.rec.AccessToken, "refresh": s.rec.RefreshToken, "id": s.rec.IDToken} {
			secrets[fmt.Sprintf("%s token %d", name, i)] = tok
			// Any JWT segment (the ID token's claims) would do as well.
			for j, part := range strings.Split(tok, ".") {
				if len(part) >= 16 {
					secrets[fmt.Sprintf("%s token %d part %d", name, i, j)] = part
				}
			}
		}
	}
	keys := scanKeys(t, rs)
	if len(sessionKeys(keys)) < 3 {
		t.Fatalf("expected session and index keys, got %q", keys)
	}
	for _, k := range keys {
		// Sessions and replay markers are strings; the sub and sid indexes
		// sorted sets of session keys scored by sign-in time.
		var v []byte
		var err error
		switch typ, _ := redis.String(rs.Do("TYPE", k)); typ {
		case "string":
			v, err = redis.Bytes(rs.Do("GET", k))
		case "zset":
			var members []string
			members, err = redis.Strings(rs.Do("ZRANGE", k, 0, -1, "WITHSCORES"))
			v = []byte(strings.Join(members, "\n"))
		default:
			t.Errorf("key %q has type %s", k, typ)
			continue
		}
		if err != nil {
			t.Fatalf("reading %q: %v", k, err)
		}
		for what, s := range secrets {
			if s == "" {
				t.Fatalf("%s is empty", what)
			}
			if strings.Contains(k, s) || bytes.Contains(v, []byte(s)) {
				t.Errorf("%s found in clear text in key %q", what, k)
			}
		}
		if pttl, _ := redis.Int64(rs.Do("PTTL", k)); pttl <= 0 {
			t.Errorf("key %q has no expiry (PTTL %d)", k, pttl)
		}
	}
	assertNoKEYS(t, rs)
}

// Redis stopped mid-traffic: RequireSession and /auth/session answer 503
// with Retry-After at once, never 401 (the browser app would think the
// user signed out) and never 500; after a restart the instance recovers.
func TestRedisStoppedAnswers503(t *testing.T) {
	rs := redistest.Start(t)
	a := redisApps(t, testOP(t, oidctest.Config{}), rs, 1, nil)[0]
	br := a.signIn(t)

	rs.Stop()
	// The cache may serve for the bus's healthy window (80 ms); from then
	// on every request reaches the store.
	testsupport.WaitUntil(t, 5*time.Second, "the bus to notice Redis stopped", func() bool { return !a.bff.store.bus.Healthy() })
	var worst time.Duration
	for i := range 20 {
		path := []string{"/api/me", "/auth/session"}[i%2]
		start := time.Now()
		resp := br.send("GET", a.URL+path)
		worst = max(worst, time.Since(start))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s with Redis down = %d (Retry-After %q), want 503 with Retry-After",
				path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	t.Logf("slowest response with Redis stopped: %v", worst)
	// Nor does a sign-out pretend to have ended the session.
	resp := br.send("POST", a.URL+"/auth/logout")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("logout with Redis down = %d, want 503", resp.StatusCode)
	}
	if _, ok := a.sessionCookie(br); !ok {
		t.Fatal("the session cookie was cleared during the outage")
	}

	// redistest restarts with an empty data set, so the session is gone:
	// recovery means answering (401, not 503) and signing in again.
	rs.Restart()
	waitStatus(t, a, br, "/api/me", http.StatusUnauthorized)
	a.login(br)
	a.expect(t, br, "/api/me", 200, "after re-login")
}

// Redis unreachable (paused) but not emptied: 503 during, and the sessions
// written before are intact after.
func TestRedisPausedSessionsIntact(t *testing.T) {
	rs := redistest.Start(t)
	a := redisApps(t, testOP(t, oidctest.Config{}), rs, 1, nil)[0]
	br := a.signIn(t)
	waitHealthy(t, a)

	if _, err := rs.Do("CLIENT", "PAUSE", 1500, "ALL"); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	pausedAt := time.Now()
	testsupport.WaitUntil(t, 5*time.Second, "the bus to notice Redis paused", func() bool { return !a.bff.store.bus.Healthy() })
	seen503 := false
	var worst time.Duration
	for time.Since(pausedAt) < 1200*time.Millisecond {
		for _, path := range []string{"/api/me", "/auth/session"} {
			start := time.Now()
			resp := br.send("GET", a.URL+path)
			worst = max(worst, time.Since(start))
			switch {
			case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
				seen503 = true
			case resp.StatusCode == http.StatusOK && time.Since(pausedAt) >= 1500*time.Millisecond:
				// Redis answered this request when the pause ended.
			default:
				t.Fatalf("%s with Redis paused = %d, want 503 with Retry-After", path, resp.StatusCode)
			}
		}
	}
	t.Logf("slowest response with Redis paused: %v", worst)
	if !seen503 {
		t.Fatal("no 503 seen while Redis was paused")
	}
	// After the pause: the same session, without signing in again.
	waitStatus(t, a, br, "/api/me", http.StatusOK)
	a.expect(t, br, "/auth/session", 200, "after the pause")
}

// A stored value that does not open is no session (401), never a 500.
func TestRedisCorruptedValue(t *testing.T) {
	rs := redistest.Start(t)
	a := redisApps(t, testOP(t, oidctest.Config{}), rs, 1, nil)[0]
	other, otherID := a.signInID(t)
	otherSealed, err := redis.Bytes(rs.Do("GET", redisKey(otherID)))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		corrupt func(v []byte) []byte
	}{
		{"garbage", func([]byte) []byte { return []byte("garbage") }},
		{"empty", func([]byte) []byte { return nil }},
		{"bit flipped", func(v []byte) []byte { v = bytes.Clone(v); v[len(v)/2] ^= 1; return v }},
		{"truncated", func(v []byte) []byte { return v[:len(v)-1] }},
		{"another session's record (swap)", func([]byte) []byte { return otherSealed }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			br, id := a.signInID(t)
			v, err := redis.Bytes(rs.Do("GET", redisKey(id)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rs.Do("SET", redisKey(id), tc.corrupt(v), "KEEPTTL"); err != nil {
				t.Fatal(err)
			}
			// A fresh instance (nothing cached) reads the record.
			b := redisApps(t, a.op, rs, 1, func(o *Options) { o.DisableSessionCache = true })[0]
			for _, path := range []string{"/auth/session", "/api/me"} {
				b.expect(t, br, path, http.StatusUnauthorized, "")
			}
			// The swapped-in record did not sign this browser in as the
			// other user, nor end the other session.
			b.expect(t, other, "/api/me", 200, "other session")
		})
	}
}

// Key rotation: sessions sealed with K1 open with SecretKeys {K2, K1};
// with {K2} alone they are no session (401), not an error.
func TestRedisKeyRotation(t *testing.T) {
	k1 := testKey
	k2 := []byte("fedcba9876543210fedcba9876543210")
	rs := redistest.Start(t)
	old := redisApps(t, testOP(t, oidctest.Config{}), rs, 1, nil)[0]
	br := old.signIn(t)
	br2 := newBrowser(t)
	old.login(br2)

	rotated := redisApps(t, old.op, rs, 1, func(o *Options) { o.SecretKeys = [][]byte{k2, k1} })[0]
	if code, body := rotated.status(br, "GET", "/api/me"); code != 200 || !strings.Contains(body, oidctest.DefaultUser.Email) {
		t.Fatalf("K1 session with {K2, K1} = %d %s", code, body)
	}
	// The index written under K1 is found too: signing out everywhere
	// ends both sessions.
	if n, err := rotated.bff.RevokeSessions(context.Background(), oidctest.DefaultUser.Subject); err != nil || n != 2 {
		t.Fatalf("RevokeSessions = %d, %v; want 2", n, err)
	}
	rotated.expect(t, br2, "/api/me", 401, "after RevokeSessions")
	// Ending them cleaned up the index records written under K1, too.
	if ks := sessionKeys(scanKeys(t, rs)); len(ks) != 0 {
		t.Fatalf("keys after RevokeSessions = %q; want none", ks)
	}

	// A new session is sealed with K2: readable by {K2, K1}, not by {K1}.
	br3 := rotated.signIn(t)
	onlyK1 := redisApps(t, old.op, rs, 1, func(o *Options) { o.DisableSessionCache = true })[0]
	if code, _ := onlyK1.status(newBrowserWith(t, br3, rotated), "GET", "/api/me"); code != 401 {
		t.Fatalf("K2 session with {K1} = %d, want 401", code)
	}
	rotated.expect(t, br3, "/api/me", 200, "K2 session with {K2, K1}")
}

// A revocation reaches every instance even when the context of the call
// that made it is cancelled (the admin's or the browser's request went away
// after the record was deleted).
func TestRedisRevocationPublishedDespiteCancelledContext(t *testing.T) {
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})
	apps := redisApps(t, op, rs, 2, nil)
	a, b := apps[0], apps[1]
	br := a.signIn(t)
	waitHealthy(t, b)
	for range 2 { // now cached on B
		b.expect(t, br, "/api/me", 200, "on B")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := a.bff.RevokeSessions(ctx, oidctest.DefaultUser.Subject); err != nil || n != 1 {
		t.Fatalf("RevokeSessions = %d, %v", n, err)
	}
	expect401Within(t, b, br, "/api/me", 100*time.Millisecond)
}

// newBrowserWith returns a new browser holding only br's session cookie for a.
func newBrowserWith(t testing.TB, br *browser, a *app) *browser {
	id, ok := a.sessionCookie(br)
	if !ok {
		t.Fatal("no session cookie")
	}
	return browserWithCookie(t, a, id)
}

// browserWithCookie returns a new browser holding the session cookie id for a.
func browserWithCookie(t testing.TB, a *app, id string) *browser {
	nb := newBrowser(t)
	u := a.srv.URL
	req, _ := http.NewRequest("GET", u, nil)
	nb.Jar.SetCookies(req.URL, []*http.Cookie{{Name: a.bff.cfg.CookieName, Value: id, Path: "/", Secure: true}})
	return nb
}

// Redis commands per authenticated request with a fresh token: none with
// the session cache, at most one read and no write without it.
func TestRedisCommandsPerRequest(t *testing.T) {
	const n = 20
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})

	t.Run("DisableSessionCache", func(t *testing.T) {
		a := redisApps(t, op, rs, 1, func(o *Options) { o.DisableSessionCache = true })[0]
		br := a.signIn(t)
		rs.ResetStats()
		for range n {
			a.expect(t, br, "/api/me", 200, "")
		}
		total, detail := dataCommands(rs.CommandStats())
		t.Logf("%d requests without the cache: %v (%.2f commands per request)", n, detail, float64(total)/n)
		if detail["get"] > n || total != detail["get"] {
			t.Fatalf("commands for %d requests = %v; want at most one GET each and nothing else", n, detail)
		}
	})

	t.Run("cache", func(t *testing.T) {
		a := redisApps(t, op, rs, 1, nil)[0]
		br := a.signIn(t)
		waitHealthy(t, a)
		a.status(br, "GET", "/api/me") // fills the cache
		// The cache is trusted only while the bus is healthy (a pong
		// within 80 ms); a loaded machine may miss that now and then, so
		// allow a few attempts, each of which must be entirely free.
		var detail map[string]int
		for try := range 5 {
			waitHealthy(t, a)
			rs.ResetStats()
			for range n {
				a.expect(t, br, "/api/me", 200, "")
			}
			var total int
			total, detail = dataCommands(rs.CommandStats())
			t.Logf("attempt %d: %d requests with the cache: %v", try, n, detail)
			if total == 0 {
				return
			}
		}
		t.Fatalf("commands for %d cached requests = %v; want none", n, detail)
	})
	assertNoKEYS(t, rs)
}

// The index of ended and expired sessions is cleaned up: ended sessions
// leave no key, index keys expire with their sessions, and expired
// sessions are not listed.
func TestRedisIndexExpires(t *testing.T) {
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})
	ctx := context.Background()
	sub := oidctest.DefaultUser.Subject

	t.Run("logout removes the index", func(t *testing.T) {
		a := redisApps(t, op, rs, 1, nil)[0]
		br := a.signIn(t)
		if ks := sessionKeys(scanKeys(t, rs)); len(ks) != 3 {
			t.Fatalf("keys after sign-in = %q; want session, sub and sid", ks)
		}
		br.send("POST", a.URL+"/auth/logout")
		if ks := sessionKeys(scanKeys(t, rs)); len(ks) != 0 {
			t.Fatalf("keys after sign-out = %q; want none", ks)
		}
	})

	t.Run("Now past expiry", func(t *testing.T) {
		var clk offsetClock
		a := redisApps(t, op, rs, 1, func(o *Options) {
			o.Now = clk.Now
			o.MaxLifetime = time.Hour
			o.IdleTimeout = time.Hour
		})[0]
		br := a.signIn(t)
		if got, err := a.bff.Sessions(ctx, sub); err != nil || len(got) != 1 {
			t.Fatalf("Sessions = %v, %v; want one", got, err)
		}
		for _, k := range sessionKeys(scanKeys(t, rs)) {
			pttl, _ := redis.Int64(rs.Do("PTTL", k))
			if pttl <= 0 || pttl > time.Hour.Milliseconds() {
				t.Errorf("key %q PTTL = %d ms; want within the session's lifetime (1 h)", k, pttl)
			}
		}
		clk.Advance(time.Hour + time.Second)
		if got, err := a.bff.Sessions(ctx, sub); err != nil || len(got) != 0 {
			t.Fatalf("Sessions after expiry = %v, %v; want none", got, err)
		}
		if keys, err := a.bff.store.members(ctx, "sub", sub); err != nil || len(keys) != 0 {
			t.Fatalf("index after expiry = %q, %v; want none", keys, err)
		}
		a.expect(t, br, "/api/me", 401, "expired")
	})

	t.Run("keys vanish", func(t *testing.T) {
		for _, k := range sessionKeys(scanKeys(t, rs)) {
			rs.Do("DEL", k)
		}
		a := redisApps(t, op, rs, 1, func(o *Options) { o.MaxLifetime = 300 * time.Millisecond })[0]
		br := newBrowser(t)
		resp, _ := br.follow(a.URL + "/auth/login")
		if resp.StatusCode != 200 {
			t.Fatalf("login = %d", resp.StatusCode)
		}
		testsupport.WaitUntil(t, 5*time.Second, "the keys of a 300 ms session to expire", func() bool { return len(sessionKeys(scanKeys(t, rs))) == 0 })
		if got, err := a.bff.Sessions(ctx, sub); err != nil || len(got) != 0 {
			t.Fatalf("Sessions = %v, %v; want none", got, err)
		}
	})
	assertNoKEYS(t, rs)
}

// jsonBody decodes a JSON object.
func jsonBody(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %q", s)
	}
	return m
}

// A session of the test provider (a JWT ID token with acr and amr, opaque
// access and refresh tokens, a usual profile, the acr, amr and auth_time
// that step-up checks) takes at most 1.75 KiB in Redis: its record and its
// entries in the sub and sid indexes (MEMORY USAGE, which counts the
// allocator's rounding). The record does not repeat the claims it holds as
// fields (sub, sid, name, email).
func TestRedisBytesPerSession(t *testing.T) {
	rs := redistest.Start(t)
	a := redisApps(t, testOP(t, oidctest.Config{}), rs, 1, nil)[0]
	a.login(newBrowser(t))
	total := 0
	for _, k := range scanKeys(t, rs) {
		if strings.HasPrefix(k, "bff:state:") {
			continue // the sign-in's replay marker, gone after LoginTimeout
		}
		n, err := redis.Int(rs.Do("MEMORY", "USAGE", k))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes", k, n)
		total += n
	}
	if total > 1536 {
		t.Fatalf("a session takes %d bytes in Redis, want at most 1.5 KiB", total)
	}
}
