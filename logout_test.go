package bff

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/keyset"
	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// Tests of logout (issue 5): RP-initiated, back-channel, and "sign out
// everywhere".

var bob = oidctest.User{Subject: "bob-0002", Username: "bob", Password: "bob", Name: "Bob Example", Email: "bob@example.com"}

func twoUsers() oidctest.Config {
	return oidctest.Config{Users: []oidctest.User{oidctest.DefaultUser, bob}}
}

// loginAs signs a new browser in as u.
func loginAs(a *app, u oidctest.User) *browser {
	a.t.Helper()
	a.op.SetDefaultUser(u)
	defer a.op.SetDefaultUser(oidctest.DefaultUser)
	br := newBrowser(a.t)
	a.login(br)
	return br
}

func (a *app) logout(br *browser, headers ...string) *http.Response {
	a.t.Helper()
	resp := br.send("POST", a.URL+"/auth/logout", headers...)
	return resp
}

func (a *app) backchannel(token string) (int, http.Header, string) {
	a.t.Helper()
	r := newBrowser(a.t).Do("POST", a.URL+"/auth/backchannel-logout", url.Values{"logout_token": {token}}.Encode(),
		"Content-Type", "application/x-www-form-urlencoded")
	return r.StatusCode, r.Header, r.Body
}

// expectBackchannel sends a back-channel logout and fails the test at
// once unless it answers want; when says at which step ("": none needed).
func (a *app) expectBackchannel(t testing.TB, token string, want int, when string) {
	t.Helper()
	if code, _, body := a.backchannel(token); code != want {
		if when != "" {
			when += ": "
		}
		t.Fatalf("%sback-channel logout = %d %s, want %d", when, code, body, want)
	}
}

func signedIn(t testing.TB, a *app, br *browser) bool {
	t.Helper()
	code, body := a.status(br, "GET", "/api/me")
	if code != 200 && code != 401 {
		t.Fatalf("/api/me = %d %s", code, body)
	}
	return code == 200
}

// expectSignedIn fails the test at once, saying why, unless the browser's
// session is alive (want) or ended (!want).
func expectSignedIn(t testing.TB, a *app, br *browser, want bool, why string) {
	t.Helper()
	if signedIn(t, a, br) != want {
		t.Fatal(why)
	}
}

func TestLogoutCrossSitePOSTRefused(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br := a.signIn(t)
	for _, h := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "https://evil.example"},
	} {
		resp := a.logout(br, h...)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("logout with %s: %s = %d, want 403", h[0], h[1], resp.StatusCode)
		}
	}
	if !signedIn(t, a, br) || a.op.Revocations() != 0 {
		t.Fatal("a cross-site logout ended the session")
	}
}

func TestLogoutByGETDoesNothing(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br := a.signIn(t)
	code, _ := a.status(br, "GET", "/auth/logout")
	if code != http.StatusMethodNotAllowed {
		t.Errorf("GET /auth/logout = %d, want 405", code)
	}
	if !signedIn(t, a, br) || a.op.Revocations() != 0 || a.op.EndSessions() != 0 {
		t.Fatal("GET /auth/logout ended the session")
	}
}

