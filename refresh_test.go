package bff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// tokenBurst sends GET /api/token to every app URL at once with br's
// cookies (an expired token) and fails the test unless all answer one new
// token after one refresh grant, with no token family revoked (as the test
// OP does when a used refresh token is presented again). It returns the
// token.
func tokenBurst(t *testing.T, op *oidctest.Provider, br *browser, old string, urls []string) string {
	t.Helper()
	codes, toks, errs := make([]int, len(urls)), make([]string, len(urls)), make([]error, len(urls))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			<-start // no t.Fatal on this goroutine: errors go to errs
			resp, err := br.Client.Get(u + "/api/token")
			if errs[i] = err; err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				codes[i], toks[i] = resp.StatusCode, string(b)
			}
		})
	}
	close(start)
	wg.Wait()
	for i := range urls {
		if errs[i] != nil || codes[i] != 200 || toks[i] != toks[0] || toks[i] == old {
			t.Fatalf("request %d to %s: %v %d (same as first %v, same as old %v)", i, urls[i], errs[i], codes[i], toks[i] == toks[0], toks[i] == old)
		}
	}
	if g := op.RefreshGrants(); g != 1 || op.FamilyRevoked(oidctest.DefaultUser.Subject) {
		t.Fatalf("%d refresh grants, want 1; token family revoked: %v", g, op.FamilyRevoked(oidctest.DefaultUser.Subject))
	}
	return toks[0]
}

func TestRefreshSkewRules(t *testing.T) {
	t.Run("refreshes within RefreshSkew", func(t *testing.T) {
		e := newEnv(t, oidctest.Config{}, onMemory(func(o *Options) { o.RefreshSkew = 5 * time.Minute })).signIn()
		_, old := e.token()
		exp := time.Unix(0, e.rec().rec.AccessExpiry)
		if want := e.t0.Add(oidctest.DefaultAccessTokenTTL); !exp.Equal(want) {
			t.Fatalf("access token expiry = %v, want %v (issue time on the injected clock + expires_in)", exp, want)
		}
		e.clock.Advance(exp.Sub(e.clock.Now()) - 6*time.Minute)
		if code, tok := e.token(); code != 200 || tok != old || e.op.RefreshGrants() != 0 {
			t.Fatalf("6 min before expiry: %d, same token %v, %d grants; want the old token, no grant", code, tok == old, e.op.RefreshGrants())
		}
		e.clock.Advance(2 * time.Minute)
		code, tok := e.token()
		if code != 200 || tok == old || e.op.RefreshGrants() != 1 {
			t.Fatalf("4 min before expiry: %d, same token %v, %d grants; want a new token, one grant", code, tok == old, e.op.RefreshGrants())
		}
		if got := time.Unix(0, e.rec().rec.AccessExpiry); got.Sub(e.clock.Now()) < 5*time.Minute {
			t.Fatalf("the refreshed token is valid for only %v", got.Sub(e.clock.Now()))
		}
	})

	t.Run("skew longer than the token lifetime does not refresh every request", func(t *testing.T) {
		e := newEnv(t, oidctest.Config{AccessTokenTTL: 10 * time.Minute}, onMemory(func(o *Options) { o.RefreshSkew = time.Hour })).signIn()
		for range 5 {
			if code, _ := e.token(); code != 200 {
				t.Fatalf("status %d", code)
			}
			e.clock.Advance(time.Minute)
		}
		if n := e.op.RefreshGrants(); n != 0 {
			t.Fatalf("%d refresh grants in the first half of the token's lifetime, want 0", n)
		}
		e.clock.Advance(time.Minute) // 6 of 10 minutes: past half the lifetime
		for range 4 {
			if code, _ := e.token(); code != 200 {
				t.Fatalf("status %d", code)
			}
			e.clock.Advance(time.Minute)
		}
		if n := e.op.RefreshGrants(); n != 1 {
			t.Fatalf("%d refresh grants over 4 requests past half the lifetime, want 1", n)
		}
	})

	t.Run("token without expiry is never refreshed", func(t *testing.T) {
		clk := newFrozenClock()
		op := testOP(t, oidctest.Config{Now: clk.Now})
		op.Misbehave(func(m *oidctest.Misbehavior) { m.NoExpiresIn = true })
		a := newApp(t, op, func(o *Options) { o.Now = clk.Now })
		br := a.signIn(t)
		_, old := a.status(br, "GET", "/api/token")
		id, _ := a.sessionCookie(br)
		if s, _ := a.storeSession(id); s == nil || s.rec.AccessExpiry != 0 {
			t.Fatal("the stored access token has an expiry although the provider gave none")
		}
		for range 11 {
			clk.Advance(time.Hour)
			if code, tok := a.status(br, "GET", "/api/token"); code != 200 || tok != old {
				t.Fatalf("status %d, same token %v", code, tok == old)
			}
		}
		if n := op.RefreshGrants(); n != 0 {
			t.Fatalf("%d refresh grants for a token without expiry", n)
		}
	})
}

