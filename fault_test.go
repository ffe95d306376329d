package bff

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// Fault tests: the provider unreachable, slow, or answering garbage; its
// keys rotated mid-traffic; Redis slow or paused in the middle of a
// refresh; host-app hooks that panic. In every case bad input gets a clear
// error, nothing hangs past its timeout, and no session is created, lost or
// corrupted.

// opFront stands in front of the test provider: it can make it unreachable
// (every connection is closed unanswered) or replace the response of one
// endpoint.
type opFront struct {
	op      *oidctest.Provider
	mu      sync.Mutex
	down    bool
	replace map[string]http.HandlerFunc // by path
	refused atomic.Int64
}

func (f *opFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	down, h := f.down, f.replace[r.URL.Path]
	f.mu.Unlock()
	switch {
	case down:
		f.refused.Add(1)
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	case h != nil:
		h(w, r)
	default:
		f.op.ServeHTTP(w, r)
	}
}

func (f *opFront) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *opFront) set(path string, h http.HandlerFunc) {
	f.mu.Lock()
	if f.replace == nil {
		f.replace = map[string]http.HandlerFunc{}
	}
	if h == nil {
		delete(f.replace, path)
	} else {
		f.replace[path] = h
	}
	f.mu.Unlock()
}

// frontedOP starts a provider behind an opFront.
func frontedOP(t testing.TB, cfg oidctest.Config) (*oidctest.Provider, *opFront) {
	t.Helper()
	op := oidctest.New(cfg)
	f := &opFront{op: op}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	op.SetIssuer(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	return op, f
}

// withContentType passes the provider's answer through with another
// Content-Type.
func withContentType(op *oidctest.Provider, ct string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		op.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}
}

// timedStatus runs one request and returns its status and latency.
func timedStatus(a *app, br *browser, method, path string) (int, time.Duration) {
	start := time.Now()
	code, _ := a.status(br, method, path)
	return code, time.Since(start)
}

// The provider is unreachable at start-up (connections closed unanswered):
// discovery retries on its own with backoff, not in a hot loop; sign-in
// answers 503 with Retry-After until then; once the provider is back,
// discovery succeeds without any request asking for it.
func TestFaultIdPUnreachableAtStartup(t *testing.T) {
	op, front := frontedOP(t, oidctest.Config{})
	front.setDown(true)
	a := newUnreadyApp(t, op, nil)
	br := newBrowser(t)

	testsupport.WaitUntil(t, 5*time.Second, "a first discovery attempt", func() bool { return front.refused.Load() >= 1 })
	resp := br.send("GET", a.URL+"/auth/login?returnTo=/app")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("/auth/login with the provider down = %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Backoff: 1 s after a failure, doubling. In 1.2 s at most the first
	// attempt, the one the request above asked for, and one timed retry.
	time.Sleep(1200 * time.Millisecond)
	if n := front.refused.Load(); n > 4 {
		t.Fatalf("%d discovery attempts in 1.2 s: no backoff", n)
	}

	front.setDown(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.bff.Ready(ctx); err != nil {
		t.Fatalf("discovery did not retry by itself: %v", err)
	}
	t.Logf("discovery succeeded %v after the provider came back (%d refused attempts)", time.Since(start), front.refused.Load())
	a.login(br)
	a.expect(t, br, "/api/me", 200, "")
}

// The provider is slower than every timeout: the callback and the refresh
// answer within their bound (RefreshTimeout), never hang; a refresh that
// times out keeps the session (the current token while valid, then 503).
func TestFaultIdPSlow(t *testing.T) {
	clock := &offsetClock{}
	a := newApp(t, testOP(t, oidctest.Config{Now: clock.Now}), func(o *Options) {
		o.RefreshTimeout = 300 * time.Millisecond
		o.Now = clock.Now
	})
	br := a.signIn(t)
	a.op.Misbehave(func(m *oidctest.Misbehavior) { m.TokenDelay = 5 * time.Second })

	t.Run("callback", func(t *testing.T) {
		br := newBrowser(t)
		cb := a.startLogin(br)
		start := time.Now()
		resp := br.send("GET", cb)
		t.Logf("callback with a token endpoint taking 5 s: %d after %v", resp.StatusCode, time.Since(start))
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("callback = %d, want 503", resp.StatusCode)
		}
		if _, ok := a.sessionCookie(br); ok {
			t.Fatal("a session was created")
		}
	})
	t.Run("refresh_token_still_valid", func(t *testing.T) {
		clock.Advance(oidctest.DefaultAccessTokenTTL - 30*time.Second) // within the refresh skew
		code, d := timedStatus(a, br, "GET", "/api/me")
		t.Logf("refresh timing out, token still valid: %d after %v", code, d)
		if code != 200 {
			t.Fatalf("/api/me = %d, want 200 with the current token", code)
		}
	})
	t.Run("refresh_token_expired", func(t *testing.T) {
		clock.Advance(time.Minute) // past the access token's expiry
		code, d := timedStatus(a, br, "GET", "/api/me")
		t.Logf("refresh timing out, token expired: %d after %v", code, d)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("/api/me = %d, want 503", code)
		}
		a.op.Reset()
		a.expect(t, br, "/api/me", 200, "after the provider recovered (the session survived)")
	})
}

