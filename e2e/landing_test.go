package e2e

import (
	"strings"
	"testing"

	"github.com/gobff/bff/internal/chromium"
)

// (a) The first request for returnTo after the sign-in carries the session
// cookie. The sign-in's redirect chain began at the provider (another
// site), so a redirect from the callback to returnTo would be a cross-site
// navigation, which gets no SameSite=Strict cookie: a server-rendered page
// would render "signed out" right after a successful sign-in.
func TestFirstRequestAfterSignInCarriesTheCookie(t *testing.T) {
	t.Parallel()
	ex := startExample(t)
	tb := newBrowser(t, ex)
	nl := tb.RecordNetwork()
	const returnTo = "/?first=request"
	signIn(t, tb, ex, returnTo)

	reqs := nl.Requests()
	callback := -1
	for i, r := range reqs {
		if strings.HasPrefix(r.URL, ex.URL+"/auth/callback?") {
			callback = i
		}
	}
	if callback < 0 {
		chromium.LogRequests(t, "requests", reqs)
		t.Fatal("no request to the callback was recorded")
	}
	var first *chromium.SentRequest
	for i := callback + 1; i < len(reqs); i++ {
		if reqs[i].URL == ex.URL+returnTo {
			first = &reqs[i]
			break
		}
	}
	if first == nil {
		chromium.LogRequests(t, "requests", reqs)
		t.Fatalf("no request to %s after the callback", returnTo)
	}
	if first.Headers == nil {
		t.Fatalf("Chromium reported no raw headers for GET %s", first.URL)
	}
	if !strings.Contains(first.Cookie(), "__Host-bff=") {
		chromium.LogRequests(t, "requests from the callback on", reqs[callback:])
		t.Errorf("the first GET %s after the sign-in carried cookies %q, want the session cookie __Host-bff",
			returnTo, first.CookieNames())
	}
}
