package bff

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"

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

	// ClientID and ClientSecret are this confidential client's credentials
	// at the provider. Both required.
	ClientID     string
	ClientSecret string

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

	// Store holds sessions and the index records of back-channel logout.
	// Any scs.Store works. Default: an in-memory store private to this BFF,
	// or a Redis store when Redis is set. With a shared store of your own
	// (not Redis) set Locker too, or refreshes on different instances may
	// race.
	Store scs.Store

	// Redis, when set, makes Redis the session store (scs/redisstore) and
	// also the cross-instance refresh lock, the replay cache, and the
	// invalidation channel that keeps every instance's session cache
	// honest. Use NewRedisPool, or a pool whose connections have connect,
	// read and write timeouts: scs/redisstore takes no context, so the
	// pool's timeouts are what bound a request while Redis is unreachable
	// (503 instead of a hang). Default nil (memory).
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
	// to bound response bodies (1 MiB). Default: a client with a 10-second
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
	// invalidates it (every revocation is visible on every instance within
	// 100 ms; if the channel is unhealthy, the store is read). With any
	// other Store the cache is never used. Default false.
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

	// InsecureAllowNoPKCE accepts a provider whose discovery document does
	// not advertise PKCE S256. PKCE is still sent. Default false: such a
	// provider is refused.
	InsecureAllowNoPKCE bool

	// InsecureAllowHTTPEndpoints accepts provider endpoints from discovery
	// (authorization, token, JWKS, userinfo, revocation, end-session) over
	// plain http on a host that is not loopback, where codes, tokens and the
	// provider's keys would cross the network in clear text. Never use it in
	// production. Default false: every endpoint must be https, except on
	// localhost and loopback addresses.
	InsecureAllowHTTPEndpoints bool

	// InsecurePlainHTTPCookies drops the Secure attribute and allows a
	// cookie name without "__Host-", for development over plain http on a
	// host that is not localhost. Never use it in production. Default false.
	InsecurePlainHTTPCookies bool

	// Now is the clock. Default time.Now.
	Now func() time.Time

	// keysRefetchInterval overrides the minimum time between two fetches
	// of the provider's key set (keyset.DefaultMinRefetchInterval), so that
	// tests of a key rotation need not wait 10 s. Tests only.
	keysRefetchInterval time.Duration

	// newTimer starts the timers of event streams and of the store's
	// polling, on the clock of Now. Default: time.NewTimer. Tests only.
	newTimer timerFunc
}