// memoryDelta runs f and returns the bytes allocated meanwhile.
func memoryDelta(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The provider answers garbage JSON, huge bodies or wrong content types at
// sign-in: the sign-in fails with a clear JSON error (never 500, never the
// provider's body), no session is created, and a huge body is not read
// whole. Where the content type is merely unusual but the body is right,
// sign-in works.
func TestFaultIdPBadResponsesAtSignIn(t *testing.T) {
	op, front := frontedOP(t, oidctest.Config{})
	a := newApp(t, op, func(o *Options) { hooksOf(o).keysRefetchInterval = time.Millisecond })
	for _, tc := range []struct {
		name  string
		setup func()
		works bool
	}{
		{"token_garbage_json", func() { op.Misbehave(func(m *oidctest.Misbehavior) { m.GarbageJSON = true }) }, false},
		{"token_huge_body", func() { op.Misbehave(func(m *oidctest.Misbehavior) { m.HugeBody = true }) }, false},
		{"token_text_plain", func() { front.set("/token", withContentType(op, "text/plain")) }, false},
		{"token_text_html", func() { front.set("/token", withContentType(op, "text/html")) }, true},
		{"userinfo_garbage_json", func() { front.set("/userinfo", oidctest.Garbage) }, false},
		{"userinfo_huge_body", func() { front.set("/userinfo", oidctest.Huge) }, false},
		{"userinfo_jwt", func() { front.set("/userinfo", withContentType(op, "application/jwt")) }, true},
		{"userinfo_text_html", func() { front.set("/userinfo", withContentType(op, "text/html")) }, true},
		{"jwks_garbage_json", func() { op.RotateKeys(); front.set("/jwks", oidctest.Garbage) }, false},
		{"jwks_huge_body", func() { op.RotateKeys(); front.set("/jwks", oidctest.Huge) }, false},
		{"jwks_text_html", func() { op.RotateKeys(); front.set("/jwks", withContentType(op, "text/html")) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				op.Reset()
				for _, p := range []string{"/token", "/userinfo", "/jwks"} {
					front.set(p, nil)
				}
			}()
			br := newBrowser(t)
			cb := a.startLogin(br)
			time.Sleep(2 * time.Millisecond) // past keysRefetchInterval
			tc.setup()
			var resp *http.Response
			var body []byte
			alloc := memoryDelta(func() {
				resp = br.get(cb)
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			})
			t.Logf("callback = %d %s (allocated %d KiB)", resp.StatusCode, strings.TrimSpace(string(body)), alloc>>10)
			if alloc > 32<<20 {
				t.Errorf("the callback allocated %d MiB: a provider body was read whole", alloc>>20)
			}
			_, signedIn := a.sessionCookie(br)
			if tc.works {
				if resp.StatusCode != http.StatusSeeOther || !signedIn {
					t.Fatalf("callback = %d, want a sign-in", resp.StatusCode)
				}
				return
			}
			if signedIn {
				t.Fatal("a session was created from a bad provider response")
			}
			if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable || resp.StatusCode < 400 {
				t.Fatalf("callback = %d, want 4xx or 503", resp.StatusCode)
			}
			if strings.HasPrefix(tc.name, "jwks_") && resp.StatusCode != http.StatusServiceUnavailable {
				// The ID token may be fine: the provider's key set is
				// what failed, so the answer is "try again", not "bad
				// token".
				t.Fatalf("callback with an unusable key set = %d, want 503", resp.StatusCode)
			}
			if !strings.Contains(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(string(body), `"error"`) ||
				strings.Contains(string(body), "<html>") || strings.Contains(string(body), "aaaa") {
				t.Fatalf("error body = %q", body)
			}
		})
	}
}

// Discovery answers garbage, a huge body, or the wrong content type: the
// app waits (503) and retries; a huge body is not read whole.
func TestFaultIdPBadDiscovery(t *testing.T) {
	const path = "/.well-known/openid-configuration"
	for _, tc := range []struct {
		name    string
		h       func(op *oidctest.Provider) http.HandlerFunc
		recover bool // whether discovery succeeds despite it
	}{
		{"garbage_json", func(*oidctest.Provider) http.HandlerFunc { return oidctest.Garbage }, false},
		{"huge_body", func(*oidctest.Provider) http.HandlerFunc { return oidctest.Huge }, false},
		{"text_html", func(op *oidctest.Provider) http.HandlerFunc { return withContentType(op, "text/html") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, front := frontedOP(t, oidctest.Config{})
			var served atomic.Int64
			bad := tc.h(op)
			front.set(path, func(w http.ResponseWriter, r *http.Request) { served.Add(1); bad(w, r) })
			var a *app
			alloc := memoryDelta(func() {
				a = newUnreadyApp(t, op, nil)
				testsupport.WaitUntil(t, 5*time.Second, "a discovery attempt", func() bool { return served.Load() >= 1 })
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				a.bff.Ready(ctx)
			})
			if alloc > 32<<20 {
				t.Errorf("discovery allocated %d MiB: the body was read whole", alloc>>20)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			if err := a.bff.Ready(ctx); (err == nil) != tc.recover {
				t.Fatalf("Ready = %v", err)
			}
			br := newBrowser(t)
			if !tc.recover {
				a.expect(t, br, "/auth/login", http.StatusServiceUnavailable, "")
				front.set(path, nil)
				testsupport.WaitUntil(t, 5*time.Second, "discovery", func() bool {
					code, _ := a.status(br, "GET", "/auth/login") // asks for an attempt now
					return code == http.StatusSeeOther
				})
			}
			a.login(br)
		})
	}
}

// The provider answers a refresh with garbage or a huge body: transient,
// the session is kept (current token while valid, then 503) and works
// again once the provider does.
func TestFaultIdPBadResponsesAtRefresh(t *testing.T) {
	for _, tc := range []struct {
		name string
		mb   func(*oidctest.Misbehavior)
	}{
		{"garbage_json", func(m *oidctest.Misbehavior) { m.GarbageJSON = true }},
		{"huge_body", func(m *oidctest.Misbehavior) { m.HugeBody = true }},
		{"status_500", func(m *oidctest.Misbehavior) { m.TokenStatus = 500 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &offsetClock{}
			a := newApp(t, testOP(t, oidctest.Config{Now: clock.Now}), func(o *Options) { o.Now = clock.Now })
			br := a.signIn(t)
			a.op.Misbehave(tc.mb)
			clock.Advance(oidctest.DefaultAccessTokenTTL - 30*time.Second)
			a.expect(t, br, "/api/me", 200, "token still valid")
			clock.Advance(time.Minute)
			var code int
			alloc := memoryDelta(func() { code, _ = a.status(br, "GET", "/api/me") })
			if code != http.StatusServiceUnavailable {
				t.Fatalf("token expired: /api/me = %d, want 503", code)
			}
			if alloc > 32<<20 {
				t.Errorf("the refresh allocated %d MiB", alloc>>20)
			}
			a.op.Reset()
			a.expect(t, br, "/api/me", 200, "after recovery")
			if s := a.browserSession(br); !a.op.RefreshTokenValid(s.rec.RefreshToken) || a.op.FamilyRevoked(s.rec.Subject) {
				t.Fatal("after recovery the stored refresh token is not valid")
			}
		})
	}
}

// Redis is slow (commands paused for less than the client timeouts): every
// request still answers 200; nothing is lost or answered 503.
func TestFaultRedisSlow(t *testing.T) {
	rs := redistest.Start(t)
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.Redis = NewRedisPool(rs.Addr) })
	br := a.signIn(t)
	for range 3 {
		if _, err := rs.Do("CLIENT", "PAUSE", 200, "ALL"); err != nil {
			t.Fatalf("CLIENT PAUSE: %v", err)
		}
		var worst time.Duration
		for range 10 {
			code, d := timedStatus(a, br, "GET", "/api/me")
			worst = max(worst, d)
			if code != 200 {
				t.Fatalf("/api/me with Redis slow = %d, want 200", code)
			}
		}
		t.Logf("slowest /api/me with Redis paused for 200 ms: %v", worst)
	}
}

