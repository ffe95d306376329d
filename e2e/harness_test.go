// Package e2e runs examples/basic and examples/pages as real processes and
// drives Debian's chromium through them with chromedp: what no HTTP-level
// test can show, that cookies, redirects, SameSite, fetch and EventSource
// behave in a real browser as the docs promise.
//
// Run with: cd e2e && go test -race ./...
// Chromium is /usr/bin/chromium (apt-get install chromium), driven through
// internal/chromium (its own module, shared with interop); without it the
// tests are skipped, or fail when CI is set. On failure, a screenshot of
// every tab, the console logs and the example's log are saved in a temporary
// directory whose path the test prints. BFF_E2E_SCREENSHOT=1 also saves the
// signed-in page to docs/screenshot-signed-in.png.
package e2e

import (
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

	"github.com/gobff/bff/internal/chromium"
	"github.com/gobff/bff/internal/testsupport"
)

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
	logs   *testsupport.LogBuffer
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
		appPort, idpPort := port(testsupport.FreeAddr(t)), port(testsupport.FreeAddr(t))
		ex := &example{
			name:   name,
			URL:    "http://localhost:" + appPort,
			IdPURL: "http://127.0.0.1:" + idpPort,
			logs:   &testsupport.LogBuffer{},
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
	var err error
	exited := false
	ready := testsupport.Poll(30*time.Second, func() bool {
		select {
		case <-ex.exited:
			exited = true
			return true
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, direct+"/auth/login?returnTo=/", nil)
		req.Host = host
		var resp *http.Response
		if resp, err = client.Do(req); err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), ex.IdPURL+"/")
	})
	switch {
	case exited:
		return fmt.Errorf("exited: %v", ex.cmd.ProcessState)
	case !ready:
		return fmt.Errorf("not ready after 30 s (last: %v)", err)
	}
	return nil
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

// port is the port of a "host:port" address.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// tab is a tab of headless chromium (internal/chromium) with the steps of
// the examples' page.
type tab struct{ *chromium.Tab }

// newBrowser starts chromium with a fresh profile and returns its first
// tab. On failure the test saves a screenshot of every tab, the console
// logs and the example's log.
func newBrowser(t *testing.T, ex *example) *tab {
	t.Helper()
	tb := chromium.New(t)
	if ex != nil {
		tb.Browser().SaveOnFailure("example.log", ex.logs.String)
	}
	return &tab{tb}
}

// newTab opens another tab of the same browser (same cookie jar).
func (tb *tab) newTab() *tab { return &tab{tb.NewTab()} }

// waitState waits for the example page's body[data-state] (set by app.js
// once it knows: signed-in, signed-out, error), across navigations.
func (tb *tab) waitState(state string) {
	tb.T().Helper()
	tb.Do("wait for the page to be "+state, chromedp.WaitVisible(chromedp.CSS(`body[data-state="`+state+`"]`)))
}
