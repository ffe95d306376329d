package exampleapp

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff"
)

func TestLoadDefaults(t *testing.T) {
	var logs bytes.Buffer
	c, err := Load(func(string) string { return "" }, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.BaseURL != "http://localhost:8080" || c.DevIdPAddr != "127.0.0.1:8081" ||
		c.DevAccessTokenTTL != time.Hour || c.Issuer != "" || c.RedisAddr != "" || c.Upstream != nil || c.RefreshSkew != 0 ||
		!c.Metrics {
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

// TestLoadMetrics: BFF_METRICS is 1 (the default) or 0; anything else is
// refused with the variable's name.
func TestLoadMetrics(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
		err   bool
	}{{"", true, false}, {"1", true, false}, {"0", false, false}, {"yes", false, true}, {"true", false, true}} {
		c, err := Load(func(k string) string {
			if k == "BFF_METRICS" {
				return tc.value
			}
			return ""
		}, slog.New(slog.DiscardHandler))
		switch {
		case tc.err && (err == nil || !strings.Contains(err.Error(), "BFF_METRICS")):
			t.Errorf("BFF_METRICS=%q: error %v, want one naming BFF_METRICS", tc.value, err)
		case !tc.err && (err != nil || c.Metrics != tc.want):
			t.Errorf("BFF_METRICS=%q: metrics %v, %v; want %v", tc.value, c != nil && c.Metrics, err, tc.want)
		}
	}
}

func TestLoadRedis(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string // "" for none
	}{
		{"url", map[string]string{"BFF_REDIS_URL": "rediss://bff:pw@redis.example:6380/2"}, ""},
		{"sentinels", map[string]string{"BFF_REDIS_SENTINELS": " 10.0.0.1:26379, 10.0.0.2:26379 ", "BFF_REDIS_MASTER": "mymaster"}, ""},
		{"sentinels and url", map[string]string{"BFF_REDIS_SENTINELS": "s:26379", "BFF_REDIS_MASTER": "m", "BFF_REDIS_URL": "rediss://bff:pw@/0"}, ""},
		{"addr and url", map[string]string{"BFF_REDIS_ADDR": "h:6379", "BFF_REDIS_URL": "redis://h"}, "BFF_REDIS_ADDR"},
		{"addr and sentinels", map[string]string{"BFF_REDIS_ADDR": "h:6379", "BFF_REDIS_SENTINELS": "s:26379", "BFF_REDIS_MASTER": "m"}, "BFF_REDIS_ADDR"},
		{"bad addr", map[string]string{"BFF_REDIS_ADDR": "nohost"}, "BFF_REDIS_ADDR"},
		{"bad url", map[string]string{"BFF_REDIS_URL": "http://bff:pw@h"}, "BFF_REDIS_URL"},
		{"url host with sentinels", map[string]string{"BFF_REDIS_SENTINELS": "s:26379", "BFF_REDIS_MASTER": "m", "BFF_REDIS_URL": "redis://:pw@h"}, "BFF_REDIS_URL"},
		{"sentinels without master", map[string]string{"BFF_REDIS_SENTINELS": "s:26379"}, "BFF_REDIS_MASTER"},
		{"master without sentinels", map[string]string{"BFF_REDIS_MASTER": "m"}, "BFF_REDIS_MASTER"},
		{"bad sentinel", map[string]string{"BFF_REDIS_SENTINELS": "s", "BFF_REDIS_MASTER": "m"}, "BFF_REDIS_SENTINELS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(func(k string) string { return tc.env[k] }, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr+": ") || strings.Contains(err.Error(), "pw") {
					t.Fatalf("Load = %v; want an error naming %s, without the password", err, tc.wantErr)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := c.Options(nil)
			if o.Redis == nil {
				t.Fatal("no Redis pool")
			}
			o.Redis.Close()
		})
	}
}