// Redis pauses while a refresh is at the provider: the provider has rotated
// the refresh token by the time the write fails. The refresh retries the
// write, so the new refresh token is not lost and the token family is not
// revoked at the next refresh.
func TestFaultRedisPausedDuringRefresh(t *testing.T) {
	rs := redistest.Start(t)
	clock := &offsetClock{}
	a := newApp(t, testOP(t, oidctest.Config{Now: clock.Now}), func(o *Options) {
		o.Redis = NewRedisPool(rs.Addr)
		o.Now = clock.Now
	})
	br := a.signIn(t)
	a.op.Misbehave(func(m *oidctest.Misbehavior) { m.TokenDelay = 300 * time.Millisecond })
	clock.Advance(oidctest.DefaultAccessTokenTTL)
	done := make(chan int)
	go func() {
		code, _ := a.status(br, "GET", "/api/me")
		done <- code
	}()
	testsupport.WaitUntil(t, 5*time.Second, "the refresh grant", func() bool { return a.op.RefreshGrants() == 1 })
	if _, err := rs.Do("CLIENT", "PAUSE", 700, "ALL"); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	code := <-done
	t.Logf("refresh with Redis paused for 700 ms: %d", code)
	if code != 200 && code != http.StatusServiceUnavailable {
		t.Fatalf("/api/me = %d, want 200 or 503", code)
	}
	a.op.Reset()
	waitStatus(t, a, br, "/api/me", 200)
	clock.Advance(oidctest.DefaultAccessTokenTTL) // the next refresh uses the stored refresh token
	a.expect(t, br, "/api/me", 200, "next refresh (the rotated refresh token was lost)")
	if a.op.FamilyRevoked(oidctest.DefaultUser.Subject) {
		t.Fatal("the token family was revoked (refresh token reuse)")
	}
}

