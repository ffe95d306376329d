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

// A page that sets an HttpOnly cookie: the tab reads its text and URL,
// evaluates script, and sees the cookie through the DevTools protocol, as
// does a second tab of the same browser.
func TestTab(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "c", Value: "v", HttpOnly: true, Path: "/"})
		fmt.Fprint(w, `<!doctype html><p id="greeting"> hello </p>`)
	}))
	defer srv.Close()
	tb := New(t)
	tb.Do("open the page", chromedp.Navigate(srv.URL+"/page"), chromedp.WaitVisible(chromedp.ID("greeting")))
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
