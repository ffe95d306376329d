package oidctest

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var hiddenID = regexp.MustCompile(`name="auth_request" value="([^"]+)"`)

func TestInteractiveLogin(t *testing.T) {
	e := newEnv(t, Config{Interactive: true}, "/idp")
	a := &authReq{}
	resp, err := e.c.Get(e.authorizeURL(a))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != "frame-ancestors 'none'" {
		t.Fatalf("page: %d %v", resp.StatusCode, resp.Header)
	}
	for _, s := range []string{"<title>Sign in — bff development IdP</title>", `id="username" name="username"`,
		`id="password" name="password" type="password"`, `<button id="signin" type="submit">Sign in</button>`,
		`action="` + e.op.Issuer() + `/authorize"`} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	m := hiddenID.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no auth_request field")
	}
	submit := func(form url.Values) *http.Response {
		t.Helper()
		resp, err := e.c.PostForm(e.op.Endpoint("/authorize"), form)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// Wrong password re-renders with an error.
	resp = submit(url.Values{"auth_request": {m[1]}, "username": {"alice"}, "password": {"nope"}})
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `id="error"`) || !strings.Contains(string(body), m[1]) {
		t.Fatalf("wrong password: %d %s", resp.StatusCode, body)
	}
	// Right password redirects with a code.
	resp = submit(url.Values{"auth_request": {m[1]}, "username": {"alice"}, "password": {"alice"}})
	resp.Body.Close()
	q := e.callback(resp)
	if q.Get("state") != a.state || q.Get("iss") != e.op.Issuer() {
		t.Fatalf("callback %v", q)
	}
	if st, tok := e.exchange(q.Get("code"), a.verifier); st != 200 {
		t.Fatalf("exchange: %d %v", st, tok)
	}
	// The pending authorization is single use.
	resp = submit(url.Values{"auth_request": {m[1]}, "username": {"alice"}, "password": {"alice"}})
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("replayed form: %d", resp.StatusCode)
	}
}

func TestInteractiveCancel(t *testing.T) {
	e := newEnv(t, Config{Interactive: true}, "")
	a := &authReq{}
	resp, _ := e.c.Get(e.authorizeURL(a))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := hiddenID.FindStringSubmatch(string(body))
	resp, err := e.c.PostForm(e.op.Endpoint("/authorize"), url.Values{"auth_request": {m[1]}, "cancel": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if q := e.callback(resp); q.Get("error") != "access_denied" || q.Get("state") != a.state {
		t.Fatalf("cancel: %v", q)
	}
}
