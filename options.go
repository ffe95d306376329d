package bff

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/gobff/bff/internal/redirect"
	"github.com/gobff/bff/internal/seal"
)

// Options configures a BFF. The zero value of every optional field is the
// secure default; fields that loosen security are named Insecure….
// Options are validated and copied by New; changing them afterwards has no
// effect.
type Options struct {
	// Issuer is the OpenID Provider's issuer URL, exactly as its discovery
	// document spells it. Required; https, or http only for a loopback host.
	Issuer string

	// Tenants are the tenants (tid claim) whose users may sign in through a
	// multi-tenant issuer: Entra ID's common or organizations endpoint
	// (Issuer "https://login.microsoftonline.com/organizations/v2.0"),
	// whose discovery document names the issuer template
	// "https://login.microsoftonline.com/{tenantid}/v2.0". With Tenants set,
	// discovery accepts such a template when it is Issuer with one path
	// segment replaced by "{tenantid}", and every ID token must carry a tid
	// that is one of Tenants and an iss that is the template with that tid.
	// Back-channel logout tokens must still name Issuer itself. Default
	// none: a templated issuer is a misconfiguration.
	Tenants []string

	// InsecureAnyTenant accepts users of every tenant of a multi-tenant
	// issuer (see Tenants; iss must still be the template with the token's
	// tid): anyone with an account in any Entra ID organization can sign
	// in, so authorize users yourself, by tid, in OnLogin. Default false.
	InsecureAnyTenant bool

	// ClientID and ClientSecret are this confidential client's credentials
	// at the provider. ClientID is required, and ClientSecret unless
	// ClientKeys is set (not both).
	ClientID     string
	ClientSecret string

	// ClientKeys authenticate this client with private_key_jwt (RFC 7523,
	// OIDC Core §9) instead of a secret, at the token, PAR and revocation
	// endpoints: a fresh assertion (new jti, one minute of life) for each
	// request, signed by the first key (ES256, ES384, ES512 by curve,
	// RS256 for RSA of 2048 bits or more, EdDSA). Every key's public part
	// is published at Prefix+"/jwks" (kid: its RFC 7638 thumbprint) for
	// providers that fetch the client's jwks_uri: to rotate, add the new key
	// last, wait for the provider to see it, then put it first. A provider
	// whose token_endpoint_auth_methods_supported lacks private_key_jwt is
	// refused at discovery. Default none.
	ClientKeys []crypto.Signer

	// ClientCertificate is the X.509 certificate of ClientKeys[0], for
	// providers where the client registers a certificate (Entra ID's
	// certificate credentials): each client assertion's header then
	// carries the certificate's SHA-1 thumbprint as x5t, which Entra ID
	// requires, and its SHA-256 thumbprint as x5t#S256 (base64url). Its
	// public key must be ClientKeys[0]'s. Default nil.
	ClientCertificate *x509.Certificate

	// ClientAssertionAudience is the aud of client assertions:
	// AudienceTokenEndpoint (the token endpoint's URL, OIDC Core §9) or
	// AudienceIssuer (the issuer, RFC 7523bis; Auth0, ID-porten). Default
	// AudienceTokenEndpoint.
	ClientAssertionAudience AssertionAudience

	// BaseURL is the public origin of the app, such as
	// "https://app.example". The redirect URI registered at the provider is
	// BaseURL + Prefix + "/callback". Required; https, or http only for
	// localhost and loopback addresses (browsers treat those as secure),
	// unless InsecurePlainHTTPCookies is set.
	BaseURL string

	// Prefix is the path under which the auth routes are served:
	// Prefix+"/login", "/callback", "/session", "/logout",
	// "/logout/callback" and "/backchannel-logout". Default "/auth".
	Prefix string

	// Scopes are requested at sign-in. Default
	// "openid profile email offline_access". Must contain "openid".
	Scopes []string

	// AuthParams are extra parameters of every authorization request, such
	// as {"access_type": "offline"} (Google) or {"audience":
	// "https://api.example"} (Auth0). Parameters bff sets itself
	// (client_id, redirect_uri, state, nonce, code_challenge,
	// code_challenge_method, response_type, response_mode, scope, request,
	// request_uri) and client credentials are refused. One the browser may
	// also send (LoginParams) is a default that the browser's value
	// replaces. A max_age here is checked at the callback like the
	// browser's; an acr_values is only a hint. Default none.
	AuthParams map[string]string

	// LoginParams are the parameters that Prefix+"/login" passes on from
	// the browser's query to the provider, each validated and
	// length-bounded: ParamPrompt (LoginPrompts), ParamLoginHint (256
	// bytes), ParamACRValues (10 values, 512 bytes), ParamMaxAge (0 to
	// 2^31-1 seconds), ParamUILocales (10 language tags, 128 bytes). A
	// value out of bounds, a parameter given twice, or one not listed here
	// is a 400; nothing else from the query (but returnTo) reaches the
	// provider. Default: all five.
	LoginParams []LoginParam

	// DisableLoginParams makes /login pass on no parameter of the
	// browser's (only returnTo is read). Default false.
	DisableLoginParams bool

	// LoginPrompts are the prompt values /login accepts: some of none
	// (silent sign-in: the provider's error login_required and the like
	// come back as returnTo?error=login_required, never an error page),
	// login, consent, select_account. Default all four.
	LoginPrompts []string

	// DisableConsentPrompt stops sending prompt=consent. By default, with
	// offline_access in Scopes, a sign-in that names no prompt (neither
	// the browser nor AuthParams) sends prompt=consent, because OpenID
	// Connect Core §11 lets a provider ignore offline_access otherwise (no
	// refresh token, so the session ends with the first access token).
	// Set it for providers that show a consent page every time they are
	// asked (Entra ID). Default false.
	DisableConsentPrompt bool

	// PAR says when to use Pushed Authorization Requests (RFC 9126): the
	// authorization request's parameters go to the provider directly,
	// authenticated as the client, and the browser carries only client_id
	// and a request_uri. PARAuto uses it when the discovery document
	// advertises pushed_authorization_request_endpoint; PARNever never
	// (a provider that requires it is refused at discovery); PARRequired
	// always (a provider without it is refused at discovery). Default
	// PARAuto.
	PAR PARMode

	// Store holds sessions and the index records of back-channel logout.
	// Any scs.Store works. Default: an in-memory store private to this BFF,
	// or a Redis store when Redis is set. With a shared store of your own
	// (not Redis) set Locker too, or refreshes on different instances may
	// race.
	Store scs.Store

	// Redis, when set, makes Redis the session store (scs/redisstore) and
	// also the cross-instance refresh lock, the replay cache, and the
	// invalidation channel that keeps every instance's session cache
	// honest. Use NewRedisPool or RedisConfig.NewPool (TLS, ACL users,
	// Sentinel), or a pool whose connections have connect, read and write
	// timeouts: scs/redisstore takes no context, so the pool's timeouts are
	// what bound a request while Redis is unreachable (503 instead of a
	// hang). Default nil (memory).
	Redis *redis.Pool

	// Locker serializes writes to one session across instances that share
	// Store. Default: an in-process lock (enough for one instance), or a
	// Redis lock when Redis is set.
	Locker Locker

	// SecretKeys are 32-byte keys that seal the login-transaction cookie and
	// every value written to Store (AES-256-GCM). The first key seals; all
	// keys open, so rotate by putting a new key first and removing the old
	// one after MaxLifetime. Default: one random key per process, which is
	// only allowed with the default in-memory store (a restart loses the
	// sessions anyway); with any other store SecretKeys is required.
	SecretKeys [][]byte

	// CookieName names the session cookie. It must start with "__Host-"
	// unless InsecurePlainHTTPCookies is set. Default "__Host-bff".
	CookieName string

	// IdleTimeout ends a session that has not been used for this long.
	// Default 12 hours.
	IdleTimeout time.Duration

	// MaxLifetime ends a session this long after sign-in, however active.
	// A session also ends when the provider's refresh token expires, if the
	// provider says when (refresh_expires_in). Default 7 days.
	MaxLifetime time.Duration

	// TouchInterval is how often an active session's last-seen time is
	// written to the store for the idle timeout: at most one write per
	// session per interval. Default 1 minute; at most IdleTimeout/2.
	TouchInterval time.Duration

	// MaxSessionsPerUser bounds the sessions one subject has at a time
	// (browsers and devices signed in). Signing in beyond it ends the
	// user's oldest sessions. Default 100.
	MaxSessionsPerUser int

	// LoginTimeout is how long a sign-in may take between /login and
	// /callback (the login-transaction cookie's lifetime). Default 10
	// minutes.
	LoginTimeout time.Duration

	// RefreshSkew: an access token that expires within this long is
	// refreshed before the request reaches the handler. A skew longer than
	// half the token's lifetime counts as half the lifetime, so short-lived
	// tokens are not refreshed on every request. Default 1 minute.
	RefreshSkew time.Duration

	// RefreshTimeout bounds one refresh-token grant, independent of the
	// request that triggered it. Default 10 seconds.
	RefreshTimeout time.Duration

	// HTTPClient makes every call to the provider. Its Transport is wrapped
	// to bound response bodies (1 MiB) and to observe each call
	// (bff.provider.* metrics, a span). Default: a client with a 10-second
	// timeout.
	HTTPClient *http.Client

	// Logger receives structured logs. Tokens are never logged. Default
	// slog.Default().
	Logger *slog.Logger

	// ErrorHandler writes every error response of the auth routes,
	// RequireSession and the proxy. err is an *Error. Default: JSON
	// {"error": code, "error_description": description} with the status of
	// the *Error; internals (the wrapped cause) are logged, never sent.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// OnLogin runs after every check of a sign-in passed and before the
	// session is created. claims holds the ID token's claims merged with the
	// userinfo response; the hook may change them (map roles, drop claims)
	// or return an error to refuse the sign-in (403, no session). A panic
	// is recovered and refuses the sign-in. Default nil.
	OnLogin func(ctx context.Context, claims map[string]any) error

	// OnRefresh is called after each refresh attempt with its outcome
	// (no tokens in it). Default nil.
	OnRefresh func(ctx context.Context, ev RefreshEvent)

	// PostLogoutRedirect is where the browser lands after signing out: a
	// same-origin path. Default "/".
	PostLogoutRedirect string

	// ErrorPath is where a browser is sent (303, with ?error=<code>) when a
	// sign-in or sign-out that it navigated to fails: a same-origin path,
	// with a query if you like. The code is the provider's (RFC 6749, such
	// as "access_denied") or bff's own ("login_failed", "login_expired",
	// "login_refused", "invalid_request", "cross_origin",
	// "temporarily_unavailable"); see README. Requests that are not
	// navigations get the JSON error, and a custom ErrorHandler gets every
	// failure instead. Default: the sign-in's returnTo (for a sign-out,
	// PostLogoutRedirect), or "/" when there is none.
	ErrorPath string

	// ProviderLogout is what POST /logout does at the provider, after the
	// session ended here and its refresh token was revoked:
	// ProviderLogoutRedirectBack (the end-session endpoint, then back to
	// PostLogoutRedirect), ProviderLogoutNoReturn (the end-session endpoint
	// without post_logout_redirect_uri, for clients that cannot register
	// one: the user stays on the provider's page), ProviderLogoutSkip (no
	// visit to the provider: straight to PostLogoutRedirect; the user stays
	// signed in there), ProviderLogoutCognito (Amazon Cognito's own /logout
	// with client_id and logout_uri BaseURL+PostLogoutRedirect).
	// Default ProviderLogoutRedirectBack.
	ProviderLogout ProviderLogout

	// TrustedOrigins are other origins whose browsers may send unsafe
	// requests (POST, PUT, PATCH, DELETE) to RequireSession and logout, as
	// in http.CrossOriginProtection.AddTrustedOrigin. Default none.
	TrustedOrigins []string

	// CSRFHeader, when set, must be present (any non-empty value) on every
	// unsafe request through RequireSession, in addition to the
	// cross-origin check: a custom header forces a CORS preflight, a
	// defence for browsers without Fetch Metadata. It is not required on
	// upgrades (WebSocket handshakes), to which a browser cannot add
	// headers; the cross-origin check guards them. Default "" (not
	// required).
	CSRFHeader string

	// DisableUserinfo skips the userinfo request at sign-in. Default false:
	// the profile is fetched when the provider has a userinfo endpoint.
	DisableUserinfo bool

	// DisableSessionCache turns off the per-instance cache of decoded
	// sessions, so that every request reads the store. The cache is used
	// with the default memory store, and with Redis, where Redis pub/sub
	// invalidates it (every change is announced by the script that stores
	// it, and is visible on every instance within 100 ms; if the channel is
	// unhealthy, the store is read). A custom Store is never cached, so New
	// refuses this field with one. Default false.
	DisableSessionCache bool

	// ExpiryWarning is how long before a session's idle timeout or end of
	// lifetime Prefix+"/events" sends "event: expiring", so that a page can
	// warn the user. It is at most IdleTimeout - TouchInterval, so that a
	// request after the warning always records activity (and so extends
	// the session). Default 2 minutes, or that bound if it is shorter.
	ExpiryWarning time.Duration

	// MaxEventStreams bounds the Prefix+"/events" streams open on this
	// instance at a time; beyond it a new stream is answered 429. Default
	// 10,000 (a stream holds a connection, two goroutines and about 25
	// KiB; see README).
	MaxEventStreams int

	// MaxEventStreamsPerSession bounds the Prefix+"/events" streams of one
	// session on this instance (browser tabs); beyond it a new one is
	// answered 429. Default 16.
	MaxEventStreamsPerSession int

	// SessionCacheBytes bounds the memory of the per-instance session
	// cache (see DisableSessionCache). A cached session takes about 700
	// bytes plus the size of its tokens and claims (typically 3 to 5 KiB
	// in all); beyond the bound, the least recently used sessions are
	// read from the store again. Default 128 MiB. New refuses it where
	// there is no cache (a custom Store, or DisableSessionCache).
	SessionCacheBytes int64

	// InsecureAllowNoPKCE accepts a provider whose discovery document does
	// not advertise PKCE S256. PKCE is still sent. Default false: such a
	// provider is refused.
	InsecureAllowNoPKCE bool

	// InsecureAllowHTTPEndpoints accepts provider endpoints from discovery
	// (authorization, token, JWKS, userinfo, revocation, end-session, PAR)
	// over plain http on a host that is not loopback, where codes, tokens
	// and the provider's keys would cross the network in clear text. Never
	// use it in production. Default false: every endpoint must be https,
	// except on localhost and loopback addresses.
	InsecureAllowHTTPEndpoints bool

	// InsecurePlainHTTPCookies drops the Secure attribute and allows a
	// cookie name without "__Host-", for development over plain http on a
	// host that is not localhost. Never use it in production. Default false.
	InsecurePlainHTTPCookies bool

	// Now is the clock. Default time.Now.
	Now func() time.Time

	// MeterProvider receives bff's OpenTelemetry metrics (bff.login,
	// bff.refresh, bff.session_cache, …; README lists them). Their
	// attributes are from small fixed sets: never a subject, session or
	// token. Default nil: no metrics (a no-op provider).
	MeterProvider metric.MeterProvider

	// TracerProvider receives bff's OpenTelemetry spans: one for each
	// sign-in callback, refresh, logout, back-channel logout and proxied
	// request, with the provider calls as children; the proxied request
	// carries the W3C traceparent of its span. No token, code, cookie or
	// session ID is ever an attribute. Default nil: no spans (and the
	// proxy forwards the incoming traceparent unchanged).
	TracerProvider trace.TracerProvider

	// LogSubjects adds the user's subject (the sub claim) to the log lines
	// about a user's session (sign-in, sign-out, refresh, back-channel
	// logout). Default false: log lines name no user.
	LogSubjects bool
}

