package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gobff/bff/internal/chromium"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/redistest"
)

// (c) The user presses "Cancel" (deny) at the provider: the browser lands
// on the page it started from with ?error=access_denied, which says so in
// words; no JSON page on the way.
func TestDenyAtTheProvider(t *testing.T) {
	t.Parallel()
	ex := startExample(t)
	tb := newBrowser(t, ex)
	nl := tb.RecordNetwork()
	tb.openSignInForm(t, ex, "/")
	tb.Do("click Cancel at the IdP", chromedp.Click(chromedp.ID("cancel")), chromedp.WaitVisible(chromedp.ID("failure")))
	tb.waitState("signed-out")
	if loc := tb.Location(); loc != ex.URL+"/?error=access_denied" {
		t.Errorf("after Cancel the browser is at %s, want %s", loc, ex.URL+"/?error=access_denied")
	}
	if got, want := tb.Text("failure"), "Sign-in was cancelled, or the identity provider refused it."; got != want {
		t.Errorf("#failure = %q, want %q", got, want)
	}
	for _, r := range chromium.DocumentRequests(nl.Requests()) {
		if strings.Contains(r.ContentType, "json") {
			chromium.LogRequests(t, "documents", chromium.DocumentRequests(nl.Requests()))
			t.Errorf("the browser showed a JSON page: %s", r.URL)
		}
	}
	if href := chromium.Run(tb.Tab, "sign-in link", chromedp.AttributeValue(chromedp.ID("signin"), "href")).Value; href != "/auth/login?returnTo=%2F" {
		t.Errorf("the sign-in link after a failure is %q, want one back to / without the error", href)
	}
}

// openSecondTab opens path of ex in a new tab of tb's browser, signed in,
// and waits until its event stream is open; it returns the tab and a
// recording of its requests from then on.
func openSecondTab(t *testing.T, tb *tab, ex *example, path string) (*tab, *chromium.NetLog, int) {
	t.Helper()
	other := tb.newTab()
	other.Do("open "+path, chromedp.Navigate(ex.URL+path))
	other.waitState("signed-in")
	other.Do("wait for the event stream", chromedp.Poll[chromedp.Void](`window.example.streaming()`))
	nl := other.RecordNetwork()
	return other, nl, nl.Len()
}

// expectSignedOutByEvent checks that tb shows "Signed out" with notice,
// at most 1 s after since, having sent no request since mark.
func expectSignedOutByEvent(t *testing.T, tb *tab, nl *chromium.NetLog, mark int, since time.Time, notice string) {
	t.Helper()
	tb.waitState("signed-out")
	at := time.UnixMilli(int64(chromium.Eval[float64](tb.Tab, `window.example.signedOutAt`)))
	d := at.Sub(since)
	t.Logf("%s showed signed out %v after the end began", tb.Name, d)
	if d > time.Second {
		t.Errorf("%s showed signed out %v after the end began, want within 1 s", tb.Name, d)
	}
	if got := tb.Text("status"); got != "Signed out" {
		t.Errorf("%s: #status = %q", tb.Name, got)
	}
	if got := tb.Text("notice"); got != notice {
		t.Errorf("%s: #notice = %q, want %q", tb.Name, got, notice)
	}
	if reqs := nl.Since(mark); len(reqs) != 0 {
		chromium.LogRequests(t, tb.Name+"'s requests", reqs)
		t.Errorf("%s sent %d requests of its own to learn of the end, want none", tb.Name, len(reqs))
	}
}

// (d) Two tabs are signed in; the user signs out in tab A. Tab B shows
// "Signed out" within 1 s, told by its event stream, without a request of
// its own.
func TestSignOutInOneTabShowsInTheOther(t *testing.T) {
	t.Parallel()
	ex := startExample(t)
	tabA := newBrowser(t, ex)
	signIn(t, tabA, ex, "/")
	tabB, nl, mark := openSecondTab(t, tabA, ex, "/?tab=b")

	start := time.Now()
	tabA.Do("click Sign out in tab A", chromedp.Click(chromedp.ID("signout")))
	expectSignedOutByEvent(t, tabB, nl, mark, start, "You signed out in another tab or window.")
	tabA.waitState("signed-out")
}

// externalIdP is an interactive provider in the test process, shared by
// several instances of the example, whose back-channel logouts go to the
// instance set with the returned function.
func externalIdP(t *testing.T) (*oidctest.Provider, func(instance string)) {
	t.Helper()
	var target atomic.Pointer[string]
	var op *oidctest.Provider // set before the server starts
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/backchannel" {
			op.ServeHTTP(w, r)
			return
		}
		resp, err := http.Post(*target.Load()+"/auth/backchannel-logout", r.Header.Get("Content-Type"), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	issuer := "http://" + srv.Listener.Addr().String()
	op = oidctest.New(oidctest.Config{Issuer: issuer, Interactive: true, BackchannelLogoutURI: issuer + "/backchannel"})
	srv.Start()
	t.Cleanup(srv.Close)
	return op, func(instance string) { target.Store(&instance) }
}

// (e) The same across two instances that share Redis: tab A on instance 1
// signs out, tab B on instance 2 shows "Signed out" within 1 s (Redis's
// invalidation channel); then, signed in again, a back-channel logout from
// the provider to instance 1 reaches tab B on instance 2 the same way.
func TestSignOutAcrossInstances(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	op, backchannelTo := externalIdP(t)
	env := []string{"BFF_REDIS_ADDR=" + rs.Addr, "BFF_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"BFF_ISSUER=" + op.Issuer(), "BFF_CLIENT_ID=" + op.ClientID(), "BFF_CLIENT_SECRET=" + op.ClientSecret()}
	ex1, ex2 := startExample(t, env...), startExample(t, env...)
	backchannelTo(ex1.URL)

	tabA := newBrowser(t, ex1)
	signIn(t, tabA, ex1, "/")
	tabB, nl, mark := openSecondTab(t, tabA, ex2, "/") // instance 2, the same session
	start := time.Now()
	tabA.Do("click Sign out in tab A (instance 1)", chromedp.Click(chromedp.ID("signout")))
	expectSignedOutByEvent(t, tabB, nl, mark, start, "You signed out in another tab or window.")
	tabA.waitState("signed-out")

	signIn(t, tabA, ex1, "/")
	tabC, nl, mark := openSecondTab(t, tabA, ex2, "/")
	sids := op.Sessions(alice.Subject)
	if len(sids) == 0 {
		t.Fatal("the provider has no session of alice")
	}
	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := op.EndSession(ctx, sids[len(sids)-1]); err != nil {
		t.Fatalf("the provider's back-channel logout: %v", err)
	}
	expectSignedOutByEvent(t, tabC, nl, mark, start, "You were signed out at the identity provider.")
	if !strings.Contains(ex1.logs.String(), `msg="bff: back-channel logout"`) {
		t.Error("instance 1 did not log the back-channel logout")
	}
}
