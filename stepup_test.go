package bff

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
)

// stepUpApp is an app whose GET /api/stepup needs acr (and maxAge), and
// answers the session's acr and sub when they are met.
func stepUpApp(t *testing.T, op *oidctest.Provider, acr []string, maxAge time.Duration, opt func(*Options)) *app {
	t.Helper()
	a := newApp(t, op, opt)
	a.route("GET /api/stepup", a.bff.RequireSession(a.bff.RequireAuthLevel(acr, maxAge)(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			u, _ := UserFrom(r.Context())
			json.NewEncoder(w).Encode(map[string]any{"acr": u.ACR(), "sub": u.Subject, "authTime": u.AuthTime().Unix()})
		}))))
	return a
}

var strong = []string{oidctest.ACRStrong}

// RequireAuthLevel answers 401 with RFC 9470's challenge, in the header
// and as JSON, until the session's acr and auth_time meet it.
func TestRequireAuthLevel(t *testing.T) {
	clock := &offsetClock{}
	op := testOP(t, oidctest.Config{Now: clock.Now})
	t.Run("acr", func(t *testing.T) {
		a := stepUpApp(t, op, []string{oidctest.ACRStrong, "urn:other"}, 0, func(o *Options) { o.Now = clock.Now })
		br := a.signIn(t)
		resp := br.get(a.URL + "/api/stepup")
		want := `Bearer error="insufficient_user_authentication", error_description="A stronger or more recent sign-in is required.", acr_values="` + oidctest.ACRStrong + ` urn:other"`
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
			t.Fatalf("/api/stepup = %d, WWW-Authenticate %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
		}
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body["error"] != "insufficient_user_authentication" || body["acr_values"] != oidctest.ACRStrong+" urn:other" || body["max_age"] != nil {
			t.Errorf("JSON = %v", body)
		}
	})
	t.Run("max_age", func(t *testing.T) {
		a := stepUpApp(t, op, nil, 5*time.Minute, func(o *Options) { o.Now = clock.Now })
		br := a.signIn(t)
		a.expect(t, br, "/api/stepup", 200, "just signed in")
		clock.Advance(6 * time.Minute)
		resp := br.get(a.URL + "/api/stepup")
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasSuffix(resp.Header.Get("WWW-Authenticate"), ", max_age=300") || body["max_age"] != float64(300) {
			t.Errorf("six minutes later: %d %q %v", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})
	t.Run("without_RequireSession", func(t *testing.T) {
		a := newApp(t, op, nil)
		a.route("GET /bare", a.bff.RequireAuthLevel(strong, 0)(http.NotFoundHandler()))
		if code, body := a.status(newBrowser(t), "GET", "/bare"); code != 401 || !strings.Contains(body, "unauthenticated") {
			t.Errorf("/bare = %d %s, want 401 unauthenticated", code, body)
		}
	})
	for name, args := range map[string]struct {
		acr    []string
		maxAge time.Duration
	}{
		"nothing": {nil, 0}, "empty_acr": {[]string{""}, 0}, "acr_quote": {[]string{`a"b`}, 0},
		"acr_space": {[]string{"a b"}, 0}, "negative_max_age": {nil, -time.Second},
	} {
		t.Run("panics_"+name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			newApp(t, op, nil).bff.RequireAuthLevel(args.acr, args.maxAge)
		})
	}
}

// A step-up sign-in of the same user replaces the session: a new session
// ID and the new ID token's claims; the old session and its index entry
// are gone. That holds too when the callback, reached from the provider's
// site, does not carry the SameSite=Strict session cookie, as in a real
// browser (found with panva's oidc-provider in Chromium): the session
// replaced is the one the browser had when the sign-in started.
func TestStepUpSameUser(t *testing.T) {
	for _, cookieAtCallback := range []bool{true, false} {
		t.Run(map[bool]string{true: "cookie_at_callback", false: "no_cookie_at_callback"}[cookieAtCallback], func(t *testing.T) {
			a := stepUpApp(t, testOP(t, oidctest.Config{}), strong, 0, nil)
			br, old := a.signInID(t)
			a.expect(t, br, "/api/stepup", 401, "before step-up")
			resp := br.send("GET", a.URL+"/auth/login?acr_values="+url.QueryEscape(oidctest.ACRStrong)+"&returnTo=/app")
			resp = br.send("GET", resp.Header.Get("Location"))
			if !cookieAtCallback {
				u, _ := url.Parse(a.URL)
				br.Jar.SetCookies(u, []*http.Cookie{{Name: a.bff.cfg.CookieName, Path: "/", MaxAge: -1}})
			}
			if resp, _ = br.follow(resp.Header.Get("Location")); resp.Request.URL.String() != a.URL+"/app" {
				t.Fatalf("step-up ended at %s", resp.Request.URL)
			}
			now, _ := a.sessionCookie(br)
			code, body := a.status(br, "GET", "/api/stepup")
			if code != 200 || !strings.Contains(body, `"acr":"`+oidctest.ACRStrong+`"`) || !strings.Contains(body, oidctest.DefaultUser.Subject) {
				t.Fatalf("after step-up: %d %s", code, body)
			}
			if now == old {
				t.Error("the session ID did not change")
			}
			if _, err := a.storeSession(old); err != errNotFound {
				t.Errorf("the old session: %v, want ended", err)
			}
			// The essential request goes alone: a provider may let
			// acr_values (a voluntary request, OIDC Core §5.5.1.1) replace
			// the claims parameter's acr, as panva's oidc-provider does,
			// and then keep the session's level without authenticating again.
			if got := a.op.LastAuthorizationRequest(); !strings.Contains(got.Get("claims"), `"essential":true`) || got.Has("acr_values") {
				t.Errorf("claims parameter %q and acr_values %q, want only an essential acr in claims", got.Get("claims"), got.Get("acr_values"))
			}
			infos, err := a.bff.Sessions(context.Background(), oidctest.DefaultUser.Subject)
			if err != nil || len(infos) != 1 || infos[0].Handle != recordName(now) {
				t.Errorf("Sessions = %v, %v; want only the new session", infos, err)
			}
		})
	}
}

// A step-up at the session limit replaces the browser's session and ends
// no other session of the user: the replaced one leaves room for the new
// one. Signing in as somebody else gets no such room: that user's limit
// holds.
func TestStepUpAtSessionLimit(t *testing.T) {
	bob := oidctest.User{Subject: "bob-0002", Username: "bob", Password: "bob", Name: "Bob", Email: "bob@example.com"}
	a := stepUpApp(t, testOP(t, oidctest.Config{Users: []oidctest.User{oidctest.DefaultUser, bob}}), strong, 0, func(o *Options) { o.MaxSessionsPerUser = 2 })
	phone, laptop := newBrowser(t), newBrowser(t)
	a.login(phone)
	a.login(laptop)
	old, _ := a.sessionCookie(laptop)
	resp, _ := laptop.follow(a.URL + "/auth/login?acr_values=" + url.QueryEscape(oidctest.ACRStrong) + "&returnTo=/app")
	if code, _ := a.status(laptop, "GET", "/api/stepup"); code != 200 || resp.Request.URL.Path != "/app" {
		t.Fatalf("step-up ended at %s, then /api/stepup = %d", resp.Request.URL, code)
	}
	if _, err := a.storeSession(old); err != errNotFound {
		t.Errorf("the replaced session: %v, want ended", err)
	}
	if !signedIn(t, a, phone) {
		t.Error("the step-up on the laptop ended the phone's session")
	}

	// A third browser, signed in as bob, signs in as alice: bob's session
	// makes no room in alice's two, so her oldest (the phone's) ends.
	third := newBrowser(t)
	third.follow(a.URL + "/auth/login?login_hint=bob&returnTo=/app")
	third.follow(a.URL + "/auth/login?returnTo=/app")
	infos, err := a.bff.Sessions(context.Background(), oidctest.DefaultUser.Subject)
	if err != nil || len(infos) != 2 || signedIn(t, a, phone) {
		t.Errorf("alice has %d sessions (%v), the phone's live: %v; want 2, the phone's ended", len(infos), err, signedIn(t, a, phone))
	}
}

// A step-up sign-in as somebody else is an ordinary new sign-in: the old
// user's session ends.
func TestStepUpOtherUser(t *testing.T) {
	bob := oidctest.User{Subject: "bob-0002", Username: "bob", Password: "bob", Name: "Bob", Email: "bob@example.com"}
	a := stepUpApp(t, testOP(t, oidctest.Config{Users: []oidctest.User{oidctest.DefaultUser, bob}}), strong, 0, nil)
	br, old := a.signInID(t)
	br.follow(a.URL + "/auth/login?login_hint=bob&acr_values=" + url.QueryEscape(oidctest.ACRStrong) + "&returnTo=/app")
	if code, body := a.status(br, "GET", "/api/stepup"); code != 200 || !strings.Contains(body, bob.Subject) {
		t.Fatalf("after signing in as bob: %d %s", code, body)
	}
	if _, err := a.storeSession(old); err != errNotFound {
		t.Errorf("alice's session: %v, want ended", err)
	}
	if infos, _ := a.bff.Sessions(context.Background(), oidctest.DefaultUser.Subject); len(infos) != 0 {
		t.Errorf("alice still has sessions: %v", infos)
	}
}

// A provider that ignores the requested level: with a voluntary
// acr_values the user is signed in at the level given, the way back says
// error=insufficient_user_authentication, and the route still answers 401
// (no loop); with an essential acr the sign-in is refused, the session is
// unchanged and the refused sign-in's refresh token revoked. An auth_time
// older than max_age (or none) is refused too.
func TestStepUpNotHonoured(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mb      func(*oidctest.Misbehavior)
		query   string
		refused bool
	}{
		{"voluntary_acr_ignored", func(m *oidctest.Misbehavior) { m.IgnoreACR, m.NoClaimsParameter = true, true },
			"acr_values=" + url.QueryEscape(oidctest.ACRStrong), false},
		{"essential_acr_ignored", func(m *oidctest.Misbehavior) { m.IgnoreACR = true },
			"acr_values=" + url.QueryEscape(oidctest.ACRStrong), true},
		{"auth_time_older_than_max_age", func(m *oidctest.Misbehavior) { m.AuthTimeAgo = time.Hour }, "max_age=600", true},
		{"no_auth_time_with_max_age", func(m *oidctest.Misbehavior) { m.OmitAuthTime = true }, "max_age=600", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := testOP(t, oidctest.Config{})
			op.Misbehave(tc.mb) // before discovery, which reads claims_parameter_supported
			a := stepUpApp(t, op, strong, 0, nil)
			br, old := a.signInID(t)
			revoked := op.Revocations()
			resp, _ := br.follow(a.URL + "/auth/login?" + tc.query + "&returnTo=/app")
			if got := resp.Request.URL.String(); got != a.URL+"/app?error=insufficient_user_authentication" {
				t.Fatalf("sign-in ended at %s, want /app?error=insufficient_user_authentication", got)
			}
			now, _ := a.sessionCookie(br)
			if (now == old) != tc.refused {
				t.Errorf("session replaced: %v, want %v", now != old, !tc.refused)
			}
			if !signedIn(t, a, br) {
				t.Error("signed out")
			}
			a.expect(t, br, "/api/stepup", 401, "")
			if tc.refused && op.Revocations() != revoked+1 {
				t.Errorf("revocations %d, want the refused sign-in's refresh token revoked", op.Revocations()-revoked)
			}
		})
	}
	t.Run("max_age_honoured", func(t *testing.T) {
		a := newApp(t, testOP(t, oidctest.Config{}), nil)
		br := newBrowser(t)
		if resp, _ := br.follow(a.URL + "/auth/login?max_age=0&returnTo=/app"); resp.Request.URL.String() != a.URL+"/app" {
			t.Fatalf("max_age=0 with a fresh authentication ended at %s", resp.Request.URL)
		}
	})
}

// acr_values in AuthParams are a hint: sent on every sign-in, not asked for
// as essential, and a sign-in at another level is not refused.
func TestStaticACRValuesAreAHint(t *testing.T) {
	op := testOP(t, oidctest.Config{})
	op.Misbehave(func(m *oidctest.Misbehavior) { m.IgnoreACR = true })
	a := newApp(t, op, func(o *Options) { o.AuthParams = map[string]string{"acr_values": oidctest.ACRStrong} })
	br := newBrowser(t)
	a.login(br) // lands on /app, without an error
	if got := op.LastAuthorizationRequest(); got.Get("acr_values") != oidctest.ACRStrong || got.Has("claims") {
		t.Errorf("authorization request = %v", got)
	}
}
