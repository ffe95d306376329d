package bff

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/goleak"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/storage"
	"github.com/gobff/bff/internal/testsupport"
)

// Bounded resources: what an unauthenticated flood can make bff keep, what
// the refresh coordination, the replay cache and the session index keep
// after use, and a goroutine-leak check of the whole test suite.

// TestMain fails the package's tests if any goroutine is left running after
// all of them (every BFF is closed by its test's cleanup, and Close must stop
// everything it started).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of http.DefaultTransport (shared by the
		// test clients, the test provider and BFFs without an
		// Options.HTTPClient) close in the background after their server.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// Close stops everything New started, with the memory store and with
// Redis (the invalidation bus), also while discovery is still retrying.
func TestLeakCloseStopsEverything(t *testing.T) {
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})
	ignore := goleak.IgnoreCurrent()
	for _, tc := range []struct {
		name string
		opt  func(*Options)
	}{
		{"memory", nil},
		{"redis", func(o *Options) { o.Redis = NewRedisPool(rs.Addr) }},
		{"discovery_failing", func(o *Options) { o.Issuer = "http://127.0.0.1:1" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Issuer: op.Issuer(), ClientID: op.ClientID(), ClientSecret: op.ClientSecret(),
				BaseURL: "http://127.0.0.1:1", SecretKeys: [][]byte{testKey}}
			o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			if tc.opt != nil {
				tc.opt(&o)
			}
			b, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name != "discovery_failing" {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := b.Ready(ctx); err != nil {
					t.Fatal(err)
				}
				if b.store.bus != nil {
					testsupport.WaitUntil(t, 5*time.Second, "the bus", b.store.bus.Healthy)
				}
			} else {
				time.Sleep(50 * time.Millisecond) // a first attempt has failed
			}
			b.Close()
			if o.Redis != nil {
				o.Redis.Close()
			}
			goleak.VerifyNone(t, ignore,
				goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
				goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
				goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
			)
		})
	}
}

// cacheLen returns the number of decoded sessions cached.
func cacheLen(b *BFF) int {
	if b.store.cache == nil {
		return 0
	}
	b.store.cache.keysMu.Lock()
	defer b.store.cache.keysMu.Unlock()
	return b.store.cache.len() + len(b.store.cache.keys)
}

func heapInuse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// /auth/login hit 100,000 times (in-process) keeps nothing on the server:
// the sign-in transaction lives in the browser's cookie. The store, the
// session cache and the lock table are unchanged, the provider is not
// contacted, and the heap does not grow.
func TestBoundedLoginFlood(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	ms := a.mem()
	storeBefore, opBefore := ms.Len(), a.op.DiscoveryFetches()+a.op.JWKSFetches()+a.op.CodeGrants()
	heapBefore := heapInuse()

	const total = 100_000
	workers := runtime.GOMAXPROCS(0)
	var next, bad atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= total {
				resp := a.serveLogin("returnTo=%2Fapp", nil)
				if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), a.op.Issuer()) {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	heapAfter := heapInuse()
	t.Logf("%d logins in %v; heap in use %d KiB before, %d KiB after", total, time.Since(start), heapBefore>>10, heapAfter>>10)
	if bad.Load() != 0 {
		t.Fatalf("%d logins did not redirect to the provider", bad.Load())
	}
	if ms.Len() != storeBefore {
		t.Errorf("store records: %d before, %d after", storeBefore, ms.Len())
	}
	if n := cacheLen(a.bff); n != 0 {
		t.Errorf("session cache holds %d entries", n)
	}
	if n := a.op.DiscoveryFetches() + a.op.JWKSFetches() + a.op.CodeGrants(); n != opBefore {
		t.Errorf("the provider was contacted %d times", n-opBefore)
	}
	if heapAfter > heapBefore+16<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB", heapBefore>>10, heapAfter>>10)
	}

	// A browser that starts sign-in after sign-in carries a bounded number
	// of transaction cookies.
	br := newBrowser(t)
	for range 20 {
		br.send("GET", a.URL+"/auth/login?returnTo=/app")
	}
	u, _ := url.Parse(a.URL)
	n := 0
	for _, c := range br.Jar.Cookies(u) {
		if strings.HasPrefix(c.Name, a.bff.txPrefix()) {
			n++
		}
	}
	if n > maxTxCookies {
		t.Errorf("the browser carries %d transaction cookies, want at most %d", n, maxTxCookies)
	}
}

