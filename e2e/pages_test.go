package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gobff/bff/internal/chromium"
)

// (b) examples/pages: /account while signed out goes to the provider's
// sign-in page and, signed in, back to /account showing the user's name,
// rendered by the server; no JSON page on the way.
func TestAccountPageSignsInAndComesBack(t *testing.T) {
	t.Parallel()
	ex := startPages(t)
	tb := newBrowser(t, ex)
	nl := tb.RecordNetwork()
	tb.Do("open /account signed out", chromedp.Navigate(ex.URL+"/account"), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := tb.Location(); !strings.HasPrefix(loc, ex.IdPURL+"/authorize?") {
		t.Fatalf("signed out, /account led to %s, want the IdP's sign-in page", loc)
	}
	tb.submitSignInForm(t)
	tb.Do("wait for the account page", chromedp.WaitVisible(chromedp.ID("email")))
	if loc := tb.Location(); loc != ex.URL+"/account" {
		t.Errorf("after sign-in the browser is at %s, want %s", loc, ex.URL+"/account")
	}
	if got := tb.Text("name"); got != alice.Name {
		t.Errorf("#name = %q, want %q", got, alice.Name)
	}
	docs := chromium.DocumentRequests(nl.Requests())
	chromium.LogRequests(t, "the way to /account", docs)
	for _, r := range docs {
		if strings.Contains(r.ContentType, "json") {
			t.Errorf("the browser showed a JSON page: %s", r.URL)
		}
	}
	// The page was rendered signed in: its first request carried the
	// session (a later one would have been a second sign-in).
	if n := strings.Count(ex.logs.String(), `msg="bff: signed in"`); n != 1 {
		t.Errorf("%d sign-ins, want 1", n)
	}
}

// (f) The idle-timeout warning of examples/pages appears before the idle
// deadline; "Stay signed in" moves the deadline; unused, the session then
// ends at its deadline, and the page says so.
func TestIdleTimeoutWarning(t *testing.T) {
	t.Parallel()
	ex := startPages(t, "BFF_IDLE_TIMEOUT=10s", "BFF_EXPIRY_WARNING=4s") // recorded activity every 5 s
	tb := newBrowser(t, ex)
	tb.Do("open /account", chromedp.Navigate(ex.URL+"/account"), chromedp.WaitVisible(chromedp.ID("username")))
	tb.submitSignInForm(t)
	tb.Do("wait for the account page", chromedp.WaitVisible(chromedp.ID("email")))

	warned := func() (shown, deadline time.Time) {
		t.Helper()
		tb.Do("wait for the idle warning", chromedp.WaitVisible(chromedp.ID("idle-warning")))
		ms, _ := strconv.ParseInt(chromium.Eval[string](tb.Tab, `document.getElementById('idle-warning').dataset.shownAt`), 10, 64)
		shown = time.UnixMilli(ms)
		deadline, err := time.Parse(time.RFC3339, chromium.Eval[string](tb.Tab, `document.body.dataset.idleExpiresAt`))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the warning appeared %v before the idle deadline", deadline.Sub(shown))
		if !shown.Before(deadline) {
			t.Errorf("the idle warning appeared at %v, not before the idle deadline %v", shown, deadline)
		}
		if ends := chromium.Eval[string](tb.Tab, `document.getElementById('idle-ends').dateTime`); ends != chromium.Eval[string](tb.Tab, `document.body.dataset.idleExpiresAt`) {
			t.Errorf("the warning names %s, the idle deadline is %s", ends, chromium.Eval[string](tb.Tab, `document.body.dataset.idleExpiresAt`))
		}
		return shown, deadline
	}
	_, first := warned()
	tb.Do("click Stay signed in", chromedp.Click(chromedp.ID("stay")), chromedp.WaitVisible(chromedp.ID("email")))
	tb.Do("wait for the new deadline", chromedp.Poll[chromedp.Void](`document.body.dataset.idleExpiresAt !== undefined`))
	_, second := warned()
	if !second.After(first) {
		t.Errorf("after Stay signed in the idle deadline is %v, was %v: not extended", second, first)
	}
	tb.waitState("signed-out")
	if got := tb.Text("notice"); got != "Your session expired." {
		t.Errorf("#notice = %q, want %q", got, "Your session expired.")
	}
	if got := tb.Text("status"); got != "Signed out" {
		t.Errorf("#status = %q", got)
	}
}
