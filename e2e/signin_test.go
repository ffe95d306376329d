package e2e

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gobff/bff/internal/chromium"
	"github.com/gobff/bff/internal/oidctest"
)

// forgetAppSession deletes the app's session cookie, as its expiry would:
// signed out at the app, still signed in at the provider.
func (tb *tab) forgetAppSession(t *testing.T, ex *example) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.Ctx, chromium.ActionTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "__Host-bff", URL: ex.URL + "/"}); err != nil {
		t.Fatalf("Network.deleteCookies: %v", err)
	}
	if chromium.FindCookie(tb.Cookies(), "__Host-bff") != nil {
		t.Fatal("the session cookie is still there")
	}
}

// 7. Silent sign-in (prompt=none): signed in at the provider, the browser
// comes back signed in without any page of the provider; signed out at
// the provider, it comes back to returnTo?error=login_required.
func TestSilentSignIn(t *testing.T) {
	t.Parallel()
	ex := startExample(t)
	tb := newBrowser(t, ex)
	signIn(t, tb, ex, "/")
	tb.forgetAppSession(t, ex)
	docs := tb.RecordDocuments()

	silent := ex.URL + "/auth/login?prompt=none&returnTo=" + url.QueryEscape("/?silent")
	tb.Do("open the silent sign-in", chromedp.Navigate(silent))
	tb.waitState("signed-in")
	if loc := tb.Location(); loc != ex.URL+"/?silent" {
		t.Errorf("the silent sign-in ended at %s, want %s", loc, ex.URL+"/?silent")
	}
	shown := docs.Shown()
	if !slices.Contains(shown, ex.URL+"/?silent") {
		t.Errorf("documents shown %v lack the app's page: the record does not work", shown)
	}
	for _, u := range shown {
		if strings.HasPrefix(u, ex.IdPURL) {
			t.Errorf("the provider showed a page (%s) during a silent sign-in", u)
		}
	}
	if got := tb.Text("status"); got != "Signed in as "+alice.Name {
		t.Errorf("#status = %q", got)
	}

	// Sign out (here and at the provider), then try again silently.
	tb.Do("click Sign out", chromedp.Click(chromedp.ID("signout")))
	tb.waitState("signed-out")
	docs.Shown()
	tb.Do("open the silent sign-in again", chromedp.Navigate(silent))
	tb.waitState("signed-out")
	if loc := tb.Location(); loc != ex.URL+"/?silent&error=login_required" {
		t.Errorf("signed out at the provider, the silent sign-in ended at %s, want returnTo?error=login_required", loc)
	}
	if got := tb.Text("error"); !strings.Contains(got, "login_required") {
		t.Errorf("the page shows %q, want the error it came back with", got)
	}
	for _, u := range docs.Shown() {
		if !strings.HasPrefix(u, ex.URL+"/") {
			t.Errorf("a page other than the app's was shown: %s", u)
		}
	}
	if chromium.FindCookie(tb.Cookies(), "__Host-bff") != nil {
		t.Error("a session cookie was set")
	}
}

// 8. Step-up: /api/stepup answers 401 naming the acr values; a sign-in
// with acr_values (through the provider's page again) comes back with the
// same user, a new session cookie, and /api/stepup answers 200.
func TestStepUp(t *testing.T) {
	t.Parallel()
	ex := startExample(t, "BFF_STEPUP_ACR="+oidctest.ACRStrong)
	tb := newBrowser(t, ex)
	signIn(t, tb, ex, "/")
	before := chromium.FindCookie(tb.Cookies(), "__Host-bff")
	stepUp := `fetch('/api/stepup', {credentials: 'same-origin'}).then(async r => ({status: r.status,
		challenge: r.headers.get('WWW-Authenticate') || '', body: await r.json()}))`

	r := chromium.Eval[map[string]any](tb.Tab, stepUp)
	body, _ := r["body"].(map[string]any)
	if r["status"] != float64(401) || !strings.Contains(r["challenge"].(string), `error="insufficient_user_authentication"`) ||
		body["acr_values"] != oidctest.ACRStrong {
		t.Fatalf("/api/stepup before the step-up = %v", r)
	}
	// What the page would do with the 401: sign in with the acr values.
	login := ex.URL + "/auth/login?acr_values=" + url.QueryEscape(body["acr_values"].(string)) + "&returnTo=" + url.QueryEscape("/?stepped-up")
	tb.Do("sign in with acr_values", chromedp.Navigate(login), chromedp.WaitVisible(chromedp.ID("username")))
	tb.submitSignInForm(t)
	tb.waitState("signed-in")
	if loc := tb.Location(); loc != ex.URL+"/?stepped-up" {
		t.Errorf("the step-up ended at %s", loc)
	}

	r = chromium.Eval[map[string]any](tb.Tab, stepUp)
	body, _ = r["body"].(map[string]any)
	if r["status"] != float64(200) || body["acr"] != oidctest.ACRStrong || body["authTime"] == "" {
		t.Fatalf("/api/stepup after the step-up = %v", r)
	}
	me := chromium.Eval[map[string]any](tb.Tab, `fetch('/api/me', {credentials: 'same-origin'}).then(r => r.json())`)
	if me["sub"] != alice.Subject {
		t.Errorf("after the step-up /api/me = %v, want %s", me, alice.Subject)
	}
	if after := chromium.FindCookie(tb.Cookies(), "__Host-bff"); after == nil || after.Value == before.Value {
		t.Error("the step-up did not give a new session cookie")
	}
}