func TestLogoutRevokesAndRedirectsToEndSession(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br, id := a.signInID(t)
	s := mustSession(t, a, id)
	if !a.op.RefreshTokenValid(s.rec.RefreshToken) {
		t.Fatal("refresh token not valid before logout")
	}

	resp := a.logout(br)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d", resp.StatusCode)
	}
	if n := a.op.Revocations(); n != 1 {
		t.Errorf("revocations = %d, want 1", n)
	}
	if a.op.RefreshTokenValid(s.rec.RefreshToken) {
		t.Error("the refresh token is still valid at the provider")
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != a.op.Endpoint("/end-session") {
		t.Fatalf("logout redirects to %q, want the end_session_endpoint", resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("id_token_hint") != s.rec.IDToken || q.Get("client_id") != a.op.ClientID() ||
		q.Get("post_logout_redirect_uri") != a.URL+"/auth/logout/callback" || q.Get("state") == "" {
		t.Fatalf("end-session query = %v", q)
	}
	if _, ok := a.sessionCookie(br); ok {
		t.Error("session cookie not cleared")
	}
	if _, err := a.storeSession(id); err != errNotFound {
		t.Errorf("session record after logout: %v", err)
	}
	// The provider sends the browser back with the state: 303 to "/".
	resp = br.send("GET", loc.String())
	back := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(back, a.URL+"/auth/logout/callback?") {
		t.Fatalf("end-session = %d to %q", resp.StatusCode, back)
	}
	resp = br.send("GET", back)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("logout callback = %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	if a.op.EndSessions() != 1 {
		t.Errorf("end sessions at the provider = %d", a.op.EndSessions())
	}
	// The state is single use: the same return again is refused.
	resp = br.send("GET", back)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("second logout callback = %d, want 400", resp.StatusCode)
	}
	// Re-sending the old cookie does not bring the session back.
	br.Jar.SetCookies(resp.Request.URL, []*http.Cookie{{Name: "__Host-bff", Value: id, Path: "/", Secure: true}})
	expectSignedIn(t, a, br, false, "session alive after logout")
}

func TestLogoutCallbackWrongState(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	for _, tc := range []struct {
		name  string
		state func(real string) string
	}{
		{"wrong state", func(string) string { return "AAAAAAAAAAAAAAAAAAAAAAAAAA" }},
		{"no state", func(string) string { return "" }},
		{"state with suffix", func(s string) string { return s + "x" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := a.signIn(t)
			resp := a.logout(br)
			loc, _ := url.Parse(resp.Header.Get("Location"))
			st := loc.Query().Get("state")
			code, _ := a.status(br, "GET", "/auth/logout/callback?state="+url.QueryEscape(tc.state(st)))
			if code != http.StatusBadRequest {
				t.Fatalf("logout callback = %d, want 400", code)
			}
		})
	}
	t.Run("state sealed by another app", func(t *testing.T) {
		other := newApp(t, a.op, func(o *Options) { o.SecretKeys = [][]byte{[]byte("another key of thirty-two bytes!")} })
		br := other.signIn(t)
		resp := other.logout(br)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		code, _ := a.status(br, "GET", "/auth/logout/callback?state="+url.QueryEscape(loc.Query().Get("state")))
		if code != http.StatusBadRequest {
			t.Fatalf("logout callback = %d, want 400", code)
		}
	})
	t.Run("state expired", func(t *testing.T) {
		clock := newFrozenClock()
		a := newApp(t, a.op, func(o *Options) { o.Now = clock.Now })
		br := a.signIn(t)
		resp := a.logout(br)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		clock.Advance(a.bff.cfg.LoginTimeout + time.Second)
		code, _ := a.status(br, "GET", "/auth/logout/callback?state="+url.QueryEscape(loc.Query().Get("state")))
		if code != http.StatusBadRequest {
			t.Fatalf("logout callback = %d, want 400", code)
		}
	})
}

func TestLogoutWithoutEndSessionEndpoint(t *testing.T) {
	op := testOP(t, oidctest.Config{})
	op.Misbehave(func(m *oidctest.Misbehavior) { m.NoEndSession = true })
	a := newApp(t, op, func(o *Options) { o.PostLogoutRedirect = "/bye" })
	br := a.signIn(t)
	resp := a.logout(br)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/bye" {
		t.Fatalf("logout = %d to %q, want 303 to /bye", resp.StatusCode, resp.Header.Get("Location"))
	}
	if signedIn(t, a, br) || op.Revocations() != 1 {
		t.Fatalf("signed in after logout, or revocations = %d", op.Revocations())
	}
}

