package interop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/testsupport"
)

const (
	acrBase        = "urn:bff:loa:1" // what oidcprovider/server.js reports for a plain sign-in
	acrHigh        = "urn:bff:loa:2" // reported when the request asks for it
	accessTokenTTL = 2 * time.Minute
	secretClient   = "bff-secret" // client_secret_basic
	clientSecret   = "interop-client-secret-0123456789abcdef"
	keyClient      = "bff-key" // private_key_jwt, keys at bff's /auth/jwks
)

// opClients are the clients registered at the provider for the app at
// appURL: one per client authentication method, with the app's redirect,
// post-logout and back-channel logout URIs.
func opClients(appURL string) []map[string]any {
	client := func(id, method string) map[string]any {
		return map[string]any{
			"client_id":                           id,
			"token_endpoint_auth_method":          method,
			"redirect_uris":                       []string{appURL + "/auth/callback"},
			"post_logout_redirect_uris":           []string{appURL + "/auth/logout/callback"},
			"backchannel_logout_uri":              appURL + "/auth/backchannel-logout",
			"backchannel_logout_session_required": true,
			"grant_types":                         []string{"authorization_code", "refresh_token"},
			"response_types":                      []string{"code"},
		}
	}
	secret := client(secretClient, "client_secret_basic")
	secret["client_secret"] = clientSecret
	key := client(keyClient, "private_key_jwt")
	key["token_endpoint_auth_signing_alg"] = "ES256"
	key["jwks_uri"] = appURL + "/auth/jwks"
	return []map[string]any{secret, key}
}

