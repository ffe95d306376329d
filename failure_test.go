package bff

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
)

// failedNavigation checks a failed sign-in or sign-out that a browser
// navigated to: 303 to want (a same-origin page with ?error=code), no
// session cookie set, no JSON.
func failedNavigation(t *testing.T, resp *http.Response, want string) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Errorf("= %d to %q (%s), want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), body, want)
	}
	if strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Errorf("a navigation got JSON: %s", body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-bff" && c.MaxAge >= 0 {
			t.Errorf("a failure set a session cookie")
		}
	}
}

// Friendly failures: every way a sign-in can fail ends, for a browser
// navigation, with 303 to a page of the app (the attempt's returnTo when
// it is known, else "/") with ?error= and the provider's RFC 6749 code or
// bff's own; the same request from a script gets the JSON error with the
// same code. Nothing of the provider's error_description is repeated.
func TestFriendlyFailuresSignIn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(e *env)
		cb     func(e *env, br *browser) string // the callback URL the browser is sent to
		status int
		code   string
		dest   string // where a navigation lands, before ?error=
	}{
		{"the user denied at the provider", nil, func(e *env, br *browser) string {
			return editQuery(e.t, e.a.startLoginTo(br, "/app?tab=2"), func(q url.Values) {
				q.Del("code")
				q.Set("error", "access_denied")
				q.Set("error_description", "<script>alert(1)</script>")
			})
		}, 400, "access_denied", "/app?tab=2"},
		{"a provider error that RFC 6749 does not define", nil, func(e *env, br *browser) string {
			return editQuery(e.t, e.a.startLoginTo(br, "/app"), func(q url.Values) { q.Del("code"); q.Set("error", "<b>x</b>") })
		}, 400, "login_failed", "/app"},
		{"the sign-in took too long", nil, func(e *env, br *browser) string {
			cb := e.a.startLoginTo(br, "/app")
			e.clock.Advance(e.a.bff.cfg.LoginTimeout + time.Second)
			return cb
		}, 400, "login_expired", "/"},
		{"no sign-in in progress in this browser", nil, func(e *env, br *browser) string {
			return e.a.startLoginTo(newBrowser(e.t), "/app")
		}, 400, "login_expired", "/"},
		{"a check of the response failed", nil, func(e *env, br *browser) string {
			return editQuery(e.t, e.a.startLoginTo(br, "/app"), func(q url.Values) { q.Set("iss", "https://evil.example") })
		}, 400, "login_failed", "/app"},
		{"OnLogin refused the user", func(e *env) {
			e.a.bff.cfg.OnLogin = func(context.Context, map[string]any) error { return errors.New("not on the list") }
		}, func(e *env, br *browser) string { return e.a.startLoginTo(br, "/app") }, 403, "login_refused", "/app"},
		{"the provider's token endpoint answers garbage", func(e *env) {
			e.op.Misbehave(func(m *oidctest.Misbehavior) { m.GarbageJSON = true })
		}, func(e *env, br *browser) string { return e.a.startLoginTo(br, "/app") }, 503, "temporarily_unavailable", "/app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, nav := range []bool{true, false} {
				e := newEnv(t, longTokens, nil)
				if tc.setup != nil {
					tc.setup(e)
				}
				cb := tc.cb(e, e.br)
				if !nav {
					resp := e.br.get(cb)
					if code, desc, _ := jsonError(t, resp); resp.StatusCode != tc.status || code != tc.code || strings.Contains(desc, "<") {
						t.Errorf("from a script: %d %q %q, want %d %q", resp.StatusCode, code, desc, tc.status, tc.code)
					}
					continue
				}
				failedNavigation(t, e.br.do("GET", cb, nil, navigate...), withErrorWant(tc.dest, tc.code))
				if _, ok := e.a.sessionCookie(e.br); ok {
					t.Error("the browser has a session after a failed sign-in")
				}
			}
		})
	}
}

// withErrorWant is the Location for dest with error=code added last.
func withErrorWant(dest, code string) string {
	if strings.Contains(dest, "?") {
		return dest + "&error=" + code
	}
	return dest + "?error=" + code
}