// config is Options after validation, with defaults applied.
type config struct {
	Options
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

	if err := checkURL("Issuer", o.Issuer, false); err != nil {
		return nil, err
	}
	if o.ClientID == "" {
		return nil, fieldErr("ClientID", "is required")
	}
	if o.ClientSecret == "" {
		return nil, fieldErr("ClientSecret", "is required (bff is a confidential client)")
	}
	if err := checkURL("BaseURL", o.BaseURL, o.InsecurePlainHTTPCookies); err != nil {
		return nil, err
	}
	c.base, _ = url.Parse(strings.TrimSuffix(o.BaseURL, "/"))
	if c.base.Path != "" || c.base.RawQuery != "" || c.base.Fragment != "" {
		return nil, fieldErr("BaseURL", "must be an origin such as https://app.example, without path, query or fragment")
	}
	if c.Prefix == "" {
		c.Prefix = "/auth"
	}
	if !strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") || strings.ContainsAny(c.Prefix, "?#") {
		return nil, fieldErr("Prefix", "must start with / and not end with / (like /auth)")
	}
	c.redirectURI = c.base.String() + c.Prefix + "/callback"
	c.postLogout = c.base.String() + c.Prefix + "/logout/callback"

	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "profile", "email", "offline_access"}
	}
	if !slices.Contains(c.Scopes, "openid") {
		return nil, fieldErr("Scopes", `must contain "openid"`)
	}

	if o.Store == nil && o.Redis == nil {
		c.memoryStore = true
	}
	if o.Store != nil && o.Redis != nil {
		return nil, fieldErr("Store", "set either Store or Redis, not both")
	}
	switch {
	case len(o.SecretKeys) == 0 && c.memoryStore:
		k := make([]byte, seal.KeySize)
		rand.Read(k)
		c.keys = [][]byte{k}
	case len(o.SecretKeys) == 0:
		return nil, fieldErr("SecretKeys", "is required with a shared store: every instance must seal with the same key")
	default:
		for i, k := range o.SecretKeys {
			if len(k) != seal.KeySize {
				return nil, fieldErr("SecretKeys", "key %d is %d bytes, want %d", i, len(k), seal.KeySize)
			}
			c.keys = append(c.keys, slices.Clone(k))
		}
	}

	c.cookieSec = !o.InsecurePlainHTTPCookies
	if c.CookieName == "" {
		c.CookieName = "__Host-bff"
		if !c.cookieSec {
			c.CookieName = "bff"
		}
	}
	if c.cookieSec && !strings.HasPrefix(c.CookieName, "__Host-") {
		return nil, fieldErr("CookieName", `must start with "__Host-" (or set InsecurePlainHTTPCookies)`)
	}
	if !validCookieName(c.CookieName) {
		return nil, fieldErr("CookieName", "is not a valid cookie name")
	}
	c.clearCookie = (&http.Cookie{Name: c.CookieName, Path: "/", MaxAge: -1, Secure: c.cookieSec, HttpOnly: true,
		SameSite: http.SameSiteStrictMode}).String()

	if err := defDur(&c.IdleTimeout, 12*time.Hour, "IdleTimeout"); err != nil {
		return nil, err
	}
	if err := defDur(&c.MaxLifetime, 7*24*time.Hour, "MaxLifetime"); err != nil {
		return nil, err
	}
	if err := defDur(&c.TouchInterval, time.Minute, "TouchInterval"); err != nil {
		return nil, err
	}
	if c.TouchInterval > c.IdleTimeout/2 {
		c.TouchInterval = c.IdleTimeout / 2
	}
	switch {
	case c.MaxSessionsPerUser < 0:
		return nil, fieldErr("MaxSessionsPerUser", "must not be negative (0 means the default, 100)")
	case c.MaxSessionsPerUser == 0:
		c.MaxSessionsPerUser = 100
	}
	if err := c.eventDefaults(); err != nil {
		return nil, err
	}
	if err := defDur(&c.LoginTimeout, 10*time.Minute, "LoginTimeout"); err != nil {
		return nil, err
	}
	if err := defDur(&c.RefreshSkew, time.Minute, "RefreshSkew"); err != nil {
		return nil, err
	}
	if err := defDur(&c.RefreshTimeout, 10*time.Second, "RefreshTimeout"); err != nil {
		return nil, err
	}

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
	if c.PostLogoutRedirect == "" {
		c.PostLogoutRedirect = "/"
	}
	if !strings.HasPrefix(c.PostLogoutRedirect, "/") || strings.HasPrefix(c.PostLogoutRedirect, "//") || strings.HasPrefix(c.PostLogoutRedirect, "/\\") {
		return nil, fieldErr("PostLogoutRedirect", "must be a same-origin path such as /")
	}
	if c.ErrorPath != "" {
		p, err := redirect.Path(c.ErrorPath)
		if err != nil {
			return nil, fieldErr("ErrorPath", "must be a same-origin path such as /error, at most %d bytes", redirect.MaxLen)
		}
		c.ErrorPath = p
	}
	for _, o := range c.TrustedOrigins {
		if err := http.NewCrossOriginProtection().AddTrustedOrigin(o); err != nil {
			return nil, fieldErr("TrustedOrigins", "%q: %v", o, err)
		}
	}
	return c, nil
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
	if c.newTimer == nil {
		c.newTimer = realTimer
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
// first three are required; each present one must be an absolute https URL
// without user information or fragment (a query is allowed, as RFC 6749
// §3.1 allows one), or http on a loopback host or with
// InsecureAllowHTTPEndpoints.
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
		u, err := url.Parse(ep.url)
		if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			return fmt.Errorf("%s %q is not an absolute URL without user information or fragment", ep.member, ep.url)
		}
		switch {
		case u.Scheme == "https":
		case u.Scheme == "http" && (isLoopback(u.Hostname()) || c.InsecureAllowHTTPEndpoints):
		default:
			return fmt.Errorf("%s %q must use https (http only on a loopback host, or with Options.InsecureAllowHTTPEndpoints)",
				ep.member, ep.url)
		}
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

// NewRedisPool returns a redigo pool for addr ("host:port", or a
// redis:// URL) with timeouts that make an outage fail fast (500 ms to
// connect, read and write) so requests answer 503 instead of hanging.
func NewRedisPool(addr string) *redis.Pool {
	dialOpts := []redis.DialOption{
		redis.DialConnectTimeout(500 * time.Millisecond),
		redis.DialReadTimeout(500 * time.Millisecond),
		redis.DialWriteTimeout(500 * time.Millisecond),
	}
	return &redis.Pool{
		MaxIdle:     64,
		IdleTimeout: 4 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			if strings.Contains(addr, "://") {
				return redis.DialURLContext(ctx, addr, dialOpts...)
			}
			return redis.DialContext(ctx, "tcp", addr, dialOpts...)
		},
		TestOnBorrow: func(c redis.Conn, t time.Time) error {
			if time.Since(t) < 30*time.Second {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}
}