// A revocation that fails (error answer, or the provider unreachable) is
// logged and never blocks the logout.
func TestLogoutRevocationFailureDoesNotBlock(t *testing.T) {
	op := oidctest.New(oidctest.Config{})
	var revokeFails atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if revokeFails.Load() && strings.HasSuffix(r.URL.Path, "/revoke") {
			http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
			return
		}
		op.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	op.SetIssuer(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	a := newApp(t, op, nil)

	t.Run("revocation endpoint answers 500", func(t *testing.T) {
		br := a.signIn(t)
		revokeFails.Store(true)
		defer revokeFails.Store(false)
		resp := a.logout(br)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), op.Endpoint("/end-session")) {
			t.Fatalf("logout = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		expectSignedIn(t, a, br, false, "session alive after logout")
	})
	t.Run("provider down", func(t *testing.T) {
		br := a.signIn(t)
		srv.Close()
		start := time.Now()
		resp := a.logout(br)
		t.Logf("logout with the provider down took %v", time.Since(start))
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), op.Endpoint("/end-session")) {
			t.Fatalf("logout = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		expectSignedIn(t, a, br, false, "session alive after logout")
	})
}

func TestBackchannelLogoutSid(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br1, br2 := newBrowser(t), newBrowser(t)
	a.login(br1)
	a.login(br2)
	s1 := a.browserSession(br1)
	id2, _ := a.sessionCookie(br2)
	s2, _ := a.storeSession(id2)
	if s1.rec.SID == "" || s1.rec.SID == s2.rec.SID {
		t.Fatalf("sids %q, %q: want two distinct", s1.rec.SID, s2.rec.SID)
	}
	code, hdr, body := a.backchannel(a.op.LogoutToken(oidctest.DefaultUser.Subject, s1.rec.SID, nil))
	if code != 200 || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("back-channel logout = %d %s (Cache-Control %q)", code, body, hdr.Get("Cache-Control"))
	}
	if signedIn(t, a, br1) {
		t.Error("the session of the sid is still alive")
	}
	if !signedIn(t, a, br2) {
		t.Error("the user's other session ended")
	}
	// sid alone (no sub) works too.
	a.expectBackchannel(t, a.op.LogoutToken("", s2.rec.SID, nil), 200, "sid only")
	if signedIn(t, a, br2) {
		t.Error("the session of the sid is still alive")
	}
}

// A sid with a sub that is not its session's does not end it.
func TestBackchannelLogoutSidOfAnotherSub(t *testing.T) {
	a := newApp(t, testOP(t, twoUsers()), nil)
	alice := loginAs(a, oidctest.DefaultUser)
	s := a.browserSession(alice)
	a.expectBackchannel(t, a.op.LogoutToken(bob.Subject, s.rec.SID, nil), 200, "")
	expectSignedIn(t, a, alice, true, "a logout token for bob ended alice's session")
}

func TestBackchannelLogoutSub(t *testing.T) {
	a := newApp(t, testOP(t, twoUsers()), nil)
	alice1 := loginAs(a, oidctest.DefaultUser)
	alice2 := loginAs(a, oidctest.DefaultUser)
	bobBr := loginAs(a, bob)
	code, _, body := a.backchannel(a.op.LogoutToken(oidctest.DefaultUser.Subject, "", nil))
	if code != 200 {
		t.Fatalf("back-channel logout = %d %s", code, body)
	}
	if signedIn(t, a, alice1) || signedIn(t, a, alice2) {
		t.Error("a session of the user is still alive")
	}
	if !signedIn(t, a, bobBr) {
		t.Error("another user's session ended")
	}
}

