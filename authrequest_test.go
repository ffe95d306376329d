package bff

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
)

// authorize runs /login with query and the provider's authorization step,
// and returns the parameters the provider received (pushed or not) and the
// /login response.
func (a *app) authorize(br *browser, query string) (url.Values, *http.Response) {
	a.t.Helper()
	resp := br.send("GET", a.URL+"/auth/login?"+query)
	if resp.StatusCode != http.StatusSeeOther {
		return nil, resp
	}
	br.send("GET", resp.Header.Get("Location"))
	return a.op.LastAuthorizationRequest(), resp
}

// Options.AuthParams reach the provider on every sign-in; the browser's
// value of a parameter it may send replaces the static one.
func TestAuthParams(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), func(o *Options) {
		o.AuthParams = map[string]string{"access_type": "offline", "audience": "https://api.example", "prompt": "select_account"}
	})
	br := newBrowser(t)
	got, _ := a.authorize(br, "returnTo=/app")
	if got.Get("access_type") != "offline" || got.Get("audience") != "https://api.example" || got.Get("prompt") != "select_account" {
		t.Errorf("authorization request = %v", got)
	}
	got, _ = a.authorize(br, "prompt=login&returnTo=/app")
	if got.Get("prompt") != "login" || got.Get("audience") != "https://api.example" {
		t.Errorf("with the browser's prompt: %v", got)
	}
	a.login(br)
}

// /login passes on prompt, login_hint, acr_values, max_age and ui_locales,
// each validated and bounded; nothing else of the query reaches the
// provider; a bad value, or one given twice, is a 400 that starts nothing.
func TestLoginParams(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br := newBrowser(t)
	got, _ := a.authorize(br, "returnTo=/app&prompt=select_account%20login&login_hint=alice%40example.com&acr_values=urn:a%20urn:b"+
		"&max_age=300&ui_locales=de-CH%20fr&client_id=evil&redirect_uri=https://evil.example/&scope=admin&foo=bar&claims=x")
	// acr_values goes as an essential acr in the claims parameter (the
	// test provider supports it).
	want := map[string]string{"prompt": "select_account login", "login_hint": "alice@example.com",
		"claims":  `{"id_token":{"acr":{"essential":true,"values":["urn:a","urn:b"]}}}`,
		"max_age": "300", "ui_locales": "de-CH fr", "client_id": a.op.ClientID(), "redirect_uri": a.URL + "/auth/callback",
		"scope": "openid profile email offline_access"}
	for k, v := range want {
		if got.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, got.Get(k), v)
		}
	}
	if got.Has("foo") || got.Has("acr_values") {
		t.Errorf("a parameter /login does not take reached the provider: %v", got)
	}

	long := strings.Repeat("a", 257)
	for name, q := range map[string]string{
		"prompt_unknown":        "prompt=create",
		"prompt_none_and_login": "prompt=none%20login",
		"prompt_twice_value":    "prompt=login%20login",
		"prompt_given_twice":    "prompt=login&prompt=consent",
		"login_hint_too_long":   "login_hint=" + long,
		"login_hint_newline":    "login_hint=a%0Ab",
		"login_hint_bad_utf8":   "login_hint=%FF",
		"acr_quote":             "acr_values=a%22b",
		"acr_backslash":         "acr_values=a%5Cb",
		"acr_too_many":          "acr_values=" + strings.Repeat("a%20", 11),
		"acr_too_long":          "acr_values=" + strings.Repeat("a", 513),
		"max_age_negative":      "max_age=-1",
		"max_age_plus":          "max_age=%2B5",
		"max_age_huge":          "max_age=2147483648",
		"max_age_not_number":    "max_age=1h",
		"ui_locales_bad":        "ui_locales=de_CH",
		"ui_locales_script":     "ui_locales=%3Cscript%3E",
	} {
		t.Run(name, func(t *testing.T) {
			resp := br.get(a.URL + "/auth/login?returnTo=/app&" + q)
			if resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 0 {
				t.Fatalf("/auth/login?%s = %d (cookies %v), want 400 and nothing started", q, resp.StatusCode, resp.Cookies())
			}
			if code, desc, _ := jsonError(t, resp); code != "invalid_request" || !strings.Contains(desc, "sign-in parameter") {
				t.Errorf("error %q %q", code, desc)
			}
		})
	}
	// An empty value is no value.
	if got, resp := a.authorize(br, "returnTo=/app&login_hint="); got == nil || got.Has("login_hint") {
		t.Errorf("empty login_hint: %d %v", resp.StatusCode, got)
	}
}

