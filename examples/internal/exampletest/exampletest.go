// Package exampletest drives the examples over HTTP in tests: a browser-like
// client with a cookie jar that signs in through the development IdP's HTML
// form, as a person would.
package exampletest

import (
	"bufio"
	"context"
	"html"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
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

// Browser is an HTTP client with a cookie jar that does not follow
// redirects by itself, so tests see every hop.
type Browser struct {
	t      testing.TB
	Jar    *cookiejar.Jar
	Client *http.Client
}

// NewBrowser returns a Browser with an empty cookie jar.
func NewBrowser(t testing.TB) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, Jar: jar, Client: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Response is a response with its body read.
type Response struct {
	*http.Response
	Body string
}

// Do sends a request; headers are name, value pairs. It fails the test on a
// transport error.
func (b *Browser) Do(method, u, body string, headers ...string) *Response {
	b.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return &Response{Response: resp, Body: string(data)}
}

// Get is Do("GET", u, "").
func (b *Browser) Get(u string) *Response {
	b.t.Helper()
	return b.Do("GET", u, "")
}

// Follow follows the redirects of resp (303 turns a POST into a GET) and
// returns the first response that is not a redirect.
func (b *Browser) Follow(resp *Response) *Response {
	b.t.Helper()
	for range 10 {
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return resp
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.t.Fatalf("bad Location %q: %v", resp.Header.Get("Location"), err)
		}
		resp = b.Get(loc.String())
	}
	b.t.Fatal("too many redirects")
	return nil
}

// navigation is what a browser sends with a navigation (Fetch Metadata).
var navigation = []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", "text/html,*/*;q=0.8"}

// metaRefresh finds the target of a page that navigates by itself (bff's
// page at the end of a sign-in).
var metaRefresh = regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]*)">`)

// Navigate GETs u as a browser navigation (with Fetch Metadata) and
// follows redirects and pages that refresh to another URL, as a browser
// does; it returns the final page.
func (b *Browser) Navigate(u string) *Response {
	b.t.Helper()
	for range 20 {
		resp := b.Do("GET", u, "", navigation...)
		next := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			m := metaRefresh.FindStringSubmatch(resp.Body)
			if m == nil {
				return resp
			}
			next = html.UnescapeString(m[1])
		}
		loc, err := resp.Request.URL.Parse(next)
		if err != nil {
			b.t.Fatalf("bad redirect %q: %v", next, err)
		}
		u = loc.String()
	}
	b.t.Fatal("too many redirects")
	return nil
}

// Event is one Server-Sent Event; Name is "EOF" at the end of the stream.
type Event struct{ Name, Data string }

// EventStream reads a Server-Sent Events response.
type EventStream struct {
	t      testing.TB
	events chan Event
}

// Stream opens u (an event stream) with the browser's cookies and the
// headers of a same-origin EventSource. The stream is closed at the end of
// the test.
func (b *Browser) Stream(u string) *EventStream {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Sec-Fetch-Mode", "cors")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := (&http.Client{Jar: b.Jar}).Do(req)
	if err != nil {
		cancel()
		b.t.Fatalf("GET %s: %v", u, err)
	}
	b.t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b.t.Fatalf("GET %s: %d %q", u, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &EventStream{t: b.t, events: make(chan Event, 16)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev Event
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ": ")
			switch {
			case sc.Text() == "" && ev.Name != "":
				s.events <- ev
				ev = Event{}
			case k == "event":
				ev.Name = v
			case k == "data":
				ev.Data = v
			}
		}
	}()
	return s
}

// Next returns the next event (comments skipped), or Event{Name: "EOF"}
// at the end of the stream. It fails the test after 10 s without one.
func (s *EventStream) Next() Event {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			return Event{Name: "EOF"}
		}
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10 s")
		return Event{}
	}
}

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	authRequest = regexp.MustCompile(`name="auth_request" value="([^"]+)"`)
)

// SignIn signs in at the app on appURL through its development IdP's
// sign-in page (typing username and password into the form) and returns the
// page the browser lands on, after asserting that the IdP is on another
// origin than the app.
func (b *Browser) SignIn(appURL, returnTo, username, password string) *Response {
	b.t.Helper()
	return b.SignInWith(appURL, url.Values{"returnTo": {returnTo}}, username, password)
}

// SignInWith is SignIn with the query of /auth/login (returnTo and the
// sign-in parameters, such as acr_values).
func (b *Browser) SignInWith(appURL string, query url.Values, username, password string) *Response {
	b.t.Helper()
	resp := b.IdPFormWith(appURL, query, url.Values{"username": {username}, "password": {password}})
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), appURL+"/auth/callback?") {
		b.t.Fatalf("the IdP did not redirect to the callback after sign-in: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), resp.Body)
	}
	return b.Follow(resp)
}

// IdPForm starts a sign-in at the app on appURL, checks that it leads to
// the development IdP's sign-in page on another origin, submits that
// page's form with fields (username and password, or cancel) and returns
// the IdP's answer.
func (b *Browser) IdPForm(appURL, returnTo string, fields url.Values) *Response {
	b.t.Helper()
	return b.IdPFormWith(appURL, url.Values{"returnTo": {returnTo}}, fields)
}

// IdPFormWith is IdPForm with the query of /auth/login (returnTo and the
// sign-in parameters, such as acr_values).
func (b *Browser) IdPFormWith(appURL string, query url.Values, fields url.Values) *Response {
	b.t.Helper()
	resp := b.Get(appURL + "/auth/login?" + query.Encode())
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("GET /auth/login: %d %s", resp.StatusCode, resp.Body)
	}
	authorize := resp.Header.Get("Location")
	app, _ := url.Parse(appURL)
	idp, err := url.Parse(authorize)
	if err != nil || idp.Host == app.Host {
		b.t.Fatalf("login redirected to %q, want the IdP on another origin", authorize)
	}
	page := b.Get(authorize)
	action, id := formAction.FindStringSubmatch(page.Body), authRequest.FindStringSubmatch(page.Body)
	if page.StatusCode != http.StatusOK || action == nil || id == nil {
		b.t.Fatalf("the IdP's authorize page is not a sign-in form: %d %s", page.StatusCode, page.Body)
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
		b.t.Fatal(err)
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
