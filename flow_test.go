package bff

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
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
	resp := br.get(a.URL + "/auth/login?returnTo=/app")
	resp.Body.Close()
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
	resp = br.get(loc.String())
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	resp = br.get(cb)
	resp.Body.Close()
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
	s, err := a.storeSession(id)
	if err != nil {
		t.Fatal(err)
	}
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

func TestSignedOutSessionEndpoint(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br := newBrowser(t)
	code, body := a.status(br, "GET", "/auth/session")
	if code != 401 || !strings.Contains(body, "unauthenticated") {
		t.Fatalf("= %d %s", code, body)
	}
}

// A sign-in beyond maxTxCookies pending ones takes the slot of the oldest:
// that one is refused at its callback, the others complete.
func TestLoginOldestPendingReplaced(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br := newBrowser(t)
	var cbs []string
	for range maxTxCookies + 1 {
		cbs = append(cbs, a.startLogin(br))
	}
	resp := br.get(cbs[0])
	if _, desc, _ := jsonError(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(desc, "No sign-in is in progress") {
		t.Fatalf("the oldest sign-in's callback = %d %q, want 400", resp.StatusCode, desc)
	}
	for _, cb := range cbs[1:] {
		resp := br.get(cb)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("a newer sign-in's callback = %d, want 303", resp.StatusCode)
		}
	}
}

// The transaction cookie stays under the 4096 bytes browsers keep, for the
// longest returnTo of the characters that grow most when encoded, with the
// longest sign-in parameters it keeps (prompt, acr_values, max_age); a
// longer returnTo is refused with a message that says so.
func TestLoginCookieSize(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	acr := strings.TrimSpace(strings.Repeat(strings.Repeat("<", 50)+" ", maxACRCount))
	params := url.Values{"prompt": {"login consent select_account"}, "acr_values": {acr}, "max_age": {"2147483647"}}
	if len(acr) > maxACRValues {
		t.Fatalf("acr_values of %d bytes, more than /login takes", len(acr))
	}
	for _, c := range []string{"<", "\"", "&", "\u2028", "é", "%41"} {
		rt := "/" + strings.Repeat(c, 511/len(c))
		for _, extra := range []string{"", "&" + params.Encode()} {
			resp := a.serveLogin("returnTo="+url.QueryEscape(rt)+extra, nil)
			if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
				t.Fatalf("returnTo of %d bytes of %q%s = %d with %d cookies", len(rt), c, extra, resp.StatusCode, len(resp.Cookies()))
			}
			for _, sc := range resp.Header.Values("Set-Cookie") {
				if len(sc) > 4096 {
					t.Errorf("returnTo of %d bytes of %q%s: Set-Cookie of %d bytes, want at most 4096", len(rt), c, extra, len(sc))
				}
			}
		}
	}
	resp := a.serveLogin("returnTo=/"+strings.Repeat("a", 512), nil)
	if _, desc, _ := jsonError(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(desc, "512 bytes") {
		t.Errorf("returnTo of 513 bytes = %d %q, want 400 saying the limit", resp.StatusCode, desc)
	}
}

// Two tabs of one browser sign in at the same time: each attempt has its own
// transaction cookie, so both complete.
func TestTwoConcurrentLoginsOneBrowser(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	br := newBrowser(t)
	cb1 := a.startLogin(br)
	cb2 := a.startLogin(br)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, cb := range []string{cb1, cb2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := br.get(cb)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if codes[0] != http.StatusSeeOther || codes[1] != http.StatusSeeOther {
		t.Fatalf("callbacks = %v, want both 303", codes)
	}
	if code, _ := a.status(br, "GET", "/api/me"); code != 200 {
		t.Fatalf("after two logins /api/me = %d", code)
	}
}