// hooks are the knobs only tests turn; they reach them through newBFF.
// The zero value is production's.
type hooks struct {
	// keysRefetchInterval overrides the minimum time between two fetches
	// of the provider's key set (keyset.DefaultMinRefetchInterval), so that
	// tests of a key rotation need not wait 10 s.
	keysRefetchInterval time.Duration

	// newTimer starts the timers of event streams and of the store's
	// polling, on the clock of Now. Default: time.NewTimer.
	newTimer timerFunc

	// misconfigRetry overrides the time between two discovery attempts
	// while the provider does not fit the options (misconfigRetry), so that
	// tests need not wait a minute.
	misconfigRetry time.Duration
}

// config is Options after validation, with defaults applied.
type config struct {
	Options
	hooks
	base        *url.URL
	redirectURI string
	postLogout  string // absolute URL of Prefix+"/logout/callback"
	keys        [][]byte
	cookieSec   bool
	memoryStore bool
	clearCookie string // the Set-Cookie value that clears the session cookie
}

func fieldErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func validate(o Options) (*config, error) {
	c := &config{Options: o}
	c.Scopes = slices.Clone(o.Scopes)
	c.TrustedOrigins = slices.Clone(o.TrustedOrigins)
	c.ClientKeys = slices.Clone(o.ClientKeys)
	c.Tenants = slices.Clone(o.Tenants)
	c.AuthParams = maps.Clone(o.AuthParams)
	c.LoginParams = slices.Clone(o.LoginParams)
	c.LoginPrompts = slices.Clone(o.LoginPrompts)
	for _, step := range []func(*config) error{validateParties, validateSignIn, validateStore, validateCookie,
		validateDurations, validateHooks} {
		if err := step(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// validateParties checks the provider, the client and this app's origin
// and routes.
func validateParties(c *config) error {
	if err := checkURL("Issuer", c.Issuer, false); err != nil {
		return err
	}
	if c.ClientID == "" {
		return fieldErr("ClientID", "is required")
	}
	if err := checkURL("BaseURL", c.BaseURL, c.InsecurePlainHTTPCookies); err != nil {
		return err
	}
	c.base, _ = url.Parse(strings.TrimSuffix(c.BaseURL, "/"))
	if c.base.Path != "" || c.base.RawQuery != "" || c.base.Fragment != "" {
		return fieldErr("BaseURL", "must be an origin such as https://app.example, without path, query or fragment")
	}
	if c.Prefix == "" {
		c.Prefix = "/auth"
	}
	if !strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") || strings.ContainsAny(c.Prefix, "?#") {
		return fieldErr("Prefix", "must start with / and not end with / (like /auth)")
	}
	c.redirectURI = c.base.String() + c.Prefix + "/callback"
	c.postLogout = c.base.String() + c.Prefix + "/logout/callback"

	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "profile", "email", "offline_access"}
	}
	if !slices.Contains(c.Scopes, "openid") {
		return fieldErr("Scopes", `must contain "openid"`)
	}
	return nil
}

