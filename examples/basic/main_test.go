package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/examples/internal/exampleapp"
	"github.com/gobff/bff/examples/internal/exampletest"
	"github.com/gobff/bff/internal/redistest"
	"github.com/gobff/bff/internal/testsupport"
)

// startApp serves the example in-process (exampletest.StartApp).
func startApp(t *testing.T, env map[string]string) (*exampleapp.Server, string) {
	t.Helper()
	return exampletest.StartApp(t, env, newServer)
}

// decodeObject decodes a JSON object, failing the test otherwise.
func decodeObject(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not a JSON object: %q", body)
	}
	return m
}

var sameOrigin = func(appURL string) []string {
	return []string{"Content-Type", "application/json", "Origin", appURL, "Sec-Fetch-Site", "same-origin"}
}

// TestFlow drives the whole example over HTTP: the page, the API signed
// out, sign-in through the development IdP's form, /api/me, /api/echo
// (same origin and cross origin), sign-out.
func TestFlow(t *testing.T) {
	s, appURL := startApp(t, nil)
	br := exampletest.NewBrowser(t)

	page := br.Get(appURL + "/")
	if page.StatusCode != 200 || !strings.Contains(page.Body, `id="status"`) || !strings.Contains(page.Body, `id="signin"`) ||
		!strings.Contains(page.Body, `href="/auth/login?returnTo=/"`) || !strings.Contains(page.Body, `id="signout"`) {
		t.Fatalf("GET /: %d %s", page.StatusCode, page.Body)
	}
	if cc := page.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("GET / Cache-Control = %q, want no-store (the back button must not show a stale session)", cc)
	}
	if js := br.Get(appURL + "/app.js"); js.StatusCode != 200 || !strings.Contains(js.Body, "credentials: 'same-origin'") {
		t.Errorf("GET /app.js: %d", js.StatusCode)
	}
	if r := br.Do("POST", appURL+"/", ""); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", r.StatusCode)
	}

	// Signed out: the API answers 401 JSON, never a redirect.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/me", ""},
		{"POST", "/api/echo", `{"x":1}`},
		{"GET", "/auth/session", ""},
	} {
		r := br.Do(c.method, appURL+c.path, c.body, sameOrigin(appURL)...)
		if r.StatusCode != http.StatusUnauthorized || decodeObject(t, r.Body)["error"] != "unauthenticated" {
			t.Errorf("signed out %s %s: %d %s, want 401 unauthenticated", c.method, c.path, r.StatusCode, r.Body)
		}
	}

	landed := br.SignIn(appURL, "/", "alice", "alice")
	if landed.StatusCode != 200 || landed.Request.URL.String() != appURL+"/" || !strings.Contains(landed.Body, `id="status"`) {
		t.Fatalf("sign-in landed on %s: %d", landed.Request.URL, landed.StatusCode)
	}
	if _, ok := br.Cookie(appURL, "__Host-bff"); !ok {
		t.Fatal("no __Host-bff session cookie after sign-in")
	}
	if got := s.DevIdP.Provider.CodeGrants(); got != 1 {
		t.Errorf("code grants at the dev IdP = %d, want 1", got)
	}

	r := br.Get(appURL + "/api/me")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/me: %d %s", r.StatusCode, r.Body)
	}
	m := decodeObject(t, r.Body)
	if m["sub"] != "alice-0001" || m["email"] != "alice@example.com" || m["name"] != "Alice Example" {
		t.Errorf("GET /api/me = %s", r.Body)
	}
	exp, err := time.Parse(time.RFC3339, m["tokenExpiresAt"].(string))
	if err != nil {
		t.Fatalf("tokenExpiresAt %q is not RFC 3339: %v", m["tokenExpiresAt"], err)
	}
	if d := time.Until(exp); d < 58*time.Minute || d > 61*time.Minute {
		t.Errorf("tokenExpiresAt is %v away, want about 1h (the dev IdP's default)", d)
	}
	if len(m) != 4 {
		t.Errorf("GET /api/me has fields %v, want sub, name, email, tokenExpiresAt", m)
	}

	r = br.Get(appURL + "/auth/session")
	sess := decodeObject(t, r.Body)
	if r.StatusCode != 200 || sess["logoutUrl"] != "/auth/logout" || sess["user"].(map[string]any)["name"] != "Alice Example" {
		t.Errorf("GET /auth/session: %d %s", r.StatusCode, r.Body)
	}

	body := `{"message":"hello","n":[1,2.5,null],"nested":{"ok":true}}`
	r = br.Do("POST", appURL+"/api/echo", body, sameOrigin(appURL)...)
	if r.StatusCode != 200 || r.Body != body || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("same-origin POST /api/echo: %d %q", r.StatusCode, r.Body)
	}
	r = br.Do("POST", appURL+"/api/echo", "not json", sameOrigin(appURL)...)
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /api/echo with a body that is not JSON: %d, want 400", r.StatusCode)
	}
	r = br.Do("POST", appURL+"/api/echo", body, "Content-Type", "text/plain", "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site")
	if r.StatusCode != http.StatusForbidden || strings.Contains(r.Body, "hello") {
		t.Errorf("cross-site POST /api/echo: %d %q, want 403 and no echo", r.StatusCode, r.Body)
	}

	// Sign out with the page's form: through the IdP's end-session endpoint
	// and back to the page.
	r = br.Do("POST", appURL+"/auth/logout", "", "Content-Type", "application/x-www-form-urlencoded", "Origin", appURL, "Sec-Fetch-Site", "same-origin")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), s.DevIdP.URL+"/end-session?") {
		t.Fatalf("POST /auth/logout: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if final := br.Follow(r); final.StatusCode != 200 || final.Request.URL.String() != appURL+"/" {
		t.Errorf("sign-out ended at %s with %d", final.Request.URL, final.StatusCode)
	}
	if r := br.Get(appURL + "/api/me"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/me after sign-out: %d, want 401", r.StatusCode)
	}
	if got := s.DevIdP.Provider.EndSessions(); got != 1 {
		t.Errorf("end-session requests at the dev IdP = %d, want 1", got)
	}
}