// 50 requests of one session arrive together with an expired token: one
// refresh grant, and all 50 use its result. The test OP revokes the whole
// token family when a used refresh token is presented again, so a second
// grant would show as a revoked family.
func TestRefreshConcurrentOneGrant(t *testing.T) {
	e := newEnv(t, oidctest.Config{}, onMemory(nil)).signIn()
	_, old := e.token()
	oldRT := e.rec().rec.RefreshToken
	e.clock.Advance(2 * time.Hour)

	tok := tokenBurst(t, e.op, e.br, old, slices.Repeat([]string{e.a.URL}, 50))
	s := e.rec()
	if s.rec.AccessToken != tok || s.rec.RefreshToken == oldRT || !e.op.RefreshTokenValid(s.rec.RefreshToken) {
		t.Fatal("the store does not hold the rotated, valid refresh token and the new access token")
	}
	if _, again := e.token(); again != tok || e.op.RefreshGrants() != 1 {
		t.Fatal("a later request refreshed again")
	}
}

// Two BFF instances share one redis-server: a burst on both after expiry
// gives one refresh grant; the instance that lost the race uses the
// winner's tokens.
func TestRefreshTwoInstancesRedisOneGrant(t *testing.T) {
	rs := redistest.Start(t)
	clk := newFrozenClock()
	op := testOP(t, oidctest.Config{Now: clk.Now})
	opt := func(o *Options) { o.Redis = rs.Pool(); o.Now = clk.Now }
	a1, a2 := newApp(t, op, opt), newApp(t, op, opt)
	br := a1.signIn(t)
	_, old := a1.status(br, "GET", "/api/token")
	if _, tok := a2.status(br, "GET", "/api/token"); tok != old {
		t.Fatal("the second instance does not see the session")
	}
	clk.Advance(2 * time.Hour)

	won := tokenBurst(t, op, br, old, slices.Repeat([]string{a1.URL, a2.URL}, 25))
	for _, a := range []*app{a1, a2} {
		if _, tok := a.status(br, "GET", "/api/token"); tok != won {
			t.Fatal("an instance uses another token afterwards")
		}
	}
}

