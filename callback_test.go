package bff

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/record"
	"github.com/gobff/bff/internal/redistest"
)

// editQuery returns u with its query changed by f.
func editQuery(t testing.TB, u string, f func(url.Values)) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	f(q)
	p.RawQuery = q.Encode()
	return p.String()
}

// jsonError reads an error response's JSON body.
func jsonError(t testing.TB, resp *http.Response) (code, desc, body string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var v struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON (body %q)", ct, b)
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Error == "" {
		t.Errorf("body %q is not a JSON error", b)
	}
	return v.Error, v.Description, string(b)
}

// setsCookie reports whether resp sets (or clears) the named cookie.
func setsCookie(resp *http.Response, name string) bool {
	return slices.ContainsFunc(resp.Cookies(), func(c *http.Cookie) bool { return c.Name == name })
}

// TestCallbackChecks runs every sign-in check of SECURITY.md as an attack on
// a browser that already has a session. Each attack must fail with an error
// response, set no session cookie, store no session, and leave the
// browser's session as it was.
func TestCallbackChecks(t *testing.T) {
	visit := func(e *env) *http.Response { return e.br.get(e.a.startLogin(e.br)) }
	cases := []struct {
		name      string
		misbehave func(*oidctest.Misbehavior) // set after the first sign-in, before the attack
		// attack defaults to a whole sign-in with the provider
		// misbehaving; it returns the callback's response. It may
		// update *sid when the browser's session legitimately changes.
		attack func(e *env, sid *string) *http.Response
		status int    // default 400
		desc   string // part of error_description
	}{
		{name: "no_login_cookie", desc: "No sign-in is in progress",
			attack: func(e *env, _ *string) *http.Response {
				cb := e.a.startLogin(e.br)
				for _, c := range e.a.txCookies(e.br) {
					e.a.setCookie(e.br, c.Name, "")
				}
				return e.br.get(cb)
			}},
		{name: "state_replayed", desc: "already used",
			attack: func(e *env, sid *string) *http.Response {
				cb := e.a.startLogin(e.br)
				tx := e.a.txCookies(e.br)
				if len(tx) != 1 {
					e.t.Fatalf("%d transaction cookies", len(tx))
				}
				resp := e.br.send("GET", cb)
				if resp.StatusCode != http.StatusSeeOther {
					e.t.Fatalf("first callback = %d", resp.StatusCode)
				}
				*sid, _ = e.a.sessionCookie(e.br)
				e.a.setCookie(e.br, tx[0].Name, tx[0].Value) // an attacker who kept the cookie
				grants := e.op.CodeGrants()
				resp = e.br.get(cb)
				if e.op.CodeGrants() != grants {
					e.t.Error("the replayed code was sent to the provider")
				}
				return resp
			}},
		{name: "code_from_other_browser", desc: "No sign-in is in progress",
			attack: func(e *env, _ *string) *http.Response {
				attacker := newBrowser(e.t)
				cb := e.a.startLogin(attacker) // login CSRF: the attacker's callback URL
				grants := e.op.CodeGrants()
				resp := e.br.get(cb)
				if e.op.CodeGrants() != grants {
					e.t.Error("another browser's code was redeemed")
				}
				return resp
			}},
		{name: "code_injection_pkce", desc: "refused the sign-in code",
			attack: func(e *env, _ *string) *http.Response {
				attacker := newBrowser(e.t)
				stolen, _ := url.Parse(e.a.startLogin(attacker))
				cb := e.a.startLogin(e.br)
				return e.br.get(editQuery(e.t, cb, func(q url.Values) { q.Set("code", stolen.Query().Get("code")) }))
			}},
		{name: "login_cookie_tampered", desc: "cookie is invalid",
			attack: func(e *env, _ *string) *http.Response {
				cb := e.a.startLogin(e.br)
				c := e.a.txCookies(e.br)[0]
				v := []byte(c.Value)
				if i := len(v) / 2; v[i] != 'A' { // still base64url, one byte changed
					v[i] = 'A'
				} else {
					v[i] = 'B'
				}
				e.a.setCookie(e.br, c.Name, string(v))
				return e.br.get(cb)
			}},
		{name: "state_mismatch_cookie_of_other_login", desc: "cookie is invalid",
			attack: func(e *env, _ *string) *http.Response {
				cb1 := e.a.startLogin(e.br)
				cb2 := e.a.startLogin(e.br)
				p1, _ := url.Parse(cb1)
				p2, _ := url.Parse(cb2)
				s1, _ := txSlot(p1.Query().Get("state"))
				s2, _ := txSlot(p2.Query().Get("state"))
				c1, _ := e.br.Cookie(e.a.URL, e.a.bff.txName(s1))
				// The first login's sealed transaction, under the second's name.
				e.a.setCookie(e.br, e.a.bff.txName(s2), c1.Value)
				return e.br.get(cb2)
			}},
		{name: "state_missing", desc: "no valid state",
			attack: func(e *env, _ *string) *http.Response {
				cb := e.a.startLogin(e.br)
				return e.br.get(editQuery(e.t, cb, func(q url.Values) { q.Del("state") }))
			}},
		{name: "login_expired", desc: "took too long",
			attack: func(e *env, _ *string) *http.Response {
				cb := e.a.startLogin(e.br)
				e.clock.Advance(10*time.Minute + time.Second) // default LoginTimeout
				return e.br.get(cb)
			}},
		{name: "iss_param_other_issuer", desc: "another identity provider",
			misbehave: func(m *oidctest.Misbehavior) { m.IssParam = "https://evil.example" }},
		{name: "iss_param_twice", desc: "another identity provider",
			attack: func(e *env, _ *string) *http.Response {
				cb := e.a.startLogin(e.br)
				return e.br.get(editQuery(e.t, cb, func(q url.Values) { q.Add("iss", "https://evil.example") }))
			}},
		{name: "iss_param_missing_when_advertised", desc: "lacks the issuer",
			misbehave: func(m *oidctest.Misbehavior) { m.IssParam = "-" }},
		{name: "idp_error_access_denied", desc: "(access_denied)",
			attack: func(e *env, _ *string) *http.Response {
				cb := e.a.startLogin(e.br)
				return e.br.get(editQuery(e.t, cb, func(q url.Values) {
					q.Del("code")
					q.Set("error", "access_denied")
					q.Set("error_description", "the user said no")
				}))
			}},
		{name: "idp_error_unknown_code_not_echoed", desc: "(unknown_error)",
			attack: func(e *env, _ *string) *http.Response {
				cb := e.a.startLogin(e.br)
				resp := e.br.get(editQuery(e.t, cb, func(q url.Values) { q.Set("error", "<script>alert(1)</script>") }))
				b, _ := io.ReadAll(resp.Body)
				if strings.Contains(string(b), "<script") || strings.Contains(string(b), "alert") {
					e.t.Errorf("the provider's error code reached the page: %s", b)
				}
				resp.Body = io.NopCloser(strings.NewReader(string(b)))
				return resp
			}},
		{name: "missing_code", desc: "no code",
			attack: func(e *env, _ *string) *http.Response {
				cb := e.a.startLogin(e.br)
				return e.br.get(editQuery(e.t, cb, func(q url.Values) { q.Del("code") }))
			}},
		{name: "wrong_nonce", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.WrongNonce = true }},
		{name: "missing_nonce", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.OmitNonce = true }},
		{name: "missing_sub", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.OmitSub = true }},
		{name: "missing_iat", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.OmitIat = true }},
		{name: "extra_audience_wrong_azp", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.ExtraAudience, m.AZP = "other-client", "other-client" }},
		{name: "extra_audience_no_azp", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.ExtraAudience, m.OmitAZP = "other-client", true }},
		{name: "azp_not_client", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.AZP = "other-client" }},
		{name: "bad_at_hash", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.BadAtHash = true }},
		{name: "wrong_id_token_issuer", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.IDTokenIssuer = "https://evil.example" }},
		{name: "expired_id_token", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.ExpiredIDToken = true }},
		{name: "bad_signature_unknown_key", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.SignWithUnknownKey = true }},
		{name: "alg_none", desc: "ID token failed verification",
			misbehave: func(m *oidctest.Misbehavior) { m.AlgNone = true }},
		{name: "userinfo_sub_mismatch", desc: "does not belong to the signed-in user",
			misbehave: func(m *oidctest.Misbehavior) { m.UserinfoSub = "mallory-0002" }},
		// A token response that is not JSON is a provider failure
		// (ErrUnavailable), not the browser's fault.
		{name: "garbage_token_json", status: http.StatusServiceUnavailable, desc: "temporarily unavailable",
			misbehave: func(m *oidctest.Misbehavior) { m.GarbageJSON = true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, longTokens, nil).signIn()
			sid := e.id
			if tc.misbehave != nil {
				e.op.Misbehave(tc.misbehave)
			}
			attack, status := tc.attack, tc.status
			if attack == nil {
				attack = func(e *env, _ *string) *http.Response { return visit(e) }
			}
			if status == 0 {
				status = http.StatusBadRequest
			}
			resp := attack(e, &sid)
			e.op.Reset()
			if resp.StatusCode != status {
				t.Errorf("callback = %d, want %d", resp.StatusCode, status)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("callback redirects to %q", loc)
			}
			if setsCookie(resp, e.a.bff.cfg.CookieName) {
				t.Errorf("callback touched the session cookie: %v", resp.Header["Set-Cookie"])
			}
			_, desc, _ := jsonError(t, resp)
			if !strings.Contains(desc, tc.desc) {
				t.Errorf("error_description = %q, want it to contain %q", desc, tc.desc)
			}

			// The browser's session is intact, and it is the only one.
			if got, _ := e.a.sessionCookie(e.br); got != sid {
				t.Errorf("session cookie changed from %q to %q", sid, got)
			}
			if live := e.store.live("s"); !slices.Equal(live, []string{recordName(sid)}) {
				t.Errorf("sessions in the store = %q, want only %q", live, recordName(sid))
			}
			if code, body := e.a.status(e.br, "GET", "/api/me"); code != 200 || !strings.Contains(body, oidctest.DefaultUser.Subject) {
				t.Errorf("after the attack /api/me = %d %s", code, body)
			}
		})
	}
}

