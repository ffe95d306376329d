package exampleapp

import (
	"bytes"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	var logs bytes.Buffer
	c, err := Load(func(string) string { return "" }, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.BaseURL != "http://localhost:8080" || c.DevIdPAddr != "127.0.0.1:8081" ||
		c.DevAccessTokenTTL != time.Hour || c.Issuer != "" || c.RedisAddr != "" || c.Upstream != nil || c.RefreshSkew != 0 {
		t.Errorf("defaults: %+v", c)
	}
	if len(c.SecretKey) != 32 || !strings.Contains(logs.String(), "BFF_SECRET_KEY is not set") {
		t.Errorf("random key: %d bytes, log %q", len(c.SecretKey), logs.String())
	}
	o := c.Options(nil)
	if o.Redis != nil || len(o.Scopes) != 0 || o.RefreshSkew != 0 || o.IdleTimeout != 0 || o.ExpiryWarning != 0 || o.BaseURL != c.BaseURL {
		t.Errorf("options: %+v", o)
	}
}

func TestLoadEnv(t *testing.T) {
	env := map[string]string{
		"BFF_ADDR":                 "0.0.0.0:9000",
		"BFF_ISSUER":               "https://idp.example",
		"BFF_CLIENT_ID":            "app",
		"BFF_CLIENT_SECRET":        "s3cret",
		"BFF_SCOPES":               " openid  email ",
		"BFF_REDIS_ADDR":           "127.0.0.1:6379",
		"BFF_SECRET_KEY":           "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"BFF_REFRESH_SKEW":         "5s",
		"BFF_UPSTREAM_URL":         "http://127.0.0.1:9999/v1",
		"BFF_DEV_ACCESS_TOKEN_TTL": "20s",
		"BFF_IDLE_TIMEOUT":         "30s",
		"BFF_EXPIRY_WARNING":       "10s",
	}
	c, err := Load(func(k string) string { return env[k] }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options(nil)
	defer o.Redis.Close()
	if c.BaseURL != "http://localhost:9000" {
		t.Errorf("BaseURL derived from BFF_ADDR = %q", c.BaseURL)
	}
	if o.Issuer != "https://idp.example" || o.ClientID != "app" || o.ClientSecret != "s3cret" ||
		!slices.Equal(o.Scopes, []string{"openid", "email"}) || o.RefreshSkew != 5*time.Second || o.Redis == nil ||
		string(o.SecretKeys[0]) != "0123456789abcdef0123456789abcdef" || c.Upstream.String() != "http://127.0.0.1:9999/v1" ||
		c.DevAccessTokenTTL != 20*time.Second || o.IdleTimeout != 30*time.Second || o.ExpiryWarning != 10*time.Second {
		t.Errorf("options from the environment: %+v", c)
	}
}
