package telemetrytest

import (
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// expectPoints fails unless the counter's data points are exactly want.
func expectPoints(t *testing.T, tel *telemetry, name string, want map[string]int64) {
	t.Helper()
	if got := tel.points(t, name); !maps.Equal(got, want) {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// TestMetricsCounts reads the instruments through the SDK's manual reader
// after each step of a user's life and checks the exact counts: a sign-in,
// a failed sign-in (and one the provider refused), a cache miss and a hit,
// a storm of 40 requests needing a refresh (1 refreshed, 39 joined), a
// logout and a back-channel logout.
func TestMetricsCounts(t *testing.T) {
	tel := newTelemetry(t)
	clk := &clock{}
	op := startOP(t, oidctest.Config{Now: clk.Now})
	a := newApp(t, op, nil, func(o *bff.Options) {
		o.MeterProvider, o.Now = tel.mp, clk.Now
	})

	// A sign-in.
	br := testsupport.NewBrowser(t)
	a.login(br)
	expectPoints(t, tel, "bff.login", map[string]int64{"outcome=success": 1})
	if got := tel.points(t, "bff.login.duration"); got["outcome=success,part=bff"] != 1 || got["outcome=success,part=provider"] != 1 {
		t.Errorf("bff.login.duration recordings %v, want one of each part", got)
	}
	if got := tel.sum(t, "bff.session.active", "", ""); got != 1 {
		t.Errorf("bff.session.active = %d after a sign-in, want 1", got)
	}

	// A failed sign-in (a replayed callback), and one the provider
	// refused.
	other := testsupport.NewBrowser(t)
	cb := a.callbackURL(other)
	other.Get(cb)
	if code := other.Get(cb).StatusCode; code != http.StatusBadRequest {
		t.Fatalf("replayed callback: %d", code)
	}
	if code := other.Get(a.URL + "/auth/callback?error=access_denied&state=x").StatusCode; code != http.StatusBadRequest {
		t.Fatalf("refused sign-in: %d", code)
	}
	expectPoints(t, tel, "bff.login", map[string]int64{"outcome=success": 2, "outcome=login_expired": 1, // no sign-in in progress any more
		"outcome=provider_access_denied": 1})

	// A cache miss (the first request reads the store), then a hit.
	for range 2 {
		if code := br.Get(a.URL + "/api/me").StatusCode; code != 200 {
			t.Fatalf("/api/me: %d", code)
		}
	}
	expectPoints(t, tel, "bff.session_cache", map[string]int64{"result=hit": 1, "result=miss": 1, "result=untrusted": 0})

	// A refresh storm: 40 requests of one session whose access token has
	// expired. The grant is held until every request has looked its
	// session up, so that all 40 need the refresh.
	clk.Advance(2 * time.Hour)
	release := op.holdRefreshes()
	var wg sync.WaitGroup
	codes := make([]int, 40)
	for i := range codes {
		wg.Go(func() { codes[i] = br.Get(a.URL + "/api/me").StatusCode })
	}
	testsupport.WaitUntil(t, 10*time.Second, "40 session lookups", func() bool {
		return tel.sum(t, "bff.session_cache", "result", "hit")+tel.sum(t, "bff.session_cache", "result", "miss") == 42
	})
	testsupport.WaitUntil(t, 10*time.Second, "the refresh grant", func() bool { return op.held.Load() == 1 })
	release()
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("storm request %d: %d", i, c)
		}
	}
	if got := op.op.RefreshGrants(); got != 1 {
		t.Fatalf("%d refresh grants for the storm, want 1", got)
	}
	expectPoints(t, tel, "bff.refresh", map[string]int64{"outcome=refreshed": 1, "outcome=joined": 39})
	expectPoints(t, tel, "bff.refresh.duration", map[string]int64{"outcome=refreshed": 1})

	// A logout, then a back-channel logout of a new session.
	a.logout(br)
	a.login(br)
	if code := a.backchannel(op.op.LogoutToken(oidctest.DefaultUser.Subject, "", nil)); code != 200 {
		t.Fatalf("back-channel logout: %d", code)
	}
	expectPoints(t, tel, "bff.backchannel_logout", map[string]int64{"outcome=success": 1})
	// The replayed callback's session is ended by the back-channel logout
	// too: it is the same user's.
	expectPoints(t, tel, "bff.session.ended", map[string]int64{"reason=logout": 1, "reason=backchannel": 2})
	if got := tel.sum(t, "bff.session.active", "", ""); got != 0 {
		t.Errorf("bff.session.active = %d after every session ended, want 0", got)
	}
	if code := a.backchannel(op.op.LogoutToken(oidctest.DefaultUser.Subject, "", func(m map[string]any) { m["iss"] = "https://evil.example" })); code != 400 {
		t.Fatalf("back-channel logout with a forged issuer: %d", code)
	}
	expectPoints(t, tel, "bff.backchannel_logout", map[string]int64{"outcome=success": 1, "outcome=invalid": 1})

	// Every provider call, by endpoint: one discovery, a key-set fetch,
	// three code grants and a refresh, three userinfo calls, a revocation.
	expectPoints(t, tel, "bff.provider.duration", map[string]int64{"endpoint=discovery": 1, "endpoint=jwks": 1,
		"endpoint=token": 4, "endpoint=userinfo": 3, "endpoint=revocation": 1})
	expectPoints(t, tel, "bff.provider.errors", map[string]int64{})
	if got := tel.sum(t, "bff.store.errors", "", ""); got != 0 {
		t.Errorf("bff.store.errors = %d", got)
	}
	if got := tel.sum(t, "bff.store.breaker.open", "", ""); got != 0 {
		t.Errorf("bff.store.breaker.open = %d", got)
	}
}

// TestMetricsSignInVariants: a sign-in through PAR counts its call to the
// provider under endpoint=par; a silent sign-in the provider cannot do and
// a step-up it does not honour go back to returnTo, and count under their
// own outcomes, not as successes.
func TestMetricsSignInVariants(t *testing.T) {
	tel := newTelemetry(t)
	op := startOP(t, oidctest.Config{PAR: true})
	a := newApp(t, op, nil, func(o *bff.Options) { o.MeterProvider = tel.mp })
	a.login(testsupport.NewBrowser(t))
	if got := tel.points(t, "bff.provider.duration")["endpoint=par"]; got != 1 {
		t.Errorf("bff.provider.duration{endpoint=par} = %d after a sign-in with PAR, want 1", got)
	}

	backToApp := func(query, want string) {
		t.Helper()
		br := testsupport.NewBrowser(t) // not signed in at the provider
		resp := br.Get(a.URL + "/auth/login?" + query)
		resp = br.Get(resp.Header.Get("Location"))
		resp = br.Get(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Fatalf("callback of /login?%s = %d %q %s, want 303 to %q", query, resp.StatusCode, resp.Header.Get("Location"), resp.Body, want)
		}
	}
	backToApp("prompt=none&returnTo=/app", "/app?error=login_required")
	op.op.Misbehave(func(m *oidctest.Misbehavior) { m.IgnoreACR = true })
	backToApp("acr_values="+oidctest.ACRStrong+"&returnTo=/app", "/app?error=insufficient_user_authentication")
	expectPoints(t, tel, "bff.login", map[string]int64{"outcome=success": 1, "outcome=provider_login_required": 1,
		"outcome=insufficient_user_authentication": 1})
}

// TestMetricsSessionEndReasons: each way a session ends is counted under
// its reason.
func TestMetricsSessionEndReasons(t *testing.T) {
	tel := newTelemetry(t)
	clk := &clock{}
	op := startOP(t, oidctest.Config{Now: clk.Now})
	a := newApp(t, op, nil, func(o *bff.Options) {
		o.MeterProvider, o.Now = tel.mp, clk.Now
		o.MaxSessionsPerUser = 1
		o.IdleTimeout = 4 * time.Hour
	})
	first, second := testsupport.NewBrowser(t), testsupport.NewBrowser(t)
	a.login(first)
	a.login(second) // beyond MaxSessionsPerUser: the first ends
	a.login(second) // the browser's previous session is replaced
	expectPoints(t, tel, "bff.session.ended", map[string]int64{"reason=limit": 1, "reason=replaced": 1})

	if n, err := a.bff.RevokeSessions(t.Context(), oidctest.DefaultUser.Subject); err != nil || n != 1 {
		t.Fatalf("RevokeSessions = %d, %v", n, err)
	}
	a.login(first)
	clk.Advance(5 * time.Hour) // past the idle timeout
	if code := first.Get(a.URL + "/api/me").StatusCode; code != http.StatusUnauthorized {
		t.Fatalf("idle session: %d", code)
	}
	a.login(first)
	clk.Advance(2 * time.Hour)
	op.op.Misbehave(func(m *oidctest.Misbehavior) { m.TokenError = "invalid_grant" })
	if code := first.Get(a.URL + "/api/me").StatusCode; code != http.StatusUnauthorized {
		t.Fatalf("refresh token rejected: %d", code)
	}
	expectPoints(t, tel, "bff.session.ended", map[string]int64{"reason=limit": 1, "reason=replaced": 1,
		"reason=revoked": 1, "reason=expired": 1, "reason=refresh_failed": 1})
	expectPoints(t, tel, "bff.refresh", map[string]int64{"outcome=invalid_grant": 1})
}

// TestMetricsProviderDown: a refresh that the provider cannot answer is
// transient, and its failed calls count as provider errors by endpoint.
func TestMetricsProviderDown(t *testing.T) {
	tel := newTelemetry(t)
	clk := &clock{}
	op := startOP(t, oidctest.Config{Now: clk.Now})
	a := newApp(t, op, nil, func(o *bff.Options) { o.MeterProvider, o.Now = tel.mp, clk.Now })
	br := testsupport.NewBrowser(t)
	a.login(br)
	clk.Advance(2 * time.Hour)
	op.down.Store(true)
	if code := br.Get(a.URL + "/api/me").StatusCode; code != http.StatusServiceUnavailable {
		t.Fatalf("provider down: %d", code)
	}
	expectPoints(t, tel, "bff.refresh", map[string]int64{"outcome=transient": 1})
	expectPoints(t, tel, "bff.provider.errors", map[string]int64{"endpoint=token": 1})
}

// TestMetricsRedis: with Redis, the invalidation channel's health and lag,
// cache lookups refused while it is unhealthy, store errors and the
// breaker.
func TestMetricsRedis(t *testing.T) {
	rs := redistest.Start(t)
	tel := newTelemetry(t)
	a := newApp(t, startOP(t, oidctest.Config{}), nil, func(o *bff.Options) {
		o.MeterProvider, o.Redis = tel.mp, rs.Pool()
	})
	br := testsupport.NewBrowser(t)
	a.login(br)
	testsupport.WaitUntil(t, 10*time.Second, "a healthy invalidation channel", func() bool {
		return tel.sum(t, "bff.invalidation.healthy", "", "") == 1
	})
	if lag := tel.values(t, "bff.invalidation.lag")[""]; lag <= 0 {
		t.Errorf("bff.invalidation.lag = %v while healthy, want a positive age", lag)
	}
	for range 2 {
		br.Get(a.URL + "/api/me")
	}
	if hits := tel.sum(t, "bff.session_cache", "result", "hit"); hits < 1 {
		t.Errorf("no cache hit with a healthy channel: %v", tel.points(t, "bff.session_cache"))
	}

	rs.Stop()
	testsupport.WaitUntil(t, 10*time.Second, "an unhealthy invalidation channel", func() bool {
		return tel.sum(t, "bff.invalidation.healthy", "", "") == 0
	})
	before := tel.sum(t, "bff.session_cache", "result", "untrusted")
	for range 3 {
		if code := br.Get(a.URL + "/api/me").StatusCode; code != http.StatusServiceUnavailable {
			t.Fatalf("Redis down: %d", code)
		}
	}
	if got := tel.sum(t, "bff.session_cache", "result", "untrusted") - before; got != 3 {
		t.Errorf("%d untrusted lookups for 3 requests with the channel down, want 3", got)
	}
	testsupport.WaitUntil(t, 10*time.Second, "the breaker to open", func() bool {
		br.Get(a.URL + "/api/me")
		return tel.sum(t, "bff.store.breaker.open", "", "") == 1
	})
	if got := tel.sum(t, "bff.store.errors", "", ""); got < 5 {
		t.Errorf("bff.store.errors = %d after the breaker opened, want at least 5", got)
	}

	rs.Restart()
	testsupport.WaitUntil(t, 10*time.Second, "a healthy channel again", func() bool {
		return tel.sum(t, "bff.invalidation.healthy", "", "") == 1
	})
}