// TestCallbackAccepts: what a provider may legitimately do still signs in.
func TestCallbackAccepts(t *testing.T) {
	cases := []struct {
		name  string
		setup func(*oidctest.Misbehavior) // before discovery
		opt   func(*Options)
		check func(e *env, cb string)
	}{
		// The conformance suite's key sets hold a key go-jose cannot parse.
		{name: "unparseable_jwk_in_key_set", setup: func(m *oidctest.Misbehavior) { m.UnparseableJWK = true }},
		{name: "iss_param_absent_not_advertised", setup: func(m *oidctest.Misbehavior) { m.NoIssParamSupport = true },
			check: func(e *env, cb string) {
				if p, _ := url.Parse(cb); p.Query().Has("iss") {
					e.t.Fatalf("the provider sent iss: %s", cb)
				}
			}},
		{name: "no_at_hash", setup: func(m *oidctest.Misbehavior) { m.OmitAtHash = true }},
		{name: "extra_audience_azp_client", setup: func(m *oidctest.Misbehavior) { m.ExtraAudience = "other-client" }},
		{name: "no_userinfo_endpoint", setup: func(m *oidctest.Misbehavior) { m.NoUserinfo = true },
			check: func(e *env, _ string) {
				if n := e.op.UserinfoCalls(); n != 0 {
					e.t.Errorf("userinfo called %d times", n)
				}
			}},
		{name: "userinfo_fetched", check: func(e *env, _ string) {
			if n := e.op.UserinfoCalls(); n != 1 {
				e.t.Errorf("userinfo called %d times, want 1", n)
			}
		}},
		{name: "disable_userinfo", opt: func(o *Options) { o.DisableUserinfo = true },
			check: func(e *env, _ string) {
				if n := e.op.UserinfoCalls(); n != 0 {
					e.t.Errorf("userinfo called %d times with DisableUserinfo", n)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, longTokens, tc.opt, tc.setup)
			cb := e.a.startLogin(e.br)
			resp := e.br.send("GET", cb)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app" {
				t.Fatalf("callback = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if code, body := e.a.status(e.br, "GET", "/api/me"); code != 200 || !strings.Contains(body, oidctest.DefaultUser.Email) {
				t.Fatalf("/api/me = %d %s", code, body)
			}
			if tc.check != nil {
				tc.check(e, cb)
			}
		})
	}
}

