package interop

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// stepTimeout bounds each browser step.
const stepTimeout = 20 * time.Second

// startChromium starts one headless Debian chromium for the test (the
// flags of e2e/), and returns its context; tabs open in their own browser
// contexts. Without chromium the test skips, or fails when CI is set.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		needComponent(t, "chromium not found: install it with apt-get install chromium (scripts/test.sh does)")
	}
	var output syncBuffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// The provider's pages import a web font: fail that at once.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(&output),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v\n%s", err, output.String())
	}
	return ctx
}

// tab is a page in a fresh browser context (its own cookies) that
// records the URL of every request it sends.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu   sync.Mutex
	sent []string // URLs of the requests sent, redirect hops included
	docs []string // URLs of the documents the main frame showed
}

func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			tb.sent = append(tb.sent, e.Request.URL)
		case *page.EventFrameNavigated:
			if e.Frame.ParentID == "" {
				tb.docs = append(tb.docs, e.Frame.URL)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	tb.do("open a page", chromedp.Navigate("about:blank"))
	return tb
}

// shown returns the URLs of the documents shown so far and forgets them.
func (tb *tab) shown() []string { return tb.take(&tb.docs) }

// requests returns the URLs of the requests sent so far and forgets them.
func (tb *tab) requests() []string { return tb.take(&tb.sent) }

func (tb *tab) take(list *[]string) []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := *list
	*list = nil
	return out
}

func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v (at %s)", what, err, tb.location())
	}
}

func (tb *tab) location() string {
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// eval evaluates JavaScript in the page, awaiting a promise.
func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor waits until the page (whichever is loaded, across navigations)
// evaluates js to true.
func (tb *tab) waitFor(what, js string) {
	tb.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === 'complete' && (`+js+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("waiting for %s: %v (at %s, showing %.500q)", what, err, tb.location(), tb.pageText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pageText is the text of the page, for failure messages.
func (tb *tab) pageText() string {
	ctx, cancel := context.WithTimeout(tb.ctx, time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	return text
}

// fetchStatus GETs path from the page (same-origin, with its cookies) and
// returns the status and JSON body.
func (tb *tab) fetchStatus(path string) (int, map[string]any) {
	tb.t.Helper()
	r := eval[map[string]any](tb, `fetch(`+jsString(path)+`, {credentials: 'same-origin'}).then(async r =>
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
	tb.t.Helper()
	for range 4 {
		tb.waitFor("the provider's form or the app", `location.origin === `+jsString(appURL)+
			` || document.querySelector('input[name=prompt]') !== null`)
		loc := tb.location()
		if strings.HasPrefix(loc, appURL+"/") {
			return
		}
		if !strings.HasPrefix(loc, issuer+"/interaction/") {
			tb.t.Fatalf("expected the provider's interaction page, at %s", loc)
		}
		if eval[string](tb, `document.querySelector('input[name=prompt]').value`) == "login" {
			tb.do("type a login and password", chromedp.SendKeys(chromedp.CSS(`input[name=login]`), login),
				chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "any password"))
		}
		tb.do("submit the provider's form", chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		tb.waitFor("the next page", `location.href !== `+jsString(loc))
	}
	tb.t.Fatalf("still at the provider: %s", tb.location())
}

// deleteCookie deletes a cookie of origin, as its expiry would.
func (tb *tab) deleteCookie(name, origin string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: name, URL: origin + "/"}); err != nil {
		tb.t.Fatalf("Network.deleteCookies: %v", err)
	}
}

// cookie returns the value of the cookie name that the page's origin sees
// over HTTP (HttpOnly included), or "".
func (tb *tab) cookie(name, origin string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{origin + "/"}})
	if err != nil {
		tb.t.Fatalf("Network.getCookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func jsString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + `'`
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
