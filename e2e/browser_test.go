package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gobff/bff/internal/chromium"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/testsupport"
)

var alice = oidctest.DefaultUser

// signIn signs the tab in from the example's page at path, as a person
// does: click "Sign in", type the username and password into the dev IdP's
// form (on its own origin), click its "Sign in" button. It returns when the
// page the browser came back to shows the user.
func signIn(t *testing.T, tb *tab, ex *example, path string) {
	t.Helper()
	tb.openSignInForm(t, ex, path)
	tb.submitSignInForm(t)
	tb.waitState("signed-in")
}

// openSignInForm opens the example's page at path, checks that it shows
// "Signed out", clicks "Sign in", and waits for the IdP's form.
func (tb *tab) openSignInForm(t *testing.T, ex *example, path string) {
	t.Helper()
	tb.Do("open "+path, chromedp.Navigate(ex.URL+path))
	tb.waitState("signed-out")
	if got := tb.Text("status"); got != "Signed out" {
		t.Fatalf("%s: #status = %q, want %q", tb.Name, got, "Signed out")
	}
	tb.Do("click Sign in", chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := tb.Location(); !strings.HasPrefix(loc, ex.IdPURL+"/authorize?") {
		t.Fatalf("%s: the sign-in page is %s, want the dev IdP at %s", tb.Name, loc, ex.IdPURL)
	}
	if title := chromium.Run(tb.Tab, "title", chromedp.Title()); title != oidctest.LoginPageTitle {
		t.Errorf("%s: IdP page title %q, want %q", tb.Name, title, oidctest.LoginPageTitle)
	}
}

// submitSignInForm types alice's credentials into the IdP's form and
// clicks its button.
func (tb *tab) submitSignInForm(t *testing.T) {
	t.Helper()
	tb.Do("type the credentials and click the IdP's Sign in",
		chromedp.SendKeys(chromedp.ID("username"), alice.Username),
		chromedp.SendKeys(chromedp.ID("password"), alice.Password),
		chromedp.Click(chromedp.ID("signin")),
	)
}

// 1. The page shows "Signed out"; sign-in goes through the IdP's page
// (typed, clicked) and comes back to the returnTo page, which shows the
// user's name from /api/me.
func TestSignInThroughTheIdPPage(t *testing.T) {
	t.Parallel()
	ex := startExample(t)
	tb := newBrowser(t, ex)
	const returnTo = "/?from=e2e"
	signIn(t, tb, ex, returnTo)

	if loc := tb.Location(); loc != ex.URL+returnTo {
		t.Errorf("came back to %s, want the returnTo page %s", loc, ex.URL+returnTo)
	}
	if got, want := tb.Text("status"), "Signed in as "+alice.Name; got != want {
		t.Errorf("#status = %q, want %q", got, want)
	}
	if got := tb.Text("name"); got != alice.Name {
		t.Errorf("#name = %q, want %q (from /api/me)", got, alice.Name)
	}
	me := chromium.Eval[map[string]any](tb.Tab, `fetch('/api/me', {credentials: 'same-origin'}).then(r => r.json())`)
	if me["sub"] != alice.Subject || me["name"] != alice.Name || me["email"] != alice.Email {
		t.Errorf("/api/me in the browser = %v", me)
	}
	if !chromium.Run(tb.Tab, "sign-out button visible", chromedp.Evaluate[bool](`!document.getElementById('signout-form').hidden && document.getElementById('signin').hidden`)) {
		t.Error("signed in, the page does not offer Sign out (or still offers Sign in)")
	}

	if os.Getenv("BFF_E2E_SCREENSHOT") == "1" {
		tb.Do("fill the page for the screenshot",
			chromedp.Click(chromedp.ID("echo")),
			chromedp.Poll[chromedp.Void](`document.getElementById('echo-result').textContent !== ''`),
			chromedp.EmulateViewport(800, 560),
		)
		img := chromium.Run(tb.Tab, "screenshot", chromedp.FullScreenshot(100))
		path := filepath.Join(repoRoot(t), "docs", "screenshot-signed-in.png")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s (%d bytes)", path, len(img))
	}
}

// 2. document.cookie does not show the session cookie (HttpOnly), while the
// browser's cookie jar has it with Secure, HttpOnly, SameSite=Strict,
// Path=/, no Domain and the __Host- prefix. Nothing that looks like a token
// is anywhere in the browser's cookies or web storage.
func TestSessionCookieAttributes(t *testing.T) {
	t.Parallel()
	ex := startExample(t)
	tb := newBrowser(t, ex)
	signIn(t, tb, ex, "/")

	if dc := chromium.Eval[string](tb.Tab, `document.cookie`); strings.Contains(dc, "bff") {
		t.Errorf("document.cookie = %q: the session cookie is readable from JavaScript", dc)
	}
	all := tb.Cookies()
	c := chromium.FindCookie(all, "__Host-bff")
	if c == nil {
		t.Fatalf("no __Host-bff cookie in the browser's jar: %v", all)
	}
	if !c.Secure || !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/" || c.Domain != "localhost" {
		t.Errorf("__Host-bff: secure=%v httpOnly=%v sameSite=%q path=%q domain=%q; want Secure, HttpOnly, Strict, /, host-only localhost",
			c.Secure, c.HTTPOnly, c.SameSite, c.Path, c.Domain)
	}
	if len(c.Value) != 26 {
		t.Errorf("the session cookie holds %d characters, want a 26-character opaque ID", len(c.Value))
	}
	for _, c := range all {
		if strings.Contains(c.Value, "eyJ") || !c.HTTPOnly {
			t.Errorf("cookie %s (domain %s): httpOnly=%v, value looks like a JWT: %v", c.Name, c.Domain, c.HTTPOnly, strings.Contains(c.Value, "eyJ"))
		}
	}
	storage := chromium.Eval[string](tb.Tab, `JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])`)
	if storage != "[[],[]]" {
		t.Errorf("web storage is not empty: %s", storage)
	}
}

