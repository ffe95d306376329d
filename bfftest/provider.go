package bfftest

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff"
	"github.com/gobff/bff/internal/oidctest"
)

// Config configures a Provider. The zero value is one user, Alice, and
// tokens that live an hour (access) and a day (refresh).
type Config struct {
	// Users can sign in. The first one does unless SignInAs chose another
	// or the sign-in names one with login_hint (its Subject). Default:
	// {Subject: "alice-0001", Name: "Alice Example", Email: "alice@example.com"}.
	Users []User
	// AccessTokenLifetime is the access and ID tokens' lifetime; default 1 hour.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime is the refresh token's lifetime; default 24 hours.
	RefreshTokenLifetime time.Duration
	// Now is the provider's clock; default time.Now. Give the app's
	// Options.Now the same clock to expire tokens without waiting.
	Now func() time.Time
}

// The provider's authentication context classes (acr): a sign-in is
// ACRBasic unless its request asks for ACRStrong (acr_values), as a
// step-up does.
const (
	ACRBasic  = oidctest.ACRBasic
	ACRStrong = oidctest.ACRStrong
)

// Provider is an OpenID Provider for tests: discovery, authorization with
// PKCE (no login page: the chosen user signs in at once), the token
// endpoint with refresh-token rotation, JWKS, userinfo, revocation and
// RP-initiated logout, with real RS256-signed ID tokens, served on a
// local httptest server. Its methods are safe for concurrent use.
type Provider struct {
	op  *oidctest.Provider
	srv *httptest.Server
}

// NewProvider starts a Provider; Close stops it:
//
//	op := bfftest.NewProvider(bfftest.Config{})
//	t.Cleanup(op.Close)
func NewProvider(cfg Config) *Provider {
	users := make([]oidctest.User, len(cfg.Users))
	for i, u := range cfg.Users {
		users[i] = toOP(u)
	}
	op := oidctest.New(oidctest.Config{Users: users,
		AccessTokenTTL: cfg.AccessTokenLifetime, IDTokenTTL: cfg.AccessTokenLifetime,
		RefreshTokenTTL: cfg.RefreshTokenLifetime, Now: cfg.Now})
	srv := httptest.NewServer(op)
	op.SetIssuer(srv.URL)
	return &Provider{op: op, srv: srv}
}

// Close stops the provider's server.
func (p *Provider) Close() { p.srv.Close() }

func toOP(u User) oidctest.User {
	return oidctest.User{Subject: u.Subject, Username: u.Subject, Name: u.Name, Email: u.Email,
		EmailVerified: u.Email != "", Extra: u.Claims}
}

// Options returns bff.Options for an app at baseURL that signs in with
// this provider; set further fields before bff.New.
func (p *Provider) Options(baseURL string) bff.Options {
	return bff.Options{Issuer: p.Issuer(), ClientID: p.ClientID(), ClientSecret: p.ClientSecret(), BaseURL: baseURL}
}

// Issuer returns the provider's issuer URL.
func (p *Provider) Issuer() string { return p.op.Issuer() }

// ClientID and ClientSecret are the credentials of the provider's one
// client, which accepts any redirect URI.
func (p *Provider) ClientID() string     { return p.op.ClientID() }
func (p *Provider) ClientSecret() string { return p.op.ClientSecret() }

// SignInAs makes u the user of the next sign-ins.
func (p *Provider) SignInAs(u User) { p.op.SetDefaultUser(toOP(u)) }

// SignIn signs a new browser in at the app whose auth routes are at
// authURL (e.g. app.URL+"/auth"), and returns it: an http.Client whose
// cookie jar holds the session cookie. It fails the test if the sign-in
// does not end with the redirect back to the app (call the app's
// BFF.Ready first: until discovery is done, sign-ins answer 503).
func (p *Provider) SignIn(t testing.TB, authURL string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	const back = "/bfftest-signed-in"
	browser := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == back {
			return http.ErrUseLastResponse // back at the app: done
		}
		return nil
	}}
	resp, err := browser.Get(authURL + "/login?returnTo=" + url.QueryEscape(back))
	if err != nil {
		t.Fatalf("bfftest: sign-in: %v", err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(loc, back) {
		t.Fatalf("bfftest: sign-in ended with %d at %s, not with the redirect back to the app", resp.StatusCode, resp.Request.URL)
	}
	return browser
}

// FailRefresh makes the token endpoint refuse refresh grants: with an
// OAuth error such as "invalid_grant" (the session then ends: 401), or,
// when status is 500 or more, as a provider that is down (503 from
// RequireSession while the access token is expired). FailRefresh(0, "")
// restores normal answers.
func (p *Provider) FailRefresh(status int, oauthError string) {
	p.op.Misbehave(func(m *oidctest.Misbehavior) {
		m.TokenError, m.TokenStatus = "", 0
		if status >= 500 {
			m.TokenStatus = status
		} else {
			m.TokenError = oauthError
		}
	})
}

// Refreshes counts the refresh grants the provider has answered.
func (p *Provider) Refreshes() int { return p.op.RefreshGrants() }

// Revocations counts the tokens revoked at the provider (bff revokes the
// refresh token at sign-out).
func (p *Provider) Revocations() int { return p.op.Revocations() }
