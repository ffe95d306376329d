package bff

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gobff/bff/internal/oidctest"
)

func TestLoginFlow(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{SigningAlg: "RS256"}), nil)
	br := newBrowser(t)

	if code, body := a.status(br, "GET", "/api/me"); code != 401 || !strings.Contains(body, `"unauthenticated"`) {
		t.Fatalf("signed out /api/me = %d %s, want 401 JSON", code, body)
	}

	// /login: a sealed, per-attempt transaction cookie and a redirect with
	// PKCE S256, state, nonce and offline_access.
	resp := br.send("GET", a.URL+"/auth/login?returnTo=/app")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login status %d", resp.StatusCode)
	}
	loc, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if q.Get(k) == "" {
			t.Errorf("authorization request lacks %s", k)
		}
	}
	if q.Get("code_challenge_method") != "S256" || !strings.Contains(q.Get("scope"), "offline_access") ||
		q.Get("redirect_uri") != a.URL+"/auth/callback" {
		t.Errorf("authorization request = %v", q)
	}
	var tx *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "__Host-bff-tx-") {
			tx = c
		}
	}
	if tx == nil || !tx.HttpOnly || !tx.Secure || tx.SameSite != http.SameSiteLaxMode || tx.Path != "/" || tx.Domain != "" {
		t.Fatalf("transaction cookie = %+v", tx)
	}
	if strings.Contains(tx.Value, q.Get("nonce")) || strings.Contains(tx.Value, "/app") {
		t.Error("transaction cookie is not sealed")
	}

	// The provider sends the browser back; the callback sets the session
	// cookie and returns to returnTo.
	resp = br.send("GET", loc.String())
	cb := resp.Header.Get("Location")
	resp = br.send("GET", cb)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app" {
		t.Fatalf("callback = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sc *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-bff" {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" || sc.Domain != "" {
		t.Fatalf("session cookie = %+v", sc)
	}
	if len(sc.String()) >= 100 {
		t.Errorf("session cookie is %d bytes", len(sc.String()))
	}

	code, body := a.status(br, "GET", "/api/me")
	var me map[string]any
	json.Unmarshal([]byte(body), &me)
	if code != 200 || me["sub"] != oidctest.DefaultUser.Subject || me["email"] != oidctest.DefaultUser.Email {
		t.Fatalf("/api/me = %d %s", code, body)
	}

	code, body = a.status(br, "GET", "/auth/session")
	var si struct {
		User struct {
			Sub    string         `json:"sub"`
			Name   string         `json:"name"`
			Claims map[string]any `json:"claims"`
		} `json:"user"`
		ExpiresAt string `json:"expiresAt"`
		ExpiresIn int64  `json:"expiresIn"`
		LogoutURL string `json:"logoutUrl"`
	}
	if err := json.Unmarshal([]byte(body), &si); err != nil || code != 200 {
		t.Fatalf("/auth/session = %d %s", code, body)
	}
	if si.User.Sub != oidctest.DefaultUser.Subject || si.User.Name != oidctest.DefaultUser.Name || si.ExpiresIn <= 0 ||
		si.LogoutURL != "/auth/logout" || si.User.Claims["email"] != oidctest.DefaultUser.Email {
		t.Fatalf("/auth/session = %s", body)
	}

	// No token anywhere the browser can see.
	id, _ := a.sessionCookie(br)
	s := mustSession(t, a, id)
	for _, secret := range []string{s.rec.AccessToken, s.rec.RefreshToken, s.rec.IDToken} {
		if secret == "" {
			t.Fatal("session lacks a token")
		}
		if strings.Contains(body, secret) || strings.Contains(id, secret) {
			t.Fatal("a token reached the browser")
		}
	}
	if _, ok := a.op.AccessTokenInfo(s.rec.AccessToken); !ok {
		t.Fatal("stored access token is not valid at the provider")
	}
}
