package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gobff/bff/examples/internal/exampletest"
)

// The pages as a browser sees them: the public home page signed out and
// signed in (OptionalSession); /account sends a signed-out browser to sign
// in and back (RequireLogin); the live events script only on signed-in
// pages; sign-out with the form.
func TestPages(t *testing.T) {
	_, appURL := exampletest.StartApp(t, nil, newServer)
	br := exampletest.NewBrowser(t)

	home := br.Navigate(appURL + "/")
	if home.StatusCode != 200 || !strings.Contains(home.Body, `<p id="status" role="status">Signed out</p>`) ||
		strings.Contains(home.Body, "<script") || home.Header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(home.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET / signed out: %d %v\n%s", home.StatusCode, home.Header, home.Body)
	}
	r := br.Do("GET", appURL+"/account", "", "Sec-Fetch-Mode", "navigate")
	if want := "/auth/login?returnTo=" + url.QueryEscape("/account"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != want {
		t.Fatalf("GET /account signed out: %d %q, want 303 to %s", r.StatusCode, r.Header.Get("Location"), want)
	}
	if r := br.Get(appURL + "/account"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /account from a script, signed out: %d, want 401", r.StatusCode)
	}

	cb := br.IdPForm(appURL, "/account", url.Values{"username": {"alice"}, "password": {"alice"}})
	account := br.Navigate(cb.Header.Get("Location"))
	if account.Request.URL.String() != appURL+"/account" || !strings.Contains(account.Body, `<span id="name">Alice Example</span>`) ||
		!strings.Contains(account.Body, `<dd id="email">alice@example.com</dd>`) || !strings.Contains(account.Body, `src="/static/events.js"`) {
		t.Fatalf("after sign-in: %s %d\n%s", account.Request.URL, account.StatusCode, account.Body)
	}
	home = br.Navigate(appURL + "/")
	if !strings.Contains(home.Body, `Signed in as <span id="name">Alice Example</span>`) || !strings.Contains(home.Body, `id="signout"`) {
		t.Errorf("GET / signed in:\n%s", home.Body)
	}
	if js := br.Get(appURL + "/static/events.js"); js.StatusCode != 200 || !strings.Contains(js.Body, "new EventSource('/auth/events')") {
		t.Errorf("GET /static/events.js: %d", js.StatusCode)
	}

	stream := br.Stream(appURL + "/auth/events")
	if ev := stream.Next(); ev.Name != "session" {
		t.Fatalf("first event %+v", ev)
	}
	r = br.Do("POST", appURL+"/auth/logout", "", "Origin", appURL, "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate")
	if ev := stream.Next(); ev.Name != "ended" || ev.Data != `{"reason":"logout"}` {
		t.Errorf("after sign-out the stream sent %+v, want ended (logout)", ev)
	}
	if final := br.Follow(r); final.Request.URL.String() != appURL+"/" || !strings.Contains(final.Body, "Signed out") {
		t.Errorf("sign-out ended at %s", final.Request.URL)
	}
}

// Failures: a sign-in cancelled at the provider comes back to the page
// it started from with ?error=, which the home page says in words (an
// unknown code is not echoed); from /account, which cannot show it, the
// browser is sent home instead of to sign in again.
func TestPagesFailures(t *testing.T) {
	_, appURL := exampletest.StartApp(t, nil, newServer)
	br := exampletest.NewBrowser(t)
	r := br.IdPForm(appURL, "/account", url.Values{"cancel": {"1"}})
	landed := br.Navigate(r.Header.Get("Location"))
	if landed.Request.URL.String() != appURL+"/?error=access_denied" ||
		!strings.Contains(landed.Body, `<p id="failure" role="alert">Sign-in was cancelled, or the identity provider refused it.</p>`) {
		t.Errorf("after Cancel: %s\n%s", landed.Request.URL, landed.Body)
	}
	if page := br.Navigate(appURL + "/?error=%3Cb%3Ecall+us%3C%2Fb%3E"); !strings.Contains(page.Body, `<p id="failure" role="alert">Signing in or out failed.</p>`) ||
		strings.Contains(page.Body, "call us") {
		t.Errorf("an unknown code:\n%s", page.Body)
	}
}