// Every invalid logout token gets 400 {"error":"invalid_request"} with
// Cache-Control: no-store, and ends nothing.
func TestBackchannelLogoutInvalidTokens(t *testing.T) {
	op := testOP(t, twoUsers())
	logs := &logBuffer{}
	a := newApp(t, op, func(o *Options) { o.Logger = logs.Logger() })
	alice := loginAs(a, oidctest.DefaultUser)
	bobBr := loginAs(a, bob)
	s := a.browserSession(alice)
	sub, sid := oidctest.DefaultUser.Subject, s.rec.SID

	claims := func(mutate func(map[string]any)) map[string]any {
		var c map[string]any
		op.LogoutToken(sub, sid, func(m map[string]any) {
			if mutate != nil {
				mutate(m)
			}
			c = m
		})
		return c
	}
	// A token that was accepted once (for nobody's session), whose jti a
	// new token for alice reuses.
	usedJTI := claims(nil)
	usedJTI["sub"], usedJTI["sid"] = "nobody", "nobody-sid"
	a.expectBackchannel(t, op.SignJWT(usedJTI, oidctest.SignOptions{Typ: "logout+jwt"}), 200, "first use")
	valid := op.LogoutToken(sub, sid, nil)
	a.expectBackchannel(t, op.LogoutToken("nobody", "", nil), 200, "valid token refused")

	const ev = "http://schemas.openid.net/event/backchannel-logout"
	now := time.Now()
	events := func(v any) func(map[string]any) {
		return func(m map[string]any) { m["events"] = v }
	}
	typed := func(typ string) string {
		return op.SignJWT(claims(nil), oidctest.SignOptions{Typ: typ})
	}
	cases := []struct {
		name  string
		token string
	}{
		{"bad signature", op.SignJWT(claims(nil), oidctest.SignOptions{UnknownKey: true, Typ: "logout+jwt"})},
		{"alg none", op.SignJWT(claims(nil), oidctest.SignOptions{AlgNone: true, Typ: "logout+jwt"})},
		{"nonce present", op.LogoutToken(sub, sid, func(m map[string]any) { m["nonce"] = "n" })},
		{"nonce null", op.LogoutToken(sub, sid, func(m map[string]any) { m["nonce"] = nil })},
		{"events missing", op.LogoutToken(sub, sid, func(m map[string]any) { delete(m, "events") })},
		{"wrong event", op.LogoutToken(sub, sid, events(map[string]any{"http://schemas.openid.net/event/other": map[string]any{}}))},
		{"event name in upper case", op.LogoutToken(sub, sid, events(map[string]any{strings.ToUpper(ev): map[string]any{}}))},
		{"event value null", op.LogoutToken(sub, sid, events(map[string]any{ev: nil}))},
		{"event value an array", op.LogoutToken(sub, sid, events(map[string]any{ev: []any{}}))},
		{"event value a string", op.LogoutToken(sub, sid, events(map[string]any{ev: "logout"}))},
		{"events null", op.LogoutToken(sub, sid, events(nil))},
		{"events an array", op.LogoutToken(sub, sid, events([]any{ev}))},
		{"wrong aud", op.LogoutToken(sub, sid, func(m map[string]any) { m["aud"] = "another-client" })},
		{"wrong iss", op.LogoutToken(sub, sid, func(m map[string]any) { m["iss"] = "https://evil.example" })},
		{"expired", op.LogoutToken(sub, sid, func(m map[string]any) { m["exp"] = now.Add(-time.Minute).Unix() })},
		{"missing iat", op.LogoutToken(sub, sid, func(m map[string]any) { delete(m, "iat") })},
		{"iat not a number", op.LogoutToken(sub, sid, func(m map[string]any) { m["iat"] = now.Format(time.RFC3339) })},
		{"iat a year ahead", op.LogoutToken(sub, sid, func(m map[string]any) {
			m["iat"], m["exp"] = now.AddDate(1, 0, 0).Unix(), now.AddDate(1, 0, 0).Add(2*time.Minute).Unix()
		})},
		{"iat two minutes ahead", op.LogoutToken(sub, sid, func(m map[string]any) { m["iat"] = now.Add(2 * time.Minute).Unix() })},
		{"iat 11 minutes old, exp ten years ahead", op.LogoutToken(sub, sid, func(m map[string]any) {
			m["iat"], m["exp"] = now.Add(-11*time.Minute).Unix(), now.AddDate(10, 0, 0).Unix()
		})},
		{"missing exp, iat 3 minutes old", op.LogoutToken(sub, sid, func(m map[string]any) {
			delete(m, "exp")
			m["iat"] = now.Add(-3 * time.Minute).Unix()
		})},
		{"nbf ahead", op.LogoutToken(sub, sid, func(m map[string]any) { m["nbf"] = now.Add(5 * time.Minute).Unix() })},
		{"replayed jti", op.LogoutToken(sub, sid, func(m map[string]any) { m["jti"] = usedJTI["jti"] })},
		{"missing jti", op.LogoutToken(sub, sid, func(m map[string]any) { delete(m, "jti") })},
		{"jti not a string", op.LogoutToken(sub, sid, func(m map[string]any) { m["jti"] = 7 })},
		{"neither sub nor sid", op.LogoutToken("", "", nil)},
		{"sid not a string", op.LogoutToken("", "", func(m map[string]any) { m["sid"] = 42 })},
		{"typ of an access token", typed("at+jwt")},
		{"typ of another SET", typed("secevent+jwt")},
		{"tampered payload", tamper(valid)},
		{"garbage", "garbage"},
		{"empty", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			warned := strings.Count(logs.String(), "level=WARN msg=\"bff: back-channel logout refused\" reason=")
			code, hdr, body := a.backchannel(tc.token)
			if strings.Count(logs.String(), "level=WARN msg=\"bff: back-channel logout refused\" reason=") != warned+1 {
				t.Errorf("the refusal was not logged at Warn with its reason")
			}
			m := jsonBody(t, body)
			if code != http.StatusBadRequest || len(m) != 1 || m["error"] != "invalid_request" {
				t.Errorf("= %d %s, want 400 {\"error\":\"invalid_request\"}", code, body)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", hdr.Get("Cache-Control"))
			}
			if !signedIn(t, a, alice) || !signedIn(t, a, bobBr) {
				t.Fatal("an invalid logout token ended a session")
			}
		})
	}
	// The genuine token still works afterwards: the cases above were
	// refused for what they are, not because the endpoint is broken.
	if code, _, _ := a.backchannel(valid); code != 200 || signedIn(t, a, alice) {
		t.Fatalf("valid token = %d", code)
	}
	// And it cannot be replayed.
	a.expectBackchannel(t, valid, http.StatusBadRequest, "replayed valid token")
}

