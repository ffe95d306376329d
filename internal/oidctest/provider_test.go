package oidctest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDiscoveryWithIssuerPath(t *testing.T) {
	e := newEnv(t, Config{}, "/realms/dev")
	st, d := e.getJSON("/.well-known/openid-configuration")
	if st != 200 {
		t.Fatalf("status %d", st)
	}
	iss := e.srv.URL + "/realms/dev"
	want := map[string]string{
		"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
		"userinfo_endpoint": iss + "/userinfo", "jwks_uri": iss + "/jwks", "revocation_endpoint": iss + "/revoke",
		"end_session_endpoint": iss + "/end-session", "introspection_endpoint": iss + "/introspect",
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	for _, k := range []string{"backchannel_logout_supported", "backchannel_logout_session_supported",
		"authorization_response_iss_parameter_supported"} {
		if d[k] != true {
			t.Errorf("%s = %v", k, d[k])
		}
	}
	if !slices.Equal(toStrings(d["code_challenge_methods_supported"]), []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported = %v", d["code_challenge_methods_supported"])
	}
	if e.op.DiscoveryFetches() != 1 {
		t.Errorf("DiscoveryFetches = %d", e.op.DiscoveryFetches())
	}
	// Paths outside the issuer are not served.
	resp, _ := e.c.Get(e.srv.URL + "/.well-known/openid-configuration")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("outside issuer path: %d", resp.StatusCode)
	}
	// Full flow works below a path too.
	tok := e.login(&authReq{})
	if _, _, err := e.verify(tok["id_token"].(string)); err != nil {
		t.Fatal(err)
	}
}

func TestIssuerNotSet(t *testing.T) {
	rec := httptest.NewRecorder()
	New(Config{}).ServeHTTP(rec, httptest.NewRequest("GET", "/jwks", nil))
	if rec.Code != 500 {
		t.Fatalf("status %d", rec.Code)
	}
}

func toStrings(v any) []string {
	a, _ := v.([]any)
	var s []string
	for _, x := range a {
		s = append(s, x.(string))
	}
	return s
}

