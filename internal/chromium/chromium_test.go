package chromium

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gobff/bff/internal/testsupport"
)

// A redirect to a page that sets an HttpOnly cookie: the tab reads the
// page's text and URL, evaluates script, and sees the cookie through the
// DevTools protocol, as does a second tab of the same browser but not an
// isolated one. The records show the one document and both hops.
func TestTab(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/start":
			http.Redirect(w, r, "/page", http.StatusSeeOther)
			return
		case "/cookie":
			fmt.Fprintf(w, `<!doctype html><p id="cookie">%s</p>`, r.Header.Get("Cookie"))
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "c", Value: "v", HttpOnly: true, Path: "/"})
		fmt.Fprint(w, `<!doctype html><p id="greeting"> hello </p>`)
	}))
	defer srv.Close()
	tb := New(t)
	docs, nl := tb.RecordDocuments(), tb.RecordNetwork()
	tb.Do("open the page", chromedp.Navigate(srv.URL+"/start"), chromedp.WaitVisible(chromedp.ID("greeting")))
	if got := docs.Shown(); len(got) != 1 || got[0] != srv.URL+"/page" {
		t.Errorf("documents shown %q, want only /page", got)
	}
	reqs := DocumentRequests(nl.Requests())
	if len(reqs) != 2 || reqs[0].URL != srv.URL+"/start" || reqs[1].URL != srv.URL+"/page" || reqs[1].ContentType != "text/html" {
		t.Errorf("document requests %+v, want /start and /page (text/html)", reqs)
	}
	if got := tb.Text("greeting"); got != "hello" {
		t.Errorf("Text = %q, want hello", got)
	}
	if got := tb.Location(); got != srv.URL+"/page" {
		t.Errorf("Location = %q", got)
	}
	if got := Eval[float64](tb, `Promise.resolve(6 * 7)`); got != 42 {
		t.Errorf("Eval = %v, want 42", got)
	}
	if dc := Eval[string](tb, `document.cookie`); dc != "" {
		t.Errorf("document.cookie = %q: the HttpOnly cookie is visible to the page", dc)
	}
	if c := FindCookie(tb.NewTab().Cookies(), "c"); c == nil || c.Value != "v" || !c.HTTPOnly {
		t.Errorf("cookie c from the second tab = %+v", c)
	}
	for _, c := range []struct {
		tab  *Tab
		want string
	}{{tb.NewTab(), "c=v"}, {tb.NewIsolatedTab(t), ""}} {
		c.tab.Do("open /cookie", chromedp.Navigate(srv.URL+"/cookie"), chromedp.WaitReady(chromedp.ID("cookie")))
		if got := c.tab.Text("cookie"); got != c.want {
			t.Errorf("%s sent the cookies %q, want %q", c.tab.Name, got, c.want)
		}
	}
}

// A subtest's isolated tab belongs to the subtest: its steps fail the
// subtest (not the test that started the browser), it closes when the
// subtest ends, and Cookies reads its own cookie jar, not the first tab's.
func TestIsolatedTab(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("v"); v != "" { // not on /favicon.ico
			http.SetCookie(w, &http.Cookie{Name: "c", Value: v, Path: "/"})
		}
	}))
	defer srv.Close()
	tb := New(t)
	tb.Do("set c=first", chromedp.Navigate(srv.URL+"/?v=first"))
	var isolated *Tab
	t.Run("sub", func(t *testing.T) {
		isolated = tb.NewIsolatedTab(t)
		if isolated.T() != t {
			t.Error("the isolated tab's steps do not fail its subtest")
		}
		isolated.Do("set c=isolated", chromedp.Navigate(srv.URL+"/?v=isolated"))
		if c := FindCookie(isolated.Cookies(), "c"); c == nil || c.Value != "isolated" {
			t.Errorf("the isolated tab's cookie c = %+v, want isolated", c)
		}
	})
	if isolated.Ctx.Err() == nil {
		t.Error("the isolated tab is still open after its subtest")
	}
	if c := FindCookie(tb.Cookies(), "c"); c == nil || c.Value != "first" {
		t.Errorf("the first tab's cookie c = %+v, want first", c)
	}
}

// recorder records the errors of a test instead of failing it.
type recorder struct {
	testing.TB
	errors testsupport.LogBuffer
}

func (r *recorder) Errorf(format string, args ...any) { fmt.Fprintf(&r.errors, format+"\n", args...) }

// An uncaught exception in a page fails the test at its end.
func TestUncaughtExceptionFails(t *testing.T) {
	rec := &recorder{TB: t}
	t.Cleanup(func() { // runs after the browser's checks
		if !strings.Contains(rec.errors.String(), "uncaught exception in the page") {
			t.Errorf("an uncaught exception did not fail the test; errors: %q", rec.errors.String())
		}
	})
	tb := New(rec)
	tb.Do("open a page that throws", chromedp.Navigate(`data:text/html,<script>throw new Error("boom")</script>`))
	testsupport.WaitUntil(t, 10*time.Second, "the exception in the console log", func() bool {
		return strings.Contains(tb.Console.String(), "boom")
	})
}