// crossOriginPage is a page of another origin (and site) whose script tries
// to POST to the app's /api/echo with the user's cookies, three ways, and
// shows what happened.
const crossOriginPage = `<!doctype html>
<title>another origin</title>
<pre id="result">running</pre>
<script>
const target = %q;
async function attempt(name, init) {
  try {
    const r = await fetch(target, init);
    return name + ': status ' + r.status + (r.type === 'opaque' ? ' (opaque)' : ' ' + await r.text());
  } catch (e) {
    return name + ': blocked (' + e.name + ')';
  }
}
(async () => {
  const body = JSON.stringify({stolen: true});
  const results = [
    await attempt('json', {method: 'POST', credentials: 'include', headers: {'Content-Type': 'application/json'}, body}),
    await attempt('simple', {method: 'POST', credentials: 'include', headers: {'Content-Type': 'text/plain'}, body}),
    await attempt('no-cors', {method: 'POST', mode: 'no-cors', credentials: 'include', headers: {'Content-Type': 'text/plain'}, body}),
  ];
  document.getElementById('result').textContent = results.join('\n');
  document.body.dataset.done = '1';
})();
</script>`

// 3. The page's same-origin fetch POST to /api/echo succeeds; the same POST
// from a page on another origin fails: the browser does not hand the
// response to that page, and the app refuses the request (403).
func TestEchoSameOriginAndCrossOrigin(t *testing.T) {
	t.Parallel()
	ex := startExample(t)
	tb := newBrowser(t, ex)
	signIn(t, tb, ex, "/")

	// The page's own button (app.js: fetch with credentials: 'same-origin').
	tb.Do("type a message and click POST /api/echo",
		chromedp.SetValue(chromedp.ID("echo-input"), "hello from the page"),
		chromedp.Click(chromedp.ID("echo")),
		chromedp.Poll[chromedp.Void](`document.getElementById('echo-result').textContent !== ''`),
	)
	if got := tb.Text("echo-result"); !strings.HasPrefix(got, "200") || !strings.Contains(got, `"message": "hello from the page"`) {
		t.Errorf("#echo-result = %q, want 200 and the echoed message", got)
	}
	// The snippet of the docs, typed into the page.
	got := chromium.Eval[map[string]any](tb.Tab, `fetch('/api/echo', {
		method: 'POST',
		credentials: 'same-origin',
		headers: {'Content-Type': 'application/json'},
		body: JSON.stringify({hello: 'world'}),
	}).then(async r => ({status: r.status, body: await r.json()}))`)
	if got["status"] != float64(200) || fmt.Sprint(got["body"]) != "map[hello:world]" {
		t.Errorf("same-origin fetch POST /api/echo = %v, want 200 {hello: world}", got)
	}

	refusedBefore := strings.Count(ex.logs.String(), "path=/api/echo status=403")
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, crossOriginPage, ex.URL+"/api/echo")
	}))
	defer other.Close()
	if u, _ := url.Parse(other.URL); u.Hostname() != "127.0.0.1" {
		t.Fatalf("the other origin %s must not be localhost", other.URL)
	}
	tb.Do("open the page of another origin", chromedp.Navigate(other.URL), chromedp.WaitVisible(chromedp.CSS(`body[data-done="1"]`)))
	result := tb.Text("result")
	t.Logf("cross-origin attempts from %s:\n%s", other.URL, result)
	for _, want := range []string{"json: blocked (TypeError)", "simple: blocked (TypeError)", "no-cors: status 0 (opaque)"} {
		if !strings.Contains(result, want) {
			t.Errorf("cross-origin result lacks %q:\n%s", want, result)
		}
	}
	if strings.Contains(result, "stolen") {
		t.Errorf("the other origin read the echo:\n%s", result)
	}
	// The two requests the browser sent without a preflight reached the app
	// and were refused there, not only hidden by the browser.
	testsupport.WaitUntil(t, 5*time.Second, "the app to log two refused cross-origin POSTs to /api/echo", func() bool {
		return strings.Count(ex.logs.String(), "path=/api/echo status=403")-refusedBefore >= 2
	})

	// The session is intact: back on the app, the page still works.
	tb.Do("back to the app", chromedp.Navigate(ex.URL+"/"))
	tb.waitState("signed-in")
}