func TestCodeFlow(t *testing.T) {
	e := newEnv(t, Config{RedirectURIs: []string{testRedirect}}, "")
	a := &authReq{}
	q := e.authorize(a)
	if q.Get("iss") != e.op.Issuer() || q.Get("state") != a.state || q.Get("code") == "" {
		t.Fatalf("callback query %v", q)
	}
	st, tok := e.exchange(q.Get("code"), a.verifier)
	if st != 200 {
		t.Fatalf("token: %d %v", st, tok)
	}
	if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(3600) ||
		tok["refresh_expires_in"] != float64(86400) || tok["refresh_token"] == nil {
		t.Fatalf("token response %v", tok)
	}
	at := tok["access_token"].(string)
	claims, hdr, err := e.verify(tok["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Algorithm != "RS256" || hdr.KeyID != e.op.KeyID() {
		t.Errorf("header %+v", hdr)
	}
	for k, v := range map[string]any{
		"iss": e.op.Issuer(), "sub": DefaultUser.Subject, "aud": "bff-client", "nonce": a.nonce,
		"azp": "bff-client", "at_hash": atHash(at), "email": DefaultUser.Email, "email_verified": true,
		"name": DefaultUser.Name,
	} {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	sids := e.op.Sessions(DefaultUser.Subject)
	if len(sids) != 1 || claims["sid"] != sids[0] {
		t.Errorf("sid %v, sessions %v", claims["sid"], sids)
	}
	for _, k := range []string{"exp", "iat", "auth_time"} {
		if _, ok := claims[k].(float64); !ok {
			t.Errorf("claim %s = %v", k, claims[k])
		}
	}
	if sub, ok := e.op.AccessTokenInfo(at); !ok || sub != DefaultUser.Subject {
		t.Errorf("AccessTokenInfo = %q, %v", sub, ok)
	}
	st, ui := e.userinfo(at)
	if st != 200 || ui["sub"] != DefaultUser.Subject || ui["email"] != DefaultUser.Email {
		t.Errorf("userinfo %d %v", st, ui)
	}
	if e.op.CodeGrants() != 1 || e.op.UserinfoCalls() != 1 {
		t.Errorf("counters: code %d userinfo %d", e.op.CodeGrants(), e.op.UserinfoCalls())
	}

	// Second use of the code: invalid_grant and tokens revoked.
	st, er := e.exchange(q.Get("code"), a.verifier)
	if st != 400 || er["error"] != "invalid_grant" {
		t.Fatalf("code replay: %d %v", st, er)
	}
	if _, ok := e.op.AccessTokenInfo(at); ok {
		t.Error("access token still valid after code replay")
	}
	if e.op.RefreshTokenValid(tok["refresh_token"].(string)) {
		t.Error("refresh token still valid after code replay")
	}
	if st, _ := e.userinfo(at); st != 401 {
		t.Errorf("userinfo after revocation: %d", st)
	}
	if !e.op.FamilyRevoked(DefaultUser.Subject) {
		t.Error("FamilyRevoked = false")
	}
}

func TestNoOfflineAccessNoRefreshToken(t *testing.T) {
	e := newEnv(t, Config{}, "")
	tok := e.login(&authReq{scope: "openid email"})
	if _, ok := tok["refresh_token"]; ok {
		t.Fatalf("refresh token without offline_access: %v", tok)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	e := newEnv(t, Config{RedirectURIs: []string{testRedirect}}, "")
	for _, tc := range []struct {
		name   string
		mutate func(url.Values)
		status int
		errc   string
	}{
		{"no PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, 302, "invalid_request"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, 302, "invalid_request"},
		{"token response type", func(q url.Values) { q.Set("response_type", "token") }, 302, "unsupported_response_type"},
		{"no openid", func(q url.Values) { q.Set("scope", "email") }, 302, "invalid_scope"},
		{"bad client", func(q url.Values) { q.Set("client_id", "evil") }, 400, ""},
		{"bad redirect", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(e.authorizeURL(&authReq{state: "s1"}))
			q := u.Query()
			tc.mutate(q)
			u.RawQuery = q.Encode()
			resp, err := e.c.Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 302 {
				cb := e.callback(resp)
				if cb.Get("error") != tc.errc || cb.Get("state") != "s1" || cb.Get("iss") != e.op.Issuer() {
					t.Fatalf("callback %v", cb)
				}
			} else if csp := resp.Header.Get("Content-Security-Policy"); csp != "frame-ancestors 'none'" {
				t.Errorf("CSP %q", csp)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t, Config{}, "")
	a := &authReq{}
	code := e.authorize(a).Get("code")
	other, _ := pkce()
	if st, er := e.exchange(code, other); st != 400 || er["error"] != "invalid_grant" {
		t.Errorf("wrong verifier: %d %v", st, er)
	}
	if st, er := e.exchange(code, ""); st != 400 || er["error"] != "invalid_grant" {
		t.Errorf("no verifier: %d %v", st, er)
	}
	st, er := e.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"https://rp.example/other"}, "code_verifier": {a.verifier}})
	if st != 400 || er["error"] != "invalid_grant" {
		t.Errorf("wrong redirect_uri: %d %v", st, er)
	}
	// Client authentication.
	st, er = e.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"client_id": {"bff-client"}, "client_secret": {"wrong"}})
	if st != 401 || er["error"] != "invalid_client" {
		t.Errorf("bad secret: %d %v", st, er)
	}
	// client_secret_post works.
	st, tok := e.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {testRedirect}, "code_verifier": {a.verifier},
		"client_id": {"bff-client"}, "client_secret": {"bff-secret"}})
	if st != 200 || tok["access_token"] == nil {
		t.Errorf("client_secret_post: %d %v", st, tok)
	}
	if st, er := e.post("/token", url.Values{"grant_type": {"password"}}); st != 400 || er["error"] != "unsupported_grant_type" {
		t.Errorf("password grant: %d %v", st, er)
	}
	resp, _ := e.c.Get(e.op.Endpoint("/token"))
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET /token: %d", resp.StatusCode)
	}
	// Oversized body.
	req, _ := http.NewRequest("POST", e.op.Endpoint("/token"), strings.NewReader("grant_type=x&pad="+strings.Repeat("a", 100<<10)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("bff-client", "bff-secret")
	resp, err := e.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("oversized body: %d", resp.StatusCode)
	}
}