// Options narrow (or empty) what /login takes from the browser.
func TestLoginParamsNarrowed(t *testing.T) {
	op := testOP(t, oidctest.Config{})
	t.Run("LoginParams", func(t *testing.T) {
		a := newApp(t, op, func(o *Options) { o.LoginParams = []LoginParam{ParamLoginHint} })
		br := newBrowser(t)
		if got, _ := a.authorize(br, "login_hint=alice"); got.Get("login_hint") != "alice" {
			t.Errorf("login_hint not passed: %v", got)
		}
		a.expect(t, br, "/auth/login?prompt=login", 400, "prompt when not allowed")
	})
	t.Run("LoginPrompts", func(t *testing.T) {
		a := newApp(t, op, func(o *Options) { o.LoginPrompts = []string{"none"} })
		br := newBrowser(t)
		a.expect(t, br, "/auth/login?prompt=login", 400, "prompt=login when only none is allowed")
		if got, _ := a.authorize(br, "prompt=none"); got.Get("prompt") != "none" {
			t.Errorf("prompt=none not passed: %v", got)
		}
	})
	t.Run("DisableLoginParams", func(t *testing.T) {
		a := newApp(t, op, func(o *Options) { o.DisableLoginParams = true })
		br := newBrowser(t)
		for _, q := range []string{"prompt=none", "login_hint=alice", "acr_values=a", "max_age=1", "ui_locales=de"} {
			if code, _ := a.status(br, "GET", "/auth/login?"+q); code != 400 {
				t.Errorf("%s when disabled: %d, want 400", q, code)
			}
		}
		a.login(br)
	})
}

// A spec-strict provider gives a refresh token for offline_access only
// with prompt=consent (OIDC Core §11): bff sends it when the sign-in names
// no prompt, unless DisableConsentPrompt.
func TestConsentPromptForOfflineAccess(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opt     func(*Options)
		query   string
		prompt  string
		refresh bool
	}{
		{"default", nil, "", "consent", true},
		{"browser_prompt_kept", nil, "prompt=login", "login", false},
		{"static_prompt_kept", func(o *Options) { o.AuthParams = map[string]string{"prompt": "login"} }, "", "login", false},
		{"disabled", func(o *Options) { o.DisableConsentPrompt = true }, "", "", false},
		{"no_offline_access", func(o *Options) { o.Scopes = []string{"openid", "email"} }, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t, testOP(t, oidctest.Config{StrictOfflineAccess: true}), tc.opt)
			br := newBrowser(t)
			resp, _ := br.follow(a.URL + "/auth/login?returnTo=/app&" + tc.query)
			if resp.StatusCode != 200 {
				t.Fatalf("sign-in: %d", resp.StatusCode)
			}
			if got := a.op.LastAuthorizationRequest().Get("prompt"); got != tc.prompt {
				t.Errorf("prompt = %q, want %q", got, tc.prompt)
			}
			if s := a.browserSession(br); (s.rec.RefreshToken != "") != tc.refresh {
				t.Errorf("refresh token stored: %v, want %v", s.rec.RefreshToken != "", tc.refresh)
			}
		})
	}
}

