package bff

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/internal/oidctest"
	"github.com/gobff/bff/internal/storage"
	"github.com/gobff/bff/internal/testsupport"
)

// guarded serves next behind the app's RequireSession on a server of its own
// (same host, so the browser's cookies go there too), for any method.
func guarded(t testing.TB, a *app, next http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(a.bff.RequireSession(next))
	t.Cleanup(srv.Close)
	return srv
}

func TestRequireSessionUnauthenticated(t *testing.T) {
	e := newEnv(t, longTokens, nil)
	cases := []struct {
		name, cookie string
		cleared      bool // the bad cookie is cleared
	}{
		{name: "no_cookie"},
		{name: "empty_cookie", cookie: "__Host-bff=", cleared: true},
		{name: "malformed_cookie", cookie: "__Host-bff=not-a-session-id", cleared: true},
		{name: "lowercase_id", cookie: "__Host-bff=aaaaaaaaaaaaaaaaaaaaaaaaaa", cleared: true},
		{name: "unknown_id", cookie: "__Host-bff=ABCDEFGHIJKLMNOPQRSTUVWXYZ", cleared: true},
		{name: "other_cookie_only", cookie: "bff=ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []string{"GET", "POST"} {
				br := newBrowser(t)
				path := map[string]string{"GET": "/api/me", "POST": "/api/echo"}[m]
				var h []string
				if tc.cookie != "" {
					h = []string{"Cookie", tc.cookie}
				}
				resp := br.do(m, e.a.URL+path, strings.NewReader("{}"), h...)
				if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" {
					t.Errorf("%s %s = %d to %q, want 401 and no redirect", m, path, resp.StatusCode, resp.Header.Get("Location"))
				}
				if code, _, _ := jsonError(t, resp); code != "unauthenticated" {
					t.Errorf("error = %q", code)
				}
				if got := setsCookie(resp, "__Host-bff"); got != tc.cleared {
					t.Errorf("cookie cleared = %v, want %v", got, tc.cleared)
				}
			}
		})
	}
}

// Unsafe methods from another origin are refused before the handler runs,
// and the session stays.
func TestRequireSessionCrossOrigin(t *testing.T) {
	e := newEnv(t, longTokens, nil).signIn()
	sid := e.id
	var mu sync.Mutex
	calls := 0
	srv := guarded(t, e.a, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		io.Copy(w, r.Body)
	})
	cases := []struct {
		name, method string
		headers      []string
		want         int
	}{
		{"post_cross_site", "POST", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"put_cross_site", "PUT", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"patch_cross_site", "PATCH", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"delete_cross_site", "DELETE", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"post_same_site", "POST", []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"post_cross_site_with_own_origin", "POST", []string{"Sec-Fetch-Site", "cross-site", "Origin", "SELF"}, 403},
		{"post_origin_other_host", "POST", []string{"Origin", "http://evil.example"}, 403},
		{"put_origin_other_port", "PUT", []string{"Origin", "http://127.0.0.1:1"}, 403},
		{"delete_origin_null", "DELETE", []string{"Origin", "null"}, 403},
		{"post_same_origin", "POST", []string{"Sec-Fetch-Site", "same-origin"}, 200},
		{"put_same_origin", "PUT", []string{"Sec-Fetch-Site", "same-origin"}, 200},
		{"post_origin_same_host", "POST", []string{"Origin", "SELF"}, 200},
		{"post_no_browser_headers", "POST", nil, 200},
		{"get_cross_site", "GET", []string{"Sec-Fetch-Site", "cross-site"}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := srv.URL
			if tc.method == "POST" {
				base = e.a.URL // the app's own POST /api/echo
			}
			h := append([]string{"Content-Type", "application/json"}, tc.headers...)
			for i := range h {
				if h[i] == "SELF" {
					h[i] = base
				}
			}
			mu.Lock()
			before := calls
			mu.Unlock()
			resp := e.br.do(tc.method, base+"/api/echo", strings.NewReader(`{"x":1}`), h...)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s = %d, want %d", tc.method, resp.StatusCode, tc.want)
			}
			if tc.want == 403 {
				if code, _, _ := jsonError(t, resp); code != "cross_origin" {
					t.Errorf("error = %q", code)
				}
				mu.Lock()
				if calls != before {
					t.Error("the handler ran")
				}
				mu.Unlock()
				if setsCookie(resp, "__Host-bff") {
					t.Error("the session cookie was touched")
				}
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if tc.method != "GET" && string(b) != `{"x":1}` {
					t.Errorf("echo = %q", b)
				}
			}
		})
	}
	if got, _ := e.a.sessionCookie(e.br); got != sid {
		t.Fatal("the session cookie changed")
	}
	if _, err := e.a.storeSession(sid); err != nil {
		t.Fatalf("session after cross-origin requests: %v", err)
	}
	e.a.expect(t, e.br, "/api/me", 200, "")
}