// 4. Two tabs sign in at the same time: both reach the IdP's form before
// either submits, both submit at once, both end up signed in.
func TestTwoTabsSignInAtOnce(t *testing.T) {
	t.Parallel()
	ex := startExample(t)
	tab1 := newBrowser(t, ex)
	tab2 := tab1.newTab()
	tabs := []*tab{tab1, tab2}

	parallel := func(f func(tb *tab)) {
		var wg sync.WaitGroup
		for _, tb := range tabs {
			wg.Go(func() { f(tb) })
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	// t.Fatal must not be called from these goroutines: use errors.
	errs := make(chan error, 4)
	check := func(tb *tab, what string, steps ...chromedp.Action[chromedp.Void]) {
		ctx, cancel := context.WithTimeout(tb.Ctx, chromium.ActionTimeout)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			errs <- fmt.Errorf("%s: %s: %w", tb.Name, what, err)
		}
	}
	flush := func() {
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		errs = make(chan error, 4)
		if t.Failed() {
			t.FailNow()
		}
	}

	parallel(func(tb *tab) {
		check(tb, "open the page, click Sign in, wait for the IdP's form",
			chromedp.Navigate(ex.URL+"/?"+tb.Name),
			chromedp.WaitVisible(chromedp.CSS(`body[data-state="signed-out"]`)),
			chromedp.Click(chromedp.ID("signin")),
			chromedp.WaitVisible(chromedp.ID("username")),
		)
	})
	flush()
	// Two sign-in transactions are pending in one browser.
	if n := strings.Count(fmt.Sprint(cookieNames(tab1.Cookies())), "__Host-bff-tx-"); n != 2 {
		t.Errorf("%d login-transaction cookies with both forms open, want 2 (one per attempt)", n)
	}
	parallel(func(tb *tab) {
		check(tb, "type the credentials and click Sign in; wait to be back signed in",
			chromedp.SendKeys(chromedp.ID("username"), alice.Username),
			chromedp.SendKeys(chromedp.ID("password"), alice.Password),
			chromedp.Click(chromedp.ID("signin")),
			chromedp.WaitVisible(chromedp.CSS(`body[data-state="signed-in"]`)),
		)
	})
	flush()
	for _, tb := range tabs {
		if loc := tb.Location(); loc != ex.URL+"/?"+tb.Name {
			t.Errorf("%s came back to %s, want its own returnTo %s", tb.Name, loc, ex.URL+"/?"+tb.Name)
		}
		// Each tab's next API call works: both are signed in.
		r := chromium.Eval[map[string]any](tb.Tab, `window.example.me().then(r => ({status: r.status, name: r.body.name}))`)
		if r["status"] != float64(200) || r["name"] != alice.Name {
			t.Errorf("%s: /api/me after both sign-ins = %v, want 200 %s", tb.Name, r, alice.Name)
		}
		if got := tb.Text("status"); got != "Signed in as "+alice.Name {
			t.Errorf("%s: #status = %q", tb.Name, got)
		}
	}
}

func cookieNames(cs []*network.Cookie) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

// 5. Sign-out through the page's button ends the session and returns to the
// page, signed out; the back button does not bring the session back.
func TestSignOutAndBack(t *testing.T) {
	t.Parallel()
	ex := startExample(t)
	tb := newBrowser(t, ex)
	signIn(t, tb, ex, "/")

	tb.Do("click Sign out", chromedp.Click(chromedp.ID("signout")))
	tb.waitState("signed-out")
	if loc := tb.Location(); loc != ex.URL+"/" {
		t.Errorf("after sign-out the browser is at %s, want %s", loc, ex.URL+"/")
	}
	if got := tb.Text("status"); got != "Signed out" {
		t.Errorf("#status after sign-out = %q", got)
	}
	if c := chromium.FindCookie(tb.Cookies(), "__Host-bff"); c != nil {
		t.Errorf("the session cookie is still in the jar after sign-out")
	}
	if !strings.Contains(ex.logs.String(), `msg="bff: signed out"`) {
		t.Errorf("the app did not log the sign-out")
	}

	tb.Do("press the back button", chromedp.NavigateBack())
	tb.waitState("signed-out")
	if got := tb.Text("status"); got != "Signed out" {
		t.Errorf("#status after going back = %q, want Signed out", got)
	}
	r := chromium.Eval[float64](tb.Tab, `fetch('/api/me', {credentials: 'same-origin'}).then(r => r.status)`)
	if r != 401 {
		t.Errorf("/api/me after sign-out and back = %v, want 401", r)
	}
}

// 6. After the access token expired (a 3-second lifetime at the dev IdP),
// the page's next API call succeeds, with a new token, and without any
// visible redirect: the server refreshed it.
func TestExpiredAccessTokenIsRefreshedOnTheServer(t *testing.T) {
	t.Parallel()
	ex := startExample(t, "BFF_DEV_ACCESS_TOKEN_TTL=3s", "BFF_REFRESH_SKEW=1s")
	tb := newBrowser(t, ex)
	signIn(t, tb, ex, "/")

	tb.Do("click GET /api/me", chromedp.Click(chromedp.ID("me")))
	first := tb.Text("token-expires")
	exp, err := time.Parse(time.RFC3339, first)
	if err != nil {
		t.Fatalf("#token-expires = %q: %v", first, err)
	}
	if d := time.Until(exp); d > 4*time.Second {
		t.Fatalf("the access token expires in %v, want at most 3 s (BFF_DEV_ACCESS_TOKEN_TTL)", d)
	}
	locBefore := tb.Location()
	chromium.Eval[chromedp.Void](tb.Tab, `window.notReloaded = true`)

	// The token has expired (with a second's margin for RFC 3339's rounding).
	time.Sleep(time.Until(exp.Add(1100 * time.Millisecond)))

	tb.Do("click GET /api/me again",
		chromedp.Click(chromedp.ID("me")),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById('token-expires').textContent !== %q`, first)),
	)
	second := tb.Text("token-expires")
	exp2, err := time.Parse(time.RFC3339, second)
	if err != nil || !exp2.After(exp) || !exp2.After(time.Now()) {
		t.Errorf("after expiry, tokenExpiresAt went from %s to %s, want a new, unexpired token", first, second)
	}
	if !chromium.Eval[bool](tb.Tab, `window.notReloaded === true`) || tb.Location() != locBefore {
		t.Error("the page navigated (a redirect) instead of the server refreshing the token")
	}
	if got := tb.Text("status"); got != "Signed in as "+alice.Name {
		t.Errorf("#status = %q", got)
	}
	r := chromium.Eval[map[string]any](tb.Tab, `fetch('/api/me', {credentials: 'same-origin'}).then(r => ({status: r.status, redirected: r.redirected}))`)
	if r["status"] != float64(200) || r["redirected"] != false {
		t.Errorf("fetch /api/me after the refresh = %v, want 200 without redirect", r)
	}
}
