// Package oidctest is a programmable OpenID Provider for tests and for local
// development.
//
// A [Provider] is an [http.Handler] serving discovery, authorization, token,
// userinfo, JWKS, revocation (RFC 7009), introspection (RFC 7662),
// RP-initiated logout and (optionally) pushed authorization request (RFC
// 9126) endpoints below its issuer URL. It implements the authorization
// code flow with PKCE (S256), nonce, at_hash, refresh token rotation with
// reuse detection and the RFC 9207 "iss" authorization response parameter;
// prompt (none, login, consent, select_account) against a browser session
// cookie, max_age, acr_values and an essential acr in the claims parameter
// (acr, amr and auth_time in ID tokens); client authentication with
// client_secret_basic, client_secret_post and private_key_jwt (RFC 7523,
// keys fetched from the client's jwks_uri). Every check a relying party
// must perform can be broken on purpose at runtime through
// [Provider.Misbehave].
//
// A [Profile] (Config.Profile) makes it imitate a real provider's
// discovery document and quirks: Google, Entra ID (one tenant, and the
// multi-tenant issuer template), Auth0, Okta, Keycloak, Amazon Cognito,
// dex, ory hydra and zitadel ([Profiles]).
//
// Sign-ins always authenticate anew (the form, or the default user),
// except prompt=none, which signs the browser in with its live session or
// answers login_required.
//
// The package imports neither testing nor net/http/httptest, so it can also
// run as the embedded development identity provider of an example application
// (set [Config.Interactive] to get an HTML sign-in page).
//
// Typical test use:
//
//	op := oidctest.New(oidctest.Config{})
//	srv := httptest.NewServer(op)
//	defer srv.Close()
//	op.SetIssuer(srv.URL)
//
// Memory is bounded: codes expire after 60 s, pending sign-ins after 10 min,
// tokens with their TTL, and every table is capped (oldest entries are
// evicted). Request bodies are limited to 64 KiB.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used when the corresponding Config field is empty.
const (
	DefaultClientID        = "bff-client"
	DefaultClientSecret    = "bff-secret"
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 24 * time.Hour
	DefaultIDTokenTTL      = time.Hour

	codeTTL        = 60 * time.Second
	pendingTTL     = 10 * time.Minute
	maxEntries     = 10000
	maxRequestBody = 64 << 10
)

// Config configures a Provider. The zero value is usable (after SetIssuer).
type Config struct {
	// Issuer is the issuer URL. It may be empty at New, in which case
	// SetIssuer must be called before the provider serves requests. It may
	// contain a path; endpoints are served below it.
	Issuer string
	// ClientID and ClientSecret of the single registered (confidential)
	// client. Defaults: "bff-client" / "bff-secret".
	ClientID, ClientSecret string
	// RedirectURIs lists the allowed redirect_uri and
	// post_logout_redirect_uri values (exact match). Empty means any
	// absolute http(s) URI is accepted.
	RedirectURIs []string
	// AccessTokenTTL defaults to 1h. The token response's expires_in is in
	// seconds.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL defaults to 24h, returned as refresh_expires_in
	// (seconds).
	RefreshTokenTTL time.Duration
	// IDTokenTTL defaults to 1h.
	IDTokenTTL time.Duration
	// Interactive makes /authorize render an HTML sign-in page. When false,
	// /authorize approves immediately as the default user (see
	// SetDefaultUser), or as the user named by a login_hint parameter
	// (matching Username or Subject).
	Interactive bool
	// Users who can sign in. Default: one user alice/alice. The first user
	// is the default user.
	Users []User
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// SigningAlg is "RS256" (default, RSA 2048) or "ES256" (P-256).
	SigningAlg string
	// BackchannelLogoutURI, when set, receives an OpenID Connect
	// back-channel logout token (POST, form field logout_token) whenever an
	// OP session ends through /end-session or Provider.EndSession.
	BackchannelLogoutURI string
	// HTTPClient is used for back-channel logout requests and to fetch the
	// client's jwks_uri; default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// PAR serves RFC 9126 Pushed Authorization Requests at /par and
	// advertises pushed_authorization_request_endpoint. RequirePAR does too,
	// advertises require_pushed_authorization_requests, and refuses
	// authorization requests that were not pushed.
	PAR, RequirePAR bool
	// TokenAuthMethods are the client authentication methods advertised
	// (token_endpoint_auth_methods_supported) and accepted at the token,
	// PAR, revocation and introspection endpoints. Default:
	// client_secret_basic, client_secret_post and private_key_jwt.
	TokenAuthMethods []string
	// ClientJWKSURI is the client's jwks_uri: where private_key_jwt
	// assertions' keys are fetched (also SetClientJWKSURI).
	ClientJWKSURI string
	// AssertionAlgs are the algorithms advertised and accepted for client
	// assertions. Default RS256, PS256, ES256, ES384, ES512, EdDSA.
	AssertionAlgs []string
	// AssertionAudience narrows the aud a client assertion may have to
	// AudienceIssuer or AudienceTokenEndpoint alone. Default: the issuer,
	// the token endpoint URL, or the URL of the endpoint called.
	AssertionAudience string
	// StrictOfflineAccess issues a refresh token for offline_access only
	// when the authorization request had prompt=consent (OIDC Core §11), as
	// panva's oidc-provider does.
	StrictOfflineAccess bool
	// Profile imitates a real provider (Google, EntraID, Auth0, …; see
	// Profiles). Its AuthMethods apply unless TokenAuthMethods is set, and
	// its PAR turns PAR on.
	Profile Profile
	// ClientCertificate is the client's registered certificate (Entra ID's
	// certificate credentials): private_key_jwt assertions are verified
	// with its public key, not the client's jwks_uri, and must carry its
	// SHA-1 thumbprint as x5t (base64url) in their header.
	ClientCertificate *x509.Certificate
}