func TestRequireSessionCSRFHeader(t *testing.T) {
	e := newEnv(t, longTokens, func(o *Options) { o.CSRFHeader = "X-Requested-By" }).signIn()
	post := func(headers ...string) (int, string) {
		r := e.br.Do("POST", e.a.URL+"/api/echo", `{"y":2}`, append([]string{"Sec-Fetch-Site", "same-origin"}, headers...)...)
		return r.StatusCode, r.Body
	}
	if code, body := post(); code != 403 || !strings.Contains(body, "cross_origin") {
		t.Errorf("POST without the header = %d %s, want 403", code, body)
	}
	if code, _ := post("X-Requested-By", ""); code != 403 {
		t.Errorf("POST with an empty header = %d, want 403", code)
	}
	if code, body := post("X-Requested-By", "app"); code != 200 || body != `{"y":2}` {
		t.Errorf("POST with the header = %d %s, want 200", code, body)
	}
	e.a.expect(t, e.br, "/api/me", 200, "GET without the header")
}

// Server-sent events through RequireSession: the first event reaches the
// client while the handler is still running.
func TestRequireSessionSSE(t *testing.T) {
	e := newEnv(t, longTokens, nil).signIn()
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	srv := guarded(t, e.a, func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("the ResponseWriter is not an http.Flusher")
			return
		}
		u, _ := UserFrom(r.Context())
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: hello %s\n\n", u.Subject)
		f.Flush()
		<-release
		fmt.Fprint(w, "data: bye\n\n")
	})
	t.Cleanup(unblock) // runs before srv.Close
	resp := e.br.get(srv.URL + "/events")
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("= %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "data: hello "+oidctest.DefaultUser.Subject+"\n" {
		t.Fatalf("first event = %q, %v", line, err)
	}
	unblock()
	rest, _ := io.ReadAll(r)
	if string(rest) != "\ndata: bye\n\n" {
		t.Fatalf("rest = %q", rest)
	}
}

