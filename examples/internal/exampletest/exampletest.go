// Package exampletest drives the examples over HTTP in tests: testsupport's
// browser-like client, signing in through the development IdP's HTML form
// as a person would, and the examples served in-process.
package exampletest

import (
	"context"
	"html"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobff/bff/examples/internal/exampleapp"
	"github.com/gobff/bff/internal/testsupport"
)

// Browser is testsupport's HTTP browser with the steps of the examples'
// sign-in: through the development IdP's HTML form, as a person would.
type Browser struct{ *testsupport.Browser }

// NewBrowser returns a Browser with an empty cookie jar.
func NewBrowser(t testing.TB) *Browser { return &Browser{testsupport.NewBrowser(t)} }

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	authRequest = regexp.MustCompile(`name="auth_request" value="([^"]+)"`)
)

// SignIn signs in at the app on appURL through its development IdP's
// sign-in page (typing username and password into the form) and returns the
// page the browser lands on, after asserting that the IdP is on another
// origin than the app.
func (b *Browser) SignIn(appURL, returnTo, username, password string) *testsupport.Response {
	b.T().Helper()
	return b.SignInWith(appURL, url.Values{"returnTo": {returnTo}}, username, password)
}

// SignInWith is SignIn with the query of /auth/login (returnTo and the
// sign-in parameters, such as acr_values).
func (b *Browser) SignInWith(appURL string, query url.Values, username, password string) *testsupport.Response {
	b.T().Helper()
	resp := b.IdPFormWith(appURL, query, url.Values{"username": {username}, "password": {password}})
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), appURL+"/auth/callback?") {
		b.T().Fatalf("the IdP did not redirect to the callback after sign-in: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), resp.Body)
	}
	return b.Follow(resp)
}

// IdPForm starts a sign-in at the app on appURL, checks that it leads to
// the development IdP's sign-in page on another origin, submits that
// page's form with fields (username and password, or cancel) and returns
// the IdP's answer.
func (b *Browser) IdPForm(appURL, returnTo string, fields url.Values) *testsupport.Response {
	b.T().Helper()
	return b.IdPFormWith(appURL, url.Values{"returnTo": {returnTo}}, fields)
}

// IdPFormWith is IdPForm with the query of /auth/login (returnTo and the
// sign-in parameters, such as acr_values).
func (b *Browser) IdPFormWith(appURL string, query url.Values, fields url.Values) *testsupport.Response {
	b.T().Helper()
	resp := b.Get(appURL + "/auth/login?" + query.Encode())
	if resp.StatusCode != http.StatusSeeOther {
		b.T().Fatalf("GET /auth/login: %d %s", resp.StatusCode, resp.Body)
	}
	authorize := resp.Header.Get("Location")
	app, _ := url.Parse(appURL)
	idp, err := url.Parse(authorize)
	if err != nil || idp.Host == app.Host {
		b.T().Fatalf("login redirected to %q, want the IdP on another origin", authorize)
	}
	page := b.Get(authorize)
	action, id := formAction.FindStringSubmatch(page.Body), authRequest.FindStringSubmatch(page.Body)
	if page.StatusCode != http.StatusOK || action == nil || id == nil {
		b.T().Fatalf("the IdP's authorize page is not a sign-in form: %d %s", page.StatusCode, page.Body)
	}
	form := url.Values{"auth_request": {html.UnescapeString(id[1])}}
	for k, v := range fields {
		form[k] = v
	}
	return b.Do("POST", html.UnescapeString(action[1]), form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
}

// Cookie returns the jar's cookie called name for u.
func (b *Browser) Cookie(u, name string) (*http.Cookie, bool) {
	pu, err := url.Parse(u)
	if err != nil {
		b.T().Fatal(err)
	}
	for _, c := range b.Jar.Cookies(pu) {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// WaitReady waits until the app at appURL can start a sign-in (its
// discovery of the provider succeeded): GET /auth/login answers 303, not
// 503. It uses a client without cookies.
func WaitReady(t testing.TB, appURL string) {
	t.Helper()
	client := &http.Client{
		Timeout:       2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	testsupport.WaitUntil(t, 10*time.Second, appURL+" to start a sign-in", func() bool {
		resp, err := client.Get(appURL + "/auth/login?returnTo=/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusSeeOther
	})
}

// StartApp serves an example in-process on http://localhost:port, its
// development IdP on 127.0.0.1 (another origin), and waits until it can
// start a sign-in. env adds to (or overrides) the defaults (a fixed
// secret key, free ports). The example is closed at the end of the test.
func StartApp(t *testing.T, env map[string]string, build exampleapp.Build) (*exampleapp.Server, string) {
	t.Helper()
	var h atomic.Pointer[http.Handler]
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := h.Load(); p != nil {
			(*p).ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(ts.Close)
	appURL := strings.Replace(ts.URL, "127.0.0.1", "localhost", 1)
	vars := map[string]string{
		"BFF_ADDR":         ts.Listener.Addr().String(),
		"BFF_BASE_URL":     appURL,
		"BFF_DEV_IDP_ADDR": "127.0.0.1:0",
		"BFF_SECRET_KEY":   "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	}
	maps.Copy(vars, env)
	s, err := build(func(k string) string { return vars[k] }, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	h.Store(&s.Handler)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Auth.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	return s, appURL
}

// Logger is the examples' logger in tests: the test's log with -v,
// nothing otherwise.
func Logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testsupport.TestWriter{T: t}, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