// User is an account of the provider.
type User struct {
	Subject, Username, Password, Name, Email string
	EmailVerified                            bool
	// Extra claims, returned by userinfo and put into ID tokens (standard
	// claims take precedence).
	Extra map[string]any
}

// claims are the user's claims, as userinfo returns them and ID tokens
// carry them: Extra, then the standard ones, which take precedence.
func (u User) claims() map[string]any {
	c := maps.Clone(u.Extra)
	if c == nil {
		c = map[string]any{}
	}
	c["sub"] = u.Subject
	if u.Name != "" {
		c["name"] = u.Name
	}
	if u.Username != "" {
		c["preferred_username"] = u.Username
	}
	if u.Email != "" {
		c["email"] = u.Email
		c["email_verified"] = u.EmailVerified
	}
	return c
}

// DefaultUser is the user configured when Config.Users is empty.
var DefaultUser = User{
	Subject:       "alice-0001",
	Username:      "alice",
	Password:      "alice",
	Name:          "Alice Example",
	Email:         "alice@example.com",
	EmailVerified: true,
}

// Provider is a programmable OpenID Provider. It implements http.Handler.
// All methods are safe for concurrent use.
type Provider struct {
	cfg Config

	mu          sync.Mutex // guards everything below, except mb
	issuer      string
	users       []User
	defaultUser User
	keys        *keyRing
	pending     *store[*pendingAuth]
	codes       *store[*authCode]
	families    *store[*family]
	access      *store[*accessToken]
	refresh     *store[*refreshToken]
	sessions    *store[*opSession]

	pushed        *store[url.Values]
	assertionJTIs *store[bool]
	clientJWKSURI string
	clientAuths   map[string]int
	lastAuthz     url.Values

	mbMu sync.Mutex
	mb   Misbehavior

	refreshGrants, codeGrants, revocations, userinfoCalls atomic.Int64
	jwksFetches, discoveryFetches, endSessions            atomic.Int64
	backchannelLogouts, reuses                            atomic.Int64
	parRequests, clientJWKSFetches                        atomic.Int64
}

// New returns a Provider with a freshly generated signing key.
func New(cfg Config) *Provider {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = DefaultClientSecret
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if cfg.IDTokenTTL <= 0 {
		cfg.IDTokenTTL = DefaultIDTokenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SigningAlg == "" {
		cfg.SigningAlg = "RS256"
	}
	if cfg.SigningAlg != "RS256" && cfg.SigningAlg != "ES256" {
		panic("oidctest: unsupported SigningAlg " + cfg.SigningAlg)
	}
	if len(cfg.TokenAuthMethods) == 0 {
		cfg.TokenAuthMethods = cfg.Profile.AuthMethods
	}
	cfg.PAR = cfg.PAR || cfg.Profile.PAR
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	users := append([]User(nil), cfg.Users...)
	if len(users) == 0 {
		users = []User{DefaultUser}
	}
	cfg.Users = nil
	cfg.RedirectURIs = append([]string(nil), cfg.RedirectURIs...)
	p := &Provider{
		cfg:         cfg,
		users:       users,
		defaultUser: users[0],
		keys:        newKeyRing(cfg.SigningAlg),
		pending:     newStore[*pendingAuth](maxEntries),
		codes:       newStore[*authCode](maxEntries),
		families:    newStore[*family](maxEntries),
		access:      newStore[*accessToken](maxEntries),
		refresh:     newStore[*refreshToken](maxEntries),
		sessions:    newStore[*opSession](maxEntries),

		pushed:        newStore[url.Values](maxEntries),
		assertionJTIs: newStore[bool](maxEntries),
		clientJWKSURI: cfg.ClientJWKSURI,
		clientAuths:   map[string]int{},
	}
	p.SetIssuer(cfg.Issuer)
	return p
}

// SetIssuer sets the issuer URL (a trailing slash is removed).
func (p *Provider) SetIssuer(iss string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issuer = strings.TrimSuffix(iss, "/")
}

// Issuer returns the issuer URL.
func (p *Provider) Issuer() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issuer
}