// A session cookie planted before sign-in (the attacker's own valid
// session, tossed into the victim's browser) is replaced by a new ID, and
// the planted session ends.
func TestSessionFixation(t *testing.T) {
	mallory := oidctest.User{Subject: "mallory-0002", Username: "mallory", Password: "mallory", Email: "mallory@example.com"}
	e := newEnv(t, longTokens, nil)
	attacker := newBrowser(t)
	e.op.SetDefaultUser(mallory)
	e.a.login(attacker)
	e.op.SetDefaultUser(oidctest.DefaultUser)
	planted, _ := e.a.sessionCookie(attacker)
	if _, err := e.a.storeSession(planted); err != nil {
		t.Fatalf("attacker's session: %v", err)
	}

	victim := newBrowser(t)
	e.a.setCookie(victim, e.a.bff.cfg.CookieName, planted)
	e.a.login(victim)
	got, _ := e.a.sessionCookie(victim)
	if got == planted || !validID(got) {
		t.Fatalf("session ID after sign-in = %q, planted %q", got, planted)
	}
	if _, err := e.a.storeSession(planted); !errors.Is(err, errNotFound) {
		t.Errorf("planted session still in the store: %v", err)
	}
	if live := e.store.live("s"); !slices.Equal(live, []string{recordName(got)}) {
		t.Errorf("sessions in the store = %q, want only the victim's", live)
	}
	if code, body := e.a.status(victim, "GET", "/api/me"); code != 200 || !strings.Contains(body, oidctest.DefaultUser.Subject) {
		t.Errorf("victim /api/me = %d %s", code, body)
	}
	e.a.expect(t, attacker, "/api/me", 401, "attacker")

	// A planted cookie that names no session is replaced just the same.
	other := newBrowser(t)
	const fake = "AAAAAAAAAAAAAAAAAAAAAAAAAA"
	e.a.setCookie(other, e.a.bff.cfg.CookieName, fake)
	e.a.login(other)
	if got, _ := e.a.sessionCookie(other); got == fake {
		t.Error("a planted session ID was kept")
	}
}

