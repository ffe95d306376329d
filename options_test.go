package bff

import (
	"crypto"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/gobff/bff/internal/storage"
)

// validOptions are minimal valid options. The issuer is a loopback address
// where nothing listens, so New's background discovery fails fast.
func validOptions() Options {
	return Options{
		Issuer:       "http://127.0.0.1:1",
		ClientID:     "app",
		ClientSecret: "secret",
		BaseURL:      "https://app.example",
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// mustNew is New with options that must be valid; the BFF closes at the
// end of the test.
func mustNew(t testing.TB, o Options) *BFF {
	t.Helper()
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestNewRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name  string
		field string
		set   func(*Options)
	}{
		{"missing_issuer", "Issuer", func(o *Options) { o.Issuer = "" }},
		{"http_issuer_not_loopback", "Issuer", func(o *Options) { o.Issuer = "http://idp.example" }},
		{"issuer_not_a_url", "Issuer", func(o *Options) { o.Issuer = "idp.example" }},
		{"issuer_other_scheme", "Issuer", func(o *Options) { o.Issuer = "ftp://idp.example" }},
		{"issuer_with_query", "Issuer", func(o *Options) { o.Issuer = "https://idp.example/?tenant=1" }},
		{"issuer_with_credentials", "Issuer", func(o *Options) { o.Issuer = "https://user:pw@idp.example" }},
		{"missing_client_id", "ClientID", func(o *Options) { o.ClientID = "" }},
		{"missing_client_secret", "ClientSecret", func(o *Options) { o.ClientSecret = "" }},
		{"missing_base_url", "BaseURL", func(o *Options) { o.BaseURL = "" }},
		{"base_url_with_path", "BaseURL", func(o *Options) { o.BaseURL = "https://app.example/app" }},
		{"base_url_with_fragment", "BaseURL", func(o *Options) { o.BaseURL = "https://app.example#x" }},
		{"http_base_url_not_loopback", "BaseURL", func(o *Options) { o.BaseURL = "http://app.example" }},
		{"prefix_without_slash", "Prefix", func(o *Options) { o.Prefix = "auth" }},
		{"prefix_trailing_slash", "Prefix", func(o *Options) { o.Prefix = "/auth/" }},
		{"prefix_with_query", "Prefix", func(o *Options) { o.Prefix = "/auth?x" }},
		{"scopes_without_openid", "Scopes", func(o *Options) { o.Scopes = []string{"profile", "email"} }},
		{"short_secret_key", "SecretKeys", func(o *Options) { o.SecretKeys = [][]byte{make([]byte, 16)} }},
		{"short_second_secret_key", "SecretKeys", func(o *Options) { o.SecretKeys = [][]byte{make([]byte, 32), make([]byte, 31)} }},
		{"store_without_secret_keys", "SecretKeys", func(o *Options) { o.Store = storage.NewMemory(time.Hour) }},
		{"redis_without_secret_keys", "SecretKeys", func(o *Options) { o.Redis = &redis.Pool{} }},
		{"store_and_redis", "Store", func(o *Options) {
			o.Store, o.Redis, o.SecretKeys = storage.NewMemory(time.Hour), &redis.Pool{}, [][]byte{make([]byte, 32)}
		}},
		// A custom Store is never cached: the cache's options would do nothing.
		{"disable_cache_with_store", "DisableSessionCache", func(o *Options) {
			o.Store, o.SecretKeys, o.DisableSessionCache = storage.NewMemory(time.Hour), [][]byte{make([]byte, 32)}, true
		}},
		{"cache_bytes_with_store", "SessionCacheBytes", func(o *Options) {
			o.Store, o.SecretKeys, o.SessionCacheBytes = storage.NewMemory(time.Hour), [][]byte{make([]byte, 32)}, 1<<20
		}},
		{"cache_bytes_with_cache_disabled", "SessionCacheBytes", func(o *Options) { o.DisableSessionCache, o.SessionCacheBytes = true, 1<<20 }},
		{"cookie_name_without_host_prefix", "CookieName", func(o *Options) { o.CookieName = "session" }},
		{"cookie_name_invalid", "CookieName", func(o *Options) { o.CookieName = "__Host-a;b" }},
		{"negative_idle_timeout", "IdleTimeout", func(o *Options) { o.IdleTimeout = -time.Second }},
		{"negative_max_lifetime", "MaxLifetime", func(o *Options) { o.MaxLifetime = -time.Second }},
		{"negative_touch_interval", "TouchInterval", func(o *Options) { o.TouchInterval = -time.Second }},
		{"negative_login_timeout", "LoginTimeout", func(o *Options) { o.LoginTimeout = -time.Second }},
		{"negative_refresh_skew", "RefreshSkew", func(o *Options) { o.RefreshSkew = -time.Second }},
		{"negative_refresh_timeout", "RefreshTimeout", func(o *Options) { o.RefreshTimeout = -time.Second }},
		{"post_logout_redirect_scheme_relative", "PostLogoutRedirect", func(o *Options) { o.PostLogoutRedirect = "//evil.example" }},
		{"post_logout_redirect_backslash", "PostLogoutRedirect", func(o *Options) { o.PostLogoutRedirect = "/\\evil.example" }},
		{"post_logout_redirect_absolute", "PostLogoutRedirect", func(o *Options) { o.PostLogoutRedirect = "https://evil.example/" }},
		{"error_path_absolute", "ErrorPath", func(o *Options) { o.ErrorPath = "https://evil.example/" }},
		{"error_path_scheme_relative", "ErrorPath", func(o *Options) { o.ErrorPath = "//evil.example" }},
		{"error_path_relative", "ErrorPath", func(o *Options) { o.ErrorPath = "error" }},
		{"negative_expiry_warning", "ExpiryWarning", func(o *Options) { o.ExpiryWarning = -time.Second }},
		{"expiry_warning_not_shorter_than_idle", "ExpiryWarning", func(o *Options) { o.IdleTimeout, o.ExpiryWarning = time.Minute, time.Minute }},
		{"expiry_warning_beyond_touch", "ExpiryWarning", func(o *Options) {
			o.IdleTimeout, o.TouchInterval, o.ExpiryWarning = 10*time.Minute, 5*time.Minute, 5*time.Minute+time.Second
		}},
		{"negative_max_event_streams", "MaxEventStreams", func(o *Options) { o.MaxEventStreams = -1 }},
		{"negative_max_event_streams_per_session", "MaxEventStreamsPerSession", func(o *Options) { o.MaxEventStreamsPerSession = -1 }},
		{"trusted_origin_with_path", "TrustedOrigins", func(o *Options) { o.TrustedOrigins = []string{"https://a.example/path"} }},
		{"secret_and_keys", "ClientKeys", func(o *Options) { o.ClientKeys = []crypto.Signer{testClientKey(t, "ES256")} }},
		{"client_key_nil", "ClientKeys", func(o *Options) { o.ClientSecret, o.ClientKeys = "", []crypto.Signer{nil} }},
		{"client_key_rsa_1024", "ClientKeys", func(o *Options) { o.ClientSecret, o.ClientKeys = "", []crypto.Signer{testClientKey(t, "RSA1024")} }},
		{"client_key_p224", "ClientKeys", func(o *Options) { o.ClientSecret, o.ClientKeys = "", []crypto.Signer{testClientKey(t, "P224")} }},
		{"assertion_audience_unknown", "ClientAssertionAudience", func(o *Options) { o.ClientAssertionAudience = 7 }},
		{"par_mode_unknown", "PAR", func(o *Options) { o.PAR = -1 }},
		{"provider_logout_unknown", "ProviderLogout", func(o *Options) { o.ProviderLogout = ProviderLogoutCognito + 1 }},
		{"tenants_and_any_tenant", "Tenants", func(o *Options) { o.Tenants, o.InsecureAnyTenant = []string{"t1"}, true }},
		{"tenant_with_slash", "Tenants", func(o *Options) { o.Tenants = []string{"t1/v2.0"} }},
		{"tenant_empty", "Tenants", func(o *Options) { o.Tenants = []string{""} }},
		{"login_param_unknown", "LoginParams", func(o *Options) { o.LoginParams = []LoginParam{"redirect_uri"} }},
		{"login_prompt_unknown", "LoginPrompts", func(o *Options) { o.LoginPrompts = []string{"none", "create"} }},
	}
	for _, k := range reservedAuthParams {
		cases = append(cases, struct {
			name  string
			field string
			set   func(*Options)
		}{"auth_param_" + k, "AuthParams", func(o *Options) { o.AuthParams = map[string]string{k: "x"} }})
	}
	for name, params := range map[string]map[string]string{
		"empty_name": {"": "x"}, "name_with_space": {"a b": "x"}, "value_with_newline": {"audience": "a\nb"},
		"bad_max_age": {"max_age": "-5"}, "bad_acr_values": {"acr_values": `a"b`},
	} {
		cases = append(cases, struct {
			name  string
			field string
			set   func(*Options)
		}{"auth_params_" + name, "AuthParams", func(o *Options) { o.AuthParams = params }})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions()
			tc.set(&o)
			if ms, ok := o.Store.(*storage.Memory); ok {
				defer ms.Close()
			}
			b, err := New(o)
			if err == nil {
				b.Close()
				t.Fatalf("New accepted the options")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("New = %v, want a *ConfigError for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), "Options."+tc.field+" ") {
				t.Errorf("error %q does not name the field", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c := mustNew(t, validOptions()).cfg
	want := []struct {
		name      string
		got, want any
	}{
		{"Prefix", c.Prefix, "/auth"},
		{"Scopes", strings.Join(c.Scopes, " "), "openid profile email offline_access"},
		{"CookieName", c.CookieName, "__Host-bff"},
		{"IdleTimeout", c.IdleTimeout, 12 * time.Hour},
		{"MaxLifetime", c.MaxLifetime, 7 * 24 * time.Hour},
		{"TouchInterval", c.TouchInterval, time.Minute},
		{"LoginTimeout", c.LoginTimeout, 10 * time.Minute},
		{"RefreshSkew", c.RefreshSkew, time.Minute},
		{"RefreshTimeout", c.RefreshTimeout, 10 * time.Second},
		{"PostLogoutRedirect", c.PostLogoutRedirect, "/"},
		{"ErrorPath", c.ErrorPath, ""},
		{"ExpiryWarning", c.ExpiryWarning, 2 * time.Minute},
		{"MaxEventStreams", c.MaxEventStreams, 10000},
		{"MaxEventStreamsPerSession", c.MaxEventStreamsPerSession, 16},
		{"redirect URI", c.redirectURI, "https://app.example/auth/callback"},
		{"secure cookies", c.cookieSec, true},
		{"memory store", c.memoryStore, true},
		{"one random key", len(c.keys), 1},
	}
	for _, w := range want {
		if w.got != w.want {
			t.Errorf("%s = %v, want %v", w.name, w.got, w.want)
		}
	}
	if c.HTTPClient == nil || c.Logger == nil || c.ErrorHandler == nil || c.Now == nil {
		t.Error("a default is missing")
	}

	// Defaults follow other options.
	o := validOptions()
	o.BaseURL, o.Prefix, o.InsecurePlainHTTPCookies = "http://dev.internal:8080/", "/login", true
	o.IdleTimeout = time.Minute
	scopes := []string{"openid", "email"}
	o.Scopes = scopes
	c = mustNew(t, o).cfg
	if c.CookieName != "bff" || c.cookieSec {
		t.Errorf("plain-http cookie = %q secure %v, want bff, not secure", c.CookieName, c.cookieSec)
	}
	if c.redirectURI != "http://dev.internal:8080/login/callback" {
		t.Errorf("redirect URI = %q", c.redirectURI)
	}
	if c.TouchInterval != 30*time.Second {
		t.Errorf("TouchInterval = %v, want IdleTimeout/2", c.TouchInterval)
	}
	if c.ExpiryWarning != 30*time.Second {
		t.Errorf("ExpiryWarning = %v, want IdleTimeout - TouchInterval", c.ExpiryWarning)
	}
	scopes[1] = "changed"
	if !slices.Equal(c.Scopes, []string{"openid", "email"}) {
		t.Errorf("changing the caller's slice changed the options: %v", c.Scopes)
	}
}

// Loopback http is allowed for the issuer and the app (development), and
// New never contacts the provider.
func TestNewLoopbackHTTP(t *testing.T) {
	for _, base := range []string{"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080", "http://app.localhost"} {
		o := validOptions()
		o.BaseURL = base
		o.Issuer = "http://localhost:1"
		b, err := New(o)
		if err != nil {
			t.Errorf("BaseURL %s: %v", base, err)
			continue
		}
		b.Close()
	}
	o := validOptions()
	o.Prefix = "/api/auth"
	resp := httpGetHandler(mustNew(t, o), "/api/auth/login")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/api/auth/login before discovery = %d, want 503", resp.StatusCode)
	}
}

// httpGetHandler serves one GET through h in process.
func httpGetHandler(h http.Handler, path string) *http.Response {
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest("GET", "https://app.example"+path, nil)
	h.ServeHTTP(rec, req)
	return rec.Result()
}