// A holder of the session's lock that died (took the lock, never released
// it): while the lock lives, requests get the current token if it is still
// valid and 503 otherwise; after the lock's expiry the session refreshes.
func TestRefreshDeadLockHolder(t *testing.T) {
	rs := redistest.Start(t)
	e := newEnv(t, oidctest.Config{}, func(o *Options) { o.Store, o.Redis = nil, rs.Pool() }).signIn()
	// The requests go to a second instance with a short RefreshTimeout
	// (which also bounds the wait for the lock); the first one signed in.
	e.a = newApp(t, e.op, func(o *Options) {
		o.Redis = rs.Pool()
		o.Now = e.clock.Now
		o.RefreshTimeout = 200 * time.Millisecond
	})
	_, old := e.token()
	unlock, err := e.a.bff.store.locker.Lock(context.Background(), "lock:"+recordName(e.id), 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	_ = unlock // never called: the holder crashed

	e.clock.Advance(time.Hour - 30*time.Second) // within the skew, still valid
	if code, tok := e.token(); code != 200 || tok != old {
		t.Fatalf("lock held, token still valid: %d (old token %v), want 200 with the old token", code, tok == old)
	}
	e.clock.Advance(time.Minute) // expired
	resp := e.br.send("GET", e.a.URL+"/api/token")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("lock held, token expired: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if e.op.RefreshGrants() != 0 {
		t.Fatal("refreshed without the lock")
	}
	testsupport.WaitUntil(t, 10*time.Second, "the session to recover after the lock's expiry", func() bool {
		code, tok := e.token()
		if code != 200 && code != 503 {
			t.Fatalf("while waiting for the lock to expire: %d", code)
		}
		return code == 200 && tok != old
	})
	if g := e.op.RefreshGrants(); g != 1 || e.op.FamilyRevoked(oidctest.DefaultUser.Subject) {
		t.Fatalf("%d grants after recovery, want 1 and no revoked family", g)
	}
}

func TestRefreshFailurePolicy(t *testing.T) {
	const (
		valid   = "valid"   // the access token is within the skew but not expired
		expired = "expired" // the access token has expired
	)
	cases := []struct {
		name    string
		mb      func(*oidctest.Misbehavior)
		token   string
		ends    bool // the session ends: 401, cookie cleared, record removed
		status  int  // otherwise: 200 (old token) or 503 with Retry-After
		timeout bool
		warm    bool // generate the OP's unknown signing key first (slow), so the refresh does not time out
	}{
		{name: "refresh token revoked (invalid_grant) ends the session", token: expired, ends: true,
			mb: func(m *oidctest.Misbehavior) { m.TokenError = "invalid_grant" }},
		{name: "refresh token revoked (invalid_grant) ends the session even while the token is valid", token: valid, ends: true,
			mb: func(m *oidctest.Misbehavior) { m.TokenError = "invalid_grant" }},
		{name: "refreshed ID token for another subject ends the session", token: expired, ends: true,
			mb: func(m *oidctest.Misbehavior) { m.RefreshIDTokenSub = "mallory-0666" }},
		{name: "refreshed ID token from another issuer ends the session", token: valid, ends: true,
			mb: func(m *oidctest.Misbehavior) { m.RefreshIDTokenIssuer = "https://evil.example" }},
		{name: "refreshed ID token with a bad signature ends the session", token: expired, ends: true, warm: true,
			mb: func(m *oidctest.Misbehavior) { m.SignWithUnknownKey = true }},
		{name: "provider 503 with a valid token keeps the old token", token: valid, status: 200,
			mb: func(m *oidctest.Misbehavior) { m.TokenStatus = 503 }},
		{name: "provider 503 with an expired token answers 503 and keeps the session", token: expired, status: 503,
			mb: func(m *oidctest.Misbehavior) { m.TokenStatus = 503 }},
		{name: "provider 500 with a valid token keeps the old token", token: valid, status: 200,
			mb: func(m *oidctest.Misbehavior) { m.TokenStatus = 500 }},
		{name: "provider 500 with an expired token answers 503 and keeps the session", token: expired, status: 503,
			mb: func(m *oidctest.Misbehavior) { m.TokenStatus = 500 }},
		{name: "provider timeout with a valid token keeps the old token", token: valid, status: 200, timeout: true,
			mb: func(m *oidctest.Misbehavior) { m.TokenDelay = 5 * time.Second }},
		{name: "provider timeout with an expired token answers 503 and keeps the session", token: expired, status: 503, timeout: true,
			mb: func(m *oidctest.Misbehavior) { m.TokenDelay = 5 * time.Second }},
		{name: "garbage token response with an expired token answers 503 and keeps the session", token: expired, status: 503,
			mb: func(m *oidctest.Misbehavior) { m.GarbageJSON = true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, oidctest.Config{}, onMemory(func(o *Options) {
				if tc.timeout {
					o.RefreshTimeout = time.Second
				}
			})).signIn()
			_, old := e.token()
			before := e.rec()
			if tc.token == valid {
				e.clock.Advance(time.Hour - 30*time.Second)
			} else {
				e.clock.Advance(time.Hour + time.Minute)
			}
			if tc.warm {
				e.op.SignJWT(map[string]any{}, oidctest.SignOptions{UnknownKey: true})
			}
			e.op.Misbehave(tc.mb)
			resp := e.br.get(e.a.URL + "/api/token")
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 && resp.StatusCode != 503 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if strings.Contains(string(body), before.rec.RefreshToken) {
				t.Fatal("the response contains the refresh token")
			}
			if tc.ends {
				var cleared bool
				for _, c := range resp.Cookies() {
					cleared = cleared || c.Name == e.a.bff.cfg.CookieName && c.MaxAge < 0
				}
				if resp.StatusCode != 401 || !cleared {
					t.Fatalf("= %d (cookie cleared %v), want 401 with the cookie cleared", resp.StatusCode, cleared)
				}
				if _, err := e.a.storeSession(e.id); err != errNotFound {
					t.Fatalf("session record after the session ended: %v", err)
				}
				e.op.Reset()
				if code, _ := e.token(); code != 401 {
					t.Fatalf("after the session ended: %d", code)
				}
				return
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("= %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			switch tc.status {
			case 200:
				if string(body) != old {
					t.Fatal("did not get the old (still valid) token")
				}
			case 503:
				if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "temporarily_unavailable") {
					t.Fatalf("503 without Retry-After or code: %q %s", resp.Header.Get("Retry-After"), body)
				}
			}
			for _, c := range resp.Cookies() {
				if c.Name == e.a.bff.cfg.CookieName {
					t.Fatal("a transient failure touched the session cookie")
				}
			}
			if s := e.rec(); s.rec.RefreshToken != before.rec.RefreshToken || s.rec.AccessToken != old {
				t.Fatal("a transient failure changed the stored tokens")
			}
			if tc.token == valid && !tc.timeout {
				// Right after a failure, a session whose token still works
				// does not ask the failing provider again.
				g := e.op.RefreshGrants()
				if code, tok := e.token(); code != 200 || tok != old || e.op.RefreshGrants() != g {
					t.Fatalf("during the retry delay: %d, old token %v, grants %d -> %d", code, tok == old, g, e.op.RefreshGrants())
				}
			}
			// The provider recovers: after the retry delay the same session
			// refreshes.
			e.op.Reset()
			e.clock.Advance(refreshRetryDelay)
			if code, tok := e.token(); code != 200 || tok == old {
				t.Fatalf("after the provider recovered: %d (old token %v)", code, tok == old)
			}
			if e.op.FamilyRevoked(oidctest.DefaultUser.Subject) {
				t.Fatal("the token family was revoked")
			}
		})
	}
}