func TestOnLogin(t *testing.T) {
	refused := func(t *testing.T, hook func(map[string]any) error) {
		e := newEnv(t, longTokens, func(o *Options) {
			o.OnLogin = func(_ context.Context, c map[string]any) error { return hook(c) }
		})
		resp := e.br.get(e.a.startLogin(e.br))
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("callback = %d, want 403", resp.StatusCode)
		}
		if setsCookie(resp, e.a.bff.cfg.CookieName) {
			t.Error("a session cookie was set")
		}
		_, _, body := jsonError(t, resp)
		if strings.Contains(body, "not on the list") || strings.Contains(body, "boom") {
			t.Errorf("the hook's error reached the browser: %s", body)
		}
		if live := e.store.live("s"); len(live) != 0 {
			t.Errorf("sessions stored: %q", live)
		}
		e.a.expect(t, e.br, "/auth/session", 401, "")
	}
	t.Run("reject", func(t *testing.T) {
		refused(t, func(c map[string]any) error {
			if c["sub"] != oidctest.DefaultUser.Subject || c["email"] != oidctest.DefaultUser.Email {
				t.Errorf("hook got claims %v", c)
			}
			return errors.New("not on the list")
		})
	})
	t.Run("panic", func(t *testing.T) {
		refused(t, func(map[string]any) error { panic("boom") })
	})
	t.Run("map_claims", func(t *testing.T) {
		e := newEnv(t, longTokens, func(o *Options) {
			o.OnLogin = func(_ context.Context, c map[string]any) error {
				c["role"] = "admin"
				delete(c, "preferred_username")
				return nil
			}
		})
		e.a.login(e.br)
		code, body := e.a.status(e.br, "GET", "/auth/session")
		var si struct {
			User struct {
				Claims map[string]any `json:"claims"`
			} `json:"user"`
		}
		json.Unmarshal([]byte(body), &si)
		if code != 200 || si.User.Claims["role"] != "admin" {
			t.Fatalf("/auth/session = %d %s, want role admin", code, body)
		}
		if _, ok := si.User.Claims["preferred_username"]; ok {
			t.Errorf("a claim the hook dropped is still there: %s", body)
		}
	})
}

