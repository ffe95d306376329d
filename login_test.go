package bff

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gobff/bff/internal/oidctest"
)

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
		resp := br.send("GET", cb)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("a newer sign-in's callback = %d, want 303", resp.StatusCode)
		}
	}
}

// The transaction cookie stays under the 4096 bytes browsers keep, for the
// longest returnTo of the characters that grow most when encoded, with the
// longest sign-in parameters it keeps (prompt, acr_values, max_age) and
// the session it replaces; a longer returnTo is refused with a message that
// says so.
func TestLoginCookieSize(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	acr := strings.TrimSpace(strings.Repeat(strings.Repeat("<", 50)+" ", maxACRCount))
	params := url.Values{"prompt": {"login consent select_account"}, "acr_values": {acr}, "max_age": {"2147483647"}}
	// A signed-in browser: the sign-in also keeps which session it replaces.
	signedIn := http.Header{"Cookie": {a.bff.cfg.CookieName + "=" + rand.Text()}}
	if len(acr) > maxACRValues {
		t.Fatalf("acr_values of %d bytes, more than /login takes", len(acr))
	}
	for _, c := range []string{"<", "\"", "&", "\u2028", "é", "%41"} {
		rt := "/" + strings.Repeat(c, 511/len(c))
		for _, extra := range []string{"", "&" + params.Encode()} {
			resp := a.serveLogin("returnTo="+url.QueryEscape(rt)+extra, signedIn)
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
		wg.Go(func() {
			resp := br.send("GET", cb)
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	if codes[0] != http.StatusSeeOther || codes[1] != http.StatusSeeOther {
		t.Fatalf("callbacks = %v, want both 303", codes)
	}
	a.expect(t, br, "/api/me", 200, "after two logins")
}

// returnTo accepts only same-origin paths: every open-redirect payload is
// refused at /login, before any sign-in starts.
func TestReturnTo(t *testing.T) {
	e := newEnv(t, longTokens, nil)
	for _, p := range redirectAttacks(t) {
		t.Run(strings.ToValidUTF8(p[:min(len(p), 24)], "?"), func(t *testing.T) {
			if p == "" {
				return // an empty returnTo means the default, "/"
			}
			resp := e.br.get(e.a.URL + "/auth/login?returnTo=" + url.QueryEscape(p))
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("returnTo=%q: /auth/login = %d to %q, want 400", p, resp.StatusCode, resp.Header.Get("Location"))
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("returnTo=%q: cookies set: %v", p, resp.Cookies())
			}
			jsonError(t, resp)
		})
	}
	for _, p := range []string{"/", "/app", "/app/x?tab=2", "/a#frag", "/a%20b", "/?next=//evil.example", "/@/evil.example/../"} {
		t.Run("valid"+p, func(t *testing.T) {
			want := p
			if p == "/@/evil.example/../" {
				want = "/@/" // dot segments resolved at /login
			}
			resp := e.br.send("GET", e.a.URL+"/auth/login?returnTo="+url.QueryEscape(p))
			resp = e.br.send("GET", resp.Header.Get("Location"))
			resp = e.br.send("GET", resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
				t.Errorf("returnTo=%q: callback = %d to %q", p, resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}
