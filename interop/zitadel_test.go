// Package interop runs bff against OpenID Providers written by others. It is
// a separate module so that their dependencies stay out of bff's go.mod.
package interop

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/testsupport"
)

// opStorage is the example OP's in-memory storage with two test additions:
// the client accepts the app's post_logout_redirect_uri (the example's web
// client cannot register one), and the refresh tokens presented to the
// token and revocation endpoints are recorded (never printed), to check
// that bff uses each rotated refresh token and revokes the current one.
type opStorage struct {
	*storage.Storage
	postLogout string

	mu        sync.Mutex
	refreshed []string // refresh tokens presented to the refresh grant, in order
	revoked   []string // tokens presented to the revocation endpoint
	revokedRT int      // how many of those were live refresh tokens
}

type logoutClient struct {
	op.Client
	postLogout string
}

func (c logoutClient) PostLogoutRedirectURIs() []string { return []string{c.postLogout} }

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return logoutClient{c, s.postLogout}, nil
}

func (s *opStorage) TokenRequestByRefreshToken(ctx context.Context, rt string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	s.refreshed = append(s.refreshed, rt)
	s.mu.Unlock()
	return s.Storage.TokenRequestByRefreshToken(ctx, rt)
}

func (s *opStorage) RevokeToken(ctx context.Context, token, userID, clientID string) *zoidc.Error {
	s.mu.Lock()
	s.revoked = append(s.revoked, token)
	if _, _, err := s.Storage.GetRefreshTokenInfo(ctx, clientID, token); err == nil {
		s.revokedRT++
	}
	s.mu.Unlock()
	return s.Storage.RevokeToken(ctx, token, userID, clientID)
}