// TestOIDCProvider runs bff against panva's oidc-provider (OpenID
// Certified; oidcprovider/server.js, pinned in oidcprovider/package.json)
// in node, signing in through its development forms in headless chromium.
// The provider keeps its strict offline_access policy (a refresh token only
// with prompt=consent) and advertises PAR, so bff uses PAR unless a
// subtest turns it off.
func TestOIDCProvider(t *testing.T) {
	srv := newAppServer(t)
	op := startNodeOP(t, opClients(srv.URL))
	browser := startChromium(t)
	withSecret := func(t *testing.T, opts bff.Options) *testApp {
		opts.ClientID, opts.ClientSecret = secretClient, clientSecret
		return mountApp(t, srv, op, opts)
	}
	signIn := func(tb *tab, app *testApp, returnTo string) {
		tb.T().Helper()
		tb.Do("open /auth/login", chromedp.Navigate(app.URL+"/auth/login?returnTo="+url.QueryEscape(returnTo)))
		tb.signInAtProvider(op.Issuer, app.URL, "alice")
		if loc := tb.Location(); loc != app.URL+returnTo {
			tb.T().Fatalf("the sign-in ended at %s, want %s", loc, app.URL+returnTo)
		}
	}
	me := func(tb *tab) (int, map[string]any) { return tb.fetchStatus("/api/me") }
	// signOut clicks the app's sign-out button and confirms at the
	// provider's end-session page.
	signOut := func(tb *tab, app *testApp) {
		tb.T().Helper()
		tb.Do("click Sign out", chromedp.Navigate(app.URL+"/app"), chromedp.Click(chromedp.ID("signout")))
		tb.waitFor("the provider's sign-out page", `document.querySelector('button[value=yes]') !== null`)
		tb.Do("confirm at the provider", chromedp.Click(chromedp.CSS(`button[value=yes]`)))
		tb.waitFor("the app after sign-out", `location.href === `+jsString(app.URL+"/"))
	}
	// silentSignIn starts a prompt=none sign-in and returns where it ended
	// and the documents shown meanwhile.
	silentSignIn := func(tb *tab, app *testApp) (string, []string) {
		tb.T().Helper()
		tb.shown()
		tb.Do("open the silent sign-in", chromedp.Navigate(app.URL+"/auth/login?prompt=none&returnTo="+url.QueryEscape("/app?silent")))
		tb.waitFor("back at the app", `location.pathname === '/app' && location.origin === `+jsString(app.URL))
		return tb.Location(), tb.shown()
	}

	t.Run("SignIn", func(t *testing.T) {
		tb, app := newTab(t, browser), withSecret(t, bff.Options{PAR: bff.PARNever})
		signIn(tb, app, "/app")
		var authz url.Values
		for _, u := range tb.requests() {
			if strings.HasPrefix(u, op.Authorization+"?") {
				authz, _ = url.ParseQuery(strings.SplitN(u, "?", 2)[1])
			}
		}
		if authz.Get("response_type") != "code" || authz.Get("code_challenge_method") != "S256" ||
			authz.Get("prompt") != "consent" || !strings.Contains(authz.Get("scope"), "offline_access") {
			t.Errorf("authorization request %v", authz)
		}
		status, user := me(tb)
		if status != 200 || user["sub"] != "alice" || user["email"] != "alice@example.test" || user["name"] != "User alice" {
			t.Fatalf("/api/me: %d %v", status, user)
		}
		issued, _, _, auth := app.calls.snapshot()
		if len(issued) != 1 || !slices.Equal(auth, []string{"basic"}) {
			t.Errorf("token endpoint: %d refresh tokens (want 1: offline_access with prompt=consent), auth %v", len(issued), auth)
		}
	})

	t.Run("PAR", func(t *testing.T) {
		tb, app := newTab(t, browser), withSecret(t, bff.Options{PAR: bff.PARRequired})
		signIn(tb, app, "/app")
		authz := 0
		for _, u := range tb.requests() {
			if !strings.HasPrefix(u, op.Issuer+"/") {
				continue
			}
			q, _ := url.Parse(u)
			if q.Path == "/auth" {
				authz++
				if keys := slices.Sorted(func(yield func(string) bool) {
					for k := range q.Query() {
						yield(k)
					}
				}); !slices.Equal(keys, []string{"client_id", "request_uri"}) {
					t.Errorf("the browser saw the authorization request with %v, want only client_id and request_uri", keys)
				}
			}
			for _, k := range []string{"state", "nonce", "code_challenge", "redirect_uri", "scope"} {
				if q.Query().Has(k) {
					t.Errorf("the browser sent %s to the provider: %s", k, q.Path)
				}
			}
		}
		if authz == 0 {
			t.Error("no authorization request recorded: the record does not work")
		}
		if status, user := me(tb); status != 200 || user["sub"] != "alice" {
			t.Fatalf("/api/me after a PAR sign-in: %d %v", status, user)
		}
	})

	t.Run("SilentSignIn", func(t *testing.T) {
		tb, app := newTab(t, browser), withSecret(t, bff.Options{})
		signIn(tb, app, "/app")
		tb.deleteCookie("__Host-bff", app.URL)
		if status, _ := me(tb); status != http.StatusUnauthorized {
			t.Fatalf("/api/me without the session cookie: %d", status)
		}
		// Signed in at the provider: back signed in, no provider page.
		loc, shown := silentSignIn(tb, app)
		if loc != app.URL+"/app?silent" || !slices.Contains(shown, loc) {
			t.Errorf("the silent sign-in ended at %s, showing %v", loc, shown)
		}
		for _, u := range shown {
			if strings.HasPrefix(u, op.Issuer) {
				t.Errorf("the provider showed a page during a silent sign-in: %s", u)
			}
		}
		if status, user := me(tb); status != 200 || user["sub"] != "alice" {
			t.Fatalf("/api/me after the silent sign-in: %d %v", status, user)
		}
		// Signed out at the provider: back at returnTo with the error.
		signOut(tb, app)
		loc, shown = silentSignIn(tb, app)
		if loc != app.URL+"/app?silent&error=login_required" {
			t.Errorf("signed out at the provider, the silent sign-in ended at %s", loc)
		}
		for _, u := range shown {
			if !strings.HasPrefix(u, app.URL+"/") {
				t.Errorf("a page other than the app's was shown: %s", u)
			}
		}
		if tb.cookie("__Host-bff") != "" {
			t.Error("a session cookie was set")
		}
	})

	t.Run("StepUp", func(t *testing.T) {
		tb, app := newTab(t, browser), withSecret(t, bff.Options{})
		signIn(tb, app, "/app")
		before := tb.cookie("__Host-bff")
		status, body := tb.fetchStatus("/api/stepup")
		if status != http.StatusUnauthorized || body["acr_values"] != acrHigh ||
			!strings.Contains(body["WWW-Authenticate"].(string), `acr_values="`+acrHigh+`"`) {
			t.Fatalf("/api/stepup before the step-up: %d %v", status, body)
		}
		// What the page does with the 401: sign in with the acr values.
		// The claims parameter makes the acr essential, so the provider
		// asks for the login again although its session is alive.
		tb.Do("sign in with acr_values", chromedp.Navigate(app.URL+"/auth/login?acr_values="+url.QueryEscape(acrHigh)+
			"&returnTo="+url.QueryEscape("/app?stepped-up")))
		tb.waitFor("the provider's login form", `document.querySelector('input[name=login]') !== null`)
		tb.signInAtProvider(op.Issuer, app.URL, "alice")
		if loc := tb.Location(); loc != app.URL+"/app?stepped-up" {
			t.Errorf("the step-up ended at %s", loc)
		}
		if status, body := tb.fetchStatus("/api/stepup"); status != 200 || body["acr"] != acrHigh {
			t.Fatalf("/api/stepup after the step-up: %d %v", status, body)
		}
		if status, user := me(tb); status != 200 || user["sub"] != "alice" {
			t.Fatalf("/api/me after the step-up: %d %v", status, user)
		}
		if after := tb.cookie("__Host-bff"); after == "" || after == before {
			t.Error("the step-up did not give a new session cookie")
		}
		if sessions, err := app.Sessions(context.Background(), "alice"); err != nil || len(sessions) != 1 {
			t.Errorf("alice's sessions after the step-up: %d, %v (want the one upgraded session)", len(sessions), err)
		}
	})

	t.Run("RefreshRotation", func(t *testing.T) {
		tb, app := newTab(t, browser), withSecret(t, bff.Options{})
		signIn(tb, app, "/app")
		for round := 1; round <= 2; round++ {
			app.offset.Add(int64(accessTokenTTL + time.Second)) // past the access token's expiry
			if status, user := me(tb); status != 200 || user["sub"] != "alice" {
				t.Fatalf("/api/me after the access token expired (round %d): %d %v", round, status, user)
			}
		}
		issued, presented, _, _ := app.calls.snapshot()
		if len(issued) != 3 || len(presented) != 2 || presented[0] != issued[0] || presented[1] != issued[1] ||
			issued[0] == issued[1] || issued[1] == issued[2] {
			t.Fatalf("refresh tokens: %d issued, %d presented; each refresh used the latest, rotated one: %v", len(issued),
				len(presented), len(presented) == 2 && len(issued) == 3 && presented[0] == issued[0] && presented[1] == issued[1])
		}
		for i, want := range []bool{false, false, true} {
			if got := op.introspect(t, issued[i]); got != want {
				t.Errorf("refresh token %d active at the provider: %v, want %v", i+1, got, want)
			}
		}
		if code := op.refreshGrant(t, issued[0]); code != "invalid_grant" {
			t.Errorf("the first, rotated refresh token at the token endpoint: error %q, want invalid_grant", code)
		}
	})

	t.Run("RPInitiatedLogout", func(t *testing.T) {
		tb, app := newTab(t, browser), withSecret(t, bff.Options{})
		signIn(tb, app, "/app")
		tb.requests()
		signOut(tb, app)
		var endSession url.Values
		for _, u := range tb.requests() {
			if strings.HasPrefix(u, op.EndSession+"?") {
				endSession, _ = url.ParseQuery(strings.SplitN(u, "?", 2)[1])
			}
		}
		if endSession.Get("id_token_hint") == "" || endSession.Get("client_id") != secretClient || endSession.Get("state") == "" ||
			endSession.Get("post_logout_redirect_uri") != app.URL+"/auth/logout/callback" {
			t.Errorf("end-session request with %v", slices.Collect(func(yield func(string) bool) {
				for k := range endSession {
					yield(k)
				}
			}))
		}
		if status, _ := me(tb); status != http.StatusUnauthorized {
			t.Errorf("/api/me after sign-out: %d", status)
		}
		if loc, _ := silentSignIn(tb, app); !strings.HasSuffix(loc, "error=login_required") {
			t.Errorf("still signed in at the provider: a silent sign-in ended at %s", loc)
		}
	})

	t.Run("BackChannelLogout", func(t *testing.T) {
		tb, app := newTab(t, browser), withSecret(t, bff.Options{})
		signIn(tb, app, "/app")
		if sessions, _ := app.Sessions(context.Background(), "alice"); len(sessions) != 1 {
			t.Fatalf("alice has %d sessions", len(sessions))
		}
		// The user signs out at the provider itself, not through the app.
		posted := srv.backchannel.Load()
		tb.Do("open the provider's end-session page", chromedp.Navigate(op.EndSession),
			chromedp.Click(chromedp.CSS(`button[value=yes]`)))
		testsupport.WaitUntil(t, 10*time.Second, "the provider's back-channel logout request", func() bool { return srv.backchannel.Load() > posted })
		if sessions, err := app.Sessions(context.Background(), "alice"); err != nil || len(sessions) != 0 {
			t.Errorf("alice's sessions after the back-channel logout: %d, %v", len(sessions), err)
		}
		tb.Do("back to the app", chromedp.Navigate(app.URL+"/app"))
		if status, _ := me(tb); status != http.StatusUnauthorized {
			t.Errorf("/api/me after the back-channel logout: %d", status)
		}
	})

	t.Run("Revocation", func(t *testing.T) {
		tb, app := newTab(t, browser), withSecret(t, bff.Options{})
		signIn(tb, app, "/app")
		issued, _, _, _ := app.calls.snapshot()
		if len(issued) != 1 || !op.introspect(t, issued[0]) {
			t.Fatalf("after sign-in: %d refresh tokens, the first active at the provider", len(issued))
		}
		signOut(tb, app)
		if _, _, revoked, _ := app.calls.snapshot(); !slices.Contains(revoked, issued[0]) {
			t.Errorf("sign-out revoked %d tokens, not the refresh token", len(revoked))
		}
		if op.introspect(t, issued[0]) {
			t.Error("the refresh token is still active at the provider after sign-out")
		}
	})

	t.Run("PrivateKeyJWT", func(t *testing.T) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tb := newTab(t, browser)
		app := mountApp(t, srv, op, bff.Options{ClientID: keyClient, ClientKeys: []crypto.Signer{key}})
		signIn(tb, app, "/app")
		app.offset.Add(int64(accessTokenTTL + time.Second))
		if status, user := me(tb); status != 200 || user["sub"] != "alice" {
			t.Fatalf("/api/me after a refresh: %d %v", status, user)
		}
		app.offset.Store(0) // back to the provider's time, which dates the logout token it posts
		signOut(tb, app)
		issued, presented, revoked, auth := app.calls.snapshot()
		if !slices.Equal(auth, []string{"private_key_jwt", "private_key_jwt"}) || len(presented) != 1 || len(issued) != 2 {
			t.Fatalf("token requests authenticated with %v (want private_key_jwt for the code and the refresh), %d refreshes", auth, len(presented))
		}
		if !slices.Contains(revoked, issued[1]) || op.introspect(t, issued[1]) {
			t.Error("sign-out did not revoke the refresh token at the provider")
		}
	})
}