// TestDenyAtTheIdP: the user presses "Cancel" at the dev IdP; the browser
// comes back to the page it started from with ?error=access_denied (a
// script's request to the callback would get the JSON error).
func TestDenyAtTheIdP(t *testing.T) {
	_, appURL := startApp(t, nil)
	br := exampletest.NewBrowser(t)
	r := br.IdPForm(appURL, "/", url.Values{"cancel": {"1"}})
	callback := r.Header.Get("Location")
	if r.StatusCode != http.StatusFound || !strings.Contains(callback, "error=access_denied") {
		t.Fatalf("cancel at the IdP: %d %q", r.StatusCode, callback)
	}
	landed := br.Navigate(callback)
	if landed.StatusCode != 200 || landed.Request.URL.String() != appURL+"/?error=access_denied" || !strings.Contains(landed.Body, `id="failure"`) {
		t.Errorf("after Cancel the browser is at %s (%d), want the page with ?error=access_denied", landed.Request.URL, landed.StatusCode)
	}
	if r := br.Get(appURL + "/api/me"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/me after Cancel: %d, want 401", r.StatusCode)
	}
}

// TestWrongPassword: the dev IdP's form refuses a wrong password and no
// session exists.
func TestWrongPassword(t *testing.T) {
	_, appURL := startApp(t, nil)
	br := exampletest.NewBrowser(t)
	r := br.IdPForm(appURL, "/", url.Values{"username": {"alice"}, "password": {"wrong"}})
	if r.StatusCode != 200 || !strings.Contains(r.Body, "Invalid username or password") {
		t.Errorf("wrong password: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := br.Get(appURL + "/api/me"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/me: %d, want 401", r.StatusCode)
	}
}

