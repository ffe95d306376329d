// Package exampleapp holds what the runnable examples (examples/basic and
// examples/chi) share: reading the BFF_* environment variables, the
// embedded development identity provider, the static page and the API
// handlers (/api/me, /api/echo, /api/stepup) that each example mounts on its
// router behind the BFF.
package exampleapp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gobff/bff"
)

// Config is the examples' configuration, read from the environment by Load.
type Config struct {
	Addr    string // BFF_ADDR: listen address. Default 127.0.0.1:8080.
	BaseURL string // BFF_BASE_URL: public origin. Default http://localhost:<port of Addr> (http://localhost:8080).

	Issuer       string            // BFF_ISSUER; empty: the embedded development IdP.
	ClientID     string            // BFF_CLIENT_ID
	ClientSecret string            // BFF_CLIENT_SECRET; optional with BFF_CLIENT_KEY.
	ClientKey    crypto.Signer     // BFF_CLIENT_KEY: path of a PEM private key (EC P-256 or RSA): private_key_jwt.
	Scopes       []string          // BFF_SCOPES, space-separated. Default: the library's.
	AuthParams   map[string]string // BFF_AUTH_PARAMS: query-encoded static authorization parameters ("access_type=offline&audience=x").
	PAR          bff.PARMode       // BFF_PAR: auto (default), never or require.
	StepUpACR    []string          // BFF_STEPUP_ACR: space-separated acr values that GET /api/stepup requires. Default: no such route.

	// Provider quirks (README's provider recipes).
	ClientCert           *x509.Certificate  // BFF_CLIENT_CERT: path of the PEM certificate of BFF_CLIENT_KEY (Entra ID): x5t in assertions.
	Tenants              []string           // BFF_TENANTS: space-separated tenant IDs of a multi-tenant issuer (Entra ID).
	ProviderLogout       bff.ProviderLogout // BFF_PROVIDER_LOGOUT: redirect-back (default), no-return, skip or cognito.
	DisableConsentPrompt bool               // BFF_CONSENT_PROMPT: 1 (default) sends prompt=consent with offline_access; 0 does not.
	InsecureAllowNoPKCE  bool               // BFF_INSECURE_ALLOW_NO_PKCE: 1 accepts a provider that does not advertise S256 (Entra ID, Cognito).

	RedisAddr      string   // BFF_REDIS_ADDR: host:port (or redis:// URL) of Redis. Default: in-memory store.
	RedisURL       string   // BFF_REDIS_URL: redis:// or rediss:// URL with user, password, database; without host beside BFF_REDIS_SENTINELS.
	RedisSentinels []string // BFF_REDIS_SENTINELS: comma-separated host:port of Redis Sentinels. Default: none.
	RedisMaster    string   // BFF_REDIS_MASTER: the master name the sentinels monitor. Required with BFF_REDIS_SENTINELS.

	SecretKey   []byte        // BFF_SECRET_KEY: base64 of 32 bytes. Default: random per process.
	RefreshSkew time.Duration // BFF_REFRESH_SKEW: Go duration. Default: the library's.
	IdleTimeout time.Duration // BFF_IDLE_TIMEOUT: Go duration. Default: the library's (12h).
	// BFF_EXPIRY_WARNING: how long before the session ends /auth/events
	// warns. Default: the library's (2m).
	ExpiryWarning time.Duration
	Upstream      *url.URL // BFF_UPSTREAM_URL: downstream API proxied under /api/upstream/. Default: none.

	DevIdPAddr        string        // BFF_DEV_IDP_ADDR: listen address of the dev IdP. Default 127.0.0.1:8081.
	DevAccessTokenTTL time.Duration // BFF_DEV_ACCESS_TOKEN_TTL: the dev IdP's access-token lifetime. Default 1h.

	Metrics bool // BFF_METRICS: 1 serves OpenTelemetry metrics at GET /metrics (examples/basic), 0 does not. Default 1.
}