func TestCodeExpires(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	e := newEnv(t, Config{Now: clock, AccessTokenTTL: 5 * time.Minute}, "")
	a := &authReq{}
	code := e.authorize(a).Get("code")
	advance(61 * time.Second)
	if st, er := e.exchange(code, a.verifier); st != 400 || er["error"] != "invalid_grant" {
		t.Fatalf("expired code: %d %v", st, er)
	}
	tok := e.login(&authReq{})
	if tok["expires_in"] != float64(300) {
		t.Errorf("expires_in %v", tok["expires_in"])
	}
	at := tok["access_token"].(string)
	advance(5*time.Minute + time.Second)
	if _, ok := e.op.AccessTokenInfo(at); ok {
		t.Error("expired access token valid")
	}
	// The refresh token outlives it.
	if st, r := e.refresh(tok["refresh_token"].(string)); st != 200 {
		t.Errorf("refresh: %d %v", st, r)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newEnv(t, Config{}, "")
	a := &authReq{}
	tok := e.login(a)
	idc, _, _ := e.verify(tok["id_token"].(string))
	rt1 := tok["refresh_token"].(string)
	st, r2 := e.refresh(rt1)
	if st != 200 {
		t.Fatalf("refresh: %d %v", st, r2)
	}
	rt2 := r2["refresh_token"].(string)
	if rt2 == rt1 || r2["access_token"] == tok["access_token"] {
		t.Fatal("not rotated")
	}
	c2, _, err := e.verify(r2["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if c2["sub"] != idc["sub"] || c2["sid"] != idc["sid"] || c2["iss"] != idc["iss"] || c2["aud"] != idc["aud"] {
		t.Errorf("refreshed claims %v vs %v", c2, idc)
	}
	if _, ok := c2["nonce"]; ok {
		t.Error("nonce in refreshed ID token")
	}
	if c2["at_hash"] != atHash(r2["access_token"].(string)) {
		t.Error("at_hash")
	}
	if e.op.RefreshTokenValid(rt1) || !e.op.RefreshTokenValid(rt2) {
		t.Error("RefreshTokenValid")
	}
	if e.op.FamilyRevoked(DefaultUser.Subject) {
		t.Error("revoked too early")
	}
	// Reuse of rt1 revokes the whole family.
	if st, er := e.refresh(rt1); st != 400 || er["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", st, er)
	}
	if !e.op.FamilyRevoked(DefaultUser.Subject) || e.op.RefreshTokenValid(rt2) {
		t.Error("family not revoked")
	}
	for _, at := range []any{tok["access_token"], r2["access_token"]} {
		if _, ok := e.op.AccessTokenInfo(at.(string)); ok {
			t.Error("access token survived reuse detection")
		}
	}
	if st, er := e.refresh(rt2); st != 400 || er["error"] != "invalid_grant" {
		t.Fatalf("descendant after reuse: %d %v", st, er)
	}
	if e.op.RefreshGrants() != 3 {
		t.Errorf("RefreshGrants = %d", e.op.RefreshGrants())
	}
	// Another login is unaffected.
	tok2 := e.login(&authReq{})
	if st, _ := e.refresh(tok2["refresh_token"].(string)); st != 200 {
		t.Error("independent family affected")
	}
}

func TestRevocation(t *testing.T) {
	e := newEnv(t, Config{}, "")
	tok := e.login(&authReq{})
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)

	tok2 := e.login(&authReq{})
	at2 := tok2["access_token"].(string)
	if st, _ := e.post("/revoke", url.Values{"token": {at2}, "token_type_hint": {"access_token"}}); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if _, ok := e.op.AccessTokenInfo(at2); ok {
		t.Error("revoked access token valid")
	}
	if !e.op.RefreshTokenValid(tok2["refresh_token"].(string)) {
		t.Error("revoking an access token revoked the refresh token")
	}

	if st, _ := e.post("/revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if e.op.RefreshTokenValid(rt) {
		t.Error("refresh token valid")
	}
	if _, ok := e.op.AccessTokenInfo(at); ok {
		t.Error("access token of revoked family valid")
	}
	if st, _ := e.post("/revoke", url.Values{"token": {"unknown"}}); st != 200 {
		t.Errorf("unknown token: %d", st)
	}
	if st, er := e.post("/revoke", url.Values{"token": {rt}, "client_id": {"bff-client"}, "client_secret": {"x"}}); st != 401 || er["error"] != "invalid_client" {
		t.Errorf("bad client: %d %v", st, er)
	}
	if e.op.Revocations() != 3 {
		t.Errorf("Revocations = %d", e.op.Revocations())
	}
}