// TestZitadelExampleOP signs in, refreshes twice and signs out against
// zitadel's example OpenID Provider (github.com/zitadel/oidc, an OpenID
// certified library), run in-process: its own login UI, opaque access
// tokens lasting 5 minutes, refresh-token rotation, a trailing-slash issuer,
// RP-initiated logout and token revocation.
func TestZitadelExampleOP(t *testing.T) {
	// Two origins, as in a real deployment: the provider on localhost, the
	// app on 127.0.0.1.
	appSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(appSrv.Close)
	appURL := "http://" + appSrv.Listener.Addr().String()
	redirectURI := appURL + "/auth/callback"

	opSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(opSrv.Close)
	_, port, _ := net.SplitHostPort(opSrv.Listener.Addr().String())
	// The example's own main uses this issuer form, with a trailing slash.
	issuer := "http://localhost:" + port + "/"
	st := &opStorage{
		Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer),
			map[string]*storage.Client{"web": storage.WebClient("web", "secret", redirectURI)}),
		postLogout: appURL + "/auth/logout/callback",
	}
	// nil logger: the example would otherwise replace slog's default.
	opSrv.Config.Handler = exampleop.SetupServer(issuer, st, nil, false)
	opSrv.Start()

	// Discovery, as the provider publishes it.
	var disc struct {
		Issuer       string   `json:"issuer"`
		EndSession   string   `json:"end_session_endpoint"`
		Revocation   string   `json:"revocation_endpoint"`
		Userinfo     string   `json:"userinfo_endpoint"`
		PKCE         []string `json:"code_challenge_methods_supported"`
		AuthMethods  []string `json:"token_endpoint_auth_methods_supported"`
		IssParameter *bool    `json:"authorization_response_iss_parameter_supported"`
	}
	getJSON(t, issuer+".well-known/openid-configuration", &disc)
	t.Logf("discovery: issuer %q, PKCE %v, auth methods %v, iss parameter advertised: %v, end_session %q, revocation %q",
		disc.Issuer, disc.PKCE, disc.AuthMethods, disc.IssParameter != nil && *disc.IssParameter, disc.EndSession, disc.Revocation)
	if disc.Issuer != issuer {
		t.Fatalf("discovery issuer %q, want %q", disc.Issuer, issuer)
	}

	// The app. Its clock can be moved forward past the access token's
	// expiry; the provider keeps real time.
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	var refreshes sync.Map // outcome -> *atomic.Int32
	count := func(outcome bff.RefreshOutcome) int32 {
		v, _ := refreshes.LoadOrStore(outcome, new(atomic.Int32))
		return v.(*atomic.Int32).Load()
	}
	auth, err := bff.New(bff.Options{
		Issuer: disc.Issuer, ClientID: "web", ClientSecret: "secret", BaseURL: appURL,
		SecretKeys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		Logger:     appLogger(t),
		Now:        clock,
		OnRefresh: func(_ context.Context, ev bff.RefreshEvent) {
			v, _ := refreshes.LoadOrStore(ev.Outcome, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
			if ev.Err != nil {
				t.Logf("refresh %s: %v", ev.Outcome, ev.Err)
			}
		},
	})
	if err != nil {
		t.Fatalf("bff.New: %v", err)
	}
	t.Cleanup(func() { auth.Close() })
	// The handler's access token is kept here for the test to compare; it
	// never goes into a response.
	var handlerToken atomic.Pointer[bff.Token]
	mux := http.NewServeMux()
	mux.Handle("/auth/", auth)
	mux.Handle("GET /api/me", auth.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := bff.UserFrom(r.Context())
		tok, _ := bff.TokenFrom(r.Context())
		handlerToken.Store(&tok)
		json.NewEncoder(w).Encode(map[string]string{"sub": u.Subject, "email": u.Email, "name": u.Name})
	})))
	mux.HandleFunc("GET /app", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app page") })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "home") })
	appSrv.Config.Handler = mux
	appSrv.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := auth.Ready(ctx); err != nil {
		t.Fatalf("bff discovery: %v", err)
	}

	br := testsupport.NewBrowser(t)

	// Sign in: /auth/login → the provider's authorize endpoint → its login
	// UI → the callback → /app.
	resp := br.Follow(br.Get(appURL + "/auth/login?returnTo=/app"))
	if resp.StatusCode != 200 || !strings.Contains(resp.Body, `name="password"`) {
		t.Fatalf("expected the provider's login form, got %d at %s: %.300s", resp.StatusCode, resp.Request.URL, resp.Body)
	}
	form := loginForm(t, resp.Request.URL, resp.Body)
	form.values.Set("username", "test-user@localhost")
	form.values.Set("password", "verysecure")
	resp = br.Do("POST", form.action, form.values.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login form: status %d", resp.StatusCode)
	}
	resp = br.Follow(resp)
	if resp.StatusCode != 200 || resp.Body != "app page" || resp.Request.URL.String() != appURL+"/app" {
		t.Fatalf("sign-in ended with %d %q at %s", resp.StatusCode, resp.Body, resp.Request.URL)
	}

	me := func() (int, map[string]string) {
		t.Helper()
		resp := br.Get(appURL + "/api/me")
		var m map[string]string
		if resp.StatusCode == 200 {
			if err := json.Unmarshal([]byte(resp.Body), &m); err != nil {
				t.Fatalf("/api/me: %v", err)
			}
		}
		return resp.StatusCode, m
	}
	status, user := me()
	if status != 200 || user["sub"] != "id1" || user["email"] != "test-user@zitadel.ch" || user["name"] != "Test User" {
		t.Fatalf("/api/me after sign-in: %d %v", status, user)
	}
	tok1 := *handlerToken.Load()
	if sub := userinfoSub(t, disc.Userinfo, tok1.AccessToken); sub != "id1" {
		t.Fatalf("the handler's access token at the provider's userinfo: sub %q", sub)
	}
	lifetime := time.Until(tok1.Expiry)
	if lifetime <= time.Minute || lifetime > 5*time.Minute {
		t.Fatalf("access token lifetime %v, expected the example's 5 minutes", lifetime)
	}

	// Refresh: move the app's clock past the access token's expiry.
	offset.Store(int64(lifetime + time.Minute))
	status, _ = me()
	tok2 := *handlerToken.Load()
	if status != 200 || count("refreshed") != 1 || tok2.AccessToken == tok1.AccessToken {
		t.Fatalf("first refresh: /api/me %d, %d refreshes, new token %v", status, count("refreshed"),
			tok2.AccessToken != tok1.AccessToken)
	}
	if !tok2.Expiry.After(clock().Add(time.Minute)) {
		t.Fatalf("refreshed token expires at %v, app clock %v", tok2.Expiry, clock())
	}
	if sub := userinfoSub(t, disc.Userinfo, tok2.AccessToken); sub != "id1" {
		t.Fatalf("refreshed access token at userinfo: sub %q", sub)
	}
	// The fresh token is used, not refreshed again, by the next request.
	if status, _ = me(); status != 200 || count("refreshed") != 1 || handlerToken.Load().AccessToken != tok2.AccessToken {
		t.Fatalf("request after refresh: %d, %d refreshes", status, count("refreshed"))
	}

	// Second refresh: it works only with the rotated refresh token (the
	// provider deletes each refresh token when it is used).
	offset.Add(int64(lifetime + time.Minute))
	status, user = me()
	tok3 := *handlerToken.Load()
	if status != 200 || user["sub"] != "id1" || count("refreshed") != 2 || tok3.AccessToken == tok2.AccessToken {
		t.Fatalf("second refresh: /api/me %d, %d refreshes", status, count("refreshed"))
	}
	if sub := userinfoSub(t, disc.Userinfo, tok3.AccessToken); sub != "id1" {
		t.Fatalf("second refreshed access token at userinfo: sub %q", sub)
	}
	if n := count("ended") + count("failed"); n != 0 {
		t.Fatalf("%d refreshes ended or failed", n)
	}
	st.mu.Lock()
	presented := append([]string(nil), st.refreshed...)
	st.mu.Unlock()
	if len(presented) != 2 || presented[0] == presented[1] {
		t.Fatalf("refresh grants: %d, rotated token used: %v", len(presented), len(presented) == 2 && presented[0] != presented[1])
	}

	// Sign out: a same-origin POST ends the session, revokes the refresh
	// token and sends the browser to the provider's end-session endpoint.
	resp = br.Do("POST", appURL+"/auth/logout", "", "Sec-Fetch-Site", "same-origin")
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("logout: %d %v", resp.StatusCode, err)
	}
	q := loc.Query()
	loc.RawQuery = ""
	if loc.String() != disc.EndSession || idTokenSub(t, q.Get("id_token_hint")) != "id1" || q.Get("client_id") != "web" ||
		q.Get("post_logout_redirect_uri") != appURL+"/auth/logout/callback" || q.Get("state") == "" {
		t.Fatalf("logout redirect to %s with %v", loc, keys(q))
	}
	st.mu.Lock()
	revoked, revokedRT := len(st.revoked), st.revokedRT
	st.mu.Unlock()
	if revoked != 1 || revokedRT != 1 {
		t.Fatalf("revocation: %d requests, %d of a live refresh token", revoked, revokedRT)
	}
	if status, _ := me(); status != http.StatusUnauthorized {
		t.Fatalf("/api/me after logout: %d", status)
	}
	// The provider revoked the refresh token and the access token it
	// issued with it.
	if sub := userinfoSub(t, disc.Userinfo, tok3.AccessToken); sub != "" {
		t.Fatalf("access token still accepted by the provider after logout (sub %q)", sub)
	}
	// The provider ends its session and sends the browser back, with the
	// state bff checks, to the post-logout page.
	resp = br.Follow(resp)
	if resp.StatusCode != 200 || resp.Body != "home" || resp.Request.URL.String() != appURL+"/" {
		t.Fatalf("after the provider's logout: %d %q at %s", resp.StatusCode, resp.Body, resp.Request.URL)
	}
	if status, _ := me(); status != http.StatusUnauthorized {
		t.Fatalf("/api/me after the provider's logout: %d", status)
	}
}

