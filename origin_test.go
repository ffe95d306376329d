package bff

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gobff/bff/internal/oidctest"
)

// sendAs sends a request to the app as if it came with another Host
// header (a reverse proxy's rewrite, or the app opened at another name);
// headers are pairs of name, value.
func (a *app) sendAs(br *browser, method, path, host string, headers ...string) *http.Response {
	a.t.Helper()
	req, err := http.NewRequest(method, a.URL+path, strings.NewReader(`{"x":1}`))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := br.Client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// /auth/login on a host other than BaseURL's goes to the same path on
// BaseURL first (else the login cookie would be on the other host, and the
// callback on BaseURL would find none); if a proxy rewrites Host, the
// second arrival proceeds, and says so in the log once.
func TestLoginOnOtherHost(t *testing.T) {
	op := testOP(t, oidctest.Config{})
	var logs logBuffer
	a := newApp(t, op, func(o *Options) { o.Logger = logs.Logger() })
	u, _ := url.Parse(a.URL)
	other := strings.Replace(u.Host, "127.0.0.1", "localhost", 1)
	br := newBrowser(t)

	resp := a.sendAs(br, "GET", "/auth/login?returnTo=%2Fapp&prompt=login", other)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Host != u.Host || loc.Path != "/auth/login" ||
		loc.Query().Get("returnTo") != "/app" || loc.Query().Get("prompt") != "login" || len(resp.Cookies()) != 0 {
		t.Fatalf("/auth/login on %s = %d to %v (cookies %v), want 303 to the same path on BaseURL", other, resp.StatusCode, loc, resp.Cookies())
	}
	// On BaseURL's host the sign-in starts, and completes.
	if resp, _ := br.follow(loc.String()); resp.StatusCode != 200 || resp.Request.URL.Path != "/app" {
		t.Fatalf("sign-in after the redirect ended with %d at %s", resp.StatusCode, resp.Request.URL)
	}
	// Behind a proxy that rewrites Host, the redirected request arrives on
	// the other host again: it proceeds instead of looping.
	for range 2 {
		resp = a.sendAs(br, "GET", loc.RequestURI(), other)
		if got, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther || got.Host == u.Host {
			t.Fatalf("second arrival = %d to %v, want the provider", resp.StatusCode, got)
		}
	}
	if n := strings.Count(logs.String(), "a reverse proxy rewrites Host"); n != 1 {
		t.Errorf("%d log lines about the Host rewrite, want 1", n)
	}
}

// Behind a reverse proxy that rewrites Host, requests from BaseURL's own
// origin without Sec-Fetch-Site are accepted; a browser that says
// cross-site is still refused, and every refusal logs origin and host.
func TestOwnOriginTrustedBehindProxy(t *testing.T) {
	op := testOP(t, oidctest.Config{})
	var logs logBuffer
	a := newApp(t, op, func(o *Options) { o.Logger = logs.Logger() })
	br := a.signIn(t)
	const proxyHost = "127.0.0.1:8081"
	if resp := a.sendAs(br, "POST", "/api/echo", proxyHost, "Origin", a.URL); resp.StatusCode != 200 {
		t.Errorf("POST /api/echo from BaseURL's origin with a rewritten Host = %d, want 200", resp.StatusCode)
	}
	for _, h := range [][]string{{"Origin", "http://evil.example"}, {"Origin", a.URL, "Sec-Fetch-Site", "cross-site"}} {
		if resp := a.sendAs(br, "POST", "/api/echo", proxyHost, h...); resp.StatusCode != 403 {
			t.Errorf("POST /api/echo with %v = %d, want 403", h, resp.StatusCode)
		}
	}
	if out := logs.String(); !strings.Contains(out, "origin=http://evil.example host="+proxyHost) {
		t.Errorf("the refusal's log line lacks origin and host:\n%s", out)
	}
	resp := a.sendAs(br, "POST", "/auth/logout", proxyHost, "Origin", a.URL)
	if resp.StatusCode != http.StatusSeeOther || signedIn(t, a, br) {
		t.Errorf("POST /auth/logout from BaseURL's origin with a rewritten Host = %d, want the logout", resp.StatusCode)
	}
}
