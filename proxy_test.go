package bff

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/wstest"
)

// upstream is a real API server behind the proxy. It accepts only bearer
// tokens that the test OP says are valid, and records every request it sees.
type upstream struct {
	op      *oidctest.Provider
	srv     *httptest.Server
	target  *url.URL // srv.URL + "/v1"
	release chan struct{}
	gotPart chan struct{} // the upload handler has received part of the body

	ws wstest.Server // at /v1/ws, after the token check

	rejectAll atomic.Bool
	mu        sync.Mutex
	rejectTok string // a token answered 401 although valid
	seen      []seenRequest
}

type seenRequest struct {
	Method, RequestURI, Path, Host string
	Header                         http.Header
}

func newUpstream(t testing.TB, op *oidctest.Provider) *upstream {
	t.Helper()
	u := &upstream{op: op, release: make(chan struct{}), gotPart: make(chan struct{}, 1)}
	u.srv = httptest.NewServer(u)
	t.Cleanup(u.srv.Close)
	t.Cleanup(func() { close(u.release) }) // before srv.Close: unblock slow handlers
	u.target, _ = url.Parse(u.srv.URL + "/v1")
	return u
}

func (u *upstream) reject(tok string) {
	u.mu.Lock()
	u.rejectTok = tok
	u.mu.Unlock()
}