// The session keeps the ID token's acr, amr and auth_time; User exposes
// them, and OnLogin cannot change them.
func TestSessionKeepsAuthenticationClaims(t *testing.T) {
	op := testOP(t, oidctest.Config{})
	var u User
	a := newApp(t, op, func(o *Options) {
		o.OnLogin = func(_ context.Context, c map[string]any) error {
			c["acr"], c["auth_time"] = "forged", 1
			delete(c, "amr")
			return nil
		}
	})
	a.route("GET /api/user", a.bff.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ = UserFrom(r.Context())
	})))
	br := newBrowser(t)
	before := time.Now().Add(-time.Second)
	a.login(br)
	a.expect(t, br, "/api/user", 200, "")
	if u.ACR() != oidctest.ACRBasic || strings.Join(u.AMR(), " ") != "pwd" || u.AuthTime().Before(before.Truncate(time.Second)) {
		t.Errorf("ACR %q AMR %v AuthTime %v", u.ACR(), u.AMR(), u.AuthTime())
	}
	if _, body := a.status(br, "GET", "/auth/session"); !strings.Contains(body, `"acr":"`+oidctest.ACRBasic+`"`) ||
		!strings.Contains(body, `"amr":["pwd"]`) || !strings.Contains(body, `"auth_time":`) {
		t.Errorf("/auth/session claims lack acr, amr or auth_time: %s", body)
	}
}

// FuzzLoginQuery sends arbitrary /login queries. Properties: no panic; no
// 5xx; either a 400 that starts nothing (no cookie, no Location), or a 303
// to the provider whose query holds only the protocol's parameters (bff's
// own values) and the five sign-in parameters, each within its bound.
func FuzzLoginQuery(f *testing.F) {
	for _, q := range []string{"", "returnTo=/app", "prompt=none&returnTo=/x", "prompt=login%20consent",
		"login_hint=alice%40example.com", "acr_values=urn:a%20urn:b&max_age=0", "ui_locales=de-CH%20fr",
		"client_id=evil&redirect_uri=https://evil.example&scope=admin&response_type=token&state=x&nonce=y",
		"prompt=none&prompt=login", "max_age=99999999999", "login_hint=%00", "claims=%7B%7D&request_uri=urn:x"} {
		f.Add(q)
	}
	_, a := fuzzApp(f, nil)
	host := strings.TrimPrefix(a.URL, "http://")
	bounds := map[string]int{"prompt": 64, "login_hint": maxLoginHint, "acr_values": maxACRValues, "max_age": 10,
		"ui_locales": maxUILocales, "claims": 4096}
	own := map[string]string{"client_id": a.bff.cfg.ClientID, "redirect_uri": a.bff.cfg.redirectURI,
		"scope": strings.Join(a.bff.cfg.Scopes, " "), "response_type": "code", "code_challenge_method": "S256"}
	f.Fuzz(func(t *testing.T, query string) {
		resp := serveInProcess(a.bff, "GET", "/auth/login", query, nil, http.Header{"Host": {host}})
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusBadRequest:
			if len(resp.Cookies()) != 0 || resp.Header.Get("Location") != "" {
				t.Fatalf("a refused /login?%s started something: %v %q", query, resp.Cookies(), resp.Header.Get("Location"))
			}
			return
		case http.StatusSeeOther:
		default:
			t.Fatalf("/login?%s = %d", query, resp.StatusCode)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != a.op.Endpoint("/authorize") {
			t.Fatalf("/login?%s went to %q", query, resp.Header.Get("Location"))
		}
		for k, vs := range loc.Query() {
			if len(vs) != 1 {
				t.Fatalf("%s sent %d times", k, len(vs))
			}
			if want, ok := own[k]; ok && vs[0] != want {
				t.Fatalf("%s = %q, want bff's %q", k, vs[0], want)
			}
			if max, ok := bounds[k]; ok && len(vs[0]) > max {
				t.Fatalf("%s is %d bytes, beyond %d", k, len(vs[0]), max)
			}
			if _, ok := own[k]; !ok && bounds[k] == 0 && k != "state" && k != "nonce" && k != "code_challenge" {
				t.Fatalf("/login?%s sent %s to the provider", query, k)
			}
		}
	})
}
