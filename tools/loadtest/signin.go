package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"time"
)

// noRedirectClient keeps cookies but follows no redirect: the sign-in
// walks the redirects itself to see each response's cookies.
func noRedirectClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signIn gets a session for c: the whole OpenID Connect flow for bff, one
// Put for scs.
func signIn(c *child) error {
	base := "http://" + c.addr
	client := noRedirectClient()
	var err error
	switch {
	case c.variant == "bare":
		c.cookie = "__Host-bff=" + rand.Text() // the same request bytes as the others
		return nil
	case strings.HasPrefix(c.variant, "scs-"):
		c.cookie, err = scsSession(client, base)
	default:
		c.cookie, err = bffSession(client, base)
	}
	if err != nil {
		return err
	}
	if c.cookie == "" {
		return errors.New("no session cookie")
	}
	return nil
}

// scsSession gets an scs session from GET /login and returns its Cookie
// header value, "" if none was set.
func scsSession(client *http.Client, base string) (string, error) {
	resp, err := client.Get(base + "/login")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	var cookie string
	for _, ck := range resp.Cookies() {
		if ck.Name == "session" {
			cookie = "session=" + ck.Value
		}
	}
	return cookie, nil
}

// bffSession follows the sign-in's redirects (at most 10) through the
// provider and back until bff sets its session cookie, and returns the
// Cookie header value, "" if none was set.
func bffSession(client *http.Client, base string) (string, error) {
	var cookie string
	u := base + "/auth/login?returnTo=/"
	for range 10 {
		resp, err := client.Get(u)
		if err != nil {
			return "", err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == "__Host-bff" && ck.Value != "" {
				cookie = "__Host-bff=" + ck.Value
			}
		}
		if cookie != "" || resp.StatusCode < 300 || resp.StatusCode >= 400 {
			break
		}
		next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			return "", err
		}
		u = next.String()
	}
	return cookie, nil
}

// check: the guarded variants answer 200 with the session and 401 without.
func check(c *child) error {
	get := func(cookie string) (int, error) {
		req, _ := http.NewRequest("GET", "http://"+c.addr+"/api/me", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(c.cookie); err != nil || code != 200 {
		return fmt.Errorf("GET /api/me with the session: %d %v", code, err)
	}
	if c.variant != "bare" {
		if code, err := get(""); err != nil || code != 401 {
			return fmt.Errorf("GET /api/me without a session: %d %v, want 401", code, err)
		}
	}
	return nil
}
