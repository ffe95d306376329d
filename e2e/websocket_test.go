package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gobff/bff/internal/chromium"

	"github.com/gobff/bff/internal/testsupport"
	"github.com/gobff/bff/internal/wstest"
)

// wsScript opens a WebSocket to %q, sends "hi" and resolves with what
// happened.
const wsScript = `new Promise(resolve => {
  const ws = new WebSocket(%q);
  ws.onopen = () => ws.send('hi');
  ws.onmessage = e => { resolve('message: ' + e.data); ws.close(); };
  ws.onerror = () => resolve('error');
  ws.onclose = e => resolve('closed ' + e.code);
})`

// sameSitePage is a page on another port of localhost: another origin but
// the same site, so the browser sends the app's SameSite=Strict cookie
// with its requests. Its script tries the app's proxied WebSocket.
const sameSitePage = `<!doctype html>
<title>same site, other origin</title>
<pre id="result">running</pre>
<script>
(async () => {
  document.getElementById('result').textContent = await ` + wsScript + `;
  document.body.dataset.done = '1';
})();
</script>`

// 7. A WebSocket through the example's proxy (/api/upstream/, to an
// upstream that takes bearer tokens and, like most, ignores Origin) works
// from the app's page; from a page on another port of localhost, which
// SameSite counts as the same site, the app refuses the handshake and the
// upstream never sees it (cross-site WebSocket hijacking).
func TestWebSocketSameOriginOnly(t *testing.T) {
	t.Parallel()
	up := &wstest.Server{Check: func(r *http.Request) error {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			return errors.New("no bearer token")
		}
		return nil
	}}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	ex := startExample(t, "BFF_UPSTREAM_URL="+upSrv.URL)
	tb := newBrowser(t, ex)
	signIn(t, tb, ex, "/")
	wsURL := "ws" + strings.TrimPrefix(ex.URL, "http") + "/api/upstream/ws"

	if got := chromium.Eval[string](tb.Tab, fmt.Sprintf(wsScript, wsURL)); got != "message: echo: hi" {
		t.Fatalf("same-origin WebSocket: %q, want the upstream's echo", got)
	}
	acc := up.Accepted()
	if len(acc) != 1 || acc[0].Header.Get("Cookie") != "" || acc[0].Header.Get("Origin") != ex.URL {
		t.Fatalf("upstream handshakes: %d, want one with a bearer token, no cookie, Origin %s", len(acc), ex.URL)
	}

	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, sameSitePage, wsURL)
	}))
	defer page.Close()
	pageURL := strings.Replace(page.URL, "127.0.0.1", "localhost", 1)
	refused := func() int { return strings.Count(ex.logs.String(), "path=/api/upstream/ws status=403") }
	before := refused()
	tb.Do("open a same-site page on another port of localhost",
		chromedp.Navigate(pageURL), chromedp.WaitVisible(chromedp.CSS(`body[data-done="1"]`)))
	result := tb.Text("result")
	t.Logf("WebSocket from %s: %s", pageURL, result)
	if strings.Contains(result, "message") {
		t.Errorf("the same-site page talked to the upstream: %q", result)
	}
	if n := len(up.Accepted()); n != 1 {
		t.Errorf("the upstream accepted %d handshakes, want only the same-origin one", n)
	}
	// The handshake reached the app and was refused there.
	testsupport.WaitUntil(t, 5*time.Second, "the app to log a refused handshake for /api/upstream/ws", func() bool {
		return refused() > before
	})

	// The session is intact: back on the app, the WebSocket still works.
	tb.Do("back to the app", chromedp.Navigate(ex.URL+"/"))
	tb.waitState("signed-in")
	if got := chromium.Eval[string](tb.Tab, fmt.Sprintf(wsScript, wsURL)); got != "message: echo: hi" {
		t.Errorf("same-origin WebSocket after the attempt: %q", got)
	}
}