// TestRefreshOnShortTokenLifetime: with BFF_DEV_ACCESS_TOKEN_TTL=2s the
// access token is refreshed on the server and /api/me keeps answering 200
// with a later tokenExpiresAt.
func TestRefreshOnShortTokenLifetime(t *testing.T) {
	s, appURL := startApp(t, map[string]string{"BFF_DEV_ACCESS_TOKEN_TTL": "2s", "BFF_REFRESH_SKEW": "1s"})
	br := exampletest.NewBrowser(t)
	br.SignIn(appURL, "/", "alice", "alice")
	first := decodeObject(t, br.Get(appURL+"/api/me").Body)["tokenExpiresAt"]
	testsupport.WaitUntil(t, 10*time.Second, "a refresh of a 2 s access token", func() bool {
		if r := br.Get(appURL + "/api/me"); r.StatusCode != 200 {
			t.Fatalf("GET /api/me during refresh: %d %s", r.StatusCode, r.Body)
		}
		return s.DevIdP.Provider.RefreshGrants() > 0
	})
	r := br.Get(appURL + "/api/me")
	if r.StatusCode != 200 {
		t.Fatalf("GET /api/me after refresh: %d %s", r.StatusCode, r.Body)
	}
	if second := decodeObject(t, r.Body)["tokenExpiresAt"]; second == first {
		t.Errorf("tokenExpiresAt stayed %v after a refresh", second)
	}
}

// TestRedis: with BFF_REDIS_ADDR the sessions live in Redis.
func TestRedis(t *testing.T) {
	rs := redistest.Start(t)
	_, appURL := startApp(t, map[string]string{"BFF_REDIS_ADDR": rs.Addr})
	br := exampletest.NewBrowser(t)
	br.SignIn(appURL, "/", "alice", "alice")
	if r := br.Get(appURL + "/api/me"); r.StatusCode != 200 {
		t.Fatalf("GET /api/me: %d %s", r.StatusCode, r.Body)
	}
	keys, err := rs.Do("KEYS", "bff:*") // test only: a handful of keys
	if err != nil {
		t.Fatal(err)
	}
	if n := len(keys.([]any)); n == 0 {
		t.Error("no bff:* key in Redis after sign-in")
	}
}

// TestRedisURLAndSentinel: BFF_REDIS_URL with an ACL user and a database;
// BFF_REDIS_SENTINELS and BFF_REDIS_MASTER with a Sentinel group.
func TestRedisURLAndSentinel(t *testing.T) {
	signIn := func(t *testing.T, env map[string]string) {
		_, appURL := startApp(t, env)
		br := exampletest.NewBrowser(t)
		br.SignIn(appURL, "/", "alice", "alice")
		if r := br.Get(appURL + "/api/me"); r.StatusCode != 200 {
			t.Fatalf("GET /api/me: %d %s", r.StatusCode, r.Body)
		}
	}
	t.Run("url", func(t *testing.T) {
		rs := redistest.StartWith(t, redistest.Config{Args: []string{
			"--user", "bff", "on", ">pw", "~bff:*", "&bff:*", "+@all", "-@dangerous", "+role"}})
		signIn(t, map[string]string{"BFF_REDIS_URL": "redis://bff:pw@" + rs.Addr + "/1"})
		info, err := rs.Do("INFO", "keyspace")
		if err != nil || !strings.Contains(string(info.([]byte)), "db1:keys=") {
			t.Fatalf("no keys in database 1 after a sign-in: %s %v", info, err)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		g := redistest.StartGroup(t)
		signIn(t, map[string]string{"BFF_REDIS_SENTINELS": strings.Join(g.SentinelAddrs(), ","), "BFF_REDIS_MASTER": g.Name})
		if n, err := g.Primary.Do("DBSIZE"); err != nil || n.(int64) < 2 {
			t.Fatalf("the primary holds %v keys (%v) after a sign-in", n, err)
		}
	})
}

// TestUpstream: with BFF_UPSTREAM_URL, /api/upstream/... reaches the
// downstream API with the signed-in user's access token (never the
// browser's cookie), and nothing reaches it without a session.
func TestUpstream(t *testing.T) {
	var hits atomic.Int32
	var s *exampleapp.Server
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sub, valid := s.DevIdP.Provider.AccessTokenInfo(tok)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"path": r.URL.Path, "query": r.URL.RawQuery, "bearer": ok && valid, "sub": sub, "cookie": r.Header.Get("Cookie") != "",
		})
	}))
	defer api.Close()
	s, appURL := startApp(t, map[string]string{"BFF_UPSTREAM_URL": api.URL + "/v1"})
	br := exampletest.NewBrowser(t)

	if r := br.Get(appURL + "/api/upstream/orders/7"); r.StatusCode != http.StatusUnauthorized || hits.Load() != 0 {
		t.Fatalf("signed out GET /api/upstream/orders/7: %d, upstream hits %d; want 401 and none", r.StatusCode, hits.Load())
	}
	br.SignIn(appURL, "/", "alice", "alice")
	r := br.Get(appURL + "/api/upstream/orders/7?x=1")
	m := decodeObject(t, r.Body)
	if r.StatusCode != 200 || m["path"] != "/v1/orders/7" || m["query"] != "x=1" || m["bearer"] != true || m["sub"] != "alice-0001" || m["cookie"] != false {
		t.Errorf("GET /api/upstream/orders/7?x=1: %d %s", r.StatusCode, r.Body)
	}
}