// A websocket-style upgrade through RequireSession: the handler hijacks the
// connection and speaks its own protocol after a 101. An upgrade is a GET,
// but not a safe one: the origin check runs (cross-site WebSocket
// hijacking; SameSite ignores ports and subdomains, so a same-site page
// gets the Strict cookie sent).
func TestRequireSessionUpgrade(t *testing.T) {
	e := newEnv(t, longTokens, func(o *Options) { o.CSRFHeader = "X-Requested-By" }).signIn()
	sid := e.id
	var calls atomic.Int64
	srv := guarded(t, e.a, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		u, _ := UserFrom(r.Context())
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: bff-test\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("hello " + u.Subject + " " + line)
		rw.Flush()
	})
	self := srv.URL
	dial := func(headers ...string) (net.Conn, *bufio.Reader, *http.Response) {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second)) // a hang guard, not an assertion
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: bff-test\r\n", srv.Listener.Addr())
		for i := 0; i+1 < len(headers); i += 2 {
			fmt.Fprintf(conn, "%s: %s\r\n", headers[i], headers[i+1])
		}
		io.WriteString(conn, "\r\n")
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		return conn, r, resp
	}
	cookie := "__Host-bff=" + sid

	for _, tc := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"same_origin_fetch_metadata", []string{"Origin", self, "Sec-Fetch-Site", "same-origin"}, 101},
		{"same_origin_origin_only", []string{"Origin", self}, 101},
		{"no_browser_headers", nil, 101}, // not a browser: no CSRF possible
		{"same_site_sibling", []string{"Origin", "https://evil.sibling.example", "Sec-Fetch-Site", "same-site"}, 403},
		{"same_site_other_port", []string{"Origin", "http://127.0.0.1:1", "Sec-Fetch-Site", "same-site"}, 403},
		{"other_port_origin_only", []string{"Origin", "http://127.0.0.1:1"}, 403},
		{"cross_site", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403},
		{"origin_null", []string{"Origin", "null"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			conn, r, resp := dial(append([]string{"Cookie", cookie}, tc.headers...)...)
			if resp.StatusCode != tc.want {
				t.Fatalf("upgrade = %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 403 {
				if calls.Load() != before {
					t.Error("the handler ran")
				}
				return
			}
			io.WriteString(conn, "ping\n")
			if line, err := r.ReadString('\n'); err != nil || line != "hello "+oidctest.DefaultUser.Subject+" ping\n" {
				t.Fatalf("over the upgraded connection: %q, %v", line, err)
			}
		})
	}
	if _, _, resp := dial(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade without a session = %d, want 401", resp.StatusCode)
	}
}

// Session lifetimes on an injected clock: the idle timeout and the maximum
// lifetime end a session (401, cookie cleared, record deleted), and activity
// is written at most once per TouchInterval.
func TestSessionLifetimes(t *testing.T) {
	step := func(t *testing.T, e *env, d time.Duration) {
		t.Helper()
		e.clock.Advance(d)
		e.a.expect(t, e.br, "/api/me", 200, "")
	}
	for _, store := range []string{"memory", "custom"} {
		opts := func(o *Options) {
			o.IdleTimeout, o.TouchInterval, o.MaxLifetime = time.Hour, 10*time.Minute, 3*time.Hour
			if store == "memory" {
				o.Store = nil // the default store, with its session cache
			}
		}
		ended := func(t *testing.T, e *env, sid string) {
			t.Helper()
			resp := e.br.get(e.a.URL + "/api/me")
			if resp.StatusCode != 401 {
				t.Fatalf("/api/me = %d, want 401", resp.StatusCode)
			}
			jsonError(t, resp)
			cleared := false
			for _, c := range resp.Cookies() {
				cleared = cleared || c.Name == "__Host-bff" && c.MaxAge < 0
			}
			if !cleared {
				t.Error("the session cookie was not cleared")
			}
			if _, err := e.a.storeSession(sid); !errors.Is(err, errNotFound) {
				t.Errorf("session record after the end: %v", err)
			}
		}
		t.Run(store+"/idle_timeout", func(t *testing.T) {
			e := newEnv(t, longTokens, opts).signIn()
			sid := e.id
			step(t, e, 59*time.Minute) // active: the idle clock restarts
			step(t, e, 59*time.Minute)
			e.clock.Advance(time.Hour)
			ended(t, e, sid)
		})
		t.Run(store+"/max_lifetime", func(t *testing.T) {
			e := newEnv(t, longTokens, opts).signIn()
			sid := e.id
			for range 5 {
				step(t, e, 30*time.Minute) // never idle
			}
			step(t, e, 29*time.Minute) // 2h59m
			e.clock.Advance(time.Minute)
			ended(t, e, sid)
		})
	}

	t.Run("touch_once_per_interval", func(t *testing.T) {
		e := newEnv(t, longTokens, func(o *Options) { o.IdleTimeout, o.TouchInterval = time.Hour, 10*time.Minute }).signIn()
		writes := func() int { return e.store.writes("s") }
		if w := writes(); w != 1 {
			t.Fatalf("%d session writes at sign-in, want 1", w)
		}
		for _, d := range []time.Duration{0, 5 * time.Minute, 4*time.Minute + 59*time.Second} {
			step(t, e, d)
		}
		if w := writes(); w != 1 {
			t.Fatalf("%d session writes within the first interval, want 1", w)
		}
		step(t, e, time.Second) // 10 minutes since sign-in
		step(t, e, 0)
		step(t, e, 9*time.Minute)
		if w := writes(); w != 2 {
			t.Fatalf("%d session writes after one interval, want 2", w)
		}
		e.clock.Advance(5 * time.Minute) // 24 minutes: a new interval
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				resp := e.br.send("GET", e.a.URL+"/api/me")
				if resp.StatusCode != 200 {
					t.Errorf("/api/me = %d", resp.StatusCode)
				}
			})
		}
		wg.Wait()
		if w := writes(); w != 3 {
			t.Fatalf("%d session writes after 20 concurrent requests in a new interval, want 3", w)
		}
	})
}

