// Package e2e runs examples/basic and examples/pages as real processes and
// drives Debian's chromium through them with chromedp: what no HTTP-level
// test can show, that cookies, redirects, SameSite, fetch and EventSource
// behave in a real browser as the docs promise.
//
// Run with: cd e2e && go test -race ./...
// Chromium is /usr/bin/chromium (apt-get install chromium); without it the
// tests are skipped, or fail when CI is set. On failure, a screenshot of
// every tab, the console logs and the example's log are saved in a temporary
// directory whose path the test prints. BFF_E2E_SCREENSHOT=1 also saves the
// signed-in page to docs/screenshot-signed-in.png.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// actionTimeout bounds each browser step.
const actionTimeout = 20 * time.Second

var binDir string // where the example is built, removed by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bff-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the root module's directory (this module lives in e2e/).
func repoRoot(t testing.TB) string {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var (
	buildMu sync.Mutex
	builds  = map[string]*build{}
)

type build struct {
	once sync.Once
	bin  string
	err  error
}

// exampleBinary builds examples/<name> once per test binary (with -race
// when the tests run with -race).
func exampleBinary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	b := builds[name]
	if b == nil {
		b = &build{}
		builds[name] = b
	}
	buildMu.Unlock()
	b.once.Do(func() {
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		b.bin = filepath.Join(binDir, name)
		args := []string{"build", "-o", b.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		// An example with its own module (examples/basic: the OpenTelemetry
		// SDK is its dependency, not the library's) is built from its
		// directory; the others from the root module.
		cmd := exec.Command(goBin, append(args, "./examples/"+name)...)
		cmd.Dir = repoRoot(t)
		if _, err := os.Stat(filepath.Join(repoRoot(t), "examples", name, "go.mod")); err == nil {
			cmd = exec.Command(goBin, append(args, ".")...)
			cmd.Dir = filepath.Join(repoRoot(t), "examples", name)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build examples/%s: %v\n%s", name, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// example is one of the examples running as a process: the app on
// http://localhost:port, its development IdP on http://127.0.0.1:other
// (another origin, another site), or the provider named by BFF_ISSUER.
type example struct {
	name   string
	URL    string
	IdPURL string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
}

// startExample runs examples/basic with env ("NAME=value") added to its
// environment, and stops it (SIGTERM, graceful) at the end of the test.
func startExample(t *testing.T, env ...string) *example {
	t.Helper()
	return startNamed(t, "basic", env...)
}

// startPages is startExample for examples/pages.
func startPages(t *testing.T, env ...string) *example {
	t.Helper()
	return startNamed(t, "pages", env...)
}

func startNamed(t *testing.T, name string, env ...string) *example {
	t.Helper()
	bin := exampleBinary(t, name)
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BFF_") {
			base = append(base, kv)
		}
	}
	for attempt := 1; ; attempt++ {
		appPort, idpPort := freePort(t), freePort(t)
		ex := &example{
			name:   name,
			URL:    "http://localhost:" + appPort,
			IdPURL: "http://127.0.0.1:" + idpPort,
			logs:   &syncBuffer{},
			exited: make(chan struct{}),
		}
		for _, kv := range env {
			if iss, ok := strings.CutPrefix(kv, "BFF_ISSUER="); ok {
				ex.IdPURL = iss
			}
		}
		ex.cmd = exec.Command(bin)
		ex.cmd.Env = append(append(base,
			"BFF_ADDR=127.0.0.1:"+appPort,
			"BFF_BASE_URL="+ex.URL,
			"BFF_DEV_IDP_ADDR=127.0.0.1:"+idpPort,
		), env...)
		ex.cmd.Stdout, ex.cmd.Stderr = ex.logs, ex.logs
		if err := ex.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { ex.cmd.Wait(); close(ex.exited) }()
		err := ex.waitReady("http://127.0.0.1:"+appPort, "localhost:"+appPort)
		if err == nil {
			t.Cleanup(func() { ex.stop(t) })
			return ex
		}
		ex.cmd.Process.Kill()
		<-ex.exited
		if attempt < 3 && strings.Contains(ex.logs.String(), "address already in use") {
			continue // a free port was taken in between
		}
		t.Fatalf("examples/%s did not start: %v\n%s", name, err, ex.logs.String())
	}
}

// waitReady waits until the login route redirects to the IdP, that is until
// the example listens and discovery succeeded. It connects to direct (an
// IPv4 address) and names host, BaseURL's, as a browser would.
func (ex *example) waitReady(direct, host string) error {
	client := &http.Client{
		Timeout:       2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-ex.exited:
			return fmt.Errorf("exited: %v", ex.cmd.ProcessState)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, direct+"/auth/login?returnTo=/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), ex.IdPURL+"/") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 30 s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects a graceful exit with status 0 and, under
// -race, no data race in the log.
func (ex *example) stop(t *testing.T) {
	ex.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ex.exited:
	case <-time.After(15 * time.Second):
		ex.cmd.Process.Kill()
		<-ex.exited
		t.Errorf("examples/%s did not stop within 15 s of SIGTERM", ex.name)
	}
	if code := ex.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("examples/%s exited with status %d after SIGTERM:\n%s", ex.name, code, ex.logs.String())
	}
	if strings.Contains(ex.logs.String(), "WARNING: DATA RACE") {
		t.Errorf("examples/%s reported a data race:\n%s", ex.name, ex.logs.String())
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("examples/%s log:\n%s", ex.name, ex.logs.String())
	}
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// chromiumPath finds Debian's chromium: the test is skipped without it, or
// fails when CI is set.
func chromiumPath(t *testing.T) string {
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

// browser is one headless chromium with a fresh profile.
type browser struct {
	t      *testing.T
	ex     *example
	output *syncBuffer // chromium's own stdout and stderr
	tabs   []*tab
	mu     sync.Mutex
}

// tab is one page of the browser.
type tab struct {
	b       *browser
	name    string
	ctx     context.Context
	console *syncBuffer
}

// newBrowser starts chromium with the flags of the end-to-end issue, a fresh
// --user-data-dir and --disable-quic, and returns its first tab. On failure
// the test saves a screenshot of every tab, the console logs and the
// example's log.
func newBrowser(t *testing.T, ex *example) *tab {
	t.Helper()
	path := chromiumPath(t)
	dataDir := t.TempDir()
	b := &browser{t: t, ex: ex, output: &syncBuffer{}}
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
		chromedp.UserDataDir(dataDir),
		chromedp.CombinedOutput(b.output),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	t.Cleanup(b.saveArtifactsOnFailure) // runs before the cancels above
	t.Cleanup(b.checkNoExceptions)      // runs first
	return b.addTab(ctx, "tab1")
}

// newTab opens another tab of the same browser (same cookie jar).
func (tb *tab) newTab() *tab {
	ctx, cancel := chromedp.NewContext(tb.b.tabs[0].ctx)
	tb.b.t.Cleanup(cancel)
	return tb.b.addTab(ctx, fmt.Sprintf("tab%d", len(tb.b.tabs)+1))
}

func (b *browser) addTab(ctx context.Context, name string) *tab {
	tb := &tab{b: b, name: name, ctx: ctx, console: &syncBuffer{}}
	// Console starts the browser (or opens the tab) and subscribes.
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			fmt.Fprintf(tb.console, "%s %s (%s:%d)\n", m.Time.Format(time.TimeOnly), m, m.URL, m.Line)
		}
	}()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(960, 640)); err != nil {
		b.t.Fatalf("starting chromium: %v\n%s", err, b.output.String())
	}
	b.mu.Lock()
	b.tabs = append(b.tabs, tb)
	b.mu.Unlock()
	return tb
}

// checkNoExceptions fails the test if a page threw an uncaught exception.
func (b *browser) checkNoExceptions() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, tb := range b.tabs {
		for line := range strings.Lines(tb.console.String()) {
			if strings.Contains(line, " exception: ") {
				b.t.Errorf("%s: uncaught exception in the page: %s", tb.name, strings.TrimSpace(line))
			}
		}
	}
}

func (b *browser) saveArtifactsOnFailure() {
	if !b.t.Failed() {
		return
	}
	dir, err := os.MkdirTemp("", "bff-e2e-"+strings.NewReplacer("/", "_", " ", "_").Replace(b.t.Name())+"-")
	if err != nil {
		b.t.Logf("cannot save artifacts: %v", err)
		return
	}
	b.mu.Lock()
	tabs := append([]*tab(nil), b.tabs...)
	b.mu.Unlock()
	for _, tb := range tabs {
		ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		if img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			os.WriteFile(filepath.Join(dir, tb.name+".png"), img, 0o644)
		}
		if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
			fmt.Fprintf(tb.console, "location at failure: %s\n", loc)
		}
		cancel()
		os.WriteFile(filepath.Join(dir, tb.name+"-console.log"), []byte(tb.console.String()), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "chromium.log"), []byte(b.output.String()), 0o644)
	if b.ex != nil {
		os.WriteFile(filepath.Join(dir, "example.log"), []byte(b.ex.logs.String()), 0o644)
	}
	b.t.Logf("e2e failure artifacts (screenshots, console logs, example log): %s", dir)
}

// do runs browser steps, failing the test with what on error.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.b.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// run runs one browser action and returns its value.
func run[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.b.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
	return v
}

// eval evaluates JavaScript in the page, awaiting a promise.
func eval[T any](tb *tab, js string) T {
	tb.b.t.Helper()
	return run(tb, "evaluate "+js, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// waitState waits for the example page's body[data-state] (set by app.js
// once it knows: signed-in, signed-out, error), across navigations.
func (tb *tab) waitState(state string) {
	tb.b.t.Helper()
	tb.do("wait for the page to be "+state, chromedp.WaitVisible(chromedp.CSS(`body[data-state="`+state+`"]`)))
}

func (tb *tab) text(id string) string {
	tb.b.t.Helper()
	return strings.TrimSpace(run(tb, "text of #"+id, chromedp.Text(chromedp.ID(id))))
}

func (tb *tab) location() string {
	tb.b.t.Helper()
	return run(tb, "location", chromedp.Location())
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