// Logout tokens as real providers send them: ory hydra sends no exp and no
// sub (iss, aud, iat, jti, sid, events; typ JWT), Auth0 and Keycloak typ
// JWT; explicit typing is logout+jwt, also with its application/ prefix.
func TestBackchannelLogoutAccepts(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	const ev = "http://schemas.openid.net/event/backchannel-logout"
	for _, tc := range []struct {
		name  string
		token func(sub, sid string) string
	}{
		{"hydra", func(_, sid string) string {
			return a.op.SignJWT(map[string]any{"iss": a.op.Issuer(), "aud": []string{a.op.ClientID()}, "iat": time.Now().Unix(),
				"jti": "0f0d8f6e-4a1a-4c36-9c1e-7d2b1f3a9c55", "events": map[string]any{ev: map[string]any{}}, "sid": sid},
				oidctest.SignOptions{Typ: "JWT"})
		}},
		{"no typ", func(sub, sid string) string {
			return a.op.SignJWT(claimsOf(a.op, sub, sid), oidctest.SignOptions{NoTyp: true})
		}},
		{"typ application/logout+jwt", func(sub, sid string) string {
			return a.op.SignJWT(claimsOf(a.op, sub, sid), oidctest.SignOptions{Typ: "application/logout+jwt"})
		}},
		{"exp ten years ahead", func(sub, sid string) string {
			return a.op.LogoutToken(sub, sid, func(m map[string]any) { m["exp"] = time.Now().AddDate(10, 0, 0).Unix() })
		}},
		{"iat a little ahead (clock skew)", func(sub, sid string) string {
			return a.op.LogoutToken(sub, sid, func(m map[string]any) { m["iat"] = time.Now().Add(30 * time.Second).Unix() })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br, id := a.signInID(t)
			s, _ := a.storeSession(id)
			a.expectBackchannel(t, tc.token(s.rec.Subject, s.rec.SID), 200, "")
			expectSignedIn(t, a, br, false, "the session of the sid is still alive")
		})
	}
}

// claimsOf returns the claims of a valid logout token.
func claimsOf(op *oidctest.Provider, sub, sid string) map[string]any {
	var c map[string]any
	op.LogoutToken(sub, sid, func(m map[string]any) { c = m })
	return c
}

