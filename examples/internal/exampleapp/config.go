// Package exampleapp holds what the runnable examples (examples/basic and
// examples/chi) share and what is not about bff itself: reading the BFF_*
// environment variables, the embedded development identity provider, and
// the static page.
package exampleapp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gobff/bff"
)

// Config is the examples' configuration, read from the environment by Load.
type Config struct {
	Addr    string // BFF_ADDR: listen address. Default 127.0.0.1:8080.
	BaseURL string // BFF_BASE_URL: public origin. Default http://localhost:<port of Addr> (http://localhost:8080).

	Issuer       string   // BFF_ISSUER; empty: the embedded development IdP.
	ClientID     string   // BFF_CLIENT_ID
	ClientSecret string   // BFF_CLIENT_SECRET
	Scopes       []string // BFF_SCOPES, space-separated. Default: the library's.

	RedisAddr   string        // BFF_REDIS_ADDR: host:port (or redis:// URL) of Redis. Default: in-memory store.
	SecretKey   []byte        // BFF_SECRET_KEY: base64 of 32 bytes. Default: random per process.
	RefreshSkew time.Duration // BFF_REFRESH_SKEW: Go duration. Default: the library's.
	IdleTimeout time.Duration // BFF_IDLE_TIMEOUT: Go duration. Default: the library's (12h).
	// BFF_EXPIRY_WARNING: how long before the session ends /auth/events
	// warns. Default: the library's (2m).
	ExpiryWarning time.Duration
	Upstream      *url.URL // BFF_UPSTREAM_URL: downstream API proxied under /api/upstream/. Default: none.

	DevIdPAddr        string        // BFF_DEV_IDP_ADDR: listen address of the dev IdP. Default 127.0.0.1:8081.
	DevAccessTokenTTL time.Duration // BFF_DEV_ACCESS_TOKEN_TTL: the dev IdP's access-token lifetime. Default 1h.
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
		DevIdPAddr:   or(getenv("BFF_DEV_IDP_ADDR"), "127.0.0.1:8081"),
	}
	_, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("BFF_ADDR: %v", err)
	}
	if c.BaseURL == "" {
		c.BaseURL = "http://localhost:" + port
	}
	if c.Issuer != "" && (c.ClientID == "" || c.ClientSecret == "") {
		return nil, errors.New("BFF_ISSUER is set: set BFF_CLIENT_ID and BFF_CLIENT_SECRET too")
	}
	if s := getenv("BFF_SECRET_KEY"); s != "" {
		k, err := decodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("BFF_SECRET_KEY: %v", err)
		}
		c.SecretKey = k
	} else {
		c.SecretKey = make([]byte, 32)
		rand.Read(c.SecretKey)
		log.Warn("BFF_SECRET_KEY is not set: using a random key, so sessions end when this process stops and no other instance can read them; set it to the base64 of 32 random bytes (openssl rand -base64 32)")
	}
	if s := getenv("BFF_REFRESH_SKEW"); s != "" {
		if c.RefreshSkew, err = time.ParseDuration(s); err != nil || c.RefreshSkew < 0 {
			return nil, fmt.Errorf("BFF_REFRESH_SKEW: %q is not a positive Go duration such as 30s", s)
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{{"BFF_IDLE_TIMEOUT", &c.IdleTimeout}, {"BFF_EXPIRY_WARNING", &c.ExpiryWarning}} {
		if s := getenv(d.name); s != "" {
			if *d.v, err = time.ParseDuration(s); err != nil || *d.v < time.Second {
				return nil, fmt.Errorf("%s: %q is not a Go duration of at least 1s", d.name, s)
			}
		}
	}
	if s := getenv("BFF_UPSTREAM_URL"); s != "" {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			return nil, fmt.Errorf("BFF_UPSTREAM_URL: %q is not an http(s) URL without user information or fragment", s)
		}
		c.Upstream = u
	}
	c.DevAccessTokenTTL = time.Hour
	if s := getenv("BFF_DEV_ACCESS_TOKEN_TTL"); s != "" {
		if c.DevAccessTokenTTL, err = time.ParseDuration(s); err != nil || c.DevAccessTokenTTL < time.Second {
			return nil, fmt.Errorf("BFF_DEV_ACCESS_TOKEN_TTL: %q is not a Go duration of at least 1s", s)
		}
	}
	return c, nil
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
		SecretKeys:    [][]byte{c.SecretKey},
		RefreshSkew:   c.RefreshSkew,
		IdleTimeout:   c.IdleTimeout,
		Logger:        log,
		ExpiryWarning: c.ExpiryWarning,
	}
	if c.RedisAddr != "" {
		o.Redis = bff.NewRedisPool(c.RedisAddr)
	}
	return o
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