// Two instances touch one session at the same moment: the second re-reads
// the record under the lock and does not write it again.
func TestTouchRereadsUnderLock(t *testing.T) {
	lk := &testLocker{inner: &storage.MemLocker{}}
	opts := func(o *Options) {
		o.IdleTimeout, o.TouchInterval, o.Locker = time.Hour, 10*time.Minute, lk
	}
	e := newEnv(t, longTokens, opts)
	b := newApp(t, e.op, func(o *Options) { o.Now, o.Store = e.clock.Now, e.store; opts(o) })
	e.signIn()
	if w := e.store.writes("s"); w != 1 {
		t.Fatalf("%d session writes at sign-in", w)
	}

	e.clock.Advance(10 * time.Minute)
	unlock, err := lk.inner.Lock(context.Background(), "lock:"+recordName(e.id), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	tried := lk.lockCalls(recordName(e.id))
	codes := make(chan int, 2)
	for _, a := range []*app{e.a, b} {
		go func() { codes <- e.br.send("GET", a.URL+"/api/me").StatusCode }()
	}
	// Both instances read the old record and wait for the lock.
	testsupport.WaitUntil(t, 10*time.Second, "both instances to try to record the activity", func() bool {
		return lk.lockCalls(recordName(e.id)) >= tried+2
	})
	unlock()
	for range 2 {
		if code := <-codes; code != 200 {
			t.Errorf("/api/me = %d", code)
		}
	}
	if w := e.store.writes("s"); w != 2 {
		t.Fatalf("%d session writes, want 2 (sign-in and one touch)", w)
	}
}

// RequireLogin sends a signed-out navigation to sign in, with the page it
// asked for (path and query) as returnTo, and a browser comes back to that
// page signed in without ever seeing a JSON answer. Anything that is not a
// navigation gets RequireSession's 401.
func TestRequireLoginRedirectsNavigations(t *testing.T) {
	e := newEnv(t, longTokens, nil)
	const page = "/page?tab=2&x=%2Fy"
	for _, method := range []string{"GET", "HEAD"} {
		resp := e.br.send(method, e.a.URL+page, navigate...)
		want := "/auth/login?returnTo=" + url.QueryEscape(page)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("signed-out %s navigation = %d to %q, want 303 to %q", method, resp.StatusCode, resp.Header.Get("Location"), want)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control of the redirect = %q, want no-store", cc)
		}
	}
	// A form of this origin that finds no session: after sign-in, a GET of
	// its action.
	resp := e.br.send("POST", e.a.URL+"/page?tab=2", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Site", "same-origin")
	if want := "/auth/login?returnTo=" + url.QueryEscape("/page?tab=2"); resp.StatusCode != 303 || resp.Header.Get("Location") != want {
		t.Errorf("signed-out form POST = %d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	for _, h := range [][]string{nil, {"Sec-Fetch-Mode", "cors", "Accept", "text/html"}, {"Accept", "application/json"}, {"Accept", "*/*"}} {
		resp := e.br.do("GET", e.a.URL+page, nil, h...)
		if code, _, _ := jsonError(t, resp); resp.StatusCode != 401 || code != "unauthenticated" || resp.Header.Get("Location") != "" {
			t.Errorf("signed-out GET with %q = %d %q (Location %q), want 401 unauthenticated", h, resp.StatusCode, code, resp.Header.Get("Location"))
		}
	}

	nav := e.br.Navigate(e.a.URL + page)
	if nav.StatusCode != 200 || nav.Body != "page for "+oidctest.DefaultUser.Name || nav.Request.URL.String() != e.a.URL+page {
		t.Fatalf("navigation ended at %s with %d %q (visited %q)", nav.Request.URL, nav.StatusCode, nav.Body, nav.Visited)
	}
	if !strings.HasPrefix(nav.Visited[2], e.op.Issuer()+"/authorize?") {
		t.Errorf("the way to the page did not pass the provider: %q", nav.Visited)
	}
	// Signed in, a fetch reaches the page too.
	if code, body := e.a.status(e.br, "GET", page); code != 200 || body != "page for "+oidctest.DefaultUser.Name {
		t.Errorf("signed-in GET = %d %q", code, body)
	}
}

// The returnTo of RequireLogin is the URI the browser asked for, whatever
// the mux stripped from the path; a query too long for a returnTo is
// dropped, and a path too long is replaced by "/".
func TestRequireLoginReturnTo(t *testing.T) {
	e := newEnv(t, longTokens, nil)
	page := e.a.bff.RequireLogin(http.NotFoundHandler())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sub/") {
			http.StripPrefix("/sub", page).ServeHTTP(w, r)
			return
		}
		page.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	long := strings.Repeat("a", 600)
	for _, tc := range []struct{ uri, returnTo string }{
		{"/sub/x?y=1", "/sub/x?y=1"},
		{"/sub/x?q=" + long, "/sub/x"},
		{"/sub/" + long, "/"},
		{"/sub/a/../b", "/sub/b"},
		{"/sub//x", "/sub//x"},
		{"//evil.example/x", "/"},
		{"/%2F%2Fevil.example", "/"},
	} {
		resp := e.br.send("GET", srv.URL+tc.uri, navigate...)
		if want := "/auth/login?returnTo=" + url.QueryEscape(tc.returnTo); resp.StatusCode != 303 || resp.Header.Get("Location") != want {
			t.Errorf("GET %.40s = %d to %q, want 303 to %q", tc.uri, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	if got := currentReturnTo(httptest.NewRequest("GET", "http://app.example/x?y=1", nil)); got != "/x?y=1" {
		t.Errorf("returnTo of an absolute-form request URI = %q, want /x?y=1", got)
	}
}

// An ended or expired session counts as signed out for RequireLogin (sent
// to sign in, the cookie cleared); a cross-origin form is refused (403,
// never a redirect) and an unavailable store is a 503, never a sign-in
// (nor, for OptionalSession, a guest).
func TestRequireLoginRefusals(t *testing.T) {
	e := newEnv(t, longTokens, nil).signIn()
	a, br, spy, clock := e.a, e.br, e.store, e.clock

	resp := br.do("POST", a.URL+"/page", nil, "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Site", "cross-site", "Accept", "text/html")
	if code, _, _ := jsonError(t, resp); resp.StatusCode != 403 || code != "cross_origin" {
		t.Errorf("cross-site form POST = %d %q, want 403 cross_origin", resp.StatusCode, code)
	}
	spy.setHook(func(_ context.Context, op, key string) error {
		if op == "find" && strings.HasPrefix(key, "s:") {
			return errors.New("store down")
		}
		return nil
	})
	clock.Advance(2 * sessionCacheMaxAge) // past the cache
	a.bff.store.cache.reset()
	for _, path := range []string{"/page", "/public"} {
		resp = br.do("GET", a.URL+path, nil, navigate...)
		if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 503 || resp.Header.Get("Location") != "" {
			t.Errorf("navigation to %s with the store down = %d %q (Location %q), want 503", path, resp.StatusCode, body, resp.Header.Get("Location"))
		}
	}
	spy.setHook(nil)

	clock.Advance(a.bff.cfg.IdleTimeout)
	resp = br.send("GET", a.URL+"/page", navigate...)
	if resp.StatusCode != 303 || !setsCookie(resp, "__Host-bff") {
		t.Errorf("navigation after the idle timeout = %d (cookie cleared: %v), want 303 and the cookie cleared",
			resp.StatusCode, setsCookie(resp, "__Host-bff"))
	}
}

// OptionalSession: with a session, the handler gets the user and a fresh
// token (refreshed on the server when it is about to expire); without one
// (no cookie, an unknown or expired one, which is cleared), the handler
// runs without a user. No cookie costs no store lookup. A cross-origin
// unsafe request is refused whether or not there is a session.
func TestOptionalSession(t *testing.T) {
	clock := newFrozenClock()
	a := newApp(t, testOP(t, oidctest.Config{Now: clock.Now, AccessTokenTTL: time.Hour}), func(o *Options) { o.Now = clock.Now })
	cs := countFinds(a)

	guest := newBrowser(t)
	if code, body := a.status(guest, "GET", "/public", navigate...); code != 200 || body != "hello guest" {
		t.Errorf("no cookie: %d %q", code, body)
	}
	if n := cs.finds.Load(); n != 0 {
		t.Errorf("a visitor without a cookie cost %d store lookups", n)
	}
	resp := guest.do("GET", a.URL+"/public", nil, "Cookie", "__Host-bff="+rand.Text())
	if body, _ := io.ReadAll(resp.Body); string(body) != "hello guest" || !setsCookie(resp, "__Host-bff") {
		t.Errorf("unknown session: %q, cookie cleared %v", body, setsCookie(resp, "__Host-bff"))
	}
	resp = guest.do("POST", a.URL+"/public", nil, "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != 403 {
		t.Errorf("cross-site POST without a session = %d, want 403", resp.StatusCode)
	}

	br := a.signIn(t)
	code, body := a.status(br, "GET", "/public")
	if want := "hello " + oidctest.DefaultUser.Name + " until "; code != 200 || !strings.HasPrefix(body, want) {
		t.Fatalf("signed in: %d %q", code, body)
	}
	grants := a.op.RefreshGrants()
	clock.Advance(time.Hour - 30*time.Second) // within RefreshSkew of the token's expiry
	if code, again := a.status(br, "GET", "/public"); code != 200 || again == body || a.op.RefreshGrants() != grants+1 {
		t.Errorf("a token about to expire: %d %q (was %q), %d refresh grants, want a refreshed token", code, again, body, a.op.RefreshGrants()-grants)
	}
	resp = br.do("POST", a.URL+"/public", nil, "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != 403 {
		t.Errorf("cross-site POST with a session = %d, want 403", resp.StatusCode)
	}
	clock.Advance(a.bff.cfg.IdleTimeout)
	resp = br.do("GET", a.URL+"/public", nil)
	if body, _ := io.ReadAll(resp.Body); string(body) != "hello guest" || !setsCookie(resp, "__Host-bff") {
		t.Errorf("expired session: %q, cookie cleared %v", body, setsCookie(resp, "__Host-bff"))
	}
}
