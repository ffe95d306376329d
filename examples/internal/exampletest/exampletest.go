// Package exampletest drives the examples over HTTP in tests: a browser-like
// client with a cookie jar that signs in through the development IdP's HTML
// form, as a person would.
package exampletest

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
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
	form := url.Values{
		"auth_request": {html.UnescapeString(id[1])},
		"username":     {username},
		"password":     {password},
	}
	resp = b.Do("POST", html.UnescapeString(action[1]), form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), appURL+"/auth/callback?") {
		b.t.Fatalf("the IdP did not redirect to the callback after sign-in: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), resp.Body)
	}
	return b.Follow(resp)
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(appURL + "/auth/login?returnTo=/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusSeeOther {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot start a sign-in after 10 s (last: %v)", appURL, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