// validateStore checks the session store and the keys that seal it.
func validateStore(c *config) error {
	if c.Store == nil && c.Redis == nil {
		c.memoryStore = true
	}
	switch {
	case c.Store != nil && c.Redis != nil:
		return fieldErr("Store", "set either Store or Redis, not both")
	case c.Store != nil && c.DisableSessionCache:
		return fieldErr("DisableSessionCache", "does nothing with a custom Store, whose sessions are never cached: remove it")
	case c.SessionCacheBytes != 0 && (c.Store != nil || c.DisableSessionCache):
		return fieldErr("SessionCacheBytes", "does nothing without the session cache (with a custom Store or DisableSessionCache): remove it")
	}
	switch {
	case len(c.SecretKeys) == 0 && c.memoryStore:
		k := make([]byte, seal.KeySize)
		rand.Read(k)
		c.keys = [][]byte{k}
	case len(c.SecretKeys) == 0:
		return fieldErr("SecretKeys", "is required with a shared store: every instance must seal with the same key")
	default:
		for i, k := range c.SecretKeys {
			if len(k) != seal.KeySize {
				return fieldErr("SecretKeys", "key %d is %d bytes, want %d", i, len(k), seal.KeySize)
			}
			c.keys = append(c.keys, slices.Clone(k))
		}
	}
	return nil
}

