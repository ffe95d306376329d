package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gobff/bff/internal/chromium"
	"github.com/gobff/bff/internal/testsupport"
)

// startChromium starts headless chromium (internal/chromium) for the test,
// unable to resolve any host but the local ones: the provider's pages
// import a web font, which then fails at once.
func startChromium(t *testing.T) *chromium.Tab {
	t.Helper()
	return chromium.New(t, chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"))
}

// tab is a page of the subtest t in a fresh browser context (its own
// cookies) that records the requests it sends and the documents it shows.
type tab struct {
	*chromium.Tab
	docs *chromium.Documents
	net  *chromium.NetLog
	seen int // requests already returned by requests
}

func newTab(t *testing.T, browser *chromium.Tab) *tab {
	t.Helper()
	tb := browser.NewIsolatedTab(t)
	return &tab{Tab: tb, docs: tb.RecordDocuments(), net: tb.RecordNetwork()}
}

// shown returns the URLs of the documents shown so far and forgets them.
func (tb *tab) shown() []string { return tb.docs.Shown() }

// requests returns the URLs of the requests sent since the last call,
// redirect hops included.
func (tb *tab) requests() []string {
	reqs := tb.net.Since(tb.seen)
	tb.seen += len(reqs)
	urls := make([]string, len(reqs))
	for i, r := range reqs {
		urls[i] = r.URL
	}
	return urls
}

// waitFor waits until the page (whichever is loaded, across navigations)
// evaluates js to true.
func (tb *tab) waitFor(what, js string) {
	tb.T().Helper()
	var err error
	if !testsupport.Poll(chromium.ActionTimeout, func() bool {
		ctx, cancel := context.WithTimeout(tb.Ctx, time.Second)
		defer cancel()
		var ok bool
		ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === 'complete' && (`+js+`)`))
		return err == nil && ok
	}) {
		ctx, cancel := context.WithTimeout(tb.Ctx, time.Second)
		defer cancel()
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
		tb.T().Fatalf("waiting for %s: %v (at %s, showing %.500q)", what, err, loc, text)
	}
}

// fetchStatus GETs path from the page (same-origin, with its cookies) and
// returns the status and JSON body.
func (tb *tab) fetchStatus(path string) (int, map[string]any) {
	tb.T().Helper()
	r := chromium.Eval[map[string]any](tb.Tab, `fetch(`+jsString(path)+`, {credentials: 'same-origin'}).then(async r =>
		({status: r.status, challenge: r.headers.get('WWW-Authenticate') || '', body: await r.json().catch(() => null)}))`)
	body, _ := r["body"].(map[string]any)
	if body == nil {
		body = map[string]any{}
	}
	body["WWW-Authenticate"] = r["challenge"]
	status, _ := r["status"].(float64)
	return int(status), body
}

// signInAtProvider fills oidc-provider's development forms, from the
// page the browser is on, until the browser is back at appURL: the login
// form (any login and password) and the consent form.
func (tb *tab) signInAtProvider(issuer, appURL, login string) {
	tb.T().Helper()
	for range 4 {
		tb.waitFor("the provider's form or the app", `location.origin === `+jsString(appURL)+
			` || document.querySelector('input[name=prompt]') !== null`)
		loc := tb.Location()
		if strings.HasPrefix(loc, appURL+"/") {
			return
		}
		if !strings.HasPrefix(loc, issuer+"/interaction/") {
			tb.T().Fatalf("expected the provider's interaction page, at %s", loc)
		}
		if chromium.Eval[string](tb.Tab, `document.querySelector('input[name=prompt]').value`) == "login" {
			tb.Do("type a login and password", chromedp.SendKeys(chromedp.CSS(`input[name=login]`), login),
				chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "any password"))
		}
		tb.Do("submit the provider's form", chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		tb.waitFor("the next page", `location.href !== `+jsString(loc))
	}
	tb.T().Fatalf("still at the provider: %s", tb.Location())
}

// deleteCookie deletes a cookie of origin, as its expiry would.
func (tb *tab) deleteCookie(name, origin string) {
	tb.T().Helper()
	ctx, cancel := context.WithTimeout(tb.Ctx, chromium.ActionTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: name, URL: origin + "/"}); err != nil {
		tb.T().Fatalf("Network.deleteCookies: %v", err)
	}
}

// cookie returns the value of the tab's cookie name, HttpOnly included,
// or "".
func (tb *tab) cookie(name string) string {
	if c := chromium.FindCookie(tb.Cookies(), name); c != nil {
		return c.Value
	}
	return ""
}

func jsString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + `'`
}