// Twenty sign-ins started in parallel by one browser (each request carries
// the cookies the browser had before any of them answered) leave at most
// maxTxCookies transaction cookies, whatever their order: the cookie names
// are a fixed set of slots.
func TestBoundedLoginCookiesParallel(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	for _, before := range []http.Header{nil, {"Cookie": {a.bff.txPrefix() + "planted=x"}}} {
		names := map[string]bool{}
		for range 20 {
			resp := a.serveLogin("returnTo=%2Fapp", before)
			if len(resp.Cookies()) == 0 {
				t.Fatalf("/login = %d set no cookie", resp.StatusCode)
			}
			for _, c := range resp.Cookies() {
				if strings.HasPrefix(c.Name, a.bff.txPrefix()) && c.MaxAge > 0 {
					names[c.Name] = true
				}
			}
		}
		if len(names) > maxTxCookies {
			t.Errorf("20 parallel sign-ins set %d transaction cookie names, want at most %d", len(names), maxTxCookies)
		}
	}
}

// lockCount returns the number of locks held in the in-process Locker.
func lockCount(b *BFF) int {
	l, ok := b.store.locker.(*storage.MemLocker)
	if !ok {
		return 0
	}
	return l.Held()
}

// Bursts of concurrent requests that all need a refresh share one grant per
// session; afterwards, also when clients gave up mid-refresh, the lock
// table is empty (a refresh holds its session's lock throughout; that the
// flight group keeps only running calls is internal/flight's test).
func TestBoundedRefreshFlights(t *testing.T) {
	clock := &offsetClock{}
	a := newApp(t, testOP(t, oidctest.Config{Now: clock.Now}), func(o *Options) { o.Now = clock.Now })
	const sessions, burst = 8, 8
	browsers := make([]*browser, sessions)
	for i := range browsers {
		browsers[i] = a.signIn(t)
	}
	runBurst := func(timeout time.Duration) (ok, failed int64) {
		var wg sync.WaitGroup
		var okN, failN atomic.Int64
		for _, br := range browsers {
			for range burst {
				wg.Go(func() {
					c := *br.Client
					c.Timeout = timeout
					resp, err := c.Get(a.URL + "/api/me")
					if err != nil {
						failN.Add(1)
						return
					}
					resp.Body.Close()
					if resp.StatusCode == 200 {
						okN.Add(1)
					} else {
						failN.Add(1)
					}
				})
			}
		}
		wg.Wait()
		return okN.Load(), failN.Load()
	}

	grants := a.op.RefreshGrants()
	clock.Advance(oidctest.DefaultAccessTokenTTL)
	if ok, failed := runBurst(10 * time.Second); failed != 0 || ok != sessions*burst {
		t.Fatalf("burst: %d ok, %d failed", ok, failed)
	}
	if got := a.op.RefreshGrants() - grants; got != sessions {
		t.Errorf("%d refresh grants for %d sessions", got, sessions)
	}
	if n := lockCount(a.bff); n != 0 {
		t.Errorf("%d locks held after the burst", n)
	}

	// Clients give up while the provider is slow: the refreshes finish on
	// their own, and leave nothing behind.
	a.op.Misbehave(func(m *oidctest.Misbehavior) { m.TokenDelay = 200 * time.Millisecond })
	clock.Advance(oidctest.DefaultAccessTokenTTL)
	runBurst(50 * time.Millisecond)
	testsupport.WaitUntil(t, 5*time.Second, "the locks to be released", func() bool { return lockCount(a.bff) == 0 })
	a.op.Reset()
	for i, br := range browsers {
		if code, _ := a.status(br, "GET", "/api/me"); code != 200 {
			t.Errorf("session %d after the abandoned refreshes: %d", i, code)
		}
	}
	if a.op.FamilyRevoked(oidctest.DefaultUser.Subject) {
		t.Error("a token family was revoked")
	}
}