func TestIntrospection(t *testing.T) {
	e := newEnv(t, Config{}, "")
	tok := e.login(&authReq{})
	at := tok["access_token"].(string)
	st, in := e.post("/introspect", url.Values{"token": {at}})
	if st != 200 || in["active"] != true || in["sub"] != DefaultUser.Subject || in["client_id"] != "bff-client" {
		t.Fatalf("introspect: %d %v", st, in)
	}
	st, in = e.post("/introspect", url.Values{"token": {"nope"}})
	if st != 200 || in["active"] != false || len(in) != 1 {
		t.Fatalf("introspect unknown: %d %v", st, in)
	}
	if st, _ := e.post("/introspect", url.Values{"token": {at}, "client_id": {"x"}}); st != 401 {
		t.Errorf("unauthenticated: %d", st)
	}
}

func TestUserinfo(t *testing.T) {
	bob := User{Subject: "bob-7", Username: "bob", Password: "pw", Name: "Bob", Email: "bob@example.com",
		Extra: map[string]any{"groups": []string{"admin"}}}
	e := newEnv(t, Config{Users: []User{DefaultUser, bob}}, "")
	tok := e.login(&authReq{loginHint: "bob"})
	st, ui := e.userinfo(tok["access_token"].(string))
	if st != 200 || ui["sub"] != "bob-7" || ui["email_verified"] != false || len(toStrings(ui["groups"])) != 1 {
		t.Fatalf("userinfo %d %v", st, ui)
	}
	idc, _, _ := e.verify(tok["id_token"].(string))
	if idc["sub"] != "bob-7" || idc["groups"] == nil {
		t.Errorf("id token %v", idc)
	}
	if st, _ := e.userinfo("bogus"); st != 401 {
		t.Errorf("bogus token: %d", st)
	}
	resp, _ := e.c.Get(e.op.Endpoint("/userinfo"))
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// SetDefaultUser switches the auto-approved user.
	e.op.SetDefaultUser(bob)
	tok = e.login(&authReq{})
	if sub, _ := e.op.AccessTokenInfo(tok["access_token"].(string)); sub != "bob-7" {
		t.Errorf("default user: %q", sub)
	}
}

func TestEndSessionAndBackchannel(t *testing.T) {
	var (
		mu     sync.Mutex
		tokens []string
	)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		tokens = append(tokens, r.PostForm.Get("logout_token"))
		mu.Unlock()
	}))
	defer rp.Close()
	e := newEnv(t, Config{RedirectURIs: []string{testRedirect, "https://rp.example/bye"},
		BackchannelLogoutURI: rp.URL}, "")
	tok := e.login(&authReq{})
	idt := tok["id_token"].(string)
	idc, _, _ := e.verify(idt)
	other := e.login(&authReq{})

	q := url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://evil.example/"}, "state": {"x"}}
	resp, _ := e.c.Get(e.op.Endpoint("/end-session?" + q.Encode()))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("unregistered post_logout_redirect_uri: %d", resp.StatusCode)
	}
	q.Set("post_logout_redirect_uri", "https://rp.example/bye")
	resp, _ = e.c.Get(e.op.Endpoint("/end-session?" + q.Encode()))
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://rp.example/bye?state=x" {
		t.Fatalf("end-session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if e.op.EndSessions() != 1 {
		t.Errorf("EndSessions = %d", e.op.EndSessions())
	}
	if sids := e.op.Sessions(DefaultUser.Subject); len(sids) != 1 || sids[0] == idc["sid"] {
		t.Errorf("sessions after logout: %v", sids)
	}
	if e.op.RefreshTokenValid(tok["refresh_token"].(string)) || !e.op.RefreshTokenValid(other["refresh_token"].(string)) {
		t.Error("wrong families revoked")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tokens) != 1 {
		t.Fatalf("back-channel tokens: %d", len(tokens))
	}
	lc, hdr, err := e.verify(tokens[0])
	if err != nil || hdr.ExtraHeaders["typ"] != "logout+jwt" || lc["sid"] != idc["sid"] || lc["sub"] != idc["sub"] {
		t.Fatalf("logout token %v %v %v", lc, hdr, err)
	}
	if e.op.BackchannelLogouts() != 1 {
		t.Errorf("BackchannelLogouts = %d", e.op.BackchannelLogouts())
	}
	// Without a redirect: a signed-out page.
	resp, _ = e.c.Get(e.op.Endpoint("/end-session"))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Signed out") {
		t.Errorf("signed-out page: %d %s", resp.StatusCode, body)
	}
	// A forged hint is refused.
	forged := e.op.SignJWT(map[string]any{"iss": e.op.Issuer(), "aud": "bff-client", "sid": "x"}, SignOptions{UnknownKey: true})
	resp, _ = e.c.Get(e.op.Endpoint("/end-session?id_token_hint=" + forged))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("forged hint: %d", resp.StatusCode)
	}
}