// A host-app hook panics: OnLogin's panic refuses that sign-in and leaves
// no session, no index entry and no cookie; OnRefresh's panic loses no
// token. The server keeps serving.
func TestFaultHookPanics(t *testing.T) {
	clock := &offsetClock{}
	var panicLogin, panicRefresh atomic.Bool
	a := newApp(t, testOP(t, oidctest.Config{Now: clock.Now}), func(o *Options) {
		o.Now = clock.Now
		o.OnLogin = func(context.Context, map[string]any) error {
			if panicLogin.Load() {
				panic("host app bug")
			}
			return nil
		}
		o.OnRefresh = func(context.Context, RefreshEvent) {
			if panicRefresh.Load() {
				panic(errors.New("host app bug"))
			}
		}
	})
	ms := a.mem()
	ctx := context.Background()

	panicLogin.Store(true)
	br := newBrowser(t)
	cb := a.startLogin(br)
	before := ms.Len()
	resp := br.send("GET", cb)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("callback with a panicking OnLogin = %d, want 403", resp.StatusCode)
	}
	if _, ok := a.sessionCookie(br); ok {
		t.Fatal("a session cookie was set")
	}
	if got := ms.Len() - before; got != 1 { // the state's replay marker only
		t.Fatalf("the refused sign-in left %d store records, want 1 (the replay marker)", got)
	}
	if ss, err := a.bff.Sessions(ctx, oidctest.DefaultUser.Subject); err != nil || len(ss) != 0 {
		t.Fatalf("Sessions = %v, %v; want none", ss, err)
	}

	panicLogin.Store(false)
	a.login(br)
	panicRefresh.Store(true)
	clock.Advance(oidctest.DefaultAccessTokenTTL)
	code, _ := a.status(br, "GET", "/api/me")
	t.Logf("refresh with a panicking OnRefresh: %d", code)
	panicRefresh.Store(false)
	a.expect(t, br, "/api/me", 200, "after the panic")
	clock.Advance(oidctest.DefaultAccessTokenTTL)
	a.expect(t, br, "/api/me", 200, "next refresh (no refresh token lost)")
	if a.op.FamilyRevoked(oidctest.DefaultUser.Subject) {
		t.Fatal("the token family was revoked")
	}
}

// A genuine logout token signed with a new key arrives while the
// provider's key set is down: 503 (the provider retries), no session ends;
// once the key set is back, the retry ends the session.
func TestFaultJWKSUnavailableAtBackchannelLogout(t *testing.T) {
	op, front := frontedOP(t, oidctest.Config{})
	a := newApp(t, op, func(o *Options) { hooksOf(o).keysRefetchInterval = time.Millisecond })
	br, id := a.signInID(t)
	s, _ := a.storeSession(id)
	op.RotateKeys()
	front.set("/jwks", oidctest.Garbage)
	tok := op.LogoutToken(s.rec.Subject, s.rec.SID, nil)
	time.Sleep(2 * time.Millisecond) // past keysRefetchInterval
	a.expectBackchannel(t, tok, http.StatusServiceUnavailable, "logout token with the key set down")
	expectSignedIn(t, a, br, true, "a session ended on a token that could not be verified")
	front.set("/jwks", nil)
	time.Sleep(2 * time.Millisecond)
	a.expectBackchannel(t, tok, 200, "the provider's retry")
	expectSignedIn(t, a, br, false, "the session is still alive")
}