// The request that triggers a refresh goes away mid-refresh: the refresh
// completes and is stored, so nothing is lost and nothing is repeated.
func TestRefreshSurvivesRequestCancellation(t *testing.T) {
	e := newEnv(t, oidctest.Config{}, onMemory(nil)).signIn()
	_, old := e.token()
	e.clock.Advance(2 * time.Hour)
	e.op.Misbehave(func(m *oidctest.Misbehavior) { m.TokenDelay = 300 * time.Millisecond })

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.a.URL+"/api/token", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := e.br.Client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	testsupport.WaitUntil(t, 10*time.Second, "the refresh to start", func() bool { return lockCount(e.a.bff) > 0 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client request: %v, want it cancelled", err)
	}
	testsupport.WaitUntil(t, 10*time.Second, "the refresh to end", func() bool { return lockCount(e.a.bff) == 0 })

	if g := e.op.RefreshGrants(); g != 1 {
		t.Fatalf("%d refresh grants, want 1 (the refresh was cancelled with its request)", g)
	}
	s := e.rec()
	if s.rec.AccessToken == old || !e.op.RefreshTokenValid(s.rec.RefreshToken) {
		t.Fatal("the refreshed tokens were not stored")
	}
	e.op.Reset()
	if code, tok := e.token(); code != 200 || tok != s.rec.AccessToken || e.op.RefreshGrants() != 1 {
		t.Fatalf("next request: %d (stored token %v), %d grants", code, tok == s.rec.AccessToken, e.op.RefreshGrants())
	}
}

// The session never outlives the refresh token when the provider says when
// it expires (refresh_expires_in); a rotated refresh token with a later
// expiry carries the session on, up to MaxLifetime.
func TestRefreshSessionBoundedByRefreshToken(t *testing.T) {
	const rtTTL = 30 * time.Minute
	cfg := oidctest.Config{AccessTokenTTL: 10 * time.Minute, RefreshTokenTTL: rtTTL}

	t.Run("refresh_expires_in bounds the session", func(t *testing.T) {
		e := newEnv(t, cfg, onMemory(nil)).signIn()
		if got, want := e.rec().rec.Expires, e.t0.Add(rtTTL).UnixNano(); got != want {
			t.Fatalf("after login the session ends at %v, want %v (the refresh token's expiry)", time.Unix(0, got), time.Unix(0, want))
		}
		e.clock.Advance(25 * time.Minute)
		if code, _ := e.token(); code != 200 || e.op.RefreshGrants() != 1 {
			t.Fatalf("at 25 min: %d, %d grants", code, e.op.RefreshGrants())
		}
		if got, want := e.rec().rec.Expires, e.clock.Now().Add(rtTTL).UnixNano(); got != want {
			t.Fatalf("after a refresh the session ends at %v, want %v (the new refresh token's expiry)", time.Unix(0, got), time.Unix(0, want))
		}
		e.clock.Advance(25 * time.Minute) // past the first refresh token's expiry, within the second's
		if code, _ := e.token(); code != 200 || e.op.RefreshGrants() != 2 {
			t.Fatalf("at 50 min: %d, %d grants; the session ended with the first refresh token", code, e.op.RefreshGrants())
		}
		e.clock.Advance(rtTTL + time.Minute) // the current refresh token has expired
		if code, _ := e.token(); code != 401 || e.op.RefreshGrants() != 2 {
			t.Fatalf("after the refresh token expired: %d, %d grants; want 401 without a grant", code, e.op.RefreshGrants())
		}
	})

	t.Run("MaxLifetime still bounds the session", func(t *testing.T) {
		e := newEnv(t, cfg, onMemory(func(o *Options) { o.MaxLifetime = 40 * time.Minute })).signIn()
		e.clock.Advance(25 * time.Minute)
		if code, _ := e.token(); code != 200 {
			t.Fatalf("at 25 min: %d", code)
		}
		if got, want := e.rec().rec.Expires, e.t0.Add(40*time.Minute).UnixNano(); got != want {
			t.Fatalf("after a refresh the session ends at %v, want %v (MaxLifetime)", time.Unix(0, got), time.Unix(0, want))
		}
		e.clock.Advance(16 * time.Minute)
		if code, _ := e.token(); code != 401 {
			t.Fatalf("after MaxLifetime: %d", code)
		}
	})
}

// OnRefresh receives every outcome; neither the events nor any log line
// (at debug level, over login, refreshes, failures and logout) contain a
// token.
func TestRefreshEventsAndLogsHoldNoToken(t *testing.T) {
	var logs logBuffer
	var mu sync.Mutex
	var events []RefreshEvent
	e := newEnv(t, oidctest.Config{}, onMemory(func(o *Options) {
		o.Logger = logs.JSONLogger()
		o.OnRefresh = func(_ context.Context, ev RefreshEvent) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}
	})).signIn()
	var secrets []string
	collect := func(s *session) {
		secrets = append(secrets, s.rec.AccessToken, s.rec.RefreshToken, s.rec.IDToken)
	}
	collect(e.rec())

	e.clock.Advance(2 * time.Hour)
	if code, _ := e.token(); code != 200 { // refreshed
		t.Fatalf("refresh: %d", code)
	}
	stale := e.rec()
	collect(stale)
	e.clock.Advance(2 * time.Hour)
	e.op.Misbehave(func(m *oidctest.Misbehavior) { m.TokenStatus = 503 })
	if code, _ := e.token(); code != 503 { // failed
		t.Fatalf("provider down: %d", code)
	}
	e.op.Reset()
	if code, _ := e.token(); code != 200 { // refreshed
		t.Fatalf("provider back: %d", code)
	}
	collect(e.rec())
	// A request that still holds the previous record: another request
	// has just refreshed, so it reuses that result.
	if _, err := e.a.bff.refresh(context.Background(), stale, e.clock.Now().UnixNano()); err != nil {
		t.Fatalf("refresh with a stale record: %v", err)
	}
	resp := e.br.send("POST", e.a.URL+"/auth/logout")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}

	// A second sign-in, ended by invalid_grant.
	e2br := newBrowser(t)
	e.a.login(e2br)
	s2 := e.a.browserSession(e2br)
	collect(s2)
	e.clock.Advance(2 * time.Hour)
	e.op.Misbehave(func(m *oidctest.Misbehavior) { m.TokenError = "invalid_grant" })
	e.a.expect(t, e2br, "/api/token", 401, "invalid_grant") // ended

	mu.Lock()
	defer mu.Unlock()
	var outcomes []string
	for _, ev := range events {
		outcomes = append(outcomes, string(ev.Outcome))
		if ev.Subject != oidctest.DefaultUser.Subject {
			t.Errorf("event %s: subject %q", ev.Outcome, ev.Subject)
		}
		switch ev.Outcome {
		case OutcomeRefreshed, OutcomeReused:
			if ev.Err != nil {
				t.Errorf("event %s with error %v", ev.Outcome, ev.Err)
			}
		case OutcomeFailed:
			if !errors.Is(ev.Err, ErrUnavailable) {
				t.Errorf("failed event: %v", ev.Err)
			}
		case OutcomeEnded:
			if !errors.Is(ev.Err, ErrUnauthenticated) {
				t.Errorf("ended event: %v", ev.Err)
			}
		}
	}
	if got, want := strings.Join(outcomes, ","), "refreshed,failed,refreshed,reused,ended"; got != want {
		t.Errorf("outcomes = %s, want %s", got, want)
	}
	out := logs.String()
	if !strings.Contains(out, "bff: token refresh") || !strings.Contains(out, "bff: signed out") {
		t.Fatalf("the log lacks the refresh or logout lines:\n%s", out)
	}
	evText := fmt.Sprintf("%+v %#v", events, events)
	for i, s := range secrets {
		if s == "" {
			t.Fatalf("secret %d is empty", i)
		}
		if strings.Contains(out, s) {
			t.Errorf("a token (%d) is in the log", i)
		}
		if strings.Contains(evText, s) {
			t.Errorf("a token (%d) is in a refresh event", i)
		}
	}
}

