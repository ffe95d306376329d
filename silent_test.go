package bff

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gobff/bff/internal/oidctest"
)

// Silent sign-in: prompt=none with a session at the provider signs the
// browser in without any page of the provider; without one, the browser
// comes back to returnTo?error=login_required, with its session (if any)
// unchanged, and never sees an error page.
func TestSilentSignIn(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)

	t.Run("signed_in_at_provider", func(t *testing.T) {
		br := newBrowser(t)
		a.login(br) // the provider's session cookie is now in the jar
		before, _ := a.sessionCookie(br)
		resp := br.send("GET", a.URL+"/auth/login?prompt=none&returnTo=/app")
		authz := br.send("GET", resp.Header.Get("Location"))
		if authz.StatusCode != http.StatusFound || !strings.HasPrefix(authz.Header.Get("Location"), a.URL+"/auth/callback?code=") {
			t.Fatalf("provider answered %d to %q, want a redirect back with a code (no page)", authz.StatusCode, authz.Header.Get("Location"))
		}
		cb := br.send("GET", authz.Header.Get("Location"))
		after, _ := a.sessionCookie(br)
		if cb.StatusCode != http.StatusSeeOther || cb.Header.Get("Location") != "/app" || after == before {
			t.Fatalf("callback = %d to %q (session %v), want 303 to /app with a new session", cb.StatusCode, cb.Header.Get("Location"), after != before)
		}
		if _, err := a.storeSession(before); err != errNotFound {
			t.Errorf("the previous session: %v, want ended", err)
		}
	})

	for _, code := range []string{"login_required", "consent_required", "interaction_required", "account_selection_required"} {
		t.Run(code, func(t *testing.T) {
			br, sid := a.signInID(t)
			resp := br.send("GET", a.URL+"/auth/login?prompt=none&returnTo="+url.QueryEscape("/app?tab=2&error=old#top"))
			loc, _ := url.Parse(resp.Header.Get("Location"))
			state := loc.Query().Get("state")
			cb := br.send("GET", a.URL+"/auth/callback?"+url.Values{"error": {code}, "state": {state}, "iss": {a.op.Issuer()}}.Encode())
			if want := "/app?tab=2&error=" + code + "#top"; cb.StatusCode != http.StatusSeeOther || cb.Header.Get("Location") != want {
				t.Fatalf("callback = %d to %q, want 303 to %q", cb.StatusCode, cb.Header.Get("Location"), want)
			}
			if now, _ := a.sessionCookie(br); now != sid || !signedIn(t, a, br) {
				t.Error("the silent sign-in's failure changed the session")
			}
		})
	}

	t.Run("provider_signed_out", func(t *testing.T) {
		br := newBrowser(t) // no session at the provider: the real provider answers
		resp, _ := br.follow(a.URL + "/auth/login?prompt=none&returnTo=/app")
		if resp.Request.URL.String() != a.URL+"/app?error=login_required" || resp.StatusCode != 200 {
			t.Fatalf("ended at %d %s, want /app?error=login_required", resp.StatusCode, resp.Request.URL)
		}
		if _, ok := a.sessionCookie(br); ok {
			t.Error("a session was created")
		}
	})

	// The friendly way back exists only for the browser's own silent
	// sign-in; anything else is the usual JSON error.
	for _, tc := range []struct {
		name  string
		query string // of /login
		edit  func(q url.Values)
	}{
		{"not_silent", "returnTo=/app", nil},
		{"other_error", "prompt=none&returnTo=/app", func(q url.Values) { q.Set("error", "access_denied") }},
		{"unknown_state", "prompt=none&returnTo=/app", func(q url.Values) { q.Set("state", "AAAAAAAAAAAAAAAAAAAAAAAAAA") }},
		{"other_issuer", "prompt=none&returnTo=/app", func(q url.Values) { q.Set("iss", "https://evil.example") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := newBrowser(t)
			resp := br.send("GET", a.URL+"/auth/login?"+tc.query)
			loc, _ := url.Parse(resp.Header.Get("Location"))
			q := url.Values{"error": {"login_required"}, "state": {loc.Query().Get("state")}, "iss": {a.op.Issuer()}}
			if tc.edit != nil {
				tc.edit(q)
			}
			cb := br.get(a.URL + "/auth/callback?" + q.Encode())
			if cb.StatusCode != http.StatusBadRequest || cb.Header.Get("Location") != "" {
				t.Fatalf("callback = %d to %q, want 400", cb.StatusCode, cb.Header.Get("Location"))
			}
			jsonError(t, cb)
		})
	}
}