// TestConfigErrors: a bad environment variable stops the start with a
// message naming it.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, key, value string }{
		{"secret key not base64", "BFF_SECRET_KEY", "%%%"},
		{"secret key too short", "BFF_SECRET_KEY", "c2hvcnQ="},
		{"refresh skew not a duration", "BFF_REFRESH_SKEW", "soon"},
		{"upstream not a URL", "BFF_UPSTREAM_URL", "ftp://x"},
		{"token TTL not a duration", "BFF_DEV_ACCESS_TOKEN_TTL", "1 hour"},
		{"issuer without client", "BFF_ISSUER", "https://idp.example"},
		{"base URL with a path", "BFF_BASE_URL", "http://localhost:8080/app"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{c.key: c.value, "BFF_DEV_IDP_ADDR": "127.0.0.1:0", "BFF_ADDR": "127.0.0.1:0"}
			s, err := newServer(func(k string) string { return env[k] }, exampletest.Logger(t))
			if err == nil {
				s.Close()
				t.Fatalf("%s=%q accepted", c.key, c.value)
			}
			want := c.key
			if c.key == "BFF_BASE_URL" {
				want = "BaseURL"
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		})
	}
}

// TestRun starts the example as main does, serves a request, and shuts it
// down gracefully when the context is cancelled.
func TestRun(t *testing.T) {
	addr, idp := testsupport.FreeAddr(t), testsupport.FreeAddr(t)
	env := map[string]string{"BFF_ADDR": addr, "BFF_DEV_IDP_ADDR": idp}
	var logs testsupport.LogBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the example's log:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exampleapp.Run(ctx, func(k string) string { return env[k] }, &logs, newServer) }()

	_, port, _ := net.SplitHostPort(addr)
	appURL := "http://localhost:" + port
	status := 0
	testsupport.WaitUntil(t, 10*time.Second, "the example to answer", func() bool {
		resp, err := http.Get(appURL + "/auth/session")
		if err == nil {
			resp.Body.Close()
			status = resp.StatusCode
		}
		return err == nil
	})
	if status != http.StatusUnauthorized {
		t.Fatalf("GET /auth/session: %d, want 401", status)
	}
	// A signed-in browser holds an event stream, which never ends by
	// itself: the shutdown ends it, and stays graceful.
	br := exampletest.NewBrowser(t)
	br.SignIn(appURL, "/", "alice", "alice")
	stream := br.Stream(appURL + "/auth/events")
	if ev := stream.Next(); ev.Name != "session" {
		t.Fatalf("first event %+v, want session", ev)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v (the open event stream held the shutdown)", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if ev := stream.Next(); ev.Name != "EOF" {
		t.Errorf("after shutdown the stream sent %+v, want its end", ev)
	}
	for _, want := range []string{"BFF_SECRET_KEY is not set", "development identity provider", "url=" + appURL + "/", "shutting down"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if _, err := net.Dial("tcp", idp); err == nil {
		t.Error("the dev IdP still listens after shutdown")
	}
}