// ClientID returns the configured client ID.
func (p *Provider) ClientID() string { return p.cfg.ClientID }

// ClientSecret returns the configured client secret.
func (p *Provider) ClientSecret() string { return p.cfg.ClientSecret }

// Endpoint returns the absolute URL of an endpoint path such as "/token".
func (p *Provider) Endpoint(path string) string { return p.Issuer() + path }

// SetDefaultUser selects the user that non-interactive authorization
// requests sign in as. The user is added to (or replaces, by Username) the
// provider's users.
func (p *Provider) SetDefaultUser(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.defaultUser = u
	for i := range p.users {
		if p.users[i].Username == u.Username {
			p.users[i] = u
			return
		}
	}
	p.users = append(p.users, u)
}

func (p *Provider) now() time.Time { return p.cfg.Now() }

// misbehavior returns a snapshot of the current misbehaviour.
func (p *Provider) misbehavior() Misbehavior {
	p.mbMu.Lock()
	defer p.mbMu.Unlock()
	return p.mb
}

// Misbehave mutates the provider's misbehaviour under a lock, e.g.
//
//	op.Misbehave(func(m *oidctest.Misbehavior) { m.WrongNonce = true })
func (p *Provider) Misbehave(f func(*Misbehavior)) {
	p.mbMu.Lock()
	defer p.mbMu.Unlock()
	f(&p.mb)
}

// Reset restores correct behaviour (it does not clear tokens or counters).
func (p *Provider) Reset() {
	p.mbMu.Lock()
	defer p.mbMu.Unlock()
	p.mb = Misbehavior{}
}

// Counters.

// RefreshGrants counts refresh_token grant requests from an authenticated client.
func (p *Provider) RefreshGrants() int { return int(p.refreshGrants.Load()) }

// RefreshReuses counts refresh grants with a refresh token that had been
// used before (each revoked its token family).
func (p *Provider) RefreshReuses() int { return int(p.reuses.Load()) }

// CodeGrants counts authorization_code grant requests from an authenticated client.
func (p *Provider) CodeGrants() int { return int(p.codeGrants.Load()) }

// Revocations counts authenticated requests to /revoke.
func (p *Provider) Revocations() int { return int(p.revocations.Load()) }

// UserinfoCalls counts requests to /userinfo.
func (p *Provider) UserinfoCalls() int { return int(p.userinfoCalls.Load()) }

// JWKSFetches counts requests to /jwks.
func (p *Provider) JWKSFetches() int { return int(p.jwksFetches.Load()) }

// DiscoveryFetches counts requests to /.well-known/openid-configuration.
func (p *Provider) DiscoveryFetches() int { return int(p.discoveryFetches.Load()) }

// EndSessions counts requests to /end-session that were accepted.
func (p *Provider) EndSessions() int { return int(p.endSessions.Load()) }

// BackchannelLogouts counts back-channel logout tokens delivered with a 2xx answer.
func (p *Provider) BackchannelLogouts() int { return int(p.backchannelLogouts.Load()) }

// endpoints are the provider's routes, below the issuer's path.
var endpoints = map[string]func(*Provider, http.ResponseWriter, *http.Request){
	"/.well-known/openid-configuration": (*Provider).handleDiscovery,
	"/authorize":                        (*Provider).handleAuthorize,
	"/token":                            (*Provider).handleToken,
	"/userinfo":                         (*Provider).handleUserinfo,
	"/jwks":                             (*Provider).handleJWKS,
	"/revoke":                           (*Provider).handleRevoke,
	"/introspect":                       (*Provider).handleIntrospect,
	"/end-session":                      (*Provider).handleEndSession,
	"/par":                              (*Provider).handlePAR,
}

// ServeHTTP routes by the request path relative to the issuer's path.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	iss := p.Issuer()
	if iss == "" {
		http.Error(w, "oidctest: issuer not set (call SetIssuer)", http.StatusInternalServerError)
		return
	}
	if r.URL.Path == "/logout" && p.cfg.Profile.CognitoLogout {
		p.handleCognitoLogout(w, r)
		return
	}
	base := ""
	if u, err := url.Parse(iss); err == nil {
		base = strings.TrimSuffix(u.Path, "/")
	}
	path, ok := strings.CutPrefix(r.URL.Path, base)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	}
	if h, ok := endpoints[path]; ok {
		h(p, w, r)
		return
	}
	http.NotFound(w, r)
}

// randomString returns 26 base32 characters (130 bits of entropy).
func randomString() string { return rand.Text() }

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