// A token's jti is remembered as long as the token would be accepted, and
// no longer: at most 10 minutes after its iat (plus a minute), however far
// its exp; after that, the token itself is refused as too old.
func TestBackchannelLogoutReplayEntryBounded(t *testing.T) {
	e := newEnv(t, longTokens, nil)
	tok := e.op.LogoutToken("nobody", "", func(m map[string]any) { m["exp"] = e.clock.Now().AddDate(10, 0, 0).Unix() })
	e.a.expectBackchannel(t, tok, 200, "")
	for _, exp := range e.store.expiries("jti:") {
		if exp.After(e.clock.Now().Add(11 * time.Minute)) {
			t.Errorf("the replay entry lives until %v, %v from now", exp, exp.Sub(e.clock.Now()))
		}
	}
	if e.store.writes("jti") != 1 {
		t.Fatalf("%d replay entries written, want 1", e.store.writes("jti"))
	}
	e.clock.Advance(11*time.Minute + time.Second)
	e.a.expectBackchannel(t, tok, http.StatusBadRequest, "the same token 11 minutes later")
}

// A genuine token signed with a key the provider has just rotated in, while
// the key refetch is rate-limited: 503 with Retry-After (the provider
// retries), not 400 (which would refuse it for good); once the refetch is
// allowed, the same token ends the session.
func TestBackchannelLogoutKeyRotatedWhileRateLimited(t *testing.T) {
	e := newEnv(t, longTokens, nil).signIn()
	s := e.a.browserSession(e.br)
	e.op.RotateKeys()
	tok := e.op.LogoutToken(s.rec.Subject, s.rec.SID, nil)
	code, hdr, body := e.a.backchannel(tok)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("= %d %s (Retry-After %q), want 503 with Retry-After", code, body, hdr.Get("Retry-After"))
	}
	expectSignedIn(t, e.a, e.br, true, "the session ended on a token that was not verified")
	e.clock.Advance(keyset.DefaultMinRefetchInterval)
	e.a.expectBackchannel(t, tok, 200, "the provider's retry")
	expectSignedIn(t, e.a, e.br, false, "the session is still alive")
}

// tamper changes the payload of a signed JWT, keeping its signature.
func tamper(jwt string) string {
	parts := strings.Split(jwt, ".")
	p := []byte(parts[1])
	p[len(p)/2] ^= 1
	if p[len(p)/2] == '-' || p[len(p)/2] == '_' {
		p[len(p)/2] = 'A'
	}
	return parts[0] + "." + string(p) + "." + parts[2]
}

// Forged tokens with random kids do not make the BFF refetch the provider's
// key set for each of them.
func TestBackchannelLogoutForgedKidsRateLimited(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br := a.signIn(t)
	before := a.op.JWKSFetches()
	for i := range 50 {
		tok := a.op.SignJWT(map[string]any{
			"iss": a.op.Issuer(), "aud": a.op.ClientID(), "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
			"jti": "j" + strings.Repeat("x", i), "sub": oidctest.DefaultUser.Subject,
			"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
		}, oidctest.SignOptions{UnknownKey: true, KID: "kid-" + strings.Repeat("k", i+1), Typ: "logout+jwt"})
		// Refused; 503 while the refetch is rate-limited, since a key
		// rotated in just now is indistinguishable from a forged kid.
		if code, _, _ := a.backchannel(tok); code != http.StatusBadRequest && code != http.StatusServiceUnavailable {
			t.Fatalf("forged token %d = %d", i, code)
		}
	}
	if n := a.op.JWKSFetches() - before; n > 1 {
		t.Fatalf("50 forged tokens caused %d key-set fetches, want at most 1", n)
	}
	expectSignedIn(t, a, br, true, "a forged token ended the session")
}

// With two instances on one Redis, a back-channel logout received by A ends
// the session a browser is using on B, at once.
func TestBackchannelLogoutRedisAcrossInstances(t *testing.T) {
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})
	apps := redisApps(t, op, rs, 2, nil)
	a, b := apps[0], apps[1]
	br, id := a.signInID(t)
	s, _ := b.storeSession(id)
	waitHealthy(t, b)
	if !signedIn(t, b, br) || !signedIn(t, b, br) { // now cached on B
		t.Fatal("not signed in on B")
	}
	a.expectBackchannel(t, op.LogoutToken(oidctest.DefaultUser.Subject, s.rec.SID, nil), 200, "on A")
	d := expect401Within(t, b, br, "/api/me", 100*time.Millisecond)
	t.Logf("back-channel logout on A seen on B after %v", d)
	// The same token replayed to B (shared replay cache) is refused.
	assertNoKEYS(t, rs)
}