// The provider has rotated the refresh token, and the first write of it
// fails: the write is retried past the store's circuit breaker, so the
// rotated token is not lost (which would end the session at the next
// refresh, by reuse detection).
func TestRefreshStoreBlipKeepsRotatedToken(t *testing.T) {
	e := newEnv(t, oidctest.Config{}, nil).signIn()
	e.clock.Advance(2 * time.Hour)
	e.store.failNext("commit", 1)
	code, tok := e.token()
	if code != 200 || e.op.RefreshGrants() != 1 {
		t.Fatalf("refresh during a store blip: %d, %d grants", code, e.op.RefreshGrants())
	}
	testsupport.WaitUntil(t, 10*time.Second, "the store's circuit breaker to close", func() bool { return e.a.bff.store.breaker.allow() == nil })
	if s := e.rec(); s.rec.AccessToken != tok || !e.op.RefreshTokenValid(s.rec.RefreshToken) {
		t.Fatal("the rotated refresh token was not stored")
	}
	e.clock.Advance(2 * time.Hour)
	if code, _ := e.token(); code != 200 || e.op.FamilyRevoked(oidctest.DefaultUser.Subject) {
		t.Fatalf("next refresh: %d, family revoked %v", code, e.op.FamilyRevoked(oidctest.DefaultUser.Subject))
	}
}