// validateCookie checks the session cookie's name and security.
func validateCookie(c *config) error {
	c.cookieSec = !c.InsecurePlainHTTPCookies
	if c.CookieName == "" {
		c.CookieName = "__Host-bff"
		if !c.cookieSec {
			c.CookieName = "bff"
		}
	}
	if c.cookieSec && !strings.HasPrefix(c.CookieName, "__Host-") {
		return fieldErr("CookieName", `must start with "__Host-" (or set InsecurePlainHTTPCookies)`)
	}
	if !validCookieName(c.CookieName) {
		return fieldErr("CookieName", "is not a valid cookie name")
	}
	c.clearCookie = (&http.Cookie{Name: c.CookieName, Path: "/", MaxAge: -1, Secure: c.cookieSec, HttpOnly: true,
		SameSite: http.SameSiteStrictMode}).String()
	return nil
}

// validateDurations checks the timeouts and limits, and applies their
// defaults.
func validateDurations(c *config) error {
	if err := defDur(&c.IdleTimeout, 12*time.Hour, "IdleTimeout"); err != nil {
		return err
	}
	if err := defDur(&c.MaxLifetime, 7*24*time.Hour, "MaxLifetime"); err != nil {
		return err
	}
	if err := defDur(&c.TouchInterval, time.Minute, "TouchInterval"); err != nil {
		return err
	}
	if c.TouchInterval > c.IdleTimeout/2 {
		c.TouchInterval = c.IdleTimeout / 2
	}
	switch {
	case c.SessionCacheBytes < 0:
		return fieldErr("SessionCacheBytes", "must not be negative (0 means the default, 128 MiB; DisableSessionCache turns the cache off)")
	case c.SessionCacheBytes == 0:
		c.SessionCacheBytes = 128 << 20
	}
	switch {
	case c.MaxSessionsPerUser < 0:
		return fieldErr("MaxSessionsPerUser", "must not be negative (0 means the default, 100)")
	case c.MaxSessionsPerUser == 0:
		c.MaxSessionsPerUser = 100
	}
	if err := c.eventDefaults(); err != nil {
		return err
	}
	if err := defDur(&c.LoginTimeout, 10*time.Minute, "LoginTimeout"); err != nil {
		return err
	}
	if err := defDur(&c.RefreshSkew, time.Minute, "RefreshSkew"); err != nil {
		return err
	}
	return defDur(&c.RefreshTimeout, 10*time.Second, "RefreshTimeout")
}