// The same jti sent to two instances is accepted once: the replay cache is
// shared in Redis.
func TestBackchannelLogoutRedisReplayShared(t *testing.T) {
	rs := redistest.Start(t)
	op := testOP(t, oidctest.Config{})
	apps := redisApps(t, op, rs, 2, nil)
	tok := op.LogoutToken("nobody", "", nil)
	apps[0].expectBackchannel(t, tok, 200, "first")
	if code, _, _ := apps[1].backchannel(tok); code != http.StatusBadRequest {
		t.Fatalf("replay on the other instance = %d, want 400", code)
	}
}

// The store fails while a verified logout token is being applied: the
// answer is 503, and the provider's retry of the same token is not refused
// as a replay — it ends the session.
func TestBackchannelLogoutRetryAfterStoreFailure(t *testing.T) {
	fs := newSpyStore(t)
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.Store = fs })
	br, id := a.signInID(t)
	s, _ := a.storeSession(id)
	tok := a.op.LogoutToken(oidctest.DefaultUser.Subject, s.rec.SID, nil)
	fs.failNext("delete", 1)
	a.expectBackchannel(t, tok, http.StatusServiceUnavailable, "during a store failure")
	testsupport.WaitUntil(t, 5*time.Second, "the store's circuit breaker to close", func() bool { return a.bff.store.breaker.allow() == nil })
	expectSignedIn(t, a, br, true, "the session ended though the logout failed")
	a.expectBackchannel(t, tok, 200, "the provider's retry")
	expectSignedIn(t, a, br, false, "the session is still alive after the retry")
}

// Options.ProviderLogout: back to the app (default), to the provider's
// end-session endpoint without a way back (a client that cannot register
// a post-logout redirect URI), or not to the provider at all. The refresh
// token is revoked either way, and no logout cookie is ever set.
func TestProviderLogoutModes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     ProviderLogout
		provider bool // the browser goes to the end-session endpoint
		back     bool // with post_logout_redirect_uri and state
	}{
		{"redirect_back", ProviderLogoutRedirectBack, true, true},
		{"no_return", ProviderLogoutNoReturn, true, false},
		{"skip", ProviderLogoutSkip, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.ProviderLogout, o.PostLogoutRedirect = tc.mode, "/bye" })
			br := a.signIn(t)
			resp := a.logout(br)
			for _, c := range resp.Cookies() {
				if c.Name != a.bff.cfg.CookieName || c.MaxAge >= 0 {
					t.Errorf("logout set cookie %s (max-age %d)", c.Name, c.MaxAge)
				}
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			atProvider := loc.Scheme+"://"+loc.Host+loc.Path == a.op.Endpoint("/end-session")
			q := loc.Query()
			switch {
			case atProvider != tc.provider:
				t.Fatalf("logout went to %s", loc)
			case !tc.provider && loc.String() != "/bye":
				t.Fatalf("logout went to %s, want /bye", loc)
			case tc.provider && (q.Get("id_token_hint") == "" || q.Get("client_id") != a.op.ClientID()):
				t.Errorf("end-session query %v lacks id_token_hint or client_id", q)
			case q.Has("post_logout_redirect_uri") != tc.back || q.Has("state") != tc.back:
				t.Errorf("end-session query %v: way back %v, want %v", q, q.Has("post_logout_redirect_uri"), tc.back)
			}
			if a.op.Revocations() != 1 || signedIn(t, a, br) {
				t.Errorf("revocations %d, still signed in %v", a.op.Revocations(), signedIn(t, a, br))
			}
			if tc.provider {
				r := br.send("GET", loc.String())
				if a.op.EndSessions() != 1 || (r.StatusCode == http.StatusFound) != tc.back {
					t.Errorf("end-session: %d, ended %d", r.StatusCode, a.op.EndSessions())
				}
			}
		})
	}
}