// The replay cache (used states, used logout-token jti) holds each marker
// for a bounded time: the login timeout for a state, the logout token's
// remaining lifetime plus a minute for a jti; in memory and in Redis.
func TestBoundedReplayCacheExpires(t *testing.T) {
	check := func(t *testing.T, a *app, op *oidctest.Provider, ttl func(name string) time.Duration) {
		br := newBrowser(t)
		cb := a.startLogin(br)
		cbURL, _ := url.Parse(cb)
		state := cbURL.Query().Get("state")
		resp := br.send("GET", cb)
		if d := ttl(a.bff.sealer.Name("state", state)); d <= 0 || d > a.bff.cfg.LoginTimeout {
			t.Errorf("state marker lives %v, want (0, %v]", d, a.bff.cfg.LoginTimeout)
		}
		id, _ := a.sessionCookie(br)
		s, _ := a.storeSession(id)
		lt := op.LogoutToken(s.rec.Subject, s.rec.SID, func(c map[string]any) { c["jti"] = "jti-1" })
		resp = br.do("POST", a.URL+"/auth/backchannel-logout", strings.NewReader("logout_token="+lt),
			"Content-Type", "application/x-www-form-urlencoded")
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("backchannel logout = %d", resp.StatusCode)
		}
		if d := ttl(a.bff.sealer.Name("jti", op.Issuer()+"\x00jti-1")); d <= 0 || d > 3*time.Minute+time.Second {
			t.Errorf("jti marker lives %v, want (0, 3m]", d)
		}
	}
	t.Run("memory", func(t *testing.T) {
		op := testOP(t, oidctest.Config{})
		st := newSpyStore(t)
		a := newApp(t, op, func(o *Options) { o.Store = st })
		check(t, a, op, func(name string) time.Duration {
			if e, ok := st.expiries(name)[name]; ok {
				return time.Until(e)
			}
			return 0
		})
	})
	t.Run("redis", func(t *testing.T) {
		rs := redistest.Start(t)
		a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.Redis = rs.Pool() })
		check(t, a, a.op, func(name string) time.Duration {
			ms, err := redis.Int64(rs.Do("PTTL", "bff:"+name))
			if err != nil || ms < 0 {
				return 0
			}
			return time.Duration(ms) * time.Millisecond
		})
	})
}

// The session index is cleaned: every way a session ends (logout,
// back-channel logout, RevokeSessions, expiry) removes its entries, and
// the index records of a user without sessions are deleted.
func TestBoundedSessionIndexCleaned(t *testing.T) {
	clock := &offsetClock{}
	a := newApp(t, testOP(t, oidctest.Config{Now: clock.Now}), func(o *Options) { o.Now = clock.Now })
	ctx := context.Background()
	sub := oidctest.DefaultUser.Subject
	subIndex := a.bff.sealer.Name("sub", sub)
	// Every member the backend holds, stale ones included.
	present := func(name string) bool {
		m, err := a.mem().IndexMembers(ctx, name, math.MinInt64)
		if err != nil {
			t.Fatal(err)
		}
		return len(m) > 0
	}
	entries := func() int {
		m, _ := a.mem().IndexMembers(ctx, subIndex, math.MinInt64)
		return len(m)
	}
	var sids []string
	var browsers []*browser
	for range 4 {
		br, id := a.signInID(t)
		s, _ := a.storeSession(id)
		sids = append(sids, s.rec.SID)
		browsers = append(browsers, br)
	}
	if n := entries(); n != 4 {
		t.Fatalf("index holds %d sessions, want 4", n)
	}

	resp := browsers[0].do("POST", a.URL+"/auth/logout", nil)
	resp.Body.Close()
	if n := entries(); n != 3 || present(a.bff.sealer.Name("sid", sids[0])) {
		t.Fatalf("after a logout: %d entries, sid record present %v", n, present(a.bff.sealer.Name("sid", sids[0])))
	}
	lt := a.op.LogoutToken("", sids[1], nil)
	resp = browsers[1].do("POST", a.URL+"/auth/backchannel-logout", strings.NewReader("logout_token="+lt),
		"Content-Type", "application/x-www-form-urlencoded")
	resp.Body.Close()
	if n := entries(); n != 2 || present(a.bff.sealer.Name("sid", sids[1])) {
		t.Fatalf("after a back-channel logout: %d entries", n)
	}
	if n, err := a.bff.RevokeSessions(ctx, sub); err != nil || n != 2 {
		t.Fatalf("RevokeSessions = %d, %v", n, err)
	}
	if present(subIndex) || present(a.bff.sealer.Name("sid", sids[2])) || present(a.bff.sealer.Name("sid", sids[3])) {
		t.Fatal("index records remain for a user without sessions")
	}

	// Sessions that simply expire: their entries are pruned at the next
	// sign-in of the user, once past the longest the sessions could have
	// lived (MaxLifetime after sign-in: a refresh may move a session's end,
	// never past that).
	for _, br := range browsers[:3] {
		a.login(br)
	}
	clock.Advance(a.bff.cfg.MaxLifetime + time.Minute)
	a.login(browsers[3])
	if n := entries(); n != 1 {
		t.Fatalf("after expiry and a new sign-in the index holds %d sessions, want 1", n)
	}
}