// form is an HTML form's target and fields.
type form struct {
	action string
	values url.Values
}

var (
	formAction = regexp.MustCompile(`<form[^>]*\saction="([^"]*)"`)
	hiddenKV   = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)"`)
)

// loginForm reads the example OP's login form (exampleop/templates/login.html).
func loginForm(t *testing.T, page *url.URL, body string) form {
	t.Helper()
	m := formAction.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form in the login page: %.300s", body)
	}
	action, err := page.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	f := form{action: action.String(), values: url.Values{}}
	for _, kv := range hiddenKV.FindAllStringSubmatch(body, -1) {
		f.values.Set(kv[1], kv[2])
	}
	if f.values.Get("id") == "" {
		t.Fatalf("login form without the auth request id: %.300s", body)
	}
	return f
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// userinfoSub presents an access token to the provider's userinfo endpoint
// and returns the sub it answers, or "" when it refuses the token.
func userinfoSub(t *testing.T, endpoint, accessToken string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", endpoint, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ""
	}
	var ui struct {
		Sub string `json:"sub"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ui); err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	return ui.Sub
}

// idTokenSub returns the sub of a JWT's payload (not verified: the provider
// verifies its own id_token_hint).
func idTokenSub(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	json.Unmarshal(payload, &c)
	return c.Sub
}

func keys(q url.Values) []string {
	var out []string
	for k := range q {
		out = append(out, k)
	}
	return out
}