// pemFile writes a PEM block of key (DER produced by marshal) and returns
// its path.
func pemFile(t *testing.T, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadSignInEnv(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ec)
	p384der, _ := x509.MarshalPKCS8PrivateKey(p384)
	load := func(env map[string]string) (*Config, error) {
		return Load(func(k string) string { return env[k] }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	c, err := load(map[string]string{"BFF_ISSUER": "https://idp.example", "BFF_CLIENT_ID": "app",
		"BFF_CLIENT_KEY": pemFile(t, "EC PRIVATE KEY", sec1), "BFF_AUTH_PARAMS": "access_type=offline&audience=https%3A%2F%2Fapi",
		"BFF_PAR": "require", "BFF_STEPUP_ACR": " a  b "})
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options(nil)
	if len(o.ClientKeys) != 1 || o.ClientSecret != "" || o.PAR != bff.PARRequired ||
		o.AuthParams["access_type"] != "offline" || o.AuthParams["audience"] != "https://api" || !slices.Equal(c.StepUpACR, []string{"a", "b"}) {
		t.Errorf("options: %+v, step-up %v", o, c.StepUpACR)
	}
	for _, key := range []string{pemFile(t, "PRIVATE KEY", pkcs8), pemFile(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk))} {
		if c, err := load(map[string]string{"BFF_CLIENT_KEY": key}); err != nil || c.ClientKey == nil {
			t.Errorf("BFF_CLIENT_KEY %s: %v", key, err)
		}
	}
	for name, env := range map[string]map[string]string{
		"cert_not_pem":      {"BFF_CLIENT_CERT": writeFile(t, "not a certificate")},
		"cert_of_a_key":     {"BFF_CLIENT_CERT": pemFile(t, "PRIVATE KEY", pkcs8)},
		"provider_logout":   {"BFF_PROVIDER_LOGOUT": "never"},
		"consent_prompt":    {"BFF_CONSENT_PROMPT": "no"},
		"no_pkce":           {"BFF_INSECURE_ALLOW_NO_PKCE": "yes"},
		"auth_params_twice": {"BFF_AUTH_PARAMS": "a=1&a=2"},
		"auth_params_bad":   {"BFF_AUTH_PARAMS": "a=%zz"},
		"par_bad":           {"BFF_PAR": "sometimes"},
		"key_missing":       {"BFF_CLIENT_KEY": filepath.Join(t.TempDir(), "none.pem")},
		"key_not_pem":       {"BFF_CLIENT_KEY": writeFile(t, "not a key")},
		"key_p384":          {"BFF_CLIENT_KEY": pemFile(t, "PRIVATE KEY", p384der)},
		"issuer_no_secret":  {"BFF_ISSUER": "https://idp.example", "BFF_CLIENT_ID": "app"},
	} {
		if _, err := load(env); err == nil {
			t.Errorf("%s: Load accepted %v", name, env)
		}
	}
}

// The provider quirks of README's recipes: Entra ID (certificate,
// tenants, no consent prompt, no advertised PKCE) and Cognito's logout.
func TestLoadProviderEnv(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rk.Public(), rk)
	env := map[string]string{"BFF_ISSUER": "https://login.microsoftonline.com/organizations/v2.0", "BFF_CLIENT_ID": "app",
		"BFF_CLIENT_KEY": pemFile(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), "BFF_CLIENT_CERT": pemFile(t, "CERTIFICATE", der),
		"BFF_TENANTS": " t1 t2 ", "BFF_CONSENT_PROMPT": "0", "BFF_INSECURE_ALLOW_NO_PKCE": "1", "BFF_PROVIDER_LOGOUT": "cognito"}
	c, err := Load(func(k string) string { return env[k] }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options(nil)
	if o.ClientCertificate == nil || !bytes.Equal(o.ClientCertificate.Raw, der) || !slices.Equal(o.Tenants, []string{"t1", "t2"}) ||
		!o.DisableConsentPrompt || !o.InsecureAllowNoPKCE || o.ProviderLogout != bff.ProviderLogoutCognito {
		t.Errorf("options: %+v", o)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	os.WriteFile(path, []byte(content), 0o600)
	return path
}
