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

	RedisAddr      string   // BFF_REDIS_ADDR: host:port (or redis:// URL) of Redis. Default: in-memory store.
	RedisURL       string   // BFF_REDIS_URL: redis:// or rediss:// URL with user, password, database; without host beside BFF_REDIS_SENTINELS.
	RedisSentinels []string // BFF_REDIS_SENTINELS: comma-separated host:port of Redis Sentinels. Default: none.
	RedisMaster    string   // BFF_REDIS_MASTER: the master name the sentinels monitor. Required with BFF_REDIS_SENTINELS.

	SecretKey   []byte        // BFF_SECRET_KEY: base64 of 32 bytes. Default: random per process.
	RefreshSkew time.Duration // BFF_REFRESH_SKEW: Go duration. Default: the library's.
	Upstream    *url.URL      // BFF_UPSTREAM_URL: downstream API proxied under /api/upstream/. Default: none.

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
	if c.Issuer != "" && (c.ClientID == "" || c.ClientSecret == "") {
		return nil, errors.New("BFF_ISSUER is set: set BFF_CLIENT_ID and BFF_CLIENT_SECRET too")
	}
	for _, a := range strings.Split(getenv("BFF_REDIS_SENTINELS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.RedisSentinels = append(c.RedisSentinels, a)
		}
	}
	if err := c.checkRedis(); err != nil {
		return nil, err
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
	switch s := getenv("BFF_METRICS"); s {
	case "", "1":
		c.Metrics = true
	case "0":
	default:
		return nil, fmt.Errorf("BFF_METRICS: %q is neither 1 (serve /metrics, the default) nor 0", s)
	}
	if s := getenv("BFF_REFRESH_SKEW"); s != "" {
		if c.RefreshSkew, err = time.ParseDuration(s); err != nil || c.RefreshSkew < 0 {
			return nil, fmt.Errorf("BFF_REFRESH_SKEW: %q is not a positive Go duration such as 30s", s)
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
		Issuer:       c.Issuer,
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		BaseURL:      c.BaseURL,
		Scopes:       c.Scopes,
		SecretKeys:   [][]byte{c.SecretKey},
		RefreshSkew:  c.RefreshSkew,
		Logger:       log,
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