func (u *upstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

func (u *upstream) reset() {
	u.mu.Lock()
	u.seen = nil
	u.mu.Unlock()
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen = append(u.seen, seenRequest{r.Method, r.RequestURI, r.URL.Path, r.Host, r.Header.Clone()})
	rejected := u.rejectTok
	u.mu.Unlock()

	if r.Method == "TRACE" { // echoes the request, as TRACE does
		w.Header().Set("Content-Type", "message/http")
		r.Write(w)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sub, valid := u.op.AccessTokenInfo(tok)
	if !ok || !valid || u.rejectAll.Load() || tok == rejected {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"upstream":"rejected"}`)
		return
	}
	h := w.Header()
	h.Set("Set-Cookie", "__Host-bff=planted-by-upstream; Path=/; Secure")
	h.Set("Clear-Site-Data", `"cookies"`)
	h.Set("X-Upstream", "yes")
	if o := r.Header.Get("Origin"); o != "" { // a careless API: CORS for any origin, with credentials
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", "*")
	}
	switch r.URL.Path {
	case "/v1/hints": // 103 Early Hints, then the answer
		hints := http.Header{"Link": {"</style.css>; rel=preload; as=style"}, "Set-Cookie": {"__Host-bff=planted-in-103; Path=/; Secure"},
			"Clear-Site-Data": {`"cookies"`}, "Access-Control-Allow-Origin": {"https://evil.sibling.example"}}
		for k, v := range hints {
			h[k] = v
		}
		w.WriteHeader(http.StatusEarlyHints)
		for k := range hints {
			h.Del(k)
		}
		io.WriteString(w, "after hints")
	case "/v1/events":
		h.Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	case "/v1/download": // a known length, sent in two parts
		h.Set("Content-Length", "20")
		io.WriteString(w, "first-part\n")
		w.(http.Flusher).Flush()
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "the rest\n")
	case "/v1/slow":
		select {
		case <-u.release:
		case <-r.Context().Done():
		}
	case "/v1/ws":
		u.ws.ServeHTTP(w, r)
	case "/v1/teapot":
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout")
	case "/v1/upload":
		// Count the body; tell the test when 64 KiB have arrived.
		n, signalled := 0, false
		buf := make([]byte, 32<<10)
		for {
			m, err := r.Body.Read(buf)
			n += m
			if n >= 64<<10 && !signalled {
				signalled = true
				u.gotPart <- struct{}{}
			}
			if err != nil {
				break
			}
		}
		fmt.Fprint(w, n)
	default:
		h.Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"sub": sub, "path": r.URL.Path})
	}
}

// mountProxy serves the app with proxy mounted the way the docs say, on a
// router that does not clean paths (like most third-party routers): under
// /api/upstream/ behind RequireSession, and under /naked/ without it. Other
// paths go to the app. The browser's cookies for the app (127.0.0.1) are
// sent here too: cookies ignore the port.
func mountProxy(t testing.TB, a *app, proxy http.Handler) *httptest.Server {
	t.Helper()
	guarded := a.bff.RequireSession(http.StripPrefix("/api/upstream", proxy))
	naked := http.StripPrefix("/naked", proxy)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-App", "front") // the app's own header, on every response
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/upstream/"):
			guarded.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, "/naked/"):
			naked.ServeHTTP(w, r)
		default:
			a.srv.Config.Handler.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// proxyEnv is a signed-in env with an upstream, and the app's proxy to it
// on a front server (mountProxy).
type proxyEnv struct {
	*env
	up    *upstream
	front *httptest.Server
}

func newProxyEnv(t *testing.T, opt func(*Options), popts ProxyOptions) *proxyEnv {
	t.Helper()
	e := &proxyEnv{env: newEnv(t, oidctest.Config{}, onMemory(opt)).signIn()}
	e.up = newUpstream(t, e.op)
	e.front = mountProxy(t, e.a, e.a.bff.Proxy(e.up.target, popts))
	return e
}

// do sends a request through the browser to the front server and reads the
// whole answer. A hang fails through the browser's timeout.
func (e *proxyEnv) do(t *testing.T, method, p string, headers ...string) (*http.Response, string) {
	t.Helper()
	r := e.br.Do(method, e.front.URL+p, "", headers...)
	return r.Response, r.Body
}

func TestProxyForwardsTokenNotBrowserCredentials(t *testing.T) {
	e := newProxyEnv(t, func(o *Options) { o.CSRFHeader = "X-CSRF" }, ProxyOptions{})
	tok := e.rec().rec.AccessToken
	resp, body := e.do(t, "GET", "/api/upstream/whoami?x=1&y=%2F",
		"Authorization", "Bearer browser-chosen-token",
		"X-CSRF", "1",
		"X-Forwarded-For", "6.6.6.6",
		"X-Forwarded-Host", "evil.example",
		"X-Forwarded-Proto", "https",
		"Forwarded", "for=6.6.6.6;host=evil.example",
		"X-Original-URL", "/admin",
		"X-Rewrite-URL", "/admin",
		"X-HTTP-Method-Override", "DELETE",
		"X-Real-IP", "6.6.6.6",
		"X-Forwarded-Prefix", "/admin")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	reqs := e.up.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	got := reqs[0]
	if got.Header.Get("Authorization") != "Bearer "+tok || len(got.Header["Authorization"]) != 1 {
		t.Error("upstream did not get exactly the session's access token")
	}
	if sub, ok := e.op.AccessTokenInfo(tok); !ok || sub != oidctest.DefaultUser.Subject {
		t.Error("forwarded token is not valid at the provider")
	}
	for _, h := range []string{"Cookie", "X-Csrf", "Forwarded", "X-Original-Url", "X-Rewrite-Url",
		"X-Http-Method-Override", "X-Real-Ip", "X-Forwarded-Prefix"} {
		if v := got.Header.Values(h); len(v) > 0 {
			t.Errorf("upstream got the browser's %s header: %q", h, v)
		}
	}
	appURL, _ := url.Parse(e.a.URL)
	if xff := got.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the peer address only", xff)
	}
	if xfh := got.Header.Get("X-Forwarded-Host"); xfh != appURL.Host {
		t.Errorf("X-Forwarded-Host = %q, want BaseURL's %q", xfh, appURL.Host)
	}
	if xfp := got.Header.Get("X-Forwarded-Proto"); xfp != "http" {
		t.Errorf("X-Forwarded-Proto = %q", xfp)
	}
	upURL, _ := url.Parse(e.up.srv.URL)
	if got.Host != upURL.Host || got.RequestURI != "/v1/whoami?x=1&y=%2F" {
		t.Errorf("upstream request = Host %q, %q", got.Host, got.RequestURI)
	}

	// The upstream's cookies stay out of the app's origin; its other
	// headers and its body pass; no token reaches the browser.
	if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
		t.Errorf("upstream Set-Cookie reached the browser: %q", sc)
	}
	if resp.Header.Get("Clear-Site-Data") != "" {
		t.Error("upstream Clear-Site-Data reached the browser")
	}
	if resp.Header.Get("X-Upstream") != "yes" || !strings.Contains(body, `"path":"/v1/whoami"`) {
		t.Errorf("response = %v %s", resp.Header, body)
	}
	if strings.Contains(body, tok) || strings.Contains(fmt.Sprint(resp.Header), tok) {
		t.Error("the access token reached the browser")
	}
	e.a.expect(t, e.br, "/api/me", 200, "session broken after the proxied call")

	// The upstream's status passes through.
	if resp, body := e.do(t, "GET", "/api/upstream/teapot"); resp.StatusCode != http.StatusTeapot || body != "short and stout" {
		t.Errorf("teapot = %d %q", resp.StatusCode, body)
	}
}

// dialWS opens a WebSocket to the front server at path with the browser's
// session cookie and headers (pairs of name, value). c is nil unless the
// handshake succeeded.
func (e *proxyEnv) dialWS(t *testing.T, path string, headers ...string) (c *wstest.Conn, resp *http.Response) {
	t.Helper()
	sid, _ := e.a.sessionCookie(e.br)
	h := http.Header{"Cookie": {e.a.bff.cfg.CookieName + "=" + sid}}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	c, resp, err := wstest.Dial(e.front.Listener.Addr().String(), path, h)
	if err != nil {
		t.Fatalf("WebSocket handshake: %v", err)
	}
	if c != nil {
		t.Cleanup(func() { c.Close() })
		c.NetConn().SetDeadline(time.Now().Add(10 * time.Second)) // a hang guard, not an assertion
	}
	return c, resp
}

// A WebSocket through the proxy works from the app's own origin, with the
// session's token upstream; from a same-site page (a sibling subdomain, or
// another port of localhost: SameSite ignores both and sends the Strict
// cookie) it is refused before anything reaches the upstream, which, built
// for bearer tokens, would not check Origin itself.
func TestProxyWebSocket(t *testing.T) {
	e := newProxyEnv(t, nil, ProxyOptions{})
	tok := e.rec().rec.AccessToken
	c, resp := e.dialWS(t, "/api/upstream/ws", "Origin", e.front.URL, "Sec-Fetch-Site", "same-origin")
	if c == nil {
		t.Fatalf("same-origin WebSocket = %d, want 101", resp.StatusCode)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
		t.Errorf("the upstream's Set-Cookie reached the browser on the 101: %q", sc)
	}
	if err := c.WriteText("hello"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadText(); err != nil || got != "echo: hello" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	acc := e.up.ws.Accepted()
	if len(acc) != 1 || acc[0].Header.Get("Authorization") != "Bearer "+tok || acc[0].Header.Get("Cookie") != "" {
		t.Fatalf("upstream handshakes = %d, want one with the session's token and no cookie", len(acc))
	}

	for _, tc := range []struct{ name, origin, site string }{
		{"sibling_subdomain", "https://evil.sibling.example", "same-site"},
		{"other_port_same_site", "http://127.0.0.1:1", "same-site"},
		{"other_port_origin_only", "http://127.0.0.1:1", ""},
		{"cross_site", "https://evil.example", "cross-site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := len(e.up.requests())
			h := []string{"Origin", tc.origin}
			if tc.site != "" {
				h = append(h, "Sec-Fetch-Site", tc.site)
			}
			if c, resp := e.dialWS(t, "/api/upstream/ws", h...); c != nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("WebSocket from %s = %d, want 403", tc.origin, resp.StatusCode)
			}
			if n := len(e.up.requests()) - seen; n != 0 {
				t.Fatalf("the upstream saw %d requests", n)
			}
		})
	}
}

// The proxy runs the origin check on an upgrade itself, whatever guards it.
func TestProxyUpgradeOriginCheck(t *testing.T) {
	e := newProxyEnv(t, nil, ProxyOptions{})
	s := e.a.browserSession(e.br)
	req := httptest.NewRequest("GET", "/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Origin", "https://evil.sibling.example")
	req.Header.Set("Sec-Fetch-Site", "same-site")
	req = req.WithContext(context.WithValue(req.Context(), sessionKey, s))
	rec := httptest.NewRecorder()
	e.a.bff.Proxy(e.up.target, ProxyOptions{}).ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || len(e.up.requests()) != 0 {
		t.Fatalf("same-site upgrade at the proxy = %d (upstream saw %d requests), want 403", rec.Code, len(e.up.requests()))
	}
}

// The proxy is same-origin by design: an upstream's CORS headers (here one
// that reflects any origin with credentials) never reach the browser, on
// an answer or on a WebSocket's 101.
func TestProxyStripsCORSHeaders(t *testing.T) {
	e := newProxyEnv(t, nil, ProxyOptions{})
	check := func(what string, h http.Header) {
		t.Helper()
		for k := range h {
			if strings.HasPrefix(strings.ToLower(k), "access-control-") {
				t.Errorf("%s: the upstream's %s reached the browser", what, k)
			}
		}
		if h.Get("X-Upstream") != "yes" {
			t.Errorf("%s: the upstream's other headers are missing", what)
		}
	}
	resp, body := e.do(t, "GET", "/api/upstream/whoami", "Origin", "https://evil.sibling.example")
	if resp.StatusCode != 200 {
		t.Fatalf("GET = %d %s", resp.StatusCode, body)
	}
	check("GET", resp.Header)
	c, resp := e.dialWS(t, "/api/upstream/ws", "Origin", e.front.URL, "Sec-Fetch-Site", "same-origin")
	if c == nil {
		t.Fatalf("WebSocket = %d", resp.StatusCode)
	}
	check("101", resp.Header)
}

// An upstream's 1xx (103 Early Hints) goes through the same filter as its
// answer, and the app's own headers stay on the final answer
// (httputil.ReverseProxy copies a 1xx's headers unfiltered, then clears
// every header of the response).
func TestProxyInformationalResponses(t *testing.T) {
	e := newProxyEnv(t, nil, ProxyOptions{})
	var mu sync.Mutex
	var infos []http.Header
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		infos = append(infos, http.Header(h).Clone())
		mu.Unlock()
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", e.front.URL+"/api/upstream/hints", nil)
	resp, err := e.br.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "after hints" {
		t.Fatalf("= %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("X-App") != "front" || resp.Header.Get("X-Upstream") != "yes" {
		t.Errorf("final answer lacks the app's or the upstream's headers: %v", resp.Header)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
		t.Errorf("Set-Cookie on the final answer: %q", sc)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range infos {
		for k := range h {
			if k == "Set-Cookie" || k == "Clear-Site-Data" || strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("the upstream's %s reached the browser on a 1xx: %q", k, h[k])
			}
		}
	}
	if len(infos) != 1 || infos[0].Get("Link") == "" || infos[0].Get("X-App") != "front" {
		t.Errorf("1xx answers: %v, want one 103 with the upstream's Link and the app's header", infos)
	}
}

// A target with a fixed query: the browser cannot set its parameters again
// (an upstream that takes the last value, or the first, would read the
// browser's), under any name a framework reads as the same; other
// parameters follow the target's.
func TestProxyTargetQueryWins(t *testing.T) {
	e := newProxyEnv(t, nil, ProxyOptions{})
	target, _ := url.Parse(e.up.srv.URL + "/v1?tenant=a&user.id=7")
	front := mountProxy(t, e.a, e.a.bff.Proxy(target, ProxyOptions{}))
	get := func(q string) (int, string) {
		r := e.br.Get(front.URL + "/api/upstream/whoami?" + q)
		return r.StatusCode, r.Body
	}
	for _, q := range []string{"tenant=b", "x=1&tenant=b", "tenant", "TENANT=b", "tenan%74=b", "tenant[]=b",
		"tenant%5B0%5D=b", "tenant%00x=b", "user_id=8", "user%2Eid=8", "user+id=8", "User.ID=8", "x=1;tenant=b"} {
		e.up.reset()
		if code, body := get(q); code != http.StatusBadRequest || !strings.Contains(body, "bad_query") {
			t.Errorf("?%s = %d %s, want 400 bad_query", q, code, body)
		}
		if n := len(e.up.requests()); n != 0 {
			t.Errorf("?%s: the upstream saw %d requests", q, n)
		}
	}
	for q, want := range map[string]string{
		"":                 "/v1/whoami?tenant=a&user.id=7",
		"x=1&y=%2F":        "/v1/whoami?tenant=a&user.id=7&x=1&y=%2F",
		"tenants=b&id=8":   "/v1/whoami?tenant=a&user.id=7&tenants=b&id=8",
		"q=tenant%3Db&x=1": "/v1/whoami?tenant=a&user.id=7&q=tenant%3Db&x=1",
	} {
		e.up.reset()
		if code, body := get(q); code != 200 {
			t.Errorf("?%s = %d %s", q, code, body)
			continue
		}
		if reqs := e.up.requests(); len(reqs) != 1 || reqs[0].RequestURI != want {
			t.Errorf("?%s reached the upstream as %v, want %s", q, reqs, want)
		}
	}
}

func TestProxyWithoutSessionRefuses(t *testing.T) {
	e := newProxyEnv(t, nil, ProxyOptions{})
	// Mounted without RequireSession: a cookie and a browser token are not
	// enough; nothing is forwarded.
	resp, body := e.do(t, "GET", "/naked/whoami", "Authorization", "Bearer browser-chosen-token")
	if resp.StatusCode != 401 || !strings.Contains(body, `"unauthenticated"`) {
		t.Fatalf("= %d %s", resp.StatusCode, body)
	}
	// Behind RequireSession without a cookie: 401 as well.
	resp = newBrowser(t).send("GET", e.front.URL+"/api/upstream/whoami")
	if resp.StatusCode != 401 {
		t.Fatalf("signed out = %d", resp.StatusCode)
	}
	if n := len(e.up.requests()); n != 0 {
		t.Fatalf("upstream saw %d requests", n)
	}
}

func TestProxyRefreshesExpiringToken(t *testing.T) {
	var offset atomic.Int64
	e := newProxyEnv(t, func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	}, ProxyOptions{})
	old := e.rec().rec.AccessToken
	grants := e.op.RefreshGrants()
	// The provider's tokens live an hour; RefreshSkew is a minute.
	offset.Store(int64(59*time.Minute + 30*time.Second))
	resp, body := e.do(t, "GET", "/api/upstream/whoami")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	if n := e.op.RefreshGrants() - grants; n != 1 {
		t.Fatalf("%d refresh grants, want 1", n)
	}
	got := strings.TrimPrefix(e.up.requests()[0].Header.Get("Authorization"), "Bearer ")
	if got == old || got != e.rec().rec.AccessToken {
		t.Fatal("upstream did not get the refreshed token")
	}
}

// An upstream 401 to a GET or HEAD is answered by refreshing the token and
// retrying once (concurrent requests share one refresh); anything else
// passes the 401 through. A refresh that fails ends the session only when
// the provider says so.
func TestProxyUpstream401(t *testing.T) {
	rejectOld := func(e *proxyEnv) { e.up.reject(e.rec().rec.AccessToken) }
	rejectAll := func(e *proxyEnv) { e.up.rejectAll.Store(true) }
	const rejected = `{"upstream":"rejected"}`
	for _, tc := range []struct {
		name     string
		opt      func(*Options)
		setup    func(*proxyEnv)
		method   string
		status   int
		body     string // part of the answer's body
		grants   int    // -1: not counted
		upstream int    // requests the upstream saw; 0: not counted
		ended    bool   // the session ended
	}{
		{"GET is refreshed and retried once", nil, rejectOld, "GET", 200, oidctest.DefaultUser.Subject, 1, 2, false},
		{"HEAD is refreshed and retried once", nil, rejectOld, "HEAD", 200, "", 1, 2, false},
		{"GET still rejected: one retry, then the 401 passes", nil, rejectAll, "GET", 401, rejected, 1, 2, false},
		{"GET without a refresh token: no new token, no retry",
			func(o *Options) { o.Scopes = []string{"openid", "profile", "email"} }, rejectAll, "GET", 401, rejected, -1, 1, false},
		{"POST passes the 401 through", nil, rejectOld, "POST", 401, rejected, 0, 1, false},
		{"refresh token revoked: session ends", nil, func(e *proxyEnv) {
			rejectAll(e)
			e.op.RevokeSubject(oidctest.DefaultUser.Subject)
		}, "GET", 401, `"unauthenticated"`, -1, 0, true},
		{"provider down: 503", nil, func(e *proxyEnv) {
			rejectAll(e)
			e.op.Misbehave(func(m *oidctest.Misbehavior) { m.TokenStatus = 500 })
		}, "GET", 503, "", -1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newProxyEnv(t, tc.opt, ProxyOptions{})
			old := e.rec().rec.AccessToken
			tc.setup(e)
			grants := e.op.RefreshGrants()
			resp, body := e.do(t, tc.method, "/api/upstream/whoami")
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
				t.Fatalf("= %d %s", resp.StatusCode, body)
			}
			if tc.status == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if n := e.op.RefreshGrants() - grants; tc.grants >= 0 && n != tc.grants {
				t.Errorf("%d refresh grants, want %d", n, tc.grants)
			}
			reqs := e.up.requests()
			if tc.upstream != 0 && len(reqs) != tc.upstream {
				t.Fatalf("upstream saw %d requests, want %d", len(reqs), tc.upstream)
			}
			if _, ok := e.a.sessionCookie(e.br); ok == tc.ended {
				t.Errorf("session cookie kept: %v, want %v", ok, !tc.ended)
			}
			if tc.ended {
				e.a.expect(t, e.br, "/api/me", 401, "after the session ended")
			} else if tc.status == 200 && tc.method == "GET" {
				if nw := e.rec().rec.AccessToken; nw == old || reqs[1].Header.Get("Authorization") != "Bearer "+nw {
					t.Error("the retry did not carry the new, stored token")
				}
			}
		})
	}
	t.Run("concurrent GETs share one refresh", func(t *testing.T) {
		e := newProxyEnv(t, nil, ProxyOptions{})
		rejectOld(e)
		grants := e.op.RefreshGrants()
		var wg sync.WaitGroup
		codes := make([]int, 8)
		for i := range codes {
			wg.Go(func() { codes[i] = e.br.send("GET", e.front.URL+"/api/upstream/whoami").StatusCode })
		}
		wg.Wait()
		for i, c := range codes {
			if c != 200 {
				t.Errorf("request %d = %d", i, c)
			}
		}
		if n := e.op.RefreshGrants() - grants; n != 1 {
			t.Errorf("%d refresh grants, want 1", n)
		}
	})
}

// rawRequest writes a request line and headers as given (no client-side
// normalization) and reads the answer.
func rawRequest(t *testing.T, addr, requestLine string, headers ...string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var sb strings.Builder
	sb.WriteString(requestLine + "\r\n")
	for i := 0; i+1 < len(headers); i += 2 {
		sb.WriteString(headers[i] + ": " + headers[i+1] + "\r\n")
	}
	sb.WriteString("Connection: close\r\n\r\n")
	if _, err := io.WriteString(conn, sb.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// proxyTraversals are request paths (after the mount prefix) that try to
// leave the target's path; each must be refused before the upstream.
var proxyTraversals = []struct{ name, path string }{
	{"dot-dot segment", "/../secret"},
	{"trailing dot-dot", "/a/.."},
	{"dot segment", "/./secret"},
	{"encoded dot-dot", "/%2e%2e/secret"},
	{"upper- and lowercase encoded dot-dots", "/a/%2E%2E/%2e%2e/secret"},
	{"half-encoded dot-dot", "/.%2e/secret"},
	{"double slash (protocol-relative host)", "//evil.example/x"},
	{"empty segment", "/a//b"},
	{"encoded slash", "/a%2f..%2fsecret"},
	{"encoded uppercase slash", "/a%2F..%2Fsecret"},
	{"encoded backslash", "/..%5csecret"},
	{"dot-dot with path parameter (Tomcat)", "/..;/secret"},
	{"encoded dot-dot with path parameter", "/%2e%2e;x=1/secret"},
	{"overlong UTF-8 dots", "/%c0%ae%c0%ae/secret"},
	{"encoded NUL", "/a%00/secret"},
	{"encoded CR LF", "/a%0d%0aX-Injected:%201"},
}

func TestProxyPathTraversal(t *testing.T) {
	e := newProxyEnv(t, nil, ProxyOptions{})
	id, _ := e.a.sessionCookie(e.br)
	cookie := e.a.bff.cfg.CookieName + "=" + id
	front := strings.TrimPrefix(e.front.URL, "http://")
	upURL, _ := url.Parse(e.up.srv.URL)

	for _, tc := range proxyTraversals {
		t.Run(tc.name, func(t *testing.T) {
			e.up.reset()
			code, body := rawRequest(t, front, "GET /api/upstream"+tc.path+" HTTP/1.1", "Host", front, "Cookie", cookie)
			if code != http.StatusBadRequest || !strings.Contains(body, `"bad_path"`) {
				t.Errorf("= %d %s, want 400", code, body)
			}
			if reqs := e.up.requests(); len(reqs) != 0 {
				t.Errorf("upstream saw %q", reqs[0].RequestURI)
			}
		})
	}

	// The request cannot choose the upstream host: the destination is
	// fixed whatever the Host header or an absolute-form request URI says.
	hostCases := []struct{ name, line, host, wantURI string }{
		{"Host header spoof", "GET /api/upstream/x HTTP/1.1", "evil.example", "/v1/x"},
		{"absolute-form URI", "GET http://evil.example/api/upstream/x HTTP/1.1", "evil.example", "/v1/x"},
		{"absolute-form URI with userinfo", "GET http://user:pw@evil.example/api/upstream/x HTTP/1.1", front, "/v1/x"},
		{"encoded characters stay encoded", "GET /api/upstream/a%3Fb/c%20d/ HTTP/1.1", front, "/v1/a%3Fb/c%20d/"},
	}
	for _, tc := range hostCases {
		t.Run(tc.name, func(t *testing.T) {
			e.up.reset()
			code, body := rawRequest(t, front, tc.line, "Host", tc.host, "Cookie", cookie)
			if code != 200 {
				t.Fatalf("= %d %s", code, body)
			}
			reqs := e.up.requests()
			if len(reqs) != 1 || reqs[0].Host != upURL.Host || reqs[0].RequestURI != tc.wantURI {
				t.Fatalf("upstream saw %+v", reqs)
			}
			if xfh := reqs[0].Header.Get("X-Forwarded-Host"); strings.Contains(xfh, "evil") {
				t.Errorf("X-Forwarded-Host = %q", xfh)
			}
		})
	}
}

func TestProxyMethods(t *testing.T) {
	t.Run("TRACE is always refused", func(t *testing.T) {
		e := newProxyEnv(t, nil, ProxyOptions{})
		tok := e.rec().rec.AccessToken
		resp, body := e.do(t, "TRACE", "/api/upstream/x")
		if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" || strings.Contains(body, tok) {
			t.Fatalf("= %d %s", resp.StatusCode, body)
		}
		if n := len(e.up.requests()); n != 0 {
			t.Fatalf("upstream saw %d requests", n)
		}
	})
	t.Run("method not in Methods", func(t *testing.T) {
		e := newProxyEnv(t, nil, ProxyOptions{Methods: []string{"GET", "HEAD"}})
		resp, body := e.do(t, "DELETE", "/api/upstream/x")
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || !strings.Contains(body, `"method_not_allowed"`) {
			t.Fatalf("= %d %v %s", resp.StatusCode, resp.Header, body)
		}
		if n := len(e.up.requests()); n != 0 {
			t.Fatalf("upstream saw %d requests", n)
		}
		if resp, _ := e.do(t, "GET", "/api/upstream/x"); resp.StatusCode != 200 {
			t.Fatalf("GET = %d", resp.StatusCode)
		}
	})
}

func TestProxyStreams(t *testing.T) {
	t.Run("server-sent events", func(t *testing.T) {
		e := newProxyEnv(t, nil, ProxyOptions{})
		resp := e.br.get(e.front.URL + "/api/upstream/events")
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("= %d %v", resp.StatusCode, resp.Header)
		}
		// The upstream holds the stream open until released: the first
		// event must arrive before (a buffering proxy would hang here
		// until the browser's timeout).
		r := bufio.NewReader(resp.Body)
		if line, err := r.ReadString('\n'); err != nil || line != "data: one\n" {
			t.Fatalf("first line = %q, %v", line, err)
		}
		e.up.release <- struct{}{}
		rest, _ := io.ReadAll(r)
		if string(rest) != "\ndata: two\n\n" {
			t.Fatalf("rest = %q", rest)
		}
	})
	t.Run("response with a known length", func(t *testing.T) {
		// ReverseProxy flushes event streams and responses of unknown
		// length by itself; this one is flushed by FlushInterval -1.
		e := newProxyEnv(t, nil, ProxyOptions{})
		resp := e.br.get(e.front.URL + "/api/upstream/download")
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		if line, err := r.ReadString('\n'); err != nil || line != "first-part\n" {
			t.Fatalf("first line = %q, %v", line, err)
		}
		e.up.release <- struct{}{}
		if rest, _ := io.ReadAll(r); string(rest) != "the rest\n" {
			t.Fatalf("rest = %q", rest)
		}
	})
	t.Run("request body", func(t *testing.T) {
		e := newProxyEnv(t, nil, ProxyOptions{})
		// The browser sends half of the body, then waits until the
		// upstream has received part of it before sending the rest: a
		// proxy that buffered the body would hang here until the
		// browser's timeout.
		const half = 256 << 10
		pr, pw := io.Pipe()
		done := make(chan struct{})
		defer close(done)
		go func() {
			chunk := strings.Repeat("x", half)
			io.WriteString(pw, chunk)
			select {
			case <-e.up.gotPart:
			case <-done:
				pw.CloseWithError(io.ErrUnexpectedEOF)
				return
			}
			io.WriteString(pw, chunk)
			pw.Close()
		}()
		resp := e.br.do("POST", e.front.URL+"/api/upstream/upload", pr)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != fmt.Sprint(2*half) {
			t.Fatalf("= %d %s", resp.StatusCode, body)
		}
	})
}

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A Transport sends every request, and owns the timeouts.
func TestProxyTransport(t *testing.T) {
	var sent atomic.Int32
	e := newProxyEnv(t, nil, ProxyOptions{Transport: transportFunc(func(r *http.Request) (*http.Response, error) {
		sent.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})})
	if resp, body := e.do(t, "GET", "/api/upstream/x"); resp.StatusCode != 200 || sent.Load() != 1 {
		t.Fatalf("= %d %s; the transport sent %d requests, want 1", resp.StatusCode, body, sent.Load())
	}
}

// A mistake in Proxy's arguments is a programming error: Proxy panics with
// a message naming what is wrong, instead of ignoring an option.
func TestProxyRefusesBadOptions(t *testing.T) {
	a := newApp(t, testOP(t, oidctest.Config{}), nil)
	good, _ := url.Parse("https://api.internal/v1")
	for name, c := range map[string]struct {
		target string
		opts   ProxyOptions
		want   string
	}{
		"relative target":          {"/v1", ProxyOptions{}, "target"},
		"target with user":         {"https://u:p@api.internal/v1", ProxyOptions{}, "target"},
		"target with fragment":     {"https://api.internal/v1#x", ProxyOptions{}, "target"},
		"ftp target":               {"ftp://api.internal/v1", ProxyOptions{}, "target"},
		"negative Timeout":         {"", ProxyOptions{Timeout: -time.Second}, "Timeout"},
		"negative DialTimeout":     {"", ProxyOptions{DialTimeout: -time.Second}, "DialTimeout"},
		"Timeout with Transport":   {"", ProxyOptions{Timeout: time.Second, Transport: http.DefaultTransport}, "Timeout"},
		"DialTimeout w/ Transport": {"", ProxyOptions{DialTimeout: time.Second, Transport: http.DefaultTransport}, "DialTimeout"},
		"TRACE in Methods":         {"", ProxyOptions{Methods: []string{"GET", "TRACE"}}, "Methods"},
		"CONNECT in Methods":       {"", ProxyOptions{Methods: []string{"CONNECT"}}, "Methods"},
	} {
		t.Run(name, func(t *testing.T) {
			target := good
			if c.target != "" {
				target, _ = url.Parse(c.target)
			}
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, c.want) {
					t.Errorf("panic %q, want one naming %s", msg, c.want)
				}
			}()
			a.bff.Proxy(target, c.opts)
		})
	}
}

func TestProxyUpstreamFailures(t *testing.T) {
	t.Run("connection refused: 502", func(t *testing.T) {
		a := newApp(t, testOP(t, oidctest.Config{}), nil)
		dead := httptest.NewServer(http.NotFoundHandler())
		target, _ := url.Parse(dead.URL + "/v1")
		dead.Close()
		front := mountProxy(t, a, a.bff.Proxy(target, ProxyOptions{}))
		br := a.signIn(t)
		resp := br.get(front.URL + "/api/upstream/x")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" ||
			!strings.Contains(string(body), `"upstream_unavailable"`) {
			t.Fatalf("= %d %s", resp.StatusCode, body)
		}
	})
	t.Run("no answer in time: 504", func(t *testing.T) {
		e := newProxyEnv(t, nil, ProxyOptions{Timeout: 50 * time.Millisecond})
		// The upstream never answers; the default timeout (30 s) would
		// outlast the browser's (20 s).
		resp, body := e.do(t, "GET", "/api/upstream/slow")
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, `"upstream_timeout"`) {
			t.Fatalf("= %d %s", resp.StatusCode, body)
		}
	})
}

func TestProxyPath(t *testing.T) {
	for _, tc := range []struct {
		name, base, baseRaw, in, path, raw string
	}{
		{"join", "/v1", "/v1", "/a/b", "/v1/a/b", "/v1/a/b"},
		{"trailing slash kept", "/v1", "/v1", "/a/", "/v1/a/", "/v1/a/"},
		{"root", "/v1", "/v1", "/", "/v1/", "/v1/"},
		{"empty", "/v1", "/v1", "", "/v1", "/v1"},
		{"empty, no base", "", "", "", "/", "/"},
		{"no base", "", "", "/a", "/a", "/a"},
		{"no leading slash (StripPrefix with a slash)", "/v1", "/v1", "a", "/v1/a", "/v1/a"},
		{"escapes kept", "/v 1", "/v%201", "/a%3Fb", "/v 1/a?b", "/v%201/a%3Fb"},
		{"dots inside a name", "", "", "/a..b/.c/..d", "/a..b/.c/..d", "/a..b/.c/..d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, raw, ok := proxyPath(tc.base, tc.baseRaw, tc.in)
			if !ok || p != tc.path || raw != tc.raw {
				t.Fatalf("= %q %q %v", p, raw, ok)
			}
		})
	}
	refused := append([]struct{ name, path string }{
		{"backslash", `/..\secret`},
		{"malformed escape", "/%zz"},
		{"truncated escape", "/a%2"},
		{"literal control character", "/a\x01"},
	}, proxyTraversals...)
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if p, raw, ok := proxyPath("/v1", "/v1", tc.path); ok {
				t.Fatalf("accepted: %q %q", p, raw)
			}
		})
	}
}

// FuzzProxyPath: whatever the request path, the mapped path stays under the
// target's path, decodes to itself, and an upstream parses it back to the
// same path on the same host.
func FuzzProxyPath(f *testing.F) {
	for _, tc := range proxyTraversals {
		f.Add(tc.path)
	}
	for _, s := range []string{"", "/", "/a/b/", "a", `/..\x`, "/%zz", "/a%3Fb", "/..;/x", "/%2e", "/.%2E", "#00000000", "/a?b", "/a b"} {
		f.Add(s)
	}
	bases := []struct{ path, raw string }{{"", ""}, {"/v1", "/v1"}, {"/a b/c", "/a%20b/c"}}
	f.Fuzz(func(t *testing.T, in string) {
		for _, base := range bases {
			p, raw, ok := proxyPath(base.path, base.raw, in)
			if !ok {
				continue
			}
			if p != base.path && !strings.HasPrefix(p, base.path+"/") {
				t.Fatalf("%q -> %q escapes %q", in, p, base.path)
			}
			if c := path.Clean(p); c != p && c+"/" != p {
				t.Fatalf("%q -> %q is not clean (%q)", in, p, c)
			}
			for _, seg := range strings.Split(p, "/") {
				if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." {
					t.Fatalf("%q -> %q has a dot segment", in, p)
				}
			}
			if d, err := url.PathUnescape(raw); err != nil || d != p {
				t.Fatalf("%q -> raw %q decodes to %q, not %q", in, raw, d, p)
			}
			u, err := url.Parse("http://up.example" + raw)
			if err != nil || u.Host != "up.example" || u.Path != p || u.RawQuery != "" || u.Fragment != "" {
				t.Fatalf("%q -> upstream URL %q parses as %+v, %v", in, raw, u, err)
			}
		}
	})
}
