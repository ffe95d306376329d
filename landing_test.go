package bff

import (
	"html"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gobff/bff/internal/testsupport"
)

// navigate are the headers a browser sends with a navigation.
var navigate = testsupport.Navigation

// landingTarget checks a callback's answer to a navigation: a small HTML
// page (not a redirect) that navigates to the returned target by itself,
// with a CSP that allows nothing else. It returns the target.
func landingTarget(t *testing.T, resp *http.Response) string {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
		t.Fatalf("callback navigation = %d (Location %q), want 200 and a page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); csp != landingCSP {
		t.Errorf("Content-Security-Policy = %q, want %q", csp, landingCSP)
	}
	for _, h := range []string{"Cache-Control: no-store", "Referrer-Policy: no-referrer", "X-Content-Type-Options: nosniff"} {
		k, v, _ := strings.Cut(h, ": ")
		if resp.Header.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	if strings.Contains(string(body), "<script") || strings.Contains(string(body), "eyJ") {
		t.Errorf("the landing page holds a script or a token: %s", body)
	}
	m := testsupport.MetaRefresh.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no meta refresh in %s", body)
	}
	target := html.UnescapeString(m[1])
	if !strings.Contains(string(body), `<a href="`+m[1]+`">`) {
		t.Errorf("no link to the same target for browsers that do not refresh: %s", body)
	}
	return target
}

// A sign-in completed by a browser navigation ends with a page that
// navigates to returnTo from this origin (so the next request is a
// same-site navigation, which carries the SameSite=Strict cookie), not a
// redirect, which would continue the provider's cross-site chain. The
// session exists when the page is served. Other clients still get a 303.
func TestCallbackNavigationLandsOnAPage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		headers  []string
		returnTo string
	}{
		{"fetch metadata", navigate, "/app?tab=2#top"},
		{"accept only (no fetch metadata)", []string{"Accept", "text/html"}, "/app"},
		{"markup in returnTo", navigate, `/a"><script>x</script>?q='&x=<b>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, longTokens, nil)
			cb := e.a.startLoginTo(e.br, tc.returnTo)
			resp := e.br.do("GET", cb, nil, tc.headers...)
			if got := landingTarget(t, resp); got != tc.returnTo {
				t.Errorf("the page navigates to %q, want returnTo %q", got, tc.returnTo)
			}
			if _, ok := e.a.sessionCookie(e.br); !ok {
				t.Fatal("no session cookie with the landing page")
			}
			e.a.expect(t, e.br, "/api/me", 200, "after the landing page")
		})
	}
	t.Run("not a navigation", func(t *testing.T) {
		e := newEnv(t, longTokens, nil)
		for _, headers := range [][]string{nil, {"Sec-Fetch-Mode", "cors", "Accept", "text/html"}, {"Accept", "*/*"}} {
			cb := e.a.startLoginTo(e.br, "/app")
			resp := e.br.send("GET", cb, headers...)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app" {
				t.Errorf("headers %q: callback = %d %q, want 303 /app", headers, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	})
}