// The start of a sign-in fails friendly too (to "/": a bad returnTo is no
// place to go back to), and ErrorPath, when set, is where every failure
// goes; an error parameter already in the destination is replaced.
func TestFriendlyFailuresLoginAndErrorPath(t *testing.T) {
	e := newEnv(t, longTokens, nil)
	failedNavigation(t, e.br.do("GET", e.a.URL+"/auth/login?returnTo=https://evil.example", nil, navigate...), "/?error=invalid_request")
	failedNavigation(t, e.br.do("GET", e.a.URL+"/auth/login?returnTo=/"+strings.Repeat("a", 600), nil, navigate...), "/?error=invalid_request")
	deny := func(e *env, returnTo string) *http.Response {
		cb := editQuery(t, e.a.startLoginTo(e.br, returnTo), func(q url.Values) { q.Del("code"); q.Set("error", "access_denied") })
		return e.br.do("GET", cb, nil, navigate...)
	}
	failedNavigation(t, deny(e, "/app?error=old&x=1"), "/app?x=1&error=access_denied")

	e = newEnv(t, longTokens, func(o *Options) { o.ErrorPath = "/oops?lang=en" })
	failedNavigation(t, deny(e, "/app"), "/oops?lang=en&error=access_denied")
	failedNavigation(t, e.br.do("GET", e.a.URL+"/auth/login?returnTo=//evil.example", nil, navigate...), "/oops?lang=en&error=invalid_request")

	op := testOP(t, oidctest.Config{})
	op.Misbehave(func(m *oidctest.Misbehavior) { m.DiscoveryDown = true })
	a := newUnreadyApp(t, op, nil)
	failedNavigation(t, newBrowser(t).do("GET", a.URL+"/auth/login?returnTo=/app", nil, navigate...), "/?error=temporarily_unavailable")
}

// Sign-out failures of a navigation end on PostLogoutRedirect (or
// ErrorPath) with ?error=: a cross-origin sign-out form (the session
// stays), a sign-out response that does not match this browser.
func TestFriendlyFailuresSignOut(t *testing.T) {
	e := newEnv(t, longTokens, func(o *Options) { o.PostLogoutRedirect = "/bye" }).signIn()
	resp := e.br.do("POST", e.a.URL+"/auth/logout", nil, "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Site", "cross-site")
	failedNavigation(t, resp, "/bye?error=cross_origin")
	if !signedIn(t, e.a, e.br) {
		t.Error("a refused cross-origin sign-out ended the session")
	}
	failedNavigation(t, e.br.do("GET", e.a.URL+"/auth/logout/callback?state=forged", nil, navigate...), "/bye?error=invalid_request")
	resp = e.br.do("POST", e.a.URL+"/auth/logout", nil, "Sec-Fetch-Site", "cross-site")
	if code, _, _ := jsonError(t, resp); resp.StatusCode != 403 || code != "cross_origin" {
		t.Errorf("cross-origin sign-out from a script = %d %q, want 403 cross_origin", resp.StatusCode, code)
	}
}

// A custom ErrorHandler gets every failure, navigations included: no
// redirect of bff's own.
func TestFriendlyFailuresErrorHandlerOverrides(t *testing.T) {
	var got []string
	e := newEnv(t, longTokens, func(o *Options) {
		o.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			var e *Error
			errors.As(err, &e)
			got = append(got, e.Code)
			w.WriteHeader(499)
		}
	})
	cb := editQuery(t, e.a.startLogin(e.br), func(q url.Values) { q.Del("code"); q.Set("error", "access_denied") })
	resp := e.br.send("GET", cb, navigate...)
	if resp.StatusCode != 499 || len(got) != 1 || got[0] != "access_denied" {
		t.Errorf("= %d, the handler saw %q; want 499 from the handler with access_denied", resp.StatusCode, got)
	}
}

// A sign-in that failed and came back to a page behind RequireLogin would
// start the next sign-in at once (and the user who pressed "Deny" would
// be back at the provider): RequireLogin sends a signed-out navigation that
// carries a sign-in failure to ErrorPath (or "/") instead, unless it is
// that page.
func TestRequireLoginShowsFailuresElsewhere(t *testing.T) {
	e := newEnv(t, longTokens, nil)
	cb := editQuery(t, e.a.startLoginTo(e.br, "/page?x=1"), func(q url.Values) { q.Del("code"); q.Set("error", "access_denied") })
	failedNavigation(t, e.br.do("GET", cb, nil, navigate...), "/page?x=1&error=access_denied")
	failedNavigation(t, e.br.do("GET", e.a.URL+"/page?x=1&error=access_denied", nil, navigate...), "/?error=access_denied")
	// An error parameter that is no sign-in failure is the page's own.
	resp := e.br.send("GET", e.a.URL+"/page?error=mine", navigate...)
	if want := "/auth/login?returnTo=" + url.QueryEscape("/page?error=mine"); resp.Header.Get("Location") != want {
		t.Errorf("GET /page?error=mine = %d to %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	e = newEnv(t, longTokens, func(o *Options) { o.ErrorPath = "/page" })
	resp = e.br.send("GET", e.a.URL+"/page?error=access_denied", navigate...)
	if want := "/auth/login?returnTo=" + url.QueryEscape("/page?error=access_denied"); resp.Header.Get("Location") != want {
		t.Errorf("ErrorPath behind RequireLogin: %d to %q, want a sign-in (%q), not a loop", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}
