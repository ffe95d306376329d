// Package chromium drives Debian's headless chromium in tests, through
// chromedp: one browser per test with a fresh profile, its tabs, and on
// failure a screenshot of every tab, the console logs and chromium's own
// output saved in a temporary directory whose path the test prints.
//
// It is its own module (github.com/gobff/bff/internal/chromium) so that
// chromedp never enters the library's go.mod: the modules whose tests drive
// a browser (e2e, interop) require it with
//
//	require github.com/gobff/bff/internal/chromium v0.0.0
//	replace github.com/gobff/bff/internal/chromium => ../internal/chromium
//
// and may import it because their import paths are under
// github.com/gobff/bff. What is about the examples' pages (signing in
// through their form, their data-state) stays in e2e.
package chromium

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/gobff/bff/internal/testsupport"
)

// ActionTimeout bounds each browser step of Do, Run and Eval.
const ActionTimeout = 20 * time.Second

// execPath finds Debian's chromium: the test is skipped without it, or
// fails when CI is set.
func execPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/lib/chromium/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "chromium not found: install it with apt-get install chromium (scripts/test.sh does)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Browser is one headless chromium with a fresh profile.
type Browser struct {
	t      testing.TB
	output testsupport.LogBuffer // chromium's own stdout and stderr

	mu        sync.Mutex
	tabs      []*Tab
	artifacts map[string]func() string
}

// Tab is one page of a Browser.
type Tab struct {
	Name    string
	Ctx     context.Context // chromedp's context of the tab
	Console *testsupport.LogBuffer

	b *Browser
	t testing.TB // the test its steps fail: the browser's, or an isolated tab's own
}

// New starts chromium (--headless, --no-sandbox, --disable-quic, a fresh
// --user-data-dir, no background networking, then opts: more flags) and
// returns its first tab. The browser is closed at the end of the test;
// before that, the test fails if a page threw an uncaught exception, and a
// failed test saves its artifacts (SaveOnFailure).
func New(t testing.TB, opts ...chromedp.ExecAllocatorOption) *Tab {
	t.Helper()
	path := execPath(t)
	b := &Browser{t: t, artifacts: map[string]func() string{}}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(&b.output),
	}, opts...)...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	t.Cleanup(b.saveArtifactsOnFailure) // runs before the cancels above
	t.Cleanup(b.checkNoExceptions)      // runs first
	return b.addTab(t, ctx, "tab1")
}

// SaveOnFailure adds a file, name, to what a failed test saves: content's
// result at the end of the test (the log of the app under test, say).
func (b *Browser) SaveOnFailure(name string, content func() string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.artifacts[name] = content
}

// Browser returns the browser the tab belongs to.
func (tb *Tab) Browser() *Browser { return tb.b }

// T returns the test the tab's steps fail.
func (tb *Tab) T() testing.TB { return tb.t }

// NewTab opens another tab of the same browser (same cookie jar).
func (tb *Tab) NewTab() *Tab { return tb.newTab(tb.b.t) }

// NewIsolatedTab opens a tab in a new browser context of the same browser:
// its own cookie jar and storage, as another user's browser. The tab
// belongs to t (a subtest, say): its steps fail t, and it closes when t
// ends.
func (tb *Tab) NewIsolatedTab(t testing.TB) *Tab {
	return tb.newTab(t, chromedp.WithNewBrowserContext())
}

func (tb *Tab) newTab(t testing.TB, opts ...chromedp.ContextOption) *Tab {
	ctx, cancel := chromedp.NewContext(tb.b.tabs[0].Ctx, opts...)
	t.Cleanup(cancel)
	tb.b.mu.Lock()
	n := len(tb.b.tabs)
	tb.b.mu.Unlock()
	return tb.b.addTab(t, ctx, fmt.Sprintf("tab%d", n+1))
}

func (b *Browser) addTab(t testing.TB, ctx context.Context, name string) *Tab {
	tb := &Tab{b: b, t: t, Name: name, Ctx: ctx, Console: &testsupport.LogBuffer{}}
	// Console starts the browser (or opens the tab) and subscribes.
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			fmt.Fprintf(tb.Console, "%s %s (%s:%d)\n", m.Time.Format(time.TimeOnly), m, m.URL, m.Line)
		}
	}()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(960, 640)); err != nil {
		t.Fatalf("starting chromium: %v\n%s", err, b.output.String())
	}
	b.mu.Lock()
	b.tabs = append(b.tabs, tb)
	b.mu.Unlock()
	return tb
}

// checkNoExceptions fails the test if a page threw an uncaught exception.
func (b *Browser) checkNoExceptions() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, tb := range b.tabs {
		for line := range strings.Lines(tb.Console.String()) {
			if strings.Contains(line, " exception: ") {
				b.t.Errorf("%s: uncaught exception in the page: %s", tb.Name, strings.TrimSpace(line))
			}
		}
	}
}

func (b *Browser) saveArtifactsOnFailure() {
	if !b.t.Failed() {
		return
	}
	dir, err := os.MkdirTemp("", "bff-chromium-"+strings.NewReplacer("/", "_", " ", "_").Replace(b.t.Name())+"-")
	if err != nil {
		b.t.Logf("cannot save artifacts: %v", err)
		return
	}
	b.mu.Lock()
	tabs := append([]*Tab(nil), b.tabs...)
	files := map[string]string{"chromium.log": b.output.String()}
	for name, content := range b.artifacts {
		files[name] = content()
	}
	b.mu.Unlock()
	for _, tb := range tabs {
		ctx, cancel := context.WithTimeout(tb.Ctx, 5*time.Second)
		if img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			os.WriteFile(filepath.Join(dir, tb.Name+".png"), img, 0o644)
		}
		if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
			fmt.Fprintf(tb.Console, "location at failure: %s\n", loc)
		}
		cancel()
		files[tb.Name+"-console.log"] = tb.Console.String()
	}
	for name, content := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	b.t.Logf("browser failure artifacts (screenshots, console logs, chromium's log): %s", dir)
}

// Do runs browser steps, failing the test with what on error.
func (tb *Tab) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.Ctx, ActionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.Name, what, err)
	}
}

// Run runs one browser action and returns its value, failing the test with
// what on error.
func Run[T any](tb *Tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.Ctx, ActionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.Name, what, err)
	}
	return v
}

// Eval evaluates JavaScript in the page, awaiting a promise.
func Eval[T any](tb *Tab, js string) T {
	tb.t.Helper()
	return Run(tb, "evaluate "+js, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// Text returns the text of the element with the given id, trimmed.
func (tb *Tab) Text(id string) string {
	tb.t.Helper()
	return strings.TrimSpace(Run(tb, "text of #"+id, chromedp.Text(chromedp.ID(id))))
}

// Location returns the tab's URL.
func (tb *Tab) Location() string {
	tb.t.Helper()
	return Run(tb, "location", chromedp.Location())
}

// Cookies returns every cookie of the tab's cookie jar (all origins; an
// isolated tab has its own), read through the DevTools protocol, not
// through the page.
func (tb *Tab) Cookies() []*network.Cookie {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.Ctx, ActionTimeout)
	defer cancel()
	res, err := chromedp.CallBrowser(ctx, storage.GetCookies, storage.GetCookiesParams{
		BrowserContextID: chromedp.FromContext(tb.Ctx).BrowserContextID, // "" for the browser's own jar
	})
	if err != nil {
		tb.t.Fatalf("Storage.getCookies: %v", err)
	}
	return res.Cookies
}

// FindCookie returns the cookie called name in cs, or nil.
func FindCookie(cs []*network.Cookie, name string) *network.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}