// Load reads the configuration from getenv (os.Getenv in main). A random
// secret key is generated, with a warning on log, when BFF_SECRET_KEY is
// unset.
func Load(getenv func(string) string, log *slog.Logger) (*Config, error) {
	c := &Config{
		Addr:         or(getenv("BFF_ADDR"), "127.0.0.1:8080"),
		BaseURL:      strings.TrimSuffix(getenv("BFF_BASE_URL"), "/"),
		Issuer:       getenv("BFF_ISSUER"),
		ClientID:     getenv("BFF_CLIENT_ID"),
		ClientSecret: getenv("BFF_CLIENT_SECRET"),
		Scopes:       strings.Fields(getenv("BFF_SCOPES")),
		RedisAddr:    getenv("BFF_REDIS_ADDR"),
		RedisURL:     getenv("BFF_REDIS_URL"),
		RedisMaster:  getenv("BFF_REDIS_MASTER"),
		DevIdPAddr:   or(getenv("BFF_DEV_IDP_ADDR"), "127.0.0.1:8081"),
	}
	_, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("BFF_ADDR: %v", err)
	}
	if c.BaseURL == "" {
		c.BaseURL = "http://localhost:" + port
	}
	if err := c.loadSignIn(getenv); err != nil {
		return nil, err
	}
	if c.Issuer != "" && (c.ClientID == "" || (c.ClientSecret == "" && c.ClientKey == nil)) {
		return nil, errors.New("BFF_ISSUER is set: set BFF_CLIENT_ID and BFF_CLIENT_SECRET (or BFF_CLIENT_KEY) too")
	}
	for _, a := range strings.Split(getenv("BFF_REDIS_SENTINELS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.RedisSentinels = append(c.RedisSentinels, a)
		}
	}
	if err := c.checkRedis(); err != nil {
		return nil, err
	}
	if err := c.loadSecretKey(getenv, log); err != nil {
		return nil, err
	}
	if err := c.loadMetrics(getenv); err != nil {
		return nil, err
	}
	if err := c.loadTuning(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// loadSecretKey reads BFF_SECRET_KEY, or makes a random key (with a
// warning: sessions then end with the process).
func (c *Config) loadSecretKey(getenv func(string) string, log *slog.Logger) error {
	if s := getenv("BFF_SECRET_KEY"); s != "" {
		k, err := decodeKey(s)
		if err != nil {
			return fmt.Errorf("BFF_SECRET_KEY: %v", err)
		}
		c.SecretKey = k
	} else {
		c.SecretKey = make([]byte, 32)
		rand.Read(c.SecretKey)
		log.Warn("BFF_SECRET_KEY is not set: using a random key, so sessions end when this process stops and no other instance can read them; set it to the base64 of 32 random bytes (openssl rand -base64 32)")
	}
	return nil
}

// loadTuning reads the durations and BFF_UPSTREAM_URL.
func (c *Config) loadTuning(getenv func(string) string) (err error) {
	if s := getenv("BFF_REFRESH_SKEW"); s != "" {
		if c.RefreshSkew, err = time.ParseDuration(s); err != nil || c.RefreshSkew < 0 {
			return fmt.Errorf("BFF_REFRESH_SKEW: %q is not a positive Go duration such as 30s", s)
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{{"BFF_IDLE_TIMEOUT", &c.IdleTimeout}, {"BFF_EXPIRY_WARNING", &c.ExpiryWarning}} {
		if s := getenv(d.name); s != "" {
			if *d.v, err = time.ParseDuration(s); err != nil || *d.v < time.Second {
				return fmt.Errorf("%s: %q is not a Go duration of at least 1s", d.name, s)
			}
		}
	}
	if s := getenv("BFF_UPSTREAM_URL"); s != "" {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			return fmt.Errorf("BFF_UPSTREAM_URL: %q is not an http(s) URL without user information or fragment", s)
		}
		c.Upstream = u
	}
	c.DevAccessTokenTTL = time.Hour
	if s := getenv("BFF_DEV_ACCESS_TOKEN_TTL"); s != "" {
		if c.DevAccessTokenTTL, err = time.ParseDuration(s); err != nil || c.DevAccessTokenTTL < time.Second {
			return fmt.Errorf("BFF_DEV_ACCESS_TOKEN_TTL: %q is not a Go duration of at least 1s", s)
		}
	}
	return nil
}

// loadMetrics reads BFF_METRICS: 1 (serve /metrics, the default) or 0.
func (c *Config) loadMetrics(getenv func(string) string) error {
	switch s := getenv("BFF_METRICS"); s {
	case "", "1":
		c.Metrics = true
	case "0":
	default:
		return fmt.Errorf("BFF_METRICS: %q is neither 1 (serve /metrics, the default) nor 0", s)
	}
	return nil
}

// Options returns the bff.Options for this configuration. Redis, when set,
// is a new pool the caller closes after the BFF.
func (c *Config) Options(log *slog.Logger) bff.Options {
	o := bff.Options{
		Issuer:        c.Issuer,
		ClientID:      c.ClientID,
		ClientSecret:  c.ClientSecret,
		BaseURL:       c.BaseURL,
		Scopes:        c.Scopes,
		AuthParams:    c.AuthParams,
		PAR:           c.PAR,
		SecretKeys:    [][]byte{c.SecretKey},
		RefreshSkew:   c.RefreshSkew,
		IdleTimeout:   c.IdleTimeout,
		Logger:        log,
		ExpiryWarning: c.ExpiryWarning,

		ClientCertificate:    c.ClientCert,
		Tenants:              c.Tenants,
		ProviderLogout:       c.ProviderLogout,
		DisableConsentPrompt: c.DisableConsentPrompt,
		InsecureAllowNoPKCE:  c.InsecureAllowNoPKCE,
	}
	if c.ClientKey != nil {
		o.ClientKeys = []crypto.Signer{c.ClientKey}
	}
	if rc, ok := c.redisConfig(); ok {
		o.Redis, _ = rc.NewPool() // checked by Load
	}
	return o
}

// redisConfig returns the Redis settings, if any.
func (c *Config) redisConfig() (bff.RedisConfig, bool) {
	rc := bff.RedisConfig{URL: c.RedisURL, Sentinels: c.RedisSentinels, MasterName: c.RedisMaster}
	if c.RedisAddr != "" {
		rc.URL = c.RedisAddr
	}
	return rc, rc.URL != "" || len(rc.Sentinels) > 0 || rc.MasterName != ""
}

// checkRedis checks the Redis variables (building a pool dials nothing),
// naming the variable at fault; no error repeats a password.
func (c *Config) checkRedis() error {
	if c.RedisAddr != "" && (c.RedisURL != "" || len(c.RedisSentinels) > 0) {
		return errors.New("BFF_REDIS_ADDR: set it, or BFF_REDIS_URL (with BFF_REDIS_SENTINELS and BFF_REDIS_MASTER for Sentinel), not both")
	}
	rc, ok := c.redisConfig()
	if !ok {
		return nil
	}
	p, err := rc.NewPool()
	var ce *bff.ConfigError
	if errors.As(err, &ce) {
		env := map[string]string{"RedisConfig.URL": "BFF_REDIS_URL", "RedisConfig.Sentinels": "BFF_REDIS_SENTINELS",
			"RedisConfig.MasterName": "BFF_REDIS_MASTER"}
		if c.RedisAddr != "" {
			env["RedisConfig.URL"] = "BFF_REDIS_ADDR"
		}
		return fmt.Errorf("%s: %s", env[ce.Field], ce.Reason)
	}
	if err != nil {
		return err
	}
	return p.Close()
}

// loadSignIn reads the sign-in variables: BFF_AUTH_PARAMS, BFF_CLIENT_KEY,
// BFF_PAR and BFF_STEPUP_ACR.
func (c *Config) loadSignIn(getenv func(string) string) error {
	if s := getenv("BFF_AUTH_PARAMS"); s != "" {
		q, err := url.ParseQuery(s)
		if err != nil {
			return fmt.Errorf("BFF_AUTH_PARAMS: %q is not URL-query-encoded (like access_type=offline&audience=https%%3A%%2F%%2Fapi): %v", s, err)
		}
		c.AuthParams = map[string]string{}
		for k, v := range q {
			if len(v) != 1 {
				return fmt.Errorf("BFF_AUTH_PARAMS: %q is given %d times", k, len(v))
			}
			c.AuthParams[k] = v[0]
		}
	}
	if path := getenv("BFF_CLIENT_KEY"); path != "" {
		k, err := readKey(path)
		if err != nil {
			return fmt.Errorf("BFF_CLIENT_KEY: %v", err)
		}
		c.ClientKey = k
	}
	switch s := getenv("BFF_PAR"); s {
	case "", "auto":
		c.PAR = bff.PARAuto
	case "never":
		c.PAR = bff.PARNever
	case "require":
		c.PAR = bff.PARRequired
	default:
		return fmt.Errorf("BFF_PAR: %q is not auto, never or require", s)
	}
	c.StepUpACR = strings.Fields(getenv("BFF_STEPUP_ACR"))
	return c.loadProvider(getenv)
}

// providerLogouts are the values of BFF_PROVIDER_LOGOUT.
var providerLogouts = map[string]bff.ProviderLogout{"": bff.ProviderLogoutRedirectBack,
	"redirect-back": bff.ProviderLogoutRedirectBack, "no-return": bff.ProviderLogoutNoReturn,
	"skip": bff.ProviderLogoutSkip, "cognito": bff.ProviderLogoutCognito}

// loadProvider reads the variables of provider quirks: BFF_CLIENT_CERT,
// BFF_TENANTS, BFF_PROVIDER_LOGOUT, BFF_CONSENT_PROMPT and
// BFF_INSECURE_ALLOW_NO_PKCE.
func (c *Config) loadProvider(getenv func(string) string) error {
	if path := getenv("BFF_CLIENT_CERT"); path != "" {
		cert, err := readCert(path)
		if err != nil {
			return fmt.Errorf("BFF_CLIENT_CERT: %v", err)
		}
		c.ClientCert = cert
	}
	c.Tenants = strings.Fields(getenv("BFF_TENANTS"))
	var ok bool
	if c.ProviderLogout, ok = providerLogouts[getenv("BFF_PROVIDER_LOGOUT")]; !ok {
		return fmt.Errorf("BFF_PROVIDER_LOGOUT: %q is not redirect-back, no-return, skip or cognito", getenv("BFF_PROVIDER_LOGOUT"))
	}
	for _, f := range []struct {
		name    string
		v       *bool
		ifValue string // the value that sets v
	}{{"BFF_CONSENT_PROMPT", &c.DisableConsentPrompt, "0"}, {"BFF_INSECURE_ALLOW_NO_PKCE", &c.InsecureAllowNoPKCE, "1"}} {
		switch s := getenv(f.name); s {
		case "", "0", "1":
			*f.v = s == f.ifValue
		default:
			return fmt.Errorf("%s: %q is neither 0 nor 1", f.name, s)
		}
	}
	return nil
}

// readCert reads a PEM certificate.
func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM CERTIFICATE block", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// readKey reads a PEM private key (PKCS #8, or SEC 1 EC, or PKCS #1 RSA):
// EC P-256 or RSA.
func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM block", path)
	}
	var key any
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%s: an EC key must be on P-256", path)
		}
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%s: %T is neither an EC P-256 nor an RSA key", path, key)
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != 32 {
				return nil, fmt.Errorf("decodes to %d bytes, want 32", len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("is not base64")
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