// validateHooks applies the defaults of the clients, hooks and redirects,
// and checks the redirects and trusted origins.
func validateHooks(c *config) error {
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ErrorHandler == nil {
		c.ErrorHandler = defaultErrorHandler
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.InsecureAllowHTTPEndpoints {
		c.Logger.Warn("bff: Options.InsecureAllowHTTPEndpoints is set: provider endpoints may be plain http; never use it in production")
	}
	if c.InsecureAnyTenant {
		c.Logger.Warn("bff: Options.InsecureAnyTenant is set: users of every tenant of a multi-tenant issuer can sign in; authorize them (by tid) in OnLogin")
	}
	if c.PostLogoutRedirect == "" {
		c.PostLogoutRedirect = "/"
	}
	if !strings.HasPrefix(c.PostLogoutRedirect, "/") || strings.HasPrefix(c.PostLogoutRedirect, "//") || strings.HasPrefix(c.PostLogoutRedirect, "/\\") {
		return fieldErr("PostLogoutRedirect", "must be a same-origin path such as /")
	}
	if c.ErrorPath != "" {
		p, err := redirect.Path(c.ErrorPath)
		if err != nil {
			return fieldErr("ErrorPath", "must be a same-origin path such as /error, at most %d bytes", redirect.MaxLen)
		}
		c.ErrorPath = p
	}
	for _, o := range c.TrustedOrigins {
		if err := http.NewCrossOriginProtection().AddTrustedOrigin(o); err != nil {
			return fieldErr("TrustedOrigins", "%q: %v", o, err)
		}
	}
	return nil
}

// validateSignIn checks the client credentials and the options of the
// authorization request.
func validateSignIn(c *config) error {
	switch {
	case c.ClientSecret == "" && len(c.ClientKeys) == 0:
		return fieldErr("ClientSecret", "is required (bff is a confidential client), unless ClientKeys is set for private_key_jwt")
	case c.ClientSecret != "" && len(c.ClientKeys) > 0:
		return fieldErr("ClientKeys", "and ClientSecret are both set: choose one way to authenticate (ClientKeys: private_key_jwt)")
	case c.ClientCertificate != nil && !certifiesFirstKey(c.ClientCertificate, c.ClientKeys):
		return fieldErr("ClientCertificate", "must be the certificate of ClientKeys[0] (its public key differs, or ClientKeys is empty)")
	case c.ClientAssertionAudience != AudienceTokenEndpoint && c.ClientAssertionAudience != AudienceIssuer:
		return fieldErr("ClientAssertionAudience", "must be AudienceTokenEndpoint or AudienceIssuer")
	case c.PAR < PARAuto || c.PAR > PARRequired:
		return fieldErr("PAR", "must be PARAuto, PARNever or PARRequired")
	case c.ProviderLogout < ProviderLogoutRedirectBack || c.ProviderLogout > ProviderLogoutCognito:
		return fieldErr("ProviderLogout", "must be ProviderLogoutRedirectBack, ProviderLogoutNoReturn, ProviderLogoutSkip or ProviderLogoutCognito")
	}
	if err := validateAuthParams(c.AuthParams); err != nil {
		return err
	}
	if err := validateTenants(c); err != nil {
		return err
	}
	return validateLoginParams(c)
}

// eventDefaults checks and completes the options of Prefix+"/events".
func (c *config) eventDefaults() error {
	bound := c.IdleTimeout - c.TouchInterval
	switch {
	case c.ExpiryWarning < 0:
		return fieldErr("ExpiryWarning", "must not be negative")
	case c.ExpiryWarning == 0:
		c.ExpiryWarning = min(2*time.Minute, bound)
	case c.ExpiryWarning > bound:
		return fieldErr("ExpiryWarning", "must be at most IdleTimeout - TouchInterval (%v): activity after a longer warning may not be recorded, and the session would end anyway", bound)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"MaxEventStreams", &c.MaxEventStreams, 10000}, {"MaxEventStreamsPerSession", &c.MaxEventStreamsPerSession, 16}} {
		switch {
		case *f.v < 0:
			return fieldErr(f.name, "must not be negative (0 means the default, %d)", f.def)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return nil
}

func defDur(d *time.Duration, def time.Duration, field string) error {
	if *d < 0 {
		return fieldErr(field, "must not be negative")
	}
	if *d == 0 {
		*d = def
	}
	return nil
}

func checkURL(field, s string, allowHTTP bool) error {
	if s == "" {
		return fieldErr(field, "is required")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fieldErr(field, "must be an absolute URL without credentials, query or fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP && !isLoopback(u.Hostname()) {
			return fieldErr(field, "must use https (http is allowed only for localhost and loopback addresses)")
		}
	default:
		return fieldErr(field, "must be an https URL")
	}
	return nil
}

// checkEndpoints checks the provider's endpoints from discovery: the
// first three are required; each present one must pass checkEndpoint.
func (c *config) checkEndpoints(authz, token, jwks, userinfo, revocation, endSession string) error {
	for _, ep := range []struct {
		member, url string
		required    bool
	}{
		{"authorization_endpoint", authz, true}, {"token_endpoint", token, true}, {"jwks_uri", jwks, true},
		{"userinfo_endpoint", userinfo, false}, {"revocation_endpoint", revocation, false},
		{"end_session_endpoint", endSession, false},
	} {
		if ep.url == "" {
			if ep.required {
				return fmt.Errorf("%s is missing", ep.member)
			}
			continue
		}
		if err := c.checkEndpoint(ep.member, ep.url); err != nil {
			return err
		}
	}
	return nil
}

// checkEndpoint checks one provider endpoint from discovery (the
// discovery document's member): an absolute https URL without user
// information or fragment (a query is allowed, as RFC 6749 §3.1 allows
// one), or http on a loopback host or with InsecureAllowHTTPEndpoints.
func (c *config) checkEndpoint(member, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%s %q is not an absolute URL without user information or fragment", member, raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (isLoopback(u.Hostname()) || c.InsecureAllowHTTPEndpoints):
	default:
		return fmt.Errorf("%s %q must use https (http only on a loopback host, or with Options.InsecureAllowHTTPEndpoints)",
			member, raw)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