// Large claims (issue 13, 8): a 100 KiB claim signs in and loads, on memory
// and on Redis; claims beyond record.MaxField (1 MiB) refuse the sign-in
// with a clear error and leave no session; a record with a 1 MiB claim set
// and a 1 MiB ID token (the largest a provider's bounded responses can
// give) round-trips through both stores.
func TestLargeClaims(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	user := oidctest.DefaultUser
	user.Extra = map[string]any{"big": big}
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			op := testOP(t, oidctest.Config{Users: []oidctest.User{user}})
			var huge atomic.Bool
			opt := func(o *Options) {
				o.OnLogin = func(_ context.Context, claims map[string]any) error {
					if huge.Load() {
						claims["huge"] = strings.Repeat("y", record.MaxField)
					}
					return nil
				}
			}
			var a *app
			if kind == "redis" {
				a = redisApps(t, op, redistest.Start(t), 1, opt)[0]
			} else {
				a = newApp(t, op, opt)
			}
			br, id := a.signInID(t)
			s := mustSession(t, a, id)
			if v, _ := s.user.Claim("big"); v != big {
				t.Fatal("the 100 KiB claim did not survive")
			}
			a.expect(t, br, "/api/me", 200, "")

			huge.Store(true)
			br2 := newBrowser(t)
			resp, body := br2.follow(a.URL + "/auth/login?returnTo=/app")
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "too large") {
				t.Fatalf("sign-in with claims over 1 MiB = %d %s, want 400 saying they are too large", resp.StatusCode, body)
			}
			if _, ok := a.sessionCookie(br2); ok {
				t.Fatal("a session cookie was set for a sign-in that was refused")
			}

			rec := mintRecord(time.Now().UnixNano())
			rec.Claims = []byte(`"` + strings.Repeat("c", record.MaxField-2) + `"`)
			rec.IDToken = strings.Repeat("i", record.MaxField)
			ns := newSession(recordName(rand.Text()), rec)
			if err := a.bff.store.create(context.Background(), ns, ""); err != nil {
				t.Fatal(err)
			}
			got, err := a.bff.store.read(context.Background(), ns.key)
			if err != nil || len(got.rec.IDToken) != record.MaxField || len(got.rec.Claims) != record.MaxField {
				t.Fatalf("a record with two 1 MiB fields does not round-trip: %v", err)
			}
		})
	}
}

// Junk callbacks (issue 13, 10). The login route writes nothing. A callback
// that carries this app's genuine login cookie and its state writes one
// replay marker (so that a replayed callback never reaches the provider)
// and makes one token request; a callback without them writes nothing and
// calls no one. Measured over 10,000 of each.
func TestJunkCallbacksCost(t *testing.T) {
	const n = 10000
	store := newSpyStore(t)
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) { o.Store = store })
	writes := func() int {
		c, _ := store.work()
		return c["commit state"] + c["commit s"] + c["commit sub"] + c["commit sid"]
	}
	var mu sync.Mutex
	codes := map[int]int{}
	parallel := func(f func() int) {
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					code := f()
					mu.Lock()
					codes[code]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	iss := url.QueryEscape(a.op.Issuer())

	w0, g0 := writes(), a.op.CodeGrants()
	parallel(func() int { // a junk state and no cookie
		return serveInProcess(a.bff, "GET", "/auth/callback", "code=junk&state="+rand.Text()+"&iss="+iss, nil, nil).StatusCode
	})
	if w, g := writes()-w0, a.op.CodeGrants()-g0; w != 0 || g != 0 {
		t.Fatalf("%d junk callbacks without a login cookie: %d store writes, %d token requests; want none", n, w, g)
	}

	w0, g0 = writes(), a.op.CodeGrants()
	parallel(func() int { // a real /auth/login each, then a junk code
		s, _, _ := startSignIn(t, a, "/app")
		q := "code=junk&state=" + s.state + "&iss=" + iss
		return serveInProcess(a.bff, "GET", "/auth/callback", q, nil, s.cookieHeader()).StatusCode
	})
	w, g := writes()-w0, a.op.CodeGrants()-g0
	t.Logf("%d sign-ins with a junk code: %d store writes (replay markers), %d token requests; answers %v", n, w, g, codes)
	if w != n || g != n {
		t.Fatalf("%d junk codes with genuine login cookies: %d store writes, %d token requests; want %d each", n, w, g, n)
	}
	if c, _ := store.work(); c["commit s"] != 0 {
		t.Fatal("a junk callback created a session")
	}
}
